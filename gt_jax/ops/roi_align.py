"""Legacy mmdet-v1 RoIAlign (single and multi-level), vectorised.

Kernel semantics (legacy-semantics §8), per RoI `[x1, y1, x2, y2]` at
spatial scale `1 / stride`:
  start = x1 / S, end = (x2 + 1) / S  (the +1 on the end),
  size = max(end - start, 0)          (clamped at 0, NOT 1 as torchvision),
  bin = size / out, samples at start + p*bin + (i + 0.5)*bin/sample_num
  (pixel centres at integers, "aligned=False"), averaged over
  sample_num^2 samples; a sample with y < -1, y > H, x < -1 or x > W is 0
  (but stays in the denominator); otherwise negative coordinates clamp to 0
  and coordinates at/after the last row/column clamp to it.

Implementation: the 4 bilinear taps of each of the `sample_num^2` samples of
a bin are gathered from the flattened `(H*W, C)` map and summed with their
weights (out-of-range samples get weight 0; the 1/sample_num^2 mean is folded
into the weights), so one RoI costs
`out^2 * 4 * sample_num^2` row gathers of C channels and there is no loop
over RoIs. The multi-level version flattens P2..P5 into one table and gives
every RoI the offset, size and scale of its own level, so each RoI is pooled
exactly once.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gt_jax.boxes import jnp_boxes as box_lib


def map_roi_levels(rois: jax.Array, num_levels: int = 4,
                   finest_scale: float = 56) -> jax.Array:
  """FPN level of each RoI (mmdet v1 `SingleRoIExtractor.map_roi_levels`).

  `scale = sqrt((x2-x1+1)(y2-y1+1))`, `lvl = floor(log2(scale/56 + 1e-6))`
  clamped to `[0, num_levels-1]`: scale < 112 -> 0 (P2), [112, 224) -> 1,
  [224, 448) -> 2, >= 448 -> 3 (each threshold lowered by ~56e-6 px by the
  1e-6). A NaN scale (negative area) maps to level 0.

  Args:
    rois: `(N, 4)` legacy boxes.
    num_levels: number of levels.
    finest_scale: official 56.

  Returns:
    `(N,)` int32 level index.
  """
  rois = jnp.asarray(rois, jnp.float32)
  if rois.ndim != 2 or rois.shape[-1] != 4:
    raise ValueError(f"map_roi_levels: rois must have shape (N, 4), got "
                     f"{rois.shape}")
  if num_levels < 1:
    raise ValueError(f"map_roi_levels: num_levels must be >= 1, got "
                     f"{num_levels!r}")
  scale = jnp.sqrt(box_lib.box_area(rois))
  lvl = jnp.floor(jnp.log2(scale / finest_scale + 1e-6))
  lvl = jnp.clip(jnp.nan_to_num(lvl, nan=0.0), 0, num_levels - 1)
  return lvl.astype(jnp.int32)


def _axis_taps(start: jax.Array, size: jax.Array, extent: jax.Array,
               out_size: int, sample_num: int):
  """Bilinear taps along one axis for every (bin, sample).

  Args:
    start: `(N,)` RoI start in feature pixels.
    size: `(N,)` RoI size (already clamped at 0).
    extent: `(N,)` int32 map size along this axis (H or W).
    out_size: bins.
    sample_num: samples per bin.

  Returns:
    lo, hi: `(N, out, s)` int32 tap indices; w_lo, w_hi: `(N, out, s)` float
    weights, zero for out-of-range samples.
  """
  dtype = start.dtype
  bin_size = size / out_size
  p = jnp.arange(out_size, dtype=dtype)[None, :, None]
  i = jnp.arange(sample_num, dtype=dtype)[None, None, :] + 0.5
  start = start[:, None, None]
  bin_size = bin_size[:, None, None]
  extent = extent[:, None, None]
  # Same operation order as the kernel: start + p*bin + (i+0.5)*bin/s.
  coord = start + p * bin_size + i * bin_size / sample_num
  inside = (coord >= -1.0) & (coord <= extent.astype(dtype))
  coord = jnp.maximum(coord, 0.0)
  lo = jnp.floor(coord).astype(jnp.int32)
  at_end = lo >= extent - 1
  lo = jnp.where(at_end, extent - 1, lo)
  hi = jnp.where(at_end, lo, lo + 1)
  coord = jnp.where(at_end, lo.astype(dtype), coord)
  frac = coord - lo.astype(dtype)
  w_lo = jnp.where(inside, 1.0 - frac, 0.0)
  w_hi = jnp.where(inside, frac, 0.0)
  return lo, hi, w_lo, w_hi


def _roi_align_flat(flat: jax.Array, rois: jax.Array, scale: jax.Array,
                    height: jax.Array, width: jax.Array, offset: jax.Array,
                    out_size: int, sample_num: int) -> jax.Array:
  """RoIAlign from a flattened table with per-RoI level parameters.

  Args:
    flat: `(P, C)` rows of one or more flattened `(H_k*W_k, C)` maps.
    rois: `(N, 4)` legacy boxes in image pixels.
    scale: `(N,)` spatial scale 1/stride of each RoI's map.
    height: `(N,)` int32 H of each RoI's map.
    width: `(N,)` int32 W of each RoI's map.
    offset: `(N,)` int32 first row of each RoI's map in `flat`.
    out_size: output bins per side.
    sample_num: samples per bin per side.

  Returns:
    `(N, out, out, C)`.
  """
  # Coordinates, weights and the sum stay float32 even for bf16 features
  # (a bf16 pixel coordinate would be off by several pixels at 800 px).
  rois = rois.astype(jnp.float32)
  scale = scale.astype(jnp.float32)
  sx = rois[:, 0] * scale
  sy = rois[:, 1] * scale
  ex = (rois[:, 2] + 1) * scale
  ey = (rois[:, 3] + 1) * scale
  rw = jnp.maximum(ex - sx, 0.0)  # official: clamp at 0, not 1.
  rh = jnp.maximum(ey - sy, 0.0)
  ylo, yhi, wylo, wyhi = _axis_taps(sy, rh, height, out_size, sample_num)
  xlo, xhi, wxlo, wxhi = _axis_taps(sx, rw, width, out_size, sample_num)
  # Taps per axis: (N, out, s, 2) indices and weights.
  yi = jnp.stack([ylo, yhi], -1)
  xi = jnp.stack([xlo, xhi], -1)
  wy = jnp.stack([wylo, wyhi], -1)
  wx = jnp.stack([wxlo, wxhi], -1)
  n, o, t2 = rois.shape[0], out_size, 2 * sample_num
  # Combine to (N, out_y, out_x, T = (s_y*2) * (s_x*2)) taps.
  row = (offset[:, None, None, None, None] +
         yi.reshape(n, o, 1, t2, 1) * width[:, None, None, None, None])
  idx = (row + xi.reshape(n, 1, o, 1, t2)).reshape(n, o, o, t2 * t2)
  w = wy.reshape(n, o, 1, t2, 1) * wx.reshape(n, 1, o, 1, t2)
  w = w.reshape(n, o, o, t2 * t2) / (sample_num * sample_num)
  return _taps(flat, idx, w)


def _gather_sum(table: jax.Array, idx: jax.Array, w: jax.Array) -> jax.Array:
  """`out[..., c] = sum_t w[..., t] * table[idx[..., t], c]`, float32.

  Args:
    table: `(P, C)` rows (any float dtype; each gathered row is widened to
      float32, which is exact from bf16).
    idx: `(..., T)` int32 row indices, all in `[0, P)`.
    w: `(..., T)` float32 weights.

  Returns:
    `(..., C)` float32.

  An unrolled sum of T gathers: XLA fuses each into the weighted sum, ~10x
  faster on CPU than materialising the `(..., T, C)` gather and contracting
  it.
  """
  out = None
  for t in range(idx.shape[-1]):
    tap = jnp.take(table, idx[..., t], axis=0, mode="clip")
    term = w[..., t, None] * tap.astype(jnp.float32)
    out = term if out is None else out + term
  return out


def _plain_taps(table: jax.Array, idx: jax.Array, w: jax.Array) -> jax.Array:
  """`_gather_sum` of a float32 copy of the table, in the table's dtype, with
  autodiff's gradient: the implementation `_weighted_taps` replaced (the
  equivalence checks use it as the reference)."""
  return _gather_sum(table.astype(jnp.float32), idx, w).astype(table.dtype)


@jax.custom_vjp
def _weighted_taps(table: jax.Array, idx: jax.Array,
                   w: jax.Array) -> jax.Array:
  """`_plain_taps` (same values) with a leaner gradient.

  The forward gathers rows of the table in its own dtype (no float32 copy
  of a bf16 table). Autodiff of the sum gives one scatter-add per tap, each
  into its own zeroed float32 copy of the table, then adds the T copies;
  `_weighted_taps_bwd` scatter-adds the T taps one after another into a
  single float32 table (updated in place): 87 MiB per RoIAlign at
  800x1344 instead of several times that (docs/performance.md). The
  table's cotangent still accumulates in float32 for a bf16 table: a bf16
  scatter-add stops growing once the sum dwarfs each term (at 256, +1 is
  lost), which corrupted the RCNN loss's gradient into a bf16 FPN
  (tests/test_roi_align.py).
  """
  return _gather_sum(table, idx, w).astype(table.dtype)


def _weighted_taps_fwd(table, idx, w):
  return _weighted_taps(table, idx, w), (table, idx, w)


def _weighted_taps_bwd(res, g):
  table, idx, w = res
  g = g.astype(jnp.float32)
  d_table = jnp.zeros(table.shape, jnp.float32)
  d_w = []
  for t in range(idx.shape[-1]):
    rows = idx[..., t]
    # "clip" like the forward's gather: a NaN box gives garbage indices
    # (with weight 0), which must not write outside the table.
    d_table = d_table.at[rows].add(w[..., t, None] * g, mode="clip")
    # Unused (and removed by XLA) when the boxes carry no gradient.
    tap = jnp.take(table, rows, axis=0, mode="clip").astype(jnp.float32)
    d_w.append(jnp.sum(tap * g, axis=-1))
  d_idx = np.zeros(idx.shape, jax.dtypes.float0)
  return (d_table.astype(table.dtype), d_idx,
          jnp.stack(d_w, -1).astype(w.dtype))


_weighted_taps.defvjp(_weighted_taps_fwd, _weighted_taps_bwd)
# What `_roi_align_flat` calls; the equivalence checks swap in `_plain_taps`.
_taps = _weighted_taps


def _check_rois(name: str, rois: jax.Array) -> None:
  if rois.ndim != 2 or rois.shape[-1] != 4:
    raise ValueError(f"{name}: rois must have shape (N, 4), got {rois.shape}")


def _check_sizes(name: str, out_size: int, sample_num: int) -> None:
  if out_size < 1 or sample_num < 1:
    raise ValueError(f"{name}: out_size and sample_num must be >= 1, got "
                     f"out_size={out_size!r}, sample_num={sample_num!r} "
                     "(adaptive sampling, sample_num=0, is not supported)")


def roi_align(feat: jax.Array, rois: jax.Array, stride: int,
              out_size: int = 7, sample_num: int = 2) -> jax.Array:
  """Legacy RoIAlign of one feature map.

  Args:
    feat: `(H, W, C)` feature map.
    rois: `(N, 4)` legacy boxes in image pixels.
    stride: the map's stride (spatial scale 1/stride).
    out_size: output bins per side (official 7).
    sample_num: samples per bin per side (official 2).

  Returns:
    `(N, out_size, out_size, C)` pooled features.
  """
  feat = jnp.asarray(feat)
  rois = jnp.asarray(rois)
  if feat.ndim != 3:
    raise ValueError(f"roi_align: feat must have shape (H, W, C), got "
                     f"{feat.shape}")
  _check_rois("roi_align", rois)
  _check_sizes("roi_align", out_size, sample_num)
  if stride <= 0:
    raise ValueError(f"roi_align: stride must be positive, got {stride!r}")
  h, w, c = feat.shape
  n = rois.shape[0]
  full = lambda v, dt: jnp.full((n,), v, dt)
  return _roi_align_flat(
      feat.reshape(h * w, c), rois, full(1.0 / stride, jnp.float32),
      full(h, jnp.int32), full(w, jnp.int32), full(0, jnp.int32), out_size,
      sample_num)


def multilevel_roi_align(feats: Sequence[jax.Array], rois: jax.Array,
                         strides: Sequence[int] = (4, 8, 16, 32),
                         out_size: int = 7, sample_num: int = 2,
                         finest_scale: float = 56) -> jax.Array:
  """Legacy SingleRoIExtractor: each RoI pooled from its own FPN level.

  Args:
    feats: maps `(H_k, W_k, C)` for P2..P5 (extra maps after
      `len(strides)`, e.g. P6, are ignored).
    rois: `(N, 4)` legacy boxes in image pixels (single image; vmap for a
      batch).
    strides: strides of the used levels (official 4, 8, 16, 32).
    out_size: output bins per side (official 7).
    sample_num: samples per bin per side (official 2).
    finest_scale: level-mapping scale (official 56).

  Returns:
    `(N, out_size, out_size, C)`.
  """
  rois = jnp.asarray(rois)
  _check_rois("multilevel_roi_align", rois)
  _check_sizes("multilevel_roi_align", out_size, sample_num)
  num_levels = len(strides)
  if num_levels < 1 or len(feats) < num_levels:
    raise ValueError(f"multilevel_roi_align: need a feature map per stride "
                     f"{tuple(strides)}, got {len(feats)} maps")
  feats = [jnp.asarray(f) for f in feats[:num_levels]]
  for k, f in enumerate(feats):
    if f.ndim != 3 or f.shape[-1] != feats[0].shape[-1]:
      raise ValueError(f"multilevel_roi_align: feats[{k}] must be (H, W, C) "
                       f"with C={feats[0].shape[-1]}, got {f.shape}")
  sizes = np.array([f.shape[0] * f.shape[1] for f in feats])
  offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
  flat = jnp.concatenate([f.reshape(-1, f.shape[-1]) for f in feats], 0)
  lvl = map_roi_levels(rois, num_levels, finest_scale)
  take = lambda table, dt: jnp.asarray(table, dt)[lvl]
  return _roi_align_flat(
      flat, rois, take([1.0 / s for s in strides], jnp.float32),
      take([f.shape[0] for f in feats], jnp.int32),
      take([f.shape[1] for f in feats], jnp.int32),
      take(offsets, jnp.int32), out_size, sample_num)
