"""Training targets: max-IoU assignment and fixed-size random sampling.

Both follow mmdetection v1 (`MaxIoUAssigner`, `RandomSampler`) for the case
GlobalTrack needs: ONE ground-truth box per query (LS §13.1: every other
object in the search image is background). Everything has static shapes:
non-candidates are marked instead of removed, and samples are drawn with
random keys and `lax.top_k` instead of `nonzero` + `randperm`.

Labels: `IGNORE` (-1, weight 0), `NEGATIVE` (0), `POSITIVE` (1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

IGNORE = -1
NEGATIVE = 0
POSITIVE = 1


def inside_image(anchors: jax.Array, img_hw: jax.Array,
                 allowed_border: float = 0.0) -> jax.Array:
  """Anchors lying inside the unpadded image (mmdet `anchor_inside_flags`).

  With `allowed_border = 0` an anchor is a candidate iff `x1 >= 0, y1 >= 0,
  x2 < W', y2 < H'`, which also excludes every anchor touching the padded part
  of the canvas (LS §13.2).

  Args:
    anchors: `(N, 4)` xyxy legacy boxes.
    img_hw: `(2,)` the resized, unpadded image size `(H', W')`; may be traced.
    allowed_border: pixels an anchor may stick out of the image; negative
      disables the test (every anchor is a candidate), as in mmdet.

  Returns:
    `(N,)` bool.
  """
  if anchors.ndim != 2 or anchors.shape[-1] != 4:
    raise ValueError(f"anchors must be (N, 4), got {anchors.shape}")
  if allowed_border < 0:
    return jnp.ones(anchors.shape[:1], bool)
  h = jnp.asarray(img_hw[0], anchors.dtype)
  w = jnp.asarray(img_hw[1], anchors.dtype)
  b = allowed_border
  return ((anchors[:, 0] >= -b) & (anchors[:, 1] >= -b) &
          (anchors[:, 2] < w + b) & (anchors[:, 3] < h + b))


def max_iou_assign(ious: jax.Array,
                   candidate: jax.Array,
                   pos_iou: float,
                   neg_iou: float,
                   min_pos_iou: float,
                   gt_max_assign_all: bool = True) -> jax.Array:
  """Labels boxes against one ground truth (mmdet v1 `MaxIoUAssigner`).

  Rules, applied in order to the candidates only (mmdet assigns the inside
  anchors / valid proposals and never sees the rest):
    1. negative if `0 <= IoU < neg_iou`;
    2. positive if `IoU >= pos_iou`;
    3. if the gt's best IoU over the candidates is `>= min_pos_iou`, every
       candidate whose IoU equals it exactly (`gt_max_assign_all`), or only
       the first such one, becomes positive.
  Everything else, and every non-candidate, is `IGNORE`.

  Args:
    ious: `(N,)` IoU of each box with the ground truth.
    candidate: `(N,)` bool; False boxes are ignored and do not take part in
      the best-IoU rule.
    pos_iou, neg_iou, min_pos_iou: thresholds (official RPN 0.7/0.3/0.3,
      RCNN 0.5/0.5/0.5).
    gt_max_assign_all: official True.

  Returns:
    `(N,)` int32 labels in {IGNORE, NEGATIVE, POSITIVE}.
  """
  if ious.ndim != 1 or candidate.shape != ious.shape:
    raise ValueError(
        f"ious must be (N,) and candidate the same shape, got {ious.shape} "
        f"and {candidate.shape}")
  # -1 puts non-candidates outside every rule: not in [0, neg), not >= pos,
  # and never the best IoU unless there is no candidate at all (then the
  # best is -1 < min_pos_iou and rule 3 is off).
  iou = jnp.where(candidate, ious, -1.0)
  labels = jnp.full(iou.shape, IGNORE, jnp.int32)
  labels = jnp.where((iou >= 0) & (iou < neg_iou), NEGATIVE, labels)
  labels = jnp.where(iou >= pos_iou, POSITIVE, labels)
  best = jnp.max(iou)
  if gt_max_assign_all:
    is_best = iou == best
  else:
    is_best = jnp.arange(iou.shape[0]) == jnp.argmax(iou)
  labels = jnp.where(is_best & (best >= min_pos_iou), POSITIVE, labels)
  return labels


def random_sample(rng: jax.Array, labels: jax.Array, num: int,
                  pos_fraction: float
                  ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Fixed-size random sampling of positives then negatives (`RandomSampler`).

  At most `int(num * pos_fraction)` positives are drawn uniformly without
  replacement; negatives fill the rest up to `num` (fewer if there are not
  enough). Output slots hold the positives first, then the negatives, then
  invalid padding, like mmdet's `cat([pos_inds, neg_inds])`.

  Args:
    rng: PRNG key.
    labels: `(N,)` int labels from `max_iou_assign`.
    num: static number of samples (official RPN 256, RCNN 512).
    pos_fraction: official RPN 0.5, RCNN 0.25.

  Returns:
    `indices (num,) int32` into `labels`, `is_pos (num,) bool`,
    `valid (num,) bool`. Invalid slots have index 0 and is_pos False.
  """
  if labels.ndim != 1:
    raise ValueError(f"labels must be (N,), got {labels.shape}")
  if num < 1 or not 0.0 <= pos_fraction <= 1.0:
    raise ValueError(f"bad sampler settings num={num} "
                     f"pos_fraction={pos_fraction}")
  n = labels.shape[0]
  max_pos = min(int(num * pos_fraction), n)
  num_neg_slots = min(num, n)
  # One uniform key per box; positives and negatives are disjoint, so each
  # set's top-k of the same keys is an independent uniform subset.
  u = jax.random.uniform(rng, (n,), jnp.float32)
  slot = jnp.arange(num)
  if max_pos > 0:
    pos_key, pos_idx = jax.lax.top_k(
        jnp.where(labels == POSITIVE, u, -1.0), max_pos)
    num_pos = jnp.sum(pos_key >= 0)
  else:
    pos_key = jnp.full((1,), -1.0)
    pos_idx = jnp.zeros((1,), jnp.int32)
    num_pos = jnp.zeros((), jnp.int32)
  neg_key, neg_idx = jax.lax.top_k(
      jnp.where(labels == NEGATIVE, u, -1.0), num_neg_slots)
  in_pos = slot < num_pos
  p = jnp.clip(slot, 0, pos_idx.shape[0] - 1)
  q = jnp.clip(slot - num_pos, 0, num_neg_slots - 1)
  neg_ok = (neg_key[q] >= 0) & (slot - num_pos < num_neg_slots)
  indices = jnp.where(in_pos, pos_idx[p], neg_idx[q])
  valid = jnp.where(in_pos, True, neg_ok)
  indices = jnp.where(valid, indices, 0).astype(jnp.int32)
  return indices, in_pos, valid
