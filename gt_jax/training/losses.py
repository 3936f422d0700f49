"""GlobalTrack training losses: targets + losses for ONE query, then lifted.

Paper Eq. (6)-(7) / LS §13.1: for every instance j of a pair, the search
image is re-detected with instance j's query; the RPN and RCNN targets use
ONLY instance j's search box as ground truth (the other objects are
background). `single_query_loss` is written for one query and lifted with
`jax.vmap` over the padded instance axis; `cross_query_loss` takes the masked
mean over valid instances and `batch_loss` the mean over pairs.

Everything is pure jnp with static shapes. Box math comes from
`gt_jax.boxes` (legacy +1 convention), ops from `gt_jax.ops`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gt_jax.boxes import anchors as anchor_lib
from gt_jax.boxes import jnp_boxes as box_lib
from gt_jax.ops import proposals as proposal_lib
from gt_jax.ops import sampling

LOSS_TERMS = ("loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox")


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """Static training-target settings (official values, LS §13.2)."""
  anchor_strides: tuple[int, ...] = (4, 8, 16, 32, 64)
  anchor_scales: tuple[float, ...] = (8,)
  anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
  rpn_pos_iou: float = 0.7
  rpn_neg_iou: float = 0.3
  rpn_min_pos_iou: float = 0.3
  rpn_allowed_border: float = 0.0
  rpn_num_samples: int = 256
  rpn_pos_fraction: float = 0.5
  rpn_smooth_l1_beta: float = 1.0 / 9.0
  rpn_target_stds: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
  proposal_nms_pre: int = 2000
  proposal_nms_post: int = 2000
  proposal_max_num: int = 2000
  proposal_nms_thr: float = 0.7
  rcnn_pos_iou: float = 0.5
  rcnn_neg_iou: float = 0.5
  rcnn_min_pos_iou: float = 0.5
  rcnn_num_samples: int = 512
  rcnn_pos_fraction: float = 0.25
  rcnn_add_gt_as_proposals: bool = True
  rcnn_smooth_l1_beta: float = 1.0
  rcnn_target_stds: tuple[float, ...] = (0.1, 0.1, 0.2, 0.2)
  cross_query: bool = True
  query_remat: bool = False


# ---------------------------------------------------------------------------
# Elementwise losses.


def sigmoid_bce(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Binary cross-entropy with logits, elementwise, numerically stable."""
  x = logits
  return jnp.maximum(x, 0) - x * labels + jnp.log1p(jnp.exp(-jnp.abs(x)))


def smooth_l1(pred: jax.Array, target: jax.Array, beta: float) -> jax.Array:
  """mmdet smooth-L1: `0.5 d^2 / beta` if `d < beta`, else `d - beta / 2`."""
  d = jnp.abs(pred - target)
  return jnp.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)


# ---------------------------------------------------------------------------
# RPN (one query).


