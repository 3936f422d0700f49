"""Tests of gt_jax/ops/sampling.py against mmdet-v1 logic written in numpy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gt_jax.ops import sampling
from numpy_reference import np_iou, ref_assign

_assign = jax.jit(sampling.max_iou_assign, static_argnums=(2, 3, 4, 5))
_inside = jax.jit(sampling.inside_image, static_argnums=(2,))
_sample = jax.jit(sampling.random_sample, static_argnums=(2, 3))

RPN = (0.7, 0.3, 0.3)  # official pos / neg / min_pos IoU of the RPN


def labels_for(anchors, gt, img_hw, thr=RPN, assign_all=True):
  ious = np_iou(np.asarray(anchors, np.float32),
                np.asarray([gt], np.float32))[:, 0]
  cand = _inside(jnp.asarray(anchors, jnp.float32), jnp.asarray(img_hw), 0.0)
  return np.asarray(_assign(jnp.asarray(ious), cand, *thr, assign_all))


def test_inside_image_allowed_border_zero_and_padded_canvas():
  # Image 100 x 80 (H, W) on a larger padded canvas.
  anchors = np.array([
      [0, 0, 31, 31],      # touches the top-left border: inside
      [-1, 0, 30, 31],     # crosses the left edge
      [48, 68, 79, 99],    # x2 = W - 1, y2 = H - 1: inside
      [49, 68, 80, 99],    # x2 = W: outside
      [48, 69, 79, 100],   # y2 = H: outside
      [90, 10, 121, 41],   # in the padded region
  ], np.float32)
  got = np.asarray(_inside(jnp.asarray(anchors), jnp.array([100, 80]), 0.0))
  np.testing.assert_array_equal(got, [1, 0, 1, 0, 0, 0])
  # A negative border disables the test (mmdet allowed_border = -1).
  got = np.asarray(sampling.inside_image(jnp.asarray(anchors),
                                         jnp.array([100, 80]), -1))
  assert got.all()


def test_assign_gt_at_border_and_ignored_anchors():
  gt = [0, 0, 31, 31]  # at the image border
  anchors = [
      [0, 0, 31, 31],      # IoU 1 -> positive
      [-1, 0, 30, 31],     # IoU ~0.94 but crosses the border -> ignored
      [68, 68, 99, 99],    # inside, IoU 0 -> negative
      [69, 69, 100, 100],  # x2 = W -> ignored
      [100, 0, 131, 31],   # padded canvas -> ignored
      [16, 0, 47, 31],     # IoU 1/3 in [0.3, 0.7), not the best -> ignored
  ]
  got = labels_for(anchors, gt, (100, 100))
  np.testing.assert_array_equal(got, [1, -1, 0, -1, -1, -1])


def test_assign_gt_max_rule_ties():
  gt = [0, 0, 31, 31]
  anchors = [
      [16, 0, 47, 31],   # IoU 512 / 1536 = 1/3: best, tied
      [0, 16, 31, 47],   # IoU 1/3: best, tied
      [40, 40, 71, 71],  # IoU 0 -> negative
      [20, 0, 51, 31],   # IoU 384 / 1664 = 0.23 -> negative
  ]
  # gt_max_assign_all: every anchor at the best IoU (>= 0.3) is positive.
  np.testing.assert_array_equal(labels_for(anchors, gt, (100, 100)),
                                [1, 1, 0, 0])
  np.testing.assert_array_equal(
      labels_for(anchors, gt, (100, 100), assign_all=False), [1, -1, 0, 0])
  # Best IoU below min_pos_iou: no positive at all.
  np.testing.assert_array_equal(
      labels_for(anchors, gt, (100, 100), thr=(0.7, 0.3, 0.4)),
      [-1, -1, 0, 0])


def test_assign_query_without_positive_anchor():
  gt = [50, 50, 53, 53]  # 4 x 4: every 32 x 32 anchor has IoU <= 1/64
  anchors = [[x, y, x + 31, y + 31] for x in range(0, 96, 16)
             for y in range(0, 96, 16)]
  got = labels_for(anchors, gt, (100, 100))
  inside = np.array([a[2] < 100 and a[3] < 100 for a in anchors])
  assert not (got == 1).any()
  np.testing.assert_array_equal(got, np.where(inside, 0, -1))


def test_assign_no_candidate_is_all_ignored():
  anchors = [[-5, -5, 26, 26], [90, 90, 121, 121]]
  got = labels_for(anchors, [0, 0, 31, 31], (100, 100))
  np.testing.assert_array_equal(got, [-1, -1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_assign_matches_numpy_reference(seed):
  rs = np.random.RandomState(seed)
  xy = rs.uniform(-20, 110, (200, 2))
  wh = rs.uniform(8, 60, (200, 2))
  anchors = np.concatenate([xy, xy + wh], 1).astype(np.float32)
  anchors[100:120] = anchors[:20]  # exact duplicates make ties
  gt = np.array([30, 20, 70, 65], np.float32)
  cand = rs.rand(200) < 0.8
  ious = np_iou(anchors, gt[None])[:, 0]
  for thr in (RPN, (0.5, 0.5, 0.5)):
    got = np.asarray(_assign(jnp.asarray(ious), jnp.asarray(cand), *thr,
                             True))
    np.testing.assert_array_equal(got, ref_assign(ious, cand, *thr))


def test_assign_rejects_bad_shapes():
  with pytest.raises(ValueError, match="ious must be"):
    sampling.max_iou_assign(jnp.zeros((3, 1)), jnp.ones((3, 1), bool), *RPN)
  with pytest.raises(ValueError, match="anchors must be"):
    sampling.inside_image(jnp.zeros((3, 5)), jnp.array([10, 10]))


def _check_sample(labels, num, frac, seed=0):
  idx, is_pos, valid = (np.asarray(a) for a in _sample(
      jax.random.PRNGKey(seed), jnp.asarray(labels), num, frac))
  n_pos_avail = int((labels == 1).sum())
  n_neg_avail = int((labels == 0).sum())
  n_pos = min(n_pos_avail, int(num * frac))
  n_neg = min(n_neg_avail, num - n_pos)
  assert is_pos.sum() == n_pos and valid.sum() == n_pos + n_neg
  # Layout: positives, then negatives, then invalid padding (index 0).
  np.testing.assert_array_equal(is_pos, np.arange(num) < n_pos)
  np.testing.assert_array_equal(valid, np.arange(num) < n_pos + n_neg)
  assert (idx[~valid] == 0).all()
  chosen = idx[valid]
  assert len(set(chosen.tolist())) == len(chosen)  # without replacement
  assert (labels[idx[is_pos]] == 1).all()
  assert (labels[idx[valid & ~is_pos]] == 0).all()


@pytest.mark.parametrize("n_pos,n_neg,n_ign", [(10, 300, 20), (200, 300, 5),
                                               (3, 5, 40), (0, 400, 0),
                                               (150, 0, 3)])
def test_random_sample_counts_and_sets(n_pos, n_neg, n_ign):
  labels = np.array([1] * n_pos + [0] * n_neg + [-1] * n_ign, np.int32)
  labels = np.random.RandomState(n_pos).permutation(labels)
  _check_sample(labels, 256, 0.5)
  _check_sample(labels, 32, 0.25, seed=3)


def test_random_sample_is_uniform():
  labels = jnp.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, -1], jnp.int32)
  keys = jax.random.split(jax.random.PRNGKey(7), 4000)
  idx, is_pos, valid = jax.vmap(
      lambda k: sampling.random_sample(k, labels, 4, 0.5))(keys)
  idx, is_pos = np.asarray(idx), np.asarray(is_pos)
  assert np.asarray(valid).all()
  pos_freq = np.bincount(idx[is_pos], minlength=11)[:4] / 4000
  neg_freq = np.bincount(idx[~is_pos], minlength=11)[4:10] / 4000
  np.testing.assert_allclose(pos_freq, 0.5, atol=0.04)  # 2 of 4
  np.testing.assert_allclose(neg_freq, 1 / 3, atol=0.04)  # 2 of 6
  assert not (idx == 10).any()  # the ignored box is never drawn


def test_random_sample_rejects_bad_settings():
  with pytest.raises(ValueError, match="pos_fraction"):
    sampling.random_sample(jax.random.PRNGKey(0), jnp.zeros(4, jnp.int32),
                           8, 1.5)
  with pytest.raises(ValueError, match="labels must be"):
    sampling.random_sample(jax.random.PRNGKey(0),
                           jnp.zeros((4, 2), jnp.int32), 8, 0.5)
