"""Legacy box math on the host (numpy): the twin of `jnp_boxes` for data code.

Boxes are legacy `xyxy` corner boxes with an **inclusive** right/bottom edge
(LS §11): `x2 = x + w - 1`, width = `x2 - x1 + 1`. `(x, y, w, h)` boxes are
the dataset / benchmark convention (LS §1). Functions with the same name in
`gt_jax/boxes/jnp_boxes.py` compute the same thing in jnp for jitted code;
this module never imports jax (`gt_jax/data` uses it).
"""

from __future__ import annotations

import numpy as np


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


def box_area(boxes: np.ndarray) -> np.ndarray:
  """`(..., 4)` legacy boxes -> `(...)` areas `(x2 - x1 + 1)(y2 - y1 + 1)`."""
  b = np.asarray(boxes, np.float64)
  return (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Legacy +1 IoU of every pair, float64 (`jnp_boxes.pairwise_iou`'s twin).

  Args:
    a: `(N, 4)` legacy boxes.
    b: `(M, 4)` legacy boxes.

  Returns:
    `(N, M)` IoU; a pair of two zero-area boxes gives NaN (0 / 0).

  Raises:
    ValueError: an argument is not `(K, 4)`.
  """
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  for name, x in (("a", a), ("b", b)):
    if x.ndim != 2 or x.shape[-1] != 4:
      raise ValueError(f"pairwise_iou: {name} must have shape (K, 4), got "
                       f"{x.shape}")
  iw = (np.minimum(a[:, None, 2], b[None, :, 2]) -
        np.maximum(a[:, None, 0], b[None, :, 0]) + 1)
  ih = (np.minimum(a[:, None, 3], b[None, :, 3]) -
        np.maximum(a[:, None, 1], b[None, :, 1]) + 1)
  inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
  with np.errstate(invalid="ignore", divide="ignore"):
    return inter / (box_area(a)[:, None] + box_area(b)[None, :] - inter)


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
