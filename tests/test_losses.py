"""Tests of gt_jax/losses.py: numpy references of the mmdet-v1 losses.

The hand-built cases keep fewer candidates than the sampler size, so every
labelled box is sampled and the expected loss is deterministic.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gt_jax.training import losses
from gt_jax.config import load_config
from gt_jax.model.build import build_model, init_variables
from gt_jax.training.step import loss_config_from
from numpy_reference import np_encode, np_iou, ref_assign

CFG = losses.LossConfig()


def np_softplus(x):
  return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def np_smooth_l1(d, beta):
  d = np.abs(d)
  return np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)


def np_rpn_loss(logits, deltas, anchors, gt, img_hw):
  """mmdet v1 anchor_target + RPNHead.loss for one image, all sampled."""
  h, w = img_hw
  inside = ((anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) &
            (anchors[:, 2] < w) & (anchors[:, 3] < h))
  ious = np_iou(anchors, gt[None])[:, 0]
  labels = ref_assign(ious, inside, 0.7, 0.3, 0.3)
  pos, neg = labels == 1, labels == 0
  avg = max(pos.sum(), 1) + max(neg.sum(), 1)
  bce = np.where(pos, np_softplus(-logits), np_softplus(logits))
  loss_cls = bce[pos | neg].sum() / avg
  if pos.any():
    t = np_encode(anchors[pos], np.repeat(gt[None], pos.sum(), 0))
    loss_bbox = np_smooth_l1(deltas[pos] - t, 1 / 9).sum() / avg
  else:
    loss_bbox = 0.0
  return loss_cls, loss_bbox, pos.sum()


_rpn = jax.jit(lambda r, c, d, a, g, hw: losses.rpn_loss(r, c, d, a, g, hw,
                                                         CFG))


def _anchor_case(seed, gt):
  rs = np.random.RandomState(seed)
  xy = rs.uniform(-10, 100, (60, 2))
  wh = rs.uniform(10, 50, (60, 2))
  anchors = np.concatenate([xy, xy + wh], 1).astype(np.float32)
  anchors[:3] = gt + rs.uniform(-3, 3, (3, 4))  # some clear positives
  logits = rs.randn(60).astype(np.float32)
  deltas = (0.3 * rs.randn(60, 4)).astype(np.float32)
  return anchors, logits, deltas


@pytest.mark.parametrize("seed,gt", [
    (0, [30, 20, 70, 65]),
    (1, [0, 0, 40, 30]),     # at the image border
    (2, [60, 50, 99, 89]),   # touching the bottom-right image corner
])
def test_rpn_loss_matches_numpy(seed, gt):
  gt = np.asarray(gt, np.float32)
  anchors, logits, deltas = _anchor_case(seed, gt)
  img_hw = (90, 100)
  out = _rpn(jax.random.PRNGKey(seed), logits, deltas, anchors, gt,
             jnp.array(img_hw))
  cls_, bbox, npos = np_rpn_loss(logits, deltas, anchors, gt, img_hw)
  assert npos > 0
  np.testing.assert_allclose(out["loss_rpn_cls"], cls_, rtol=1e-5)
  np.testing.assert_allclose(out["loss_rpn_bbox"], bbox, rtol=1e-5)
  assert out["rpn_num_pos"] == npos


def test_rpn_loss_query_without_positive_anchor():
  gt = np.array([50, 50, 52, 52], np.float32)  # far too small for anchors
  anchors, logits, deltas = _anchor_case(3, gt)
  anchors[:3] = [[0, 0, 40, 40], [10, 10, 50, 50], [20, 5, 60, 45]]
  img_hw = (90, 100)
  out = _rpn(jax.random.PRNGKey(0), logits, deltas, anchors, gt,
             jnp.array(img_hw))
  cls_, bbox, npos = np_rpn_loss(logits, deltas, anchors, gt, img_hw)
  assert npos == 0 and bbox == 0.0
  assert float(out["loss_rpn_bbox"]) == 0.0
  np.testing.assert_allclose(out["loss_rpn_cls"], cls_, rtol=1e-5)


def test_rpn_loss_ignores_padded_canvas():
  gt = np.array([10, 10, 50, 45], np.float32)
  anchors, logits, deltas = _anchor_case(4, gt)
  img_hw = jnp.array([60, 70])  # canvas is larger: anchors beyond are pad
  outside = ~((anchors[:, 2] < 70) & (anchors[:, 3] < 60) &
              (anchors[:, 0] >= 0) & (anchors[:, 1] >= 0))
  assert outside.sum() > 10
  ref = _rpn(jax.random.PRNGKey(0), logits, deltas, anchors, gt, img_hw)
  logits2 = np.where(outside, 50.0, logits).astype(np.float32)
  deltas2 = np.where(outside[:, None], 9.0, deltas).astype(np.float32)
  out = _rpn(jax.random.PRNGKey(0), logits2, deltas2, anchors, gt, img_hw)
  for k in ("loss_rpn_cls", "loss_rpn_bbox"):
    assert float(out[k]) == float(ref[k])


def test_rpn_loss_normalisation_when_sampling():
  """With more negatives than slots, the factor is #pos + (num - #pos)."""
  cfg = dataclasses.replace(CFG, rpn_num_samples=16)
  gt = np.array([30, 20, 70, 65], np.float32)
  anchors, _, deltas = _anchor_case(5, gt)
  logits = np.zeros(60, np.float32)  # BCE = log 2 for every sample
  out = losses.rpn_loss(jax.random.PRNGKey(1), jnp.asarray(logits),
                        jnp.asarray(deltas), jnp.asarray(anchors),
                        jnp.asarray(gt), jnp.array([90, 100]), cfg)
  np.testing.assert_allclose(out["loss_rpn_cls"], np.log(2.0), rtol=1e-6)


