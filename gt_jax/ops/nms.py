"""Fixed-size greedy legacy NMS (mmdet v1 CUDA kernel semantics).

Greedy NMS visits boxes by descending score and drops every later box whose
legacy +1 IoU with a kept box is **> threshold**. The keep-set is computed
exactly, with static shapes, in blocks of `block_size` boxes (sorted order):

1. one vectorised `(N, N)` "overlaps" matrix `IoU > thr`;
2. for block b (a `fori_loop` over N / B blocks): drop the block's boxes that
   overlap a box already kept in an earlier block (one masked reduction);
3. resolve the greedy order inside the block by fixed-point iteration of
   `keep_i = cand_i and not any_{j<i} (keep_j and overlap_ji)`. After t
   sweeps the first t entries are final (each depends only on earlier ones),
   so the iteration reaches the unique greedy solution in at most B sweeps;
   in practice suppression chains are short and it stops after a few.

So the sequential depth is ~N/B * (1 + chain length) small steps (one
O(N * B) reduction per block, O(B^2) per inner sweep) instead of N steps;
the total work is O(N^2) for the matrix plus chain length * B^2 per block.
Measured on 2 CPU cores: 1000 boxes ~1 ms, 2000 boxes ~2-6 ms
(bench/ops_speed.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from gt_jax.boxes import jnp_boxes as box_lib


def _greedy_block(cand: jax.Array, overlap: jax.Array) -> jax.Array:
  """Exact greedy keep-mask inside one block.

  Args:
    cand: `(B,)` bool, boxes still candidates (in visit order).
    overlap: `(B, B)` bool, `overlap[j, i]` = box j would suppress box i
      (only j < i set).

  Returns:
    `(B,)` bool keep mask.
  """
  size = cand.shape[0]

  def cond(state):
    _, changed, it = state
    return changed & (it <= size)

  def body(state):
    keep, _, it = state
    new = cand & ~jnp.any(overlap & keep[:, None], axis=0)
    return new, jnp.any(new != keep), it + 1

  keep, _, _ = lax.while_loop(cond, body, (cand, jnp.array(True), 0))
  return keep


def nms(
    boxes: jax.Array,
    scores: jax.Array,
    iou_threshold: float,
    max_output: int,
    block_size: int = 128,
) -> tuple[jax.Array, jax.Array]:
  """Greedy legacy NMS with a fixed number of outputs.

  Boxes are visited by descending score, ties by lower index first; a box is
  suppressed by a kept box when their +1 IoU is strictly greater than
  `iou_threshold` (official GPU kernel; torchvision `nms` on
  `(x1, y1, x2 + 1, y2 + 1)` is the same). Scores of -inf (or NaN) mark
  absent boxes (padding).

  Args:
    boxes: `(N, 4)` legacy xyxy boxes.
    scores: `(N,)` scores.
    iou_threshold: suppression threshold (python float, static).
    max_output: number of output slots (static).
    block_size: boxes resolved per sequential block (speed knob only).

  Returns:
    indices: `(max_output,)` int32 kept indices into `boxes`, in visit order
      (descending score); invalid slots hold 0.
    valid: `(max_output,)` bool, True for the kept slots.
  """
  boxes = jnp.asarray(boxes)
  scores = jnp.asarray(scores)
  if boxes.ndim != 2 or boxes.shape[-1] != 4:
    raise ValueError(f"nms: boxes must have shape (N, 4), got {boxes.shape}")
  if scores.shape != boxes.shape[:1]:
    raise ValueError(f"nms: scores must have shape ({boxes.shape[0]},), got "
                     f"{scores.shape}")
  if max_output < 0:
    raise ValueError(f"nms: max_output must be >= 0, got {max_output!r}")
  if block_size <= 0:
    raise ValueError(f"nms: block_size must be positive, got {block_size!r}")
  n = boxes.shape[0]
  if n == 0 or max_output == 0:
    return (jnp.zeros((max_output,), jnp.int32),
            jnp.zeros((max_output,), bool))

  # Visit order: descending score, ties by lower index (stable sort of -s;
  # -inf scores become +inf and go last, NaN goes last too).
  order = jnp.argsort(-scores, stable=True).astype(jnp.int32)
  present = (scores > -jnp.inf)[order]
  sorted_boxes = boxes[order]

  bsize = min(block_size, n)
  num_blocks = -(-n // bsize)
  total = num_blocks * bsize
  pad = total - n
  sorted_boxes = jnp.pad(sorted_boxes, ((0, pad), (0, 0)))
  present = jnp.pad(present, (0, pad))

  overlap = box_lib.pairwise_iou(sorted_boxes, sorted_boxes) > iou_threshold
  # Only an earlier box (j < i in visit order) can suppress box i.
  upper = jnp.arange(bsize)[:, None] < jnp.arange(bsize)[None, :]

  def block_step(b, keep):
    start = b * bsize
    cols = lax.dynamic_slice_in_dim(overlap, start, bsize, axis=1)  # (T, B)
    # `keep` is still False for this and later blocks, so only boxes kept in
    # earlier blocks suppress here.
    cand = lax.dynamic_slice_in_dim(present, start, bsize)
    cand = cand & ~jnp.any(cols & keep[:, None], axis=0)
    inner = lax.dynamic_slice_in_dim(cols, start, bsize, axis=0) & upper
    return lax.dynamic_update_slice_in_dim(
        keep, _greedy_block(cand, inner), start, axis=0)

  keep = lax.fori_loop(0, num_blocks, block_step, jnp.zeros((total,), bool))

  # Kept positions in visit order, first max_output of them.
  pos = jnp.where(keep, jnp.arange(total, dtype=jnp.int32), total)
  pos = jnp.sort(pos)[:max_output]
  if max_output > total:
    pos = jnp.pad(pos, (0, max_output - total), constant_values=total)
  valid = pos < total
  order = jnp.pad(order, (0, pad))
  indices = jnp.where(valid, order[jnp.minimum(pos, total - 1)], 0)
  return indices.astype(jnp.int32), valid
