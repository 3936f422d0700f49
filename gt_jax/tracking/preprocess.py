"""Tracking-time preprocessing on the host (numpy + OpenCV), LS §1-§2.

Official pipeline (neuron `BasicPairTransforms(train=False)`), in order:
RGB uint8 -> rescale factor `s = min(long / max(H, W), short / min(H, W))`
-> `cv2.resize` INTER_LINEAR on the uint8 image to `(int(W s + .5),
int(H s + .5))` -> `(x - mean) / std` -> zero-pad bottom/right. The query box
is scaled by `s` (no +1 correction) and bounded to the padded canvas; results
are divided by `s`.

Frames: `(H, W, 3)` uint8 RGB. Greyscale `(H, W)` / `(H, W, 1)` is replicated
and RGBA / grey+alpha drop the alpha channel, as PIL's `convert('RGB')` does
for the official loader. Other dtypes (uint16 16-bit PNGs, floats) are
refused with a ValueError: a silent rescale would change the network input.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import cv2
import numpy as np

from gt_jax.boxes import np_boxes
from gt_jax.boxes import rescale


@dataclasses.dataclass(frozen=True)
class Preprocessed:
  """One frame on its canvas.

  Attributes:
    image: float32 (Hc, Wc, 3) normalised, zero-padded.
    img_hw: (H', W') resized unpadded size (mmdet `img_shape`).
    pad_hw: (Hp, Wp) the official multiple-of-`size_divisor` padded size.
    scale: the rescale factor s (one float for both axes).
    orig_hw: (H, W) of the input frame.
  """
  image: np.ndarray
  img_hw: tuple[int, int]
  pad_hw: tuple[int, int]
  scale: float
  orig_hw: tuple[int, int]


def to_rgb_uint8(frame: np.ndarray, name: str = "frame") -> np.ndarray:
  """Returns `frame` as (H, W, 3) uint8 RGB, converting grey / RGBA.

  Raises:
    ValueError: not a numpy array, wrong rank / channel count, empty, or a
      dtype other than uint8 (the message names `name` and the problem).
  """
  if not isinstance(frame, np.ndarray):
    raise ValueError(f"{name} must be a numpy array, got {type(frame)}")
  if frame.dtype != np.uint8:
    raise ValueError(
        f"{name} has dtype {frame.dtype}; expected uint8 RGB. Convert "
        "16-bit/float images yourself (e.g. (img >> 8).astype(np.uint8) for "
        "uint16) so the network sees what the official PIL loader gives")
  if frame.ndim == 3 and frame.shape[-1] == 1:
    frame = frame[..., 0]
  if frame.ndim == 2:
    frame = np.repeat(frame[..., None], 3, axis=-1)
  elif frame.ndim == 3 and frame.shape[-1] == 2:  # grey + alpha ("LA").
    frame = np.repeat(frame[..., :1], 3, axis=-1)
  elif frame.ndim == 3 and frame.shape[-1] == 4:  # RGBA: alpha dropped.
    frame = frame[..., :3]
  if frame.ndim != 3 or frame.shape[-1] != 3:
    raise ValueError(f"{name} must be (H, W, 3) RGB (or (H, W) grey / "
                     f"(H, W, 4) RGBA); got shape {frame.shape}")
  if frame.shape[0] < 1 or frame.shape[1] < 1:
    raise ValueError(f"{name} is empty: shape {frame.shape}")
  return np.ascontiguousarray(frame)


def rescale_size(hw: tuple[int, int],
                 scale: Sequence[int]) -> tuple[float, tuple[int, int]]:
  """Official keep-ratio rescale rule (mmcv `imrescale`, `gt_jax.geometry`).

  Args:
    hw: (H, W) of the frame.
    scale: (long, short) edge limits, official (1333, 800).

  Returns:
    (s, (H', W')) with `s = min(long / max(H, W), short / min(H, W))` and
    `W' = int(W s + 0.5)` (round half up), e.g. 480x640 -> (5/3, (800, 1067)).
  """
  h, w = int(hw[0]), int(hw[1])
  s = rescale.rescale_factor(h, w, scale)
  return s, rescale.scaled_size(h, w, s)


# (H, W) rounded up to a multiple; kept here for the callers of this module.
padded_size = rescale.padded_size


def preprocess_frame(frame: np.ndarray,
                     scale: Sequence[int] = (1333, 800),
                     mean: Sequence[float] = (123.675, 116.28, 103.53),
                     std: Sequence[float] = (58.395, 57.12, 57.375),
                     size_divisor: int = 32,
                     canvas_multiple: int = 32,
                     canvas_hw: tuple[int, int] | None = None,
                     name: str = "frame") -> Preprocessed:
  """Rescales, normalises and pads one frame (LS §2.1-§2.5).

  Args:
    frame: (H, W, 3) uint8 RGB (grey / RGBA converted, see `to_rgb_uint8`).
    scale: (long, short) limits (official: (1333, 800)).
    mean, std: RGB normalisation (official ImageNet values).
    size_divisor: official padding multiple (32); defines `pad_hw`.
    canvas_multiple: the canvas is the resized size rounded up to this
      multiple (32 = official; coarser values let frames share a compile).
    canvas_hw: an explicit canvas (overrides `canvas_multiple`), e.g. one
      shared by a batch of sequences; must hold the resized frame.
    name: used in error messages.

  Returns:
    `Preprocessed`; the pad area of `image` is 0 (= the mean colour).

  Raises:
    ValueError: bad frame, or the frame does not fit `canvas_hw`.
  """
  rgb = to_rgb_uint8(frame, name)
  orig_hw = rgb.shape[:2]
  s, (nh, nw) = rescale_size(orig_hw, scale)
  # cv2 takes (width, height); resizing the uint8 image rounds back to uint8,
  # exactly as the official pipeline.
  resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
  # official: float32 image minus/divided by float64 arrays, stored float32.
  norm = ((resized.astype(np.float32) - np.asarray(mean, np.float64)) /
          np.asarray(std, np.float64)).astype(np.float32)
  pad_hw = padded_size((nh, nw), size_divisor)
  if canvas_hw is None:
    canvas_hw = padded_size((nh, nw), canvas_multiple)
  canvas_hw = (int(canvas_hw[0]), int(canvas_hw[1]))
  if canvas_hw[0] < nh or canvas_hw[1] < nw:
    raise ValueError(
        f"{name} of size {orig_hw} resizes to {(nh, nw)}, which does not fit "
        f"the canvas {canvas_hw}")
  image = np.zeros((*canvas_hw, 3), np.float32)
  image[:nh, :nw] = norm
  return Preprocessed(image=image, img_hw=(nh, nw), pad_hw=pad_hw, scale=s,
                      orig_hw=orig_hw)


def check_box_xywh(box: Sequence[float], orig_hw: tuple[int, int],
                   name: str = "box") -> np.ndarray:
  """Validates an init box (x, y, w, h) in original pixels.

  A box partly outside the frame is accepted (it is bounded later, as the
  official code does); NaN/inf, non-positive size, or a box entirely outside
  the frame raise.

  Returns:
    float64 (4,) copy of the box.

  Raises:
    ValueError: naming `name` and the problem.
  """
  b = np.asarray(box, np.float64)
  if b.shape != (4,):
    raise ValueError(f"{name} must be (x, y, w, h); got shape {b.shape}")
  if not np.all(np.isfinite(b)):
    raise ValueError(f"{name} {b.tolist()} has NaN/inf coordinates")
  x, y, w, h = b
  if w <= 0 or h <= 0:
    raise ValueError(f"{name} {b.tolist()} has zero or negative size")
  ih, iw = orig_hw
  if x > iw - 1 or y > ih - 1 or x + w - 1 < 0 or y + h - 1 < 0:
    raise ValueError(
        f"{name} {b.tolist()} lies entirely outside the {iw}x{ih} frame")
  return b


def query_box(box_xywh: Sequence[float], scale: float,
              pad_hw: tuple[int, int]) -> np.ndarray:
  """Init box (x, y, w, h) original pixels -> legacy xyxy on the canvas.

  Official (LS §1, §2.6): corners `[x, y, x + w - 1, y + h - 1]` in float32,
  all four multiplied by `s` (no +1 correction), x clipped to [0, Wp - 1],
  y to [0, Hp - 1] of the official padded size, then x2 >= x1, y2 >= y1.

  Returns:
    float32 (4,).
  """
  if np.shape(box_xywh) != (4,):
    raise ValueError(f"query_box: box_xywh must be (x, y, w, h), got shape "
                     f"{np.shape(box_xywh)}")
  b = np_boxes.xywh_to_xyxy(box_xywh, np.float32) * np.float32(scale)
  hp, wp = pad_hw
  return np_boxes.clip_boxes(b, hp, wp, fix_order=True, dtype=np.float32)


def box_to_original_xywh(box_xyxy: np.ndarray, scale: float) -> np.ndarray:
  """Resized-canvas legacy xyxy (..., 4) -> original-pixel xywh (..., 4).

  Official: the four corners are divided by s, no other clipping (LS §2);
  then `w = x2 - x1 + 1`. float64 output.
  """
  return np_boxes.xyxy_to_xywh(np.asarray(box_xyxy, np.float64) / scale)