# ---------------------------------------------------------------------------
# RCNN.


def _rcnn_case():
  gt = np.array([20, 30, 59, 69], np.float32)
  props = np.array([
      [22, 31, 60, 70],    # pos
      [18, 28, 55, 66],    # pos
      [40, 50, 90, 99],    # neg (IoU < 0.5)
      [0, 0, 15, 15],      # neg (IoU 0)
      [21, 29, 58, 72],    # pos
      [30, 40, 70, 80],    # IoU 0.49 -> neg
      [20, 30, 59, 69],    # padded slot (invalid): must be ignored
      [500, 500, 9, 9],    # padded slot, garbage
  ], np.float32)
  valid = np.array([1, 1, 1, 1, 1, 1, 0, 0], bool)
  return gt, props, valid


def test_rcnn_targets_add_gt_and_skip_padding():
  gt, props, valid = _rcnn_case()
  t = jax.jit(lambda r, p, v, g: losses.rcnn_targets(r, p, v, g, CFG))(
      jax.random.PRNGKey(0), props, valid, gt)
  ious = np_iou(props, gt[None])[:, 0]
  exp_pos = [tuple(gt)] + [tuple(p) for p, i, v in zip(props, ious, valid)
                           if v and i >= 0.5]
  exp_neg = [tuple(p) for p, i, v in zip(props, ious, valid)
             if v and i < 0.5]
  rois = np.asarray(t["rois"])
  lab, ok = np.asarray(t["labels"]), np.asarray(t["valid"])
  assert sorted(map(tuple, rois[ok & (lab == 1)])) == sorted(exp_pos)
  assert sorted(map(tuple, rois[ok & (lab == 0)])) == sorted(exp_neg)
  assert ok.sum() == 1 + valid.sum()
  np.testing.assert_allclose(
      np.asarray(t["targets"])[ok],
      np_encode(rois[ok], np.repeat(gt[None], ok.sum(), 0),
                (0.1, 0.1, 0.2, 0.2)), rtol=1e-5, atol=1e-6)