def rpn_loss(rng: jax.Array, cls_logits: jax.Array, deltas: jax.Array,
             anchors: jax.Array, gt_box: jax.Array, img_hw: jax.Array,
             cfg: LossConfig) -> dict[str, jax.Array]:
  """RPN targets, sampling and losses for one query (LS §13.2, left column).

  Args:
    rng: PRNG key for the anchor sampler.
    cls_logits: `(N,)` sigmoid logits of all anchors (levels concatenated).
    deltas: `(N, 4)` predicted `(dx, dy, dw, dh)`.
    anchors: `(N, 4)` xyxy anchors of the padded canvas, same order.
    gt_box: `(4,)` the query's box in the search image (xyxy).
    img_hw: `(2,)` unpadded search image size; anchors not fully inside it
      are never sampled.
    cfg: settings.

  Returns:
    dict with scalars `loss_rpn_cls`, `loss_rpn_bbox`, `rpn_num_pos`.
  """
  anchors = jnp.asarray(anchors, jnp.float32)
  cls_logits = cls_logits.astype(jnp.float32)
  deltas = deltas.astype(jnp.float32)
  ious = box_lib.pairwise_iou(anchors, gt_box[None, :].astype(jnp.float32))
  candidate = sampling.inside_image(anchors, img_hw, cfg.rpn_allowed_border)
  labels = sampling.max_iou_assign(ious[:, 0], candidate, cfg.rpn_pos_iou,
                                   cfg.rpn_neg_iou, cfg.rpn_min_pos_iou)
  idx, is_pos, valid = sampling.random_sample(rng, labels,
                                              cfg.rpn_num_samples,
                                              cfg.rpn_pos_fraction)
  num_pos = jnp.sum(is_pos)
  num_neg = jnp.sum(valid & ~is_pos)
  # official: num_total_samples = max(#pos, 1) + max(#neg, 1) (mmdet v1
  # anchor_target); the same factor divides the box loss.
  avg = (jnp.maximum(num_pos, 1) + jnp.maximum(num_neg, 1)).astype(
      jnp.float32)
  bce = sigmoid_bce(cls_logits[idx], is_pos.astype(jnp.float32))
  loss_cls = jnp.sum(jnp.where(valid, bce, 0.0)) / avg
  targets = box_lib.encode(anchors[idx], jnp.broadcast_to(gt_box, (
      idx.shape[0], 4)).astype(jnp.float32), stds=cfg.rpn_target_stds)
  l1 = smooth_l1(deltas[idx], targets, cfg.rpn_smooth_l1_beta).sum(-1)
  loss_bbox = jnp.sum(jnp.where(is_pos, l1, 0.0)) / avg
  return dict(loss_rpn_cls=loss_cls, loss_rpn_bbox=loss_bbox,
              rpn_num_pos=num_pos.astype(jnp.float32))


# ---------------------------------------------------------------------------
# RCNN (one query).


def rcnn_targets(rng: jax.Array, proposals: jax.Array,
                 proposal_valid: jax.Array, gt_box: jax.Array,
                 cfg: LossConfig) -> dict[str, jax.Array]:
  """Assigns and samples RoIs for one query (LS §13.2, right column).

  The assignment runs on the proposals alone; then the gt box is prepended
  as an extra, always-positive proposal (mmdet `add_gt_as_proposals` +
  `assign_result.add_gt_`), and `rcnn_num_samples` RoIs are drawn.

  Args:
    rng: PRNG key for the sampler.
    proposals: `(P, 4)` xyxy proposals (no gradient).
    proposal_valid: `(P,)` bool; padded proposals are ignored.
    gt_box: `(4,)` xyxy ground truth in the search image.
    cfg: settings.

  Returns:
    dict with `rois (S, 4)`, `labels (S,)` int32 (1 = target),
    `valid (S,)` bool, `targets (S, 4)` encoded with the RCNN stds.
  """
  gt = gt_box.astype(jnp.float32)
  props = proposals.astype(jnp.float32)
  ious = box_lib.pairwise_iou(props, gt[None, :])[:, 0]
  labels = sampling.max_iou_assign(ious, proposal_valid, cfg.rcnn_pos_iou,
                                   cfg.rcnn_neg_iou, cfg.rcnn_min_pos_iou)
  if cfg.rcnn_add_gt_as_proposals:
    props = jnp.concatenate([gt[None, :], props], axis=0)
    labels = jnp.concatenate(
        [jnp.full((1,), sampling.POSITIVE, jnp.int32), labels], axis=0)
  idx, is_pos, valid = sampling.random_sample(rng, labels,
                                              cfg.rcnn_num_samples,
                                              cfg.rcnn_pos_fraction)
  rois = props[idx]
  targets = box_lib.encode(rois, jnp.broadcast_to(gt, rois.shape),
                           stds=cfg.rcnn_target_stds)
  return dict(rois=rois, labels=is_pos.astype(jnp.int32), valid=valid,
              targets=targets)


