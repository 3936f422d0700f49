"""Legacy (mmdetection v1) box math in jnp: the "+1" rule for jitted code.

Boxes are `xyxy` corner boxes in absolute pixels with an **inclusive**
right/bottom edge: width = x2 - x1 + 1, height = y2 - y1 + 1, centre =
(x1 + x2) / 2 (legacy-semantics §11). All jnp functions accept any leading
dims `[..., 4]` and are jittable. The numpy twins (same names) are in
`np_boxes.py`; anchors in `anchors.py`; the rescale rule in `rescale.py`.

Encode/decode pair (`bbox2delta` / `delta2bbox`):
  decode(p, encode(p, g, stds), stds) == g   (up to float rounding)
whenever the log-size deltas stay within the wh clip and no clamping to
`max_shape` applies.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


# official: delta2bbox(wh_ratio_clip=16 / 1000); the log-size deltas are
# clamped to +-|ln(16/1000)| = 4.135166556742356 so exp() cannot overflow and a
# box can grow or shrink by at most 62.5x per decode.
WH_RATIO_CLIP = 16.0 / 1000.0

ArrayLike = jax.Array | np.ndarray


def _check_last_dim(name: str, x: ArrayLike, size: int = 4) -> None:
  if x.ndim < 1 or x.shape[-1] != size:
    raise ValueError(
        f"{name} must have shape [..., {size}], got shape {tuple(x.shape)}")


def xywh_to_xyxy(b: ArrayLike) -> jax.Array:
  """`(x, y, w, h)` -> legacy corners `(x1, y1, x2, y2)`, `x2 = x + w - 1`.

  Args:
    b: `[..., 4]` boxes `(x, y, w, h)`.

  Returns:
    `[..., 4]` legacy corner boxes.
  """
  b = jnp.asarray(b)
  _check_last_dim("xywh_to_xyxy: b", b)
  x, y, w, h = jnp.moveaxis(b, -1, 0)
  return jnp.stack([x, y, x + w - 1, y + h - 1], axis=-1)


def xyxy_to_xywh(b: ArrayLike) -> jax.Array:
  """Legacy corners -> `(x, y, w, h)`, `w = x2 - x1 + 1`.

  Args:
    b: `[..., 4]` legacy corner boxes.

  Returns:
    `[..., 4]` boxes `(x, y, w, h)`.
  """
  b = jnp.asarray(b)
  _check_last_dim("xyxy_to_xywh: b", b)
  x1, y1, x2, y2 = jnp.moveaxis(b, -1, 0)
  return jnp.stack([x1, y1, x2 - x1 + 1, y2 - y1 + 1], axis=-1)


def box_area(b: ArrayLike) -> jax.Array:
  """Legacy area `(x2 - x1 + 1) * (y2 - y1 + 1)` of `[..., 4]` -> `[...]`."""
  b = jnp.asarray(b)
  _check_last_dim("box_area: b", b)
  return (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)


def pairwise_iou(a: ArrayLike, b: ArrayLike) -> jax.Array:
  """Legacy +1 IoU of every pair (mmdet v1 `bbox_overlaps`, NMS kernel).

  `inter = max(0, min(x2) - max(x1) + 1) * max(0, min(y2) - max(y1) + 1)`,
  `iou = inter / (area_a + area_b - inter)`. Evaluated in this order so the
  float32 result matches the official CUDA NMS kernel's `devIoU`. Two
  zero-area boxes give 0/0 = NaN, which compares False against any
  threshold, as in the kernel.

  Args:
    a: `(N, 4)` legacy boxes.
    b: `(M, 4)` legacy boxes.

  Returns:
    `(N, M)` IoU.
  """
  a = jnp.asarray(a)
  b = jnp.asarray(b)
  if a.ndim != 2 or a.shape[-1] != 4:
    raise ValueError(f"pairwise_iou: a must have shape (N, 4), got {a.shape}")
  if b.ndim != 2 or b.shape[-1] != 4:
    raise ValueError(f"pairwise_iou: b must have shape (M, 4), got {b.shape}")
  a = a[:, None, :]
  b = b[None, :, :]
  left = jnp.maximum(a[..., 0], b[..., 0])
  right = jnp.minimum(a[..., 2], b[..., 2])
  top = jnp.maximum(a[..., 1], b[..., 1])
  bottom = jnp.minimum(a[..., 3], b[..., 3])
  width = jnp.maximum(right - left + 1, 0)
  height = jnp.maximum(bottom - top + 1, 0)
  inter = width * height
  area_a = box_area(a)
  area_b = box_area(b)
  return inter / (area_a + area_b - inter)


def _centre_size(b: jax.Array) -> tuple[jax.Array, ...]:
  """Legacy centre and +1 size of `[..., 4]` boxes: 4 arrays `[...]`.

  `cx = (x1 + x2) / 2`, `w = x2 - x1 + 1` (mmdet v1 `bbox2delta` /
  `delta2bbox`).
  """
  return ((b[..., 0] + b[..., 2]) * 0.5, (b[..., 1] + b[..., 3]) * 0.5,
          b[..., 2] - b[..., 0] + 1.0, b[..., 3] - b[..., 1] + 1.0)


def _as_stds(stds: Sequence[float], dtype) -> jax.Array:
  if len(stds) != 4:
    raise ValueError(f"stds must have 4 entries, got {stds!r}")
  return jnp.asarray(stds, dtype=dtype)


def encode(
    proposals: ArrayLike,
    gt: ArrayLike,
    stds: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
) -> jax.Array:
  """Regression targets of `gt` w.r.t. `proposals` (mmdet v1 `bbox2delta`).

  `dx = (gx - px) / pw`, `dw = ln(gw / pw)` with +1 widths and centres
  `(x1 + x2) / 2`, then divided by `stds` (means are 0 in GlobalTrack).

  Args:
    proposals: `[..., 4]` legacy boxes.
    gt: `[..., 4]` legacy boxes, broadcastable against `proposals`.
    stds: 4 per-coordinate standard deviations.

  Returns:
    `[..., 4]` deltas `(dx, dy, dw, dh)`.
  """
  proposals = jnp.asarray(proposals)
  gt = jnp.asarray(gt)
  _check_last_dim("encode: proposals", proposals)
  _check_last_dim("encode: gt", gt)
  px, py, pw, ph = _centre_size(proposals)
  gx, gy, gw, gh = _centre_size(gt)
  deltas = jnp.stack(
      [(gx - px) / pw, (gy - py) / ph,
       jnp.log(gw / pw), jnp.log(gh / ph)], axis=-1)
  return deltas / _as_stds(stds, deltas.dtype)


def decode(
    proposals: ArrayLike,
    deltas: ArrayLike,
    stds: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    max_shape: ArrayLike | Sequence[int] | None = None,
    wh_ratio_clip: float = WH_RATIO_CLIP,
) -> jax.Array:
  """Applies deltas to proposals (mmdet v1 `delta2bbox`, means 0).

  `d = delta * std`; `dw, dh` clamped to `+-|ln(wh_ratio_clip)|`;
  `gw = pw * exp(dw)`, `gx = px + pw * dx`; corners
  `x1 = gx - gw/2 + 0.5`, `x2 = gx + gw/2 - 0.5`. With `max_shape = (h, w)`
  each corner is then clamped on its own: x to `[0, w - 1]`, y to
  `[0, h - 1]` (after the corner conversion, as in the official code).

  Args:
    proposals: `[..., 4]` legacy boxes.
    deltas: `[..., 4]` `(dx, dy, dw, dh)`, broadcastable against
      `proposals` (e.g. proposals `(R, 1, 4)` with class-wise deltas
      `(R, K, 4)`).
    stds: 4 per-coordinate standard deviations.
    max_shape: None or `(h, w)` of the unpadded image (array `[..., 2]`,
      may be traced; leading dims broadcast against the boxes').
    wh_ratio_clip: the official clip ratio 16/1000.

  Returns:
    `[..., 4]` decoded legacy boxes.
  """
  proposals = jnp.asarray(proposals)
  deltas = jnp.asarray(deltas)
  _check_last_dim("decode: proposals", proposals)
  _check_last_dim("decode: deltas", deltas)
  if not 0.0 < wh_ratio_clip < 1.0:
    raise ValueError(f"decode: wh_ratio_clip must be in (0, 1), got "
                     f"{wh_ratio_clip!r}")
  d = deltas * _as_stds(stds, deltas.dtype)
  # Computed in float64 on the host, like the official np.abs(np.log(...)).
  max_ratio = abs(math.log(wh_ratio_clip))
  dx = d[..., 0]
  dy = d[..., 1]
  dw = jnp.clip(d[..., 2], -max_ratio, max_ratio)
  dh = jnp.clip(d[..., 3], -max_ratio, max_ratio)
  px, py, pw, ph = _centre_size(proposals)
  gw = pw * jnp.exp(dw)
  gh = ph * jnp.exp(dh)
  gx = px + pw * dx
  gy = py + ph * dy
  x1 = gx - gw * 0.5 + 0.5
  y1 = gy - gh * 0.5 + 0.5
  x2 = gx + gw * 0.5 - 0.5
  y2 = gy + gh * 0.5 - 0.5
  if max_shape is not None:
    max_shape = jnp.asarray(max_shape)
    _check_last_dim("decode: max_shape", max_shape, 2)
    h_max = (max_shape[..., 0] - 1).astype(x1.dtype)
    w_max = (max_shape[..., 1] - 1).astype(x1.dtype)
    x1 = jnp.clip(x1, 0, w_max)
    y1 = jnp.clip(y1, 0, h_max)
    x2 = jnp.clip(x2, 0, w_max)
    y2 = jnp.clip(y2, 0, h_max)
  return jnp.stack([x1, y1, x2, y2], axis=-1)
