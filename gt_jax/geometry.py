"""Legacy (mmdet v1) host geometry in numpy / python: no jax here.

The one home of the size rules and the numpy box conversions that both the
tracking-time preprocessing (`gt_jax/preprocess.py`) and the training data
pipeline (`gt_jax/data/`, which must not import jax) use. The jnp twins of the
box conversions, for jitted code, are in `gt_jax/boxes.py`.

Boxes are legacy `xyxy` corner boxes with an **inclusive** right/bottom edge
(LS §11): `x2 = x + w - 1`, width = `x2 - x1 + 1`. `(x, y, w, h)` boxes are
the dataset / benchmark convention (LS §1).

Rescale rule (LS §2, mmcv `imrescale` with keep-ratio):
`s = min(long / max(H, W), short / min(H, W))` with `(long, short) =
(1333, 800)` officially, new size `int(x * s + 0.5)` (round half up).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

# official: img_scale=(1333, 800) of the GlobalTrack test/train pipelines.
OFFICIAL_SCALE = (1333, 800)


def rescale_factor(h: int, w: int,
                   scale: Sequence[int] = OFFICIAL_SCALE) -> float:
  """mmcv `imrescale` factor: `min(long / max(h, w), short / min(h, w))`.

  Args:
    h: image height.
    w: image width.
    scale: `(long, short)` edge limits (official: (1333, 800)); order free.

  Returns:
    the python float (float64) factor `s`, one for both axes.

  Raises:
    ValueError: non-positive image size or a bad `scale`.
  """
  if h <= 0 or w <= 0:
    raise ValueError(f"rescale_factor: image size must be positive, got "
                     f"h={h!r}, w={w!r}")
  if len(scale) != 2 or min(scale) <= 0:
    raise ValueError(f"rescale_factor: scale must be 2 positive edges, got "
                     f"{scale!r}")
  long_edge, short_edge = max(scale), min(scale)
  return min(long_edge / max(h, w), short_edge / min(h, w))


def scaled_size(h: int, w: int, s: float) -> tuple[int, int]:
  """`(int(h * s + 0.5), int(w * s + 0.5))`: the official rounding.

  Args:
    h: image height.
    w: image width.
    s: the rescale factor (e.g. from `rescale_factor`).

  Returns:
    `(h', w')` python ints.
  """
  return int(h * s + 0.5), int(w * s + 0.5)


def rescaled_size(h: int, w: int,
                  scale: Sequence[int] = OFFICIAL_SCALE) -> tuple[int, int]:
  """Resized size under the official rule, `scaled_size(rescale_factor)`.

  Args:
    h: image height.
    w: image width.
    scale: `(long, short)` edge limits.

  Returns:
    `(h', w')` python ints, e.g. 480x640 -> (800, 1067).
  """
  return scaled_size(h, w, rescale_factor(h, w, scale))


def padded_size(hw: Sequence[int], multiple: int) -> tuple[int, int]:
  """`(H, W)` rounded up to multiples of `multiple` (mmdet `size_divisor`).

  Args:
    hw: `(H, W)`.
    multiple: the padding multiple (official: 32).

  Returns:
    `(Hp, Wp)` python ints.
  """
  return (int(math.ceil(hw[0] / multiple)) * multiple,
          int(math.ceil(hw[1] / multiple)) * multiple)


def xywh_to_xyxy(boxes: np.ndarray, dtype=np.float64) -> np.ndarray:
  """`(..., 4)` `(x, y, w, h)` -> legacy `(x1, y1, x + w - 1, y + h - 1)`.

  Args:
    boxes: `(..., 4)` boxes (anything `np.asarray` takes).
    dtype: the arithmetic and output dtype (float32 where the official code
      computes in float32, e.g. the tracker's query box).

  Returns:
    `(..., 4)` new array of `dtype`.
  """
  b = np.asarray(boxes, dtype)
  return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:] - 1.0], -1)


def xyxy_to_xywh(boxes: np.ndarray, dtype=np.float64) -> np.ndarray:
  """`(..., 4)` legacy corners -> `(x1, y1, x2 - x1 + 1, y2 - y1 + 1)`.

  Args:
    boxes: `(..., 4)` legacy corner boxes.
    dtype: the arithmetic and output dtype.

  Returns:
    `(..., 4)` new array of `dtype`.
  """
  b = np.asarray(boxes, dtype)
  return np.concatenate([b[..., :2], b[..., 2:] - b[..., :2] + 1], -1)


def clip_boxes(boxes: np.ndarray, height: int, width: int, *,
               fix_order: bool = False, dtype=np.float64) -> np.ndarray:
  """Official bounding of legacy boxes to an image of `height` x `width`.

  x is clipped to `[0, width - 1]`, y to `[0, height - 1]` (datasets bound
  boxes to the frame, LS §13.4; the pair transform and the tracker bound to
  the padded size, LS §2.6, §13.5). With `fix_order` the corners are then
  made ordered, `x2 = max(x2, x1)` and `y2 = max(y2, y1)`, as those two do.

  Args:
    boxes: `(..., 4)` legacy xyxy (a single `(4,)` box works too).
    height: the bound's height H.
    width: the bound's width W.
    fix_order: also enforce `x2 >= x1`, `y2 >= y1`.
    dtype: output dtype.

  Returns:
    `(..., 4)` new array of `dtype`.
  """
  b = np.array(boxes, dtype)
  b[..., 0::2] = np.clip(b[..., 0::2], 0, width - 1)
  b[..., 1::2] = np.clip(b[..., 1::2], 0, height - 1)
  if fix_order:
    b[..., 2] = np.maximum(b[..., 2], b[..., 0])
    b[..., 3] = np.maximum(b[..., 3], b[..., 1])
  return b