def test_rcnn_loss_matches_numpy():
  gt, props, valid = _rcnn_case()
  t = losses.rcnn_targets(jax.random.PRNGKey(1), jnp.asarray(props),
                          jnp.asarray(valid), jnp.asarray(gt), CFG)
  s = t["rois"].shape[0]
  rs = np.random.RandomState(0)
  logits = rs.randn(s, 2).astype(np.float32)
  deltas = rs.randn(s, 8).astype(np.float32)
  out = jax.jit(lambda c, d, t: losses.rcnn_loss(c, d, t, CFG))(
      logits, deltas, t)
  # numpy: softmax CE mean over sampled, smooth-L1 (beta 1) on cols 4..7 of
  # the positives / #sampled, accuracy in percent.
  ok = np.asarray(t["valid"])
  lab = np.asarray(t["labels"])[ok]
  rois = np.asarray(t["rois"])[ok]
  lg, dl = logits[ok], deltas[ok]
  lse = np.log(np.exp(lg).sum(1))
  ce = lse - lg[np.arange(len(lab)), lab]
  tgt = np_encode(rois, np.repeat(gt[None], len(rois), 0),
                  (0.1, 0.1, 0.2, 0.2))
  l1 = np_smooth_l1(dl[:, 4:8] - tgt, 1.0).sum(1)
  n = len(lab)
  np.testing.assert_allclose(out["loss_cls"], ce.mean(), rtol=1e-5)
  np.testing.assert_allclose(out["loss_bbox"], l1[lab == 1].sum() / n,
                             rtol=1e-5)
  np.testing.assert_allclose(out["acc"],
                             100 * (lg.argmax(1) == lab).mean(), rtol=1e-5)


def test_rcnn_sampling_caps_positives():
  gt = np.array([20, 30, 59, 69], np.float32)
  rs = np.random.RandomState(2)
  props = gt + rs.uniform(-2, 2, (300, 4)).astype(np.float32)
  props = np.concatenate([props, rs.uniform(100, 120, (500, 4))], 0)
  props[300:, 2:] = props[300:, :2] + 10
  t = losses.rcnn_targets(jax.random.PRNGKey(0), jnp.asarray(props),
                          jnp.ones(800, bool), jnp.asarray(gt), CFG)
  # official: 512 RoIs, 25% positives (the gt is one of them).
  assert int(t["labels"].sum()) == 128 and int(t["valid"].sum()) == 512
  # Fewer negatives than slots: 128 positives + all 100 negatives.
  t = losses.rcnn_targets(jax.random.PRNGKey(0), jnp.asarray(props[:400]),
                          jnp.ones(400, bool), jnp.asarray(gt), CFG)
  assert int(t["labels"].sum()) == 128 and int(t["valid"].sum()) == 228


def test_pick_one_instance_only_valid():
  valid = jnp.array([False, True, False, True])
  keys = jax.random.split(jax.random.PRNGKey(0), 200)
  picks = np.asarray(jax.vmap(lambda k: losses.pick_one_instance(k, valid))(
      keys))
  assert set(picks.tolist()) == {1, 3}


# ---------------------------------------------------------------------------
# Model-level: cross-query loss = mean of single-query losses.


@pytest.fixture(scope="module")
def tiny():
  cfg = load_config("configs/globaltrack_r50_fpn.py:tiny")
  model = build_model(cfg.model)
  variables = init_variables(model, jax.random.PRNGKey(0), (64, 64))
  lcfg = dataclasses.replace(loss_config_from(cfg), rpn_num_samples=32,
                             proposal_nms_pre=16, proposal_nms_post=16,
                             proposal_max_num=16, rcnn_num_samples=16)
  rs = np.random.RandomState(0)
  images = jnp.asarray(rs.randn(2, 64, 64, 3).astype(np.float32))
  feats = jax.jit(lambda v, x: model.apply(v, x, method=type(model).features)
                  )(variables, images)
  single = jax.jit(lambda v, q, s, qb, sb, hw, r: losses.single_query_loss(
      model, v, q, s, qb, sb, hw, r, lcfg))
  return dict(model=model, variables=variables, lcfg=lcfg, images=images,
              qf=[f[0] for f in feats], sf=[f[1] for f in feats],
              single=single)


