"""Training transforms of a pair (LS §13.5, official `ExtraPairTransforms`).

Per image: photometric distortion (float32, no clipping) -> rescale with the
(long, short) rule and a random interpolation, on the float image ->
normalise -> random horizontal flip -> zero-pad into a static canvas. The
channel swap of the photometric step is drawn once and shared by the pair.
Boxes are scaled, flipped, checked for having left the image, and clipped;
the instance axis is padded to `max_instances` with a validity mask.

One deviation from the official code, for static shapes: images are padded
to a fixed canvas per orientation (config `data.canvas_landscape` /
`canvas_portrait`) instead of the next multiple of 32. Boxes are still
clipped to the official multiple-of-32 padded size, so the targets match.

All randomness comes from one `numpy.random.Generator` seeded by the pair's
`aug_seed`, so a pair's example is a pure function of the pair.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import cv2
import numpy as np

from gt_jax.boxes import np_boxes
from gt_jax.boxes import rescale

# Official: the interpolation is drawn uniformly from these five (LS §13.5).
INTERPOLATIONS = (cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_AREA,
                  cv2.INTER_NEAREST, cv2.INTER_LANCZOS4)
# Official PhotoMetricDistortion ranges (mmdet v1 defaults).
_BRIGHTNESS_DELTA = 32.0
_CONTRAST_RANGE = (0.5, 1.5)
_SATURATION_RANGE = (0.5, 1.5)
_HUE_DELTA = 18.0


@dataclasses.dataclass(frozen=True)
class Photometric:
  """Drawn photometric parameters of one image; None = step skipped."""
  brightness: float | None = None  # added to every channel
  contrast: float | None = None  # multiplies every channel
  contrast_first: bool = True  # contrast before (True) or after the HSV part
  saturation: float | None = None  # multiplies S
  hue: float | None = None  # added to H (degrees)


@dataclasses.dataclass(frozen=True)
class ImageAugment:
  """Drawn augmentation of one image of the pair."""
  photometric: Photometric | None
  interpolation: int
  flip: bool


@dataclasses.dataclass(frozen=True)
class PairAugment:
  """Drawn augmentation of a pair; `channel_order` is shared (None = keep)."""
  query: ImageAugment
  search: ImageAugment
  channel_order: tuple[int, int, int] | None


def draw_photometric(rng: np.random.Generator) -> Photometric:
  """Draws the official distortion parameters (each step with p = 1/2)."""
  brightness = (float(rng.uniform(-_BRIGHTNESS_DELTA, _BRIGHTNESS_DELTA))
                if rng.integers(2) else None)
  contrast_first = bool(rng.integers(2))
  contrast = (float(rng.uniform(*_CONTRAST_RANGE))
              if rng.integers(2) else None)
  saturation = (float(rng.uniform(*_SATURATION_RANGE))
                if rng.integers(2) else None)
  hue = float(rng.uniform(-_HUE_DELTA, _HUE_DELTA)) if rng.integers(2) else None
  return Photometric(brightness, contrast, contrast_first, saturation, hue)


def photometric_distort(img: np.ndarray, p: Photometric) -> np.ndarray:
  """Applies `p` to a float32 (H, W, 3) RGB image; never clips.

  HSV uses OpenCV's float convention: H in degrees [0, 360), S in [0, 1],
  V on the input scale.
  """
  x = np.asarray(img, np.float32)
  if p.brightness is not None:
    x = x + np.float32(p.brightness)
  if p.contrast_first and p.contrast is not None:
    x = x * np.float32(p.contrast)
  # Official: the HSV round trip always runs. It is not the identity for
  # pixels pushed out of [0, 255] (all-negative ones change), so keep it.
  hsv = cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_RGB2HSV)
  if p.saturation is not None:
    hsv[..., 1] *= np.float32(p.saturation)
  if p.hue is not None:
    h = hsv[..., 0] + np.float32(p.hue)
    # Official wrap: subtract/add 360 once, into [0, 360].
    h = np.where(h > 360, h - 360, h)
    hsv[..., 0] = np.where(h < 0, h + 360, h)
  x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
  if not p.contrast_first and p.contrast is not None:
    x = x * np.float32(p.contrast)
  return x.astype(np.float32, copy=False)


def rescale_factor(height: int, width: int, scale: Sequence[int],
                   canvas_hw: Sequence[int] | None = None) -> float:
  """Official keep-ratio factor (`rescale.rescale_factor`), canvas-capped.

  `scale` is (long, short), e.g. (1333, 800). With `canvas_hw`, s is also
  capped so that the resized image fits the canvas (only binds for an image
  whose orientation differs from its batch's, which the official pipeline,
  padding each image separately, never needs).
  """
  s = rescale.rescale_factor(height, width, scale)
  if canvas_hw is not None:
    s = min(s, canvas_hw[0] / height, canvas_hw[1] / width)
  return s


# (H', W') = (int(H s + 0.5), int(W s + 0.5)), the official rounding.
rescaled_size = rescale.scaled_size


def flip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
  """Flips (K, 4) legacy xyxy: x1' = W - x2 - 1, x2' = W - x1 - 1 (LS §11)."""
  b = np.array(boxes, np.float32)
  b[:, 0], b[:, 2] = width - boxes[:, 2] - 1, width - boxes[:, 0] - 1
  return b


def inside_image(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
  """bool (K,): the box keeps a positive legacy (+1) area inside the image.

  An instance whose box has no pixel in [0, W-1] x [0, H-1] has left the frame
  and is dropped from the pair.
  """
  w = np.minimum(boxes[:, 2], width - 1) - np.maximum(boxes[:, 0], 0) + 1
  h = np.minimum(boxes[:, 3], height - 1) - np.maximum(boxes[:, 1], 0) + 1
  return (w > 0) & (h > 0)


def clip_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
  """Official bounding of (K, 4) to the padded size: x to [0, W-1], y to
  [0, H-1], then x2 >= x1 and y2 >= y1; float32."""
  return np_boxes.clip_boxes(boxes, height, width, fix_order=True,
                             dtype=np.float32)


class PairTransform:
  """Turns a decoded pair into a fixed-shape training example.

  Call with a dict holding `query_image`, `search_image` uint8 (H, W, 3),
  `query_boxes`, `search_boxes` float32 (K, 4) legacy xyxy, `landscape` and
  `aug_seed` (see `pairs.MixedPairSource`). Returns the training example of
  docs/internals.md: `query_image`/`search_image` float32 (Hc, Wc, 3),
  `query_boxes`/`search_boxes` float32 (M, 4), `instance_valid` bool (M,),
  `query_hw`/`search_hw` int32 (2,). Instances that left either image are
  dropped (the rest keep their order); if none survives, all of
  `instance_valid` is False.
  """

  def __init__(self, *, scale: Sequence[int], mean: Sequence[float],
               std: Sequence[float], size_divisor: int,
               canvas_landscape: Sequence[int],
               canvas_portrait: Sequence[int], max_instances: int,
               photometric: bool = True, flip_prob: float = 0.5):
    long, short = max(scale), min(scale)
    for field, hw, need in (("data.canvas_landscape", canvas_landscape,
                             (short, long)),
                            ("data.canvas_portrait", canvas_portrait,
                             (long, short))):
      if len(hw) != 2 or hw[0] < need[0] or hw[1] < need[1]:
        raise ValueError(
            f"config {field}={tuple(hw)} is smaller than the resized size "
            f"{need} of preprocess.scale={tuple(scale)}")
    if max_instances < 1:
      raise ValueError(f"config data.max_instances must be >= 1, got "
                       f"{max_instances}")
    self.scale = (int(long), int(short))
    self.mean = np.asarray(mean, np.float32)
    self.std = np.asarray(std, np.float32)
    self.size_divisor = int(size_divisor)
    self.canvas = {True: tuple(int(v) for v in canvas_landscape),
                   False: tuple(int(v) for v in canvas_portrait)}
    self.max_instances = int(max_instances)
    self.photometric = bool(photometric)
    self.flip_prob = float(flip_prob)

  @classmethod
  def from_config(cls, cfg: Any) -> "PairTransform":
    """Builds the transform from the full config (`preprocess`, `data`)."""
    return cls(scale=cfg.preprocess.scale, mean=cfg.preprocess.mean,
               std=cfg.preprocess.std,
               size_divisor=cfg.preprocess.size_divisor,
               canvas_landscape=cfg.data.canvas_landscape,
               canvas_portrait=cfg.data.canvas_portrait,
               max_instances=cfg.data.max_instances,
               photometric=cfg.data.photometric,
               flip_prob=cfg.data.flip_prob)

  def draw(self, rng: np.random.Generator) -> PairAugment:
    """Draws every random choice of one pair, in a fixed order."""
    def one() -> ImageAugment:
      p = draw_photometric(rng) if self.photometric else None
      return ImageAugment(p, INTERPOLATIONS[rng.integers(len(INTERPOLATIONS))],
                          bool(rng.random() < self.flip_prob))
    query = one()
    order = None
    if self.photometric and rng.integers(2):
      order = tuple(int(c) for c in rng.permutation(3))
    return PairAugment(query, one(), order)

  def __call__(self, pair: dict[str, Any]) -> dict[str, np.ndarray]:
    aug = self.draw(np.random.default_rng(int(pair["aug_seed"])))
    return self.apply(pair, aug)

  def apply(self, pair: dict[str, Any],
            aug: PairAugment) -> dict[str, np.ndarray]:
    """The example of `pair` under the drawn augmentation `aug`."""
    canvas = self.canvas[bool(pair["landscape"])]
    zi, zb, zhw = self._image(pair["query_image"], pair["query_boxes"],
                              aug.query, aug.channel_order, canvas)
    xi, xb, xhw = self._image(pair["search_image"], pair["search_boxes"],
                              aug.search, aug.channel_order, canvas)
    keep = np.flatnonzero(
        inside_image(zb, *zhw) & inside_image(xb, *xhw))[:self.max_instances]
    m = self.max_instances
    out_z, out_x = np.zeros((m, 4), np.float32), np.zeros((m, 4), np.float32)
    out_z[:len(keep)] = clip_boxes(zb[keep], *self._padded(zhw, canvas))
    out_x[:len(keep)] = clip_boxes(xb[keep], *self._padded(xhw, canvas))
    return dict(query_image=zi, search_image=xi, query_boxes=out_z,
                search_boxes=out_x,
                instance_valid=np.arange(m) < len(keep),
                query_hw=np.asarray(zhw, np.int32),
                search_hw=np.asarray(xhw, np.int32))

  def _padded(self, hw: tuple[int, int],
              canvas: tuple[int, int]) -> tuple[int, int]:
    """The official padded size (next multiple of size_divisor), which boxes
    are clipped to; never beyond the canvas."""
    ph, pw = rescale.padded_size(hw, self.size_divisor)
    return min(ph, canvas[0]), min(pw, canvas[1])

  def _image(
      self, img: np.ndarray, boxes: np.ndarray, aug: ImageAugment,
      order: tuple[int, int, int] | None, canvas: tuple[int, int]
  ) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """One image: (canvas (Hc, Wc, 3), boxes (K, 4) unclipped, (H', W'))."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3:
      raise ValueError(f"expected an (H, W, 3) image, got {img.shape}")
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    x = img.astype(np.float32)
    if aug.photometric is not None:
      x = photometric_distort(x, aug.photometric)
    if order is not None:
      x = x[..., list(order)]
    h, w = img.shape[:2]
    s = rescale_factor(h, w, self.scale, canvas)
    nh, nw = rescaled_size(h, w, s)
    x = cv2.resize(np.ascontiguousarray(x), (nw, nh),
                   interpolation=aug.interpolation)
    x -= self.mean  # in place on the fresh resize output (same values)
    x /= self.std
    boxes = boxes * np.float32(s)  # official: all four coordinates times s
    if aug.flip:
      x = cv2.flip(x, 1)
      boxes = flip_boxes(boxes, nw)
    out = np.zeros(canvas + (3,), np.float32)  # pad with 0 after normalising
    out[:nh, :nw] = x
    return out, boxes, (nh, nw)