def rcnn_loss(cls_logits: jax.Array, deltas: jax.Array,
              targets: dict[str, jax.Array],
              cfg: LossConfig) -> dict[str, jax.Array]:
  """RCNN losses of the sampled RoIs (mmdet v1 `BBoxHead.loss`).

  Args:
    cls_logits: `(S, 2)`; index 0 background, 1 target.
    deltas: `(S, 8)` class-specific; columns 4..7 are the target's.
    targets: output of `rcnn_targets`.
    cfg: settings.

  Returns:
    dict with `loss_cls` (softmax CE averaged over the sampled RoIs),
    `loss_bbox` (smooth-L1 on positives / #sampled) and `acc` (percent of
    sampled RoIs classified correctly, like mmdet's `accuracy`).
  """
  labels, valid = targets["labels"], targets["valid"]
  cls_logits = cls_logits.astype(jnp.float32)
  deltas = deltas.astype(jnp.float32)
  n = jnp.maximum(jnp.sum(valid), 1).astype(jnp.float32)
  logp = jax.nn.log_softmax(cls_logits, axis=-1)
  ce = -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
  loss_cls = jnp.sum(jnp.where(valid, ce, 0.0)) / n
  # Target-class deltas: class 1 -> columns 4..7 (LS §10).
  l1 = smooth_l1(deltas[:, 4:8], targets["targets"],
                 cfg.rcnn_smooth_l1_beta).sum(-1)
  pos = valid & (labels == 1)
  loss_bbox = jnp.sum(jnp.where(pos, l1, 0.0)) / n
  correct = jnp.argmax(cls_logits, axis=-1) == labels
  acc = 100.0 * jnp.sum(jnp.where(valid, correct, False)) / n
  return dict(loss_cls=loss_cls, loss_bbox=loss_bbox, acc=acc,
              rcnn_num_pos=jnp.sum(pos).astype(jnp.float32))


# ---------------------------------------------------------------------------
# One query on model outputs, then the cross-query and batch losses.


def level_anchors(feats: Sequence[jax.Array],
                  cfg: LossConfig) -> list[np.ndarray]:
  """Static anchors `[(H_k*W_k*A, 4)]` for the (unbatched) FPN maps."""
  if len(feats) != len(cfg.anchor_strides):
    raise ValueError(f"{len(feats)} FPN levels but "
                     f"{len(cfg.anchor_strides)} anchor strides")
  return [
      np.asarray(anchor_lib.grid_anchors(s, f.shape[-3], f.shape[-2],
                                      cfg.anchor_scales, cfg.anchor_ratios),
                 np.float32) for s, f in zip(cfg.anchor_strides, feats)
  ]


