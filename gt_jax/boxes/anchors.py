"""Anchors of the RPN (mmdet v1 `AnchorGenerator`), numpy on the host.

Static: computed once per canvas size when a step is traced. Boxes are
legacy `xyxy` (inclusive right/bottom edge, LS §3).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np



def anchor_base(
    stride: int,
    scales: Sequence[float] = (8,),
    ratios: Sequence[float] = (0.5, 1.0, 2.0),
) -> np.ndarray:
  """Base anchors of one level (mmdet v1 `AnchorGenerator`, scale-major).

  Base size = stride, centre `(S - 1) / 2`, `ws = S * scale / sqrt(r)`,
  `hs = S * scale * sqrt(r)` (r = h / w), box
  `c -+ (ws - 1) / 2`, rounded half-to-even, in float32 as the official
  torch code computes it. Order: ratio-major, scales innermost.

  Args:
    stride: level stride `S` (the base size).
    scales: anchor scales (official: (8,)).
    ratios: aspect ratios h / w (official: (0.5, 1, 2)).

  Returns:
    `(A, 4)` float32, `A = len(ratios) * len(scales)`.
  """
  if stride <= 0:
    raise ValueError(f"anchor_base: stride must be positive, got {stride!r}")
  if not scales or not ratios:
    raise ValueError(f"anchor_base: empty scales {scales!r} or ratios "
                     f"{ratios!r}")
  if min(ratios) <= 0 or min(scales) <= 0:
    raise ValueError(f"anchor_base: scales {scales!r} and ratios {ratios!r} "
                     "must be positive")
  f32 = np.float32
  size = f32(stride)
  ctr = f32(0.5) * (size - f32(1))
  h_ratios = np.sqrt(np.asarray(ratios, f32))
  w_ratios = f32(1) / h_ratios
  scales = np.asarray(scales, f32)
  ws = (size * w_ratios[:, None] * scales[None, :]).reshape(-1)
  hs = (size * h_ratios[:, None] * scales[None, :]).reshape(-1)
  half_w = f32(0.5) * (ws - f32(1))
  half_h = f32(0.5) * (hs - f32(1))
  base = np.stack([ctr - half_w, ctr - half_h, ctr + half_w, ctr + half_h],
                  axis=-1)
  return np.round(base).astype(np.float32)


def grid_anchors(
    stride: int,
    feat_h: int,
    feat_w: int,
    scales: Sequence[float] = (8,),
    ratios: Sequence[float] = (0.5, 1.0, 2.0),
) -> np.ndarray:
  """All anchors of one level: base + `(x*S, y*S, x*S, y*S)` per cell.

  Args:
    stride: level stride `S`.
    feat_h: feature map height (of the padded canvas).
    feat_w: feature map width.
    scales: anchor scales.
    ratios: aspect ratios h / w.

  Returns:
    `(feat_h * feat_w * A, 4)` float32 in `(y, x, a)` order: flat index
    `(y * feat_w + x) * A + a`, which is the NHWC reshape of the RPN head.
  """
  if feat_h < 0 or feat_w < 0:
    raise ValueError(
        f"grid_anchors: negative feature size {(feat_h, feat_w)!r}")
  base = anchor_base(stride, scales, ratios)
  sx = np.arange(feat_w, dtype=np.float32) * np.float32(stride)
  sy = np.arange(feat_h, dtype=np.float32) * np.float32(stride)
  shift = np.zeros((feat_h, feat_w, 1, 4), np.float32)
  shift[..., 0] = sx[None, :, None]
  shift[..., 2] = sx[None, :, None]
  shift[..., 1] = sy[:, None, None]
  shift[..., 3] = sy[:, None, None]
  return (shift + base[None, None]).reshape(-1, 4)


def all_level_anchors(
    canvas_hw: Sequence[int],
    strides: Sequence[int] = (4, 8, 16, 32, 64),
    scales: Sequence[float] = (8,),
    ratios: Sequence[float] = (0.5, 1.0, 2.0),
) -> list[np.ndarray]:
  """Anchors of every level for a padded canvas; feat size `ceil(H / S)`.

  Args:
    canvas_hw: `(H, W)` of the padded canvas.
    strides: level strides (official: 4, 8, 16, 32, 64).
    scales: anchor scales.
    ratios: aspect ratios h / w.

  Returns:
    list of `(N_k, 4)` float32 arrays, `N_k = ceil(H/S) * ceil(W/S) * A`.
  """
  if len(canvas_hw) != 2 or min(canvas_hw) <= 0:
    raise ValueError(
        f"all_level_anchors: canvas_hw must be (H, W) > 0, got {canvas_hw!r}")
  h, w = (int(v) for v in canvas_hw)
  return [
      grid_anchors(s, -(-h // s), -(-w // s), scales, ratios) for s in strides
  ]
