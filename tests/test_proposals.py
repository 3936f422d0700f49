"""Tests of gt_jax.ops.proposals (jitted) against np_rpn_proposals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gt_jax.boxes import anchors as anchor_lib
from gt_jax.boxes import jnp_boxes as bl
from gt_jax.ops.proposals import rpn_proposals
import numpy_reference as ref

_STATIC = ("nms_pre", "nms_post", "max_num", "nms_thr", "stds")
_traces = []


def _counted(*args, **kwargs):
  _traces.append(1)
  return rpn_proposals(*args, **kwargs)


proposals_jit = jax.jit(_counted, static_argnames=_STATIC)

# 64x96 canvas, 5 levels: 1152, 288, 72, 18, 6 anchors (P5, P6 < nms_pre).
CANVAS = (64, 96)
ANCHORS = anchor_lib.all_level_anchors(CANVAS, (4, 8, 16, 32, 64), (2,),
                               (0.5, 1.0, 2.0))


def _inputs(seed, tie_levels=()):
  """Random head outputs; logits well separated so that float32 sigmoid
  rounding cannot reorder them, or small integers (exact ties)."""
  rng = np.random.default_rng(seed)
  logits, deltas = [], []
  for k, a in enumerate(ANCHORS):
    n = len(a)
    if k in tie_levels:
      logits.append(rng.integers(-3, 3, n).astype(np.float32))
    else:
      logits.append(((rng.permutation(n) / n - 0.5) * 10).astype(np.float32))
    deltas.append(rng.normal(scale=0.4, size=(n, 4)).astype(np.float32))
  return logits, deltas


def _check(seed, img_hw, nms_pre, nms_post, max_num, thr=0.7, ties=()):
  logits, deltas = _inputs(seed, ties)
  boxes, scores, valid = map(np.asarray, proposals_jit(
      logits, deltas, ANCHORS, np.asarray(img_hw, np.int32), nms_pre=nms_pre,
      nms_post=nms_post, max_num=max_num, nms_thr=thr))
  assert boxes.shape == (max_num, 4) and scores.shape == valid.shape == (
      max_num,)
  want_b, want_s = ref.np_rpn_proposals(logits, deltas, ANCHORS, img_hw,
                                        nms_pre, nms_post, max_num, thr)
  k = len(want_s)
  assert valid[:k].all() and not valid[k:].any()
  np.testing.assert_allclose(scores[:k], want_s, rtol=0, atol=1e-6)
  np.testing.assert_allclose(boxes[:k], want_b, rtol=0, atol=1e-4)
  assert (boxes[k:] == 0).all() and (scores[k:] == 0).all()
  return boxes[:k], scores[:k]


def test_matches_reference_test_cfg_shape():
  # nms_pre 100 < P2, P3 sizes; P5 (18) and P6 (6) keep all anchors.
  boxes, scores = _check(0, (60, 90), 100, 100, 100)
  assert (np.diff(scores) <= 0).all()
  assert (boxes[:, [0, 2]] <= 89).all() and (boxes[:, [1, 3]] <= 59).all()
  assert (boxes >= 0).all()


def test_matches_reference_truncating_nms_post_and_short_max_num():
  # nms_post < survivors: the first nms_post in ascending input order.
  _check(1, (64, 96), 100, 20, 300)


def test_matches_reference_with_exact_score_ties():
  # Integer logits on P2, P4, P6: many exact ties in top-k, NMS and merge.
  _check(2, (50, 80), 100, 100, 120, thr=0.5, ties=(0, 2, 4))


def test_small_top_level_is_used_whole():
  # Only P6 (6 anchors) scores high; its survivors come first by score.
  logits, deltas = _inputs(3)
  logits = [np.full_like(l, -5.0) for l in logits]
  logits[4] = np.array([1.0, 4.0, 2.0, 3.0, 0.5, 5.0], np.float32)
  deltas = [np.zeros_like(d) for d in deltas]
  boxes, scores, valid = map(np.asarray, proposals_jit(
      logits, deltas, ANCHORS, np.array([64, 96], np.int32), nms_pre=100,
      nms_post=100, max_num=4, nms_thr=0.7))
  p6 = bl.decode(ANCHORS[4], np.zeros((6, 4), np.float32),
                 max_shape=np.array([64, 96]))
  want_b, want_s = ref.np_rpn_proposals(logits, deltas, ANCHORS, (64, 96),
                                        100, 100, 4, 0.7)
  np.testing.assert_allclose(scores, want_s, atol=1e-6)
  np.testing.assert_allclose(boxes, want_b, atol=1e-4)
  assert valid.all()
  # The top score is P6 anchor 5 (logit 5), clamped to the image.
  np.testing.assert_allclose(boxes[0], np.asarray(p6)[5])
  np.testing.assert_allclose(scores[0], 1 / (1 + np.exp(-5.0)), rtol=1e-6)


def test_traced_img_hw_compiles_once():
  logits, deltas = _inputs(4)
  start = len(_traces)  # max_num=51 is used by no other test (fresh cache)
  outs = [
      proposals_jit(logits, deltas, ANCHORS, jnp.array(hw, jnp.int32),
                    nms_pre=64, nms_post=64, max_num=51, nms_thr=0.7)
      for hw in ((64, 96), (30, 40))
  ]
  assert len(_traces) - start == 1
  big, small = (np.asarray(o[0]) for o in outs)
  assert big[:, [0, 2]].max() > 39
  assert small[:, [0, 2]].max() <= 39 and small[:, [1, 3]].max() <= 29


def test_bf16_head_outputs_are_decoded_in_float32():
  logits, deltas = _inputs(6)
  # Values exactly representable in bf16, fed once as bf16 and once as f32.
  lb = [jnp.asarray(l, jnp.bfloat16) for l in logits]
  db = [jnp.asarray(d, jnp.bfloat16) for d in deltas]
  lf = [np.asarray(l, np.float32) for l in lb]
  df = [np.asarray(d, np.float32) for d in db]
  hw = np.array([64, 96], np.int32)
  kw = dict(nms_pre=64, nms_post=64, max_num=50, nms_thr=0.7)
  out_b = proposals_jit(lb, db, ANCHORS, hw, **kw)
  out_f = proposals_jit(lf, df, ANCHORS, hw, **kw)
  assert out_b[0].dtype == jnp.float32
  for b, f in zip(out_b, out_f):
    np.testing.assert_array_equal(np.asarray(b), np.asarray(f))


def test_bad_inputs_raise():
  logits, deltas = _inputs(5)
  with pytest.raises(ValueError, match="number of levels"):
    rpn_proposals(logits[:4], deltas, ANCHORS, (64, 96), 10, 10, 10, 0.7)
  with pytest.raises(ValueError, match="level 1"):
    rpn_proposals(logits, [deltas[0]] * 5, ANCHORS, (64, 96), 10, 10, 10, 0.7)
  with pytest.raises(ValueError, match="img_hw"):
    rpn_proposals(logits, deltas, ANCHORS, (64, 96, 3), 10, 10, 10, 0.7)
  with pytest.raises(ValueError, match="nms_pre"):
    rpn_proposals(logits, deltas, ANCHORS, (64, 96), 0, 10, 10, 0.7)