def single_query_loss(model: Any, variables: Any,
                      query_feats: Sequence[jax.Array],
                      search_feats: Sequence[jax.Array],
                      query_box: jax.Array, search_box: jax.Array,
                      search_hw: jax.Array, rng: jax.Array,
                      cfg: LossConfig) -> dict[str, jax.Array]:
  """All four loss terms for one query of one pair (LS §13.1).

  Args:
    model: a `QGRCNN` (methods `query_embedding`, `query_kernels`,
      `rpn_outputs`, `rcnn_outputs`).
    variables: its variables (`params`, `batch_stats`).
    query_feats: 5 maps `(H_k, W_k, C)` of the query image.
    search_feats: 5 maps `(H_k, W_k, C)` of the search image.
    query_box: `(4,)` xyxy box in the query image.
    search_box: `(4,)` xyxy box of the same instance in the search image.
    search_hw: `(2,)` unpadded search image size.
    rng: PRNG key (anchor and RoI samplers).
    cfg: settings.

  Returns:
    dict of scalars: the `LOSS_TERMS`, `acc`, `rpn_num_pos`, `rcnn_num_pos`.
  """
  cls_ = type(model)
  rng_rpn, rng_rcnn = jax.random.split(rng)
  z = model.apply(variables, query_feats, query_box,
                  method=cls_.query_embedding)
  kernels = model.apply(variables, z, method=cls_.query_kernels)
  cls_list, delta_list = model.apply(variables, search_feats, kernels["rpn"],
                                     method=cls_.rpn_outputs)
  anchors = level_anchors(search_feats, cfg)
  out = rpn_loss(rng_rpn, jnp.concatenate(cls_list, 0),
                 jnp.concatenate(delta_list, 0),
                 np.concatenate(anchors, 0), search_box, search_hw, cfg)
  # Training proposals are detached (mmdet: proposals carry no gradient).
  props, _, props_valid = proposal_lib.rpn_proposals(
      [jax.lax.stop_gradient(c.astype(jnp.float32)) for c in cls_list],
      [jax.lax.stop_gradient(d.astype(jnp.float32)) for d in delta_list],
      [jnp.asarray(a) for a in anchors], search_hw,
      nms_pre=cfg.proposal_nms_pre, nms_post=cfg.proposal_nms_post,
      max_num=cfg.proposal_max_num, nms_thr=cfg.proposal_nms_thr,
      stds=cfg.rpn_target_stds)
  props = jax.lax.stop_gradient(props)
  targets = rcnn_targets(rng_rcnn, props, props_valid, search_box, cfg)
  cls_logits, deltas = model.apply(variables, search_feats, targets["rois"],
                                   kernels["rcnn"], method=cls_.rcnn_outputs)
  out.update(rcnn_loss(cls_logits, deltas, targets, cfg))
  return out


def masked_mean(tree: dict[str, jax.Array], mask: jax.Array,
                count: jax.Array | None = None) -> dict[str, jax.Array]:
  """Each leaf's sum over the `mask`ed entries divided by `count` (default:
  the number of masked entries; data-parallel callers pass the global one),
  at least 1."""
  # `where`, not `* mask`: a padded slot's value never enters the sum. (Its
  # inputs should still be finite boxes, e.g. zeros, for clean gradients.)
  if count is None:
    count = jnp.sum(mask.astype(jnp.float32))
  n = jnp.maximum(count, 1.0)
  return {k: jnp.sum(jnp.where(mask, v, 0.0)) / n for k, v in tree.items()}


def cross_query_loss(model: Any, variables: Any,
                     query_feats: Sequence[jax.Array],
                     search_feats: Sequence[jax.Array],
                     query_boxes: jax.Array, search_boxes: jax.Array,
                     instance_valid: jax.Array, search_hw: jax.Array,
                     rng: jax.Array,
                     cfg: LossConfig) -> dict[str, jax.Array]:
  """Paper Eq. (7): mean of the single-query losses over valid instances.

  Args:
    query_feats, search_feats: 5 maps `(H_k, W_k, C)` each (one pair).
    query_boxes, search_boxes: `(M, 4)` xyxy, padded.
    instance_valid: `(M,)` bool; padded slots contribute exactly nothing.
    search_hw: `(2,)`.
    rng: PRNG key, split into one key per instance slot.

  Returns:
    dict of scalars (same keys as `single_query_loss`).

  The M queries are vmapped (one batched pass); with `cfg.query_remat` they
  run one after another in a `lax.scan` whose body is rematerialised, so
  only one query's activations are alive at a time (same numbers).
  """
  m = query_boxes.shape[0]
  keys = jax.random.split(rng, m)

  def one(qb, sb, key):
    return single_query_loss(model, variables, query_feats, search_feats, qb,
                             sb, search_hw, key, cfg)

  if cfg.query_remat:
    body = jax.checkpoint(one)
    _, per_query = jax.lax.scan(lambda c, xs: (c, body(*xs)), None,
                                (query_boxes, search_boxes, keys))
  else:
    per_query = jax.vmap(one)(query_boxes, search_boxes, keys)
  return masked_mean(per_query, instance_valid)


