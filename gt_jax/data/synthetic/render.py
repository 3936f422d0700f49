"""Rendering of plans into frames, and the ground truth measured from them.

The ground truth of every layer comes from the same masks that are drawn:
an object is where its resized alpha is >= 0.5. Boxes are tight around the
in-frame part of that mask (amodal: occluders do not shrink them); the
visible ratio counts the mask pixels that are inside the frame and not under
a later (higher) layer's mask.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from gt_jax.data.synthetic import scenario

# Marker mode (tests): flat colours and hard masks so that pixels can be
# matched exactly against the boxes.
MARKER_COLORS = {
    "target": (255, 0, 255),
    "distractor": (0, 255, 255),
    "occluder": (255, 255, 0),
}


@dataclasses.dataclass(frozen=True)
class LayerTruth:
  """Ground truth of one layer in one frame.

  Attributes:
    box: int64 (4,) x1, y1, x2, y2, inclusive 0-based pixel box of the
      layer's in-frame mask; all -1 when nothing of it is in the frame.
    full_area: mask pixels of the whole (unclipped) object; 0 if not drawn.
    in_frame_area: mask pixels inside the frame.
    visible_area: in-frame mask pixels not covered by higher layers.
    visible_box: int64 (4,) like `box`, around the visible pixels only.
  """
  box: np.ndarray
  full_area: int
  in_frame_area: int
  visible_area: int
  visible_box: np.ndarray

  @property
  def in_view(self) -> bool:
    return self.in_frame_area > 0

  @property
  def visible_ratio(self) -> float:
    return self.visible_area / self.full_area if self.full_area else 0.0

  @property
  def cut_by_image(self) -> bool:
    return 0 < self.in_frame_area < self.full_area


_NO_BOX = np.full(4, -1, np.int64)


def tight_box(mask: np.ndarray) -> np.ndarray:
  """int64 (4,) inclusive x1, y1, x2, y2 of a bool (H, W) mask, or -1s."""
  cols = np.flatnonzero(mask.any(axis=0))
  if cols.size == 0:
    return _NO_BOX.copy()
  rows = np.flatnonzero(mask.any(axis=1))
  return np.array([cols[0], rows[0], cols[-1], rows[-1]], np.int64)


def _resized(layer: scenario.Layer, w: int, h: int,
             marker: bool) -> tuple[np.ndarray, np.ndarray]:
  """The layer's sprite at (h, w): float32 rgb (h, w, 3), alpha (h, w)."""
  s = layer.sprite
  interp = cv2.INTER_AREA if w < s.rgb.shape[1] else cv2.INTER_LINEAR
  alpha = cv2.resize(s.alpha, (w, h), interpolation=interp)
  if marker:
    alpha = (alpha >= 0.5).astype(np.float32)
    color = MARKER_COLORS.get(layer.role, (0, 0, 255))
    rgb = np.broadcast_to(np.float32(color), (h, w, 3))
  else:
    rgb = cv2.resize(s.rgb, (w, h), interpolation=interp)
  return rgb, alpha


def render_frame(plan: scenario.VideoPlan, t: int, *,
                 marker: bool = False
                 ) -> tuple[np.ndarray, list[LayerTruth]]:
  """Draws frame `t` of `plan`.

  Args:
    plan: the video plan.
    t: the frame index (0-based).
    marker: flat marker colours and hard masks (for tests).

  Returns:
    (uint8 (H, W, 3) RGB frame, one LayerTruth per layer of plan.layers).
  """
  height, width = plan.height, plan.width
  frame = cv2.warpAffine(plan.background, plan.camera[t], (width, height),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REFLECT)
  masks, full_areas = [], []
  for layer in plan.layers:
    mask = np.zeros((height, width), bool)
    masks.append(mask)
    full_areas.append(0)
    if not layer.present[t]:
      continue
    x0, y0, w, h = (int(v) for v in layer.rects[t])
    rgb, alpha = _resized(layer, w, h, marker)
    if layer.gains is not None and not marker:
      rgb = rgb * layer.gains[t]  # colour / brightness change over time
    full_areas[-1] = int((alpha >= 0.5).sum())
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + w, width), min(y0 + h, height)
    if fx0 >= fx1 or fy0 >= fy1:
      continue
    sl = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
    a = alpha[sl][..., None]
    region = frame[fy0:fy1, fx0:fx1]
    frame[fy0:fy1, fx0:fx1] = region * (1 - a) + rgb[sl] * a
    mask[fy0:fy1, fx0:fx1] = alpha[sl] >= 0.5

  truths = [None] * len(masks)
  covered = np.zeros((height, width), bool)
  for i in range(len(masks) - 1, -1, -1):  # top layer first
    visible = masks[i] & ~covered
    truths[i] = LayerTruth(box=tight_box(masks[i]), full_area=full_areas[i],
                           in_frame_area=int(masks[i].sum()),
                           visible_area=int(visible.sum()),
                           visible_box=tight_box(visible))
    covered |= masks[i]
  image = np.clip(np.round(frame), 0, 255).astype(np.uint8)
  return image, truths


def render_visible_mask(plan: scenario.VideoPlan, t: int,
                        index: int) -> np.ndarray:
  """bool (H, W): pixels of layer `index` not hidden by higher layers.

  Used for COCO segmentations; recomputes only the masks, not the colours.
  """
  height, width = plan.height, plan.width
  covered = np.zeros((height, width), bool)
  own = np.zeros((height, width), bool)
  for i, layer in enumerate(plan.layers):
    if i < index or not layer.present[t]:
      continue
    x0, y0, w, h = (int(v) for v in layer.rects[t])
    _, alpha = _resized(layer, w, h, marker=True)
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + w, width), min(y0 + h, height)
    if fx0 >= fx1 or fy0 >= fy1:
      continue
    m = alpha[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0] >= 0.5
    target = own if i == index else covered
    target[fy0:fy1, fx0:fx1] |= m
  return own & ~covered