def test_cross_query_equals_mean_of_single_queries(tiny):
  model, variables, lcfg = tiny["model"], tiny["variables"], tiny["lcfg"]
  qf, sf, single = tiny["qf"], tiny["sf"], tiny["single"]
  qb = jnp.array([[8, 8, 40, 36], [20, 4, 60, 50], [0, 0, 63, 63]],
                 jnp.float32)
  sb = jnp.array([[10, 6, 44, 40], [16, 8, 58, 46], [3, 3, 20, 20]],
                 jnp.float32)
  valid = jnp.array([True, True, False])
  hw = jnp.array([60, 64])
  rng = jax.random.PRNGKey(3)
  cross = jax.jit(lambda v, q, s, qb, sb, m, hw, r: losses.cross_query_loss(
      model, v, q, s, qb, sb, m, hw, r, lcfg))
  got = cross(variables, qf, sf, qb, sb, valid, hw, rng)
  keys = jax.random.split(rng, 3)
  each = [single(variables, qf, sf, qb[j], sb[j], hw, keys[j])
          for j in range(2)]
  for k in losses.LOSS_TERMS + ("acc",):
    ref = np.mean([float(e[k]) for e in each])
    np.testing.assert_allclose(got[k], ref, rtol=1e-6, atol=1e-7)
  assert all(float(got[k]) > 0 for k in ("loss_rpn_cls", "loss_cls"))
  # The padded slot contributes exactly nothing, whatever it holds.
  qb2 = qb.at[2].set(jnp.array([30, 1, 31, 2.0]))
  sb2 = sb.at[2].set(jnp.array([-50, 70, 500, 90.0]))
  got2 = cross(variables, qf, sf, qb2, sb2, valid, hw, rng)
  for k in losses.LOSS_TERMS:
    assert float(got2[k]) == float(got[k])


def test_single_query_baseline_uses_one_valid_instance(tiny):
  """cross_query=False (paper Table 3): one random valid instance per pair."""
  model, variables, single = tiny["model"], tiny["variables"], tiny["single"]
  lcfg = dataclasses.replace(tiny["lcfg"], cross_query=False)
  qb = jnp.array([[[0, 0, 9, 9], [8, 8, 40, 36], [1, 1, 5, 5]]], jnp.float32)
  sb = jnp.array([[[0, 0, 9, 9], [10, 6, 44, 40], [1, 1, 5, 5]]],
                 jnp.float32)
  batch = dict(query_image=tiny["images"][:1], search_image=tiny["images"][1:],
               query_boxes=qb, search_boxes=sb,
               instance_valid=jnp.array([[False, True, False]]),
               query_hw=jnp.array([[64, 64]]), search_hw=jnp.array([[60, 64]]))
  rng = jax.random.PRNGKey(5)
  loss, metrics = jax.jit(lambda v, b, r: losses.batch_loss(
      model, v, b, r, lcfg))(variables, batch, rng)
  # The key derivation of batch_loss: one key per pair, then (pick, loss).
  _, k_loss = jax.random.split(jax.random.split(rng, 1)[0])
  ref = single(variables, tiny["qf"], tiny["sf"], qb[0, 1], sb[0, 1],
               batch["search_hw"][0], k_loss)
  for k in losses.LOSS_TERMS:
    np.testing.assert_allclose(metrics[k], ref[k], rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(loss, sum(float(ref[k])
                                       for k in losses.LOSS_TERMS), rtol=1e-5)