def pick_one_instance(rng: jax.Array, instance_valid: jax.Array) -> jax.Array:
  """Index of a uniformly random valid instance (single-query baseline)."""
  u = jax.random.uniform(rng, instance_valid.shape)
  return jnp.argmax(jnp.where(instance_valid, u, -1.0))


def pair_losses(model: Any, variables: Any, batch: dict[str, jax.Array],
                keys: jax.Array, cfg: LossConfig
                ) -> tuple[dict[str, jax.Array], jax.Array]:
  """Per-pair loss terms and metrics of a batch of pairs (no reduction).

  Backbone + FPN run once per image (query and search images of all pairs in
  one call); the per-pair loss is vmapped over pairs.

  Args:
    model, variables: the `QGRCNN` and its variables.
    batch: the training-example dict of docs/internals.md with a leading
      batch axis `B`: `query_image (B, Hc, Wc, 3)`, `search_image`,
      `query_boxes (B, M, 4)`, `search_boxes`, `instance_valid (B, M)`,
      `query_hw (B, 2)`, `search_hw (B, 2)`.
    keys: `(B,)` PRNG keys, one per pair.
    cfg: settings; `cfg.cross_query=False` trains on one random valid
      instance per pair (paper Table 3 baseline).

  Returns:
    `(per_pair, pair_valid)`: a dict of `(B,)` arrays (each loss term, `acc`,
    sample counts) and the `(B,)` mask of pairs with a valid instance.
  """
  for k in ("query_image", "search_image", "query_boxes", "search_boxes",
            "instance_valid", "search_hw"):
    if k not in batch:
      raise KeyError(f"training batch has no field {k!r}")
  b = batch["query_image"].shape[0]
  cls_ = type(model)
  images = jnp.concatenate([batch["query_image"], batch["search_image"]], 0)
  feats = model.apply(variables, images, method=cls_.features)
  query_feats = [f[:b] for f in feats]
  search_feats = [f[b:] for f in feats]
  valid = batch["instance_valid"].astype(bool)

  def pair(qf, sf, qb, sb, v, hw, key):
    if cfg.cross_query:
      return cross_query_loss(model, variables, qf, sf, qb, sb, v, hw, key,
                              cfg)
    k_pick, k_loss = jax.random.split(key)
    j = pick_one_instance(k_pick, v)
    out = single_query_loss(model, variables, qf, sf, qb[j], sb[j], hw,
                            k_loss, cfg)
    return {k: jnp.where(jnp.any(v), x, 0.0) for k, x in out.items()}

  per_pair = jax.vmap(pair)(query_feats, search_feats, batch["query_boxes"],
                            batch["search_boxes"], valid, batch["search_hw"],
                            keys)
  return per_pair, jnp.any(valid, axis=-1)


def pair_keys(rng: jax.Array, batch: dict[str, jax.Array]) -> jax.Array:
  """`(B,)` PRNG keys, one per pair of `batch`: `jax.random.split(rng, B)`."""
  if "query_image" not in batch:
    raise KeyError("training batch has no field 'query_image'")
  return jax.random.split(rng, batch["query_image"].shape[0])


def batch_loss(model: Any, variables: Any, batch: dict[str, jax.Array],
               rng: jax.Array,
               cfg: LossConfig) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Total loss of a batch of pairs and its per-term metrics.

  `pair_losses` averaged over the pairs (the official recipe averages
  per-GPU losses over GPUs, 1 pair per GPU), with `pair_keys(rng, batch)`.

  Returns:
    `(loss, metrics)`: the scalar total (sum of `LOSS_TERMS`) and a flat dict
    of scalars (`loss`, each term, `acc`, sample counts).
  """
  per_pair, pair_valid = pair_losses(model, variables, batch,
                                     pair_keys(rng, batch), cfg)
  # Pairs without any valid instance (should not occur) are left out.
  metrics = masked_mean(per_pair, pair_valid)
  loss = sum(metrics[k] for k in LOSS_TERMS)
  metrics["loss"] = loss
  return loss, metrics
