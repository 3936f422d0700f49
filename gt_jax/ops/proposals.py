"""RPN proposals with static shapes (mmdet v1 `RPNHead.get_bboxes_single`).

Per level k (legacy-semantics §9): sigmoid scores; if the level has **more
than** `nms_pre` anchors keep the top `nms_pre` sorted by score (ties: lower
anchor index first), otherwise all of them in anchor order; decode (clamped
to the unpadded image); greedy NMS; kept boxes in ascending input order;
the first `nms_post`. Then concatenate the levels (P2 first) and keep the top
`max_num` by score. No size filter (min_bbox_size = 0), no cross-level NMS.

Static shapes: every level is padded to `P = min(nms_pre, max_k N_k)`
candidates with -inf scores (absent for NMS), so the 5 NMS calls run as one
vmapped NMS.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from gt_jax.boxes import jnp_boxes as box_lib
from gt_jax.ops import nms as nms_lib


def _level_candidates(logits: jax.Array, deltas: jax.Array,
                      anchors: jax.Array, img_hw: jax.Array, nms_pre: int,
                      size: int, stds: Sequence[float]):
  """Pre-NMS candidates of one level, padded to `size`.

  Returns:
    boxes `(size, 4)` decoded, scores `(size,)` sigmoid (-inf padding).
  """
  n = logits.shape[0]
  scores = jax.nn.sigmoid(logits)
  if n > nms_pre:
    # lax.top_k returns descending values, equal values by lower index.
    scores, idx = lax.top_k(scores, nms_pre)
    deltas = deltas[idx]
    anchors = anchors[idx]
  boxes = box_lib.decode(anchors, deltas, stds, max_shape=img_hw)
  m = scores.shape[0]
  if m < size:
    boxes = jnp.pad(boxes, ((0, size - m), (0, 0)))
    scores = jnp.pad(scores, (0, size - m), constant_values=-jnp.inf)
  return boxes, scores


def rpn_proposals(
    cls_logits: Sequence[jax.Array],
    deltas: Sequence[jax.Array],
    anchors: Sequence[jax.Array],
    img_hw: jax.Array,
    nms_pre: int,
    nms_post: int,
    max_num: int,
    nms_thr: float,
    stds: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Fixed-size RPN proposals of one image and one query.

  Args:
    cls_logits: per level `(N_k,)` sigmoid logits in `(y, x, a)` order.
    deltas: per level `(N_k, 4)` box deltas.
    anchors: per level `(N_k, 4)` anchors (numpy constants are fine).
    img_hw: `(2,)` unpadded resized image size `(h, w)` (may be traced).
    nms_pre: candidates per level before NMS (official test 1000, train
      2000).
    nms_post: kept boxes per level after NMS.
    max_num: proposals returned.
    nms_thr: NMS IoU threshold (official 0.7).
    stds: delta stds (official RPN: 1, 1, 1, 1).

  Returns:
    boxes: `(max_num, 4)` legacy boxes in resized-image pixels, by
      descending score; invalid rows are 0.
    scores: `(max_num,)` sigmoid scores; invalid rows are 0.
    valid: `(max_num,)` bool.
  """
  num_levels = len(cls_logits)
  if num_levels == 0 or not num_levels == len(deltas) == len(anchors):
    raise ValueError(
        f"rpn_proposals: need the same positive number of levels in "
        f"cls_logits ({len(cls_logits)}), deltas ({len(deltas)}) and anchors "
        f"({len(anchors)})")
  for k in range(num_levels):
    n = cls_logits[k].shape
    if (len(n) != 1 or tuple(deltas[k].shape) != (n[0], 4) or
        tuple(anchors[k].shape) != (n[0], 4)):
      raise ValueError(
          f"rpn_proposals: level {k}: expected cls_logits (N,), deltas and "
          f"anchors (N, 4); got {tuple(n)}, {tuple(deltas[k].shape)}, "
          f"{tuple(anchors[k].shape)}")
  if min(nms_pre, nms_post, max_num) < 1:
    raise ValueError(
        f"rpn_proposals: nms_pre ({nms_pre}), nms_post ({nms_post}) and "
        f"max_num ({max_num}) must be >= 1")
  img_hw = jnp.asarray(img_hw)
  if img_hw.shape != (2,):
    raise ValueError(f"rpn_proposals: img_hw must have shape (2,), got "
                     f"{img_hw.shape}")

  size = min(nms_pre, max(c.shape[0] for c in cls_logits))
  if size == 0:
    return (jnp.zeros((max_num, 4), jnp.float32),
            jnp.zeros((max_num,), jnp.float32), jnp.zeros((max_num,), bool))
  # float32 throughout (as the official code), even for a bf16 head: a bf16
  # anchor coordinate near 1300 px would be off by 4 px.
  f32 = lambda x: jnp.asarray(x).astype(jnp.float32)
  cands = [
      _level_candidates(f32(cls_logits[k]), f32(deltas[k]), f32(anchors[k]),
                        img_hw, nms_pre, size, stds)
      for k in range(num_levels)
  ]
  boxes = jnp.stack([c[0] for c in cands])  # (L, P, 4)
  scores = jnp.stack([c[1] for c in cands])  # (L, P)

  keep, keep_valid = jax.vmap(
      lambda b, s: nms_lib.nms(b, s, nms_thr, size))(boxes, scores)
  # Legacy order after NMS: ascending input index, then the first nms_post.
  keep = jnp.sort(jnp.where(keep_valid, keep, size), axis=-1)
  keep = keep[:, :min(nms_post, size)]
  valid = keep < size
  keep = jnp.minimum(keep, size - 1)
  boxes = jnp.take_along_axis(boxes, keep[..., None], axis=1).reshape(-1, 4)
  scores = jnp.take_along_axis(scores, keep, axis=1).reshape(-1)
  valid = valid.reshape(-1)

  # Top max_num over the concatenation; invalid entries rank last.
  k = min(max_num, scores.shape[0])
  _, top = lax.top_k(jnp.where(valid, scores, -jnp.inf), k)
  valid = valid[top]
  boxes = jnp.where(valid[:, None], boxes[top], 0.0)
  scores = jnp.where(valid, scores[top], 0.0)
  if k < max_num:
    boxes = jnp.pad(boxes, ((0, max_num - k), (0, 0)))
    scores = jnp.pad(scores, (0, max_num - k))
    valid = jnp.pad(valid, (0, max_num - k))
  return boxes, scores, valid
