"""Tests of gt_jax.ops.nms (jitted) against the textbook greedy loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gt_jax.ops.nms import nms
import numpy_reference as ref

nms_jit = jax.jit(nms, static_argnames=("iou_threshold", "max_output",
                                        "block_size"))


def _kept(boxes, scores, thr, max_output, block_size=128):
  idx, valid = nms_jit(boxes, scores, iou_threshold=thr,
                       max_output=max_output, block_size=block_size)
  idx, valid = np.asarray(idx), np.asarray(valid)
  assert idx.shape == valid.shape == (max_output,)
  assert idx.dtype == np.int32
  # Valid slots come first; invalid slots hold index 0.
  n = int(valid.sum())
  assert valid[:n].all() and not valid[n:].any()
  assert (idx[n:] == 0).all()
  return idx[:n].tolist()


def _clustered_boxes(rng, n, clusters=6):
  """Boxes jittered around a few centres: many overlaps, long chains."""
  centres = rng.uniform(20, 180, (clusters, 2))
  c = centres[rng.integers(0, clusters, n)] + rng.normal(0, 8, (n, 2))
  wh = rng.uniform(5, 50, (n, 2))
  return np.concatenate([c - wh / 2, c + wh / 2], 1).astype(np.float32)


@pytest.mark.parametrize("seed, n, block", [(0, 300, 128), (1, 257, 16),
                                            (2, 100, 7), (3, 64, 64)])
def test_matches_greedy_reference(seed, n, block):
  rng = np.random.default_rng(seed)
  boxes = _clustered_boxes(rng, n)
  scores = rng.random(n).astype(np.float32)
  for thr in (0.3, 0.7):
    want = ref.np_nms(boxes, scores, thr)
    got = _kept(boxes, scores, thr, n, block)
    assert got == want
    assert 1 < len(got) < n


def test_exact_score_ties_visit_lower_index_first():
  rng = np.random.default_rng(4)
  boxes = _clustered_boxes(rng, 150)
  scores = rng.integers(0, 5, 150).astype(np.float32)  # massive ties
  got = _kept(boxes, scores, 0.5, 150, 32)
  assert got == ref.np_nms(boxes, scores, 0.5)
  # Two identical boxes with equal scores: the lower index survives.
  same = np.array([[0, 0, 9, 9]] * 3, np.float32)
  assert _kept(same, np.ones(3, np.float32), 0.5, 3) == [0]


def test_plus_one_areas_decide_suppression():
  boxes = np.array([[0, 0, 9, 9], [1, 0, 10, 9]], np.float32)
  scores = np.array([1.0, 0.5], np.float32)
  # +1 IoU = 90 / 110 = 0.818 > 0.8 (without +1 it is 72 / 90 = 0.8).
  assert _kept(boxes, scores, 0.8, 2) == [0]
  assert _kept(boxes, scores, 0.82, 2) == [0, 1]


def test_iou_equal_to_threshold_is_not_suppressed():
  boxes = np.array([[0, 0, 9, 9], [0, 0, 9, 4]], np.float32)  # IoU 50/100
  scores = np.array([0.9, 0.8], np.float32)
  assert _kept(boxes, scores, 0.5, 2) == [0, 1]
  assert _kept(boxes, scores, 0.49, 2) == [0]


def test_suppression_chain_across_blocks():
  # Box i overlaps only its neighbours (IoU 1/3); descending scores, so
  # greedy keeps every other box. Block size 3 forces the chain across
  # block boundaries and through the inner fixed-point iteration.
  n = 20
  x = np.arange(n, dtype=np.float32) * 5
  boxes = np.stack([x, 0 * x, x + 9, 0 * x + 9], 1)
  scores = np.linspace(1, 0.1, n).astype(np.float32)
  for block in (3, 4, 128):
    assert _kept(boxes, scores, 0.3, n, block) == list(range(0, n, 2))


def test_all_suppressed_and_fewer_valid_than_max_output():
  boxes = np.tile(np.array([[5, 5, 20, 30]], np.float32), (6, 1))
  scores = np.array([0.1, 0.7, 0.3, 0.7, 0.2, 0.0], np.float32)
  assert _kept(boxes, scores, 0.7, 10) == [1]


def test_minus_inf_scores_are_absent():
  boxes = np.array([[0, 0, 9, 9], [100, 100, 109, 109], [0, 0, 9, 9],
                    [50, 50, 60, 60]], np.float32)
  scores = np.array([-np.inf, 0.5, 0.1, -np.inf], np.float32)
  # Box 0 is absent, so it cannot suppress box 2.
  assert _kept(boxes, scores, 0.5, 4) == [1, 2]
  all_absent = np.full(4, -np.inf, np.float32)
  assert _kept(boxes, all_absent, 0.5, 3) == []


def test_max_output_truncates_in_visit_order():
  rng = np.random.default_rng(5)
  boxes = _clustered_boxes(rng, 80)
  scores = rng.random(80).astype(np.float32)
  want = ref.np_nms(boxes, scores, 0.5)
  assert len(want) > 5
  assert _kept(boxes, scores, 0.5, 5) == want[:5]


def test_vmap_over_a_batch():
  rng = np.random.default_rng(6)
  boxes = np.stack([_clustered_boxes(rng, 50) for _ in range(3)])
  scores = rng.random((3, 50)).astype(np.float32)
  scores[1, 25:] = -np.inf
  batched = jax.jit(jax.vmap(lambda b, s: nms(b, s, 0.6, 50, 16)))
  idx, valid = map(np.asarray, batched(boxes, scores))
  for i in range(3):
    assert idx[i][valid[i]].tolist() == ref.np_nms(boxes[i], scores[i], 0.6)


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match="nms: boxes"):
    nms(jnp.zeros((4, 3)), jnp.zeros(4), 0.5, 4)
  with pytest.raises(ValueError, match="nms: scores"):
    nms(jnp.zeros((4, 4)), jnp.zeros(5), 0.5, 4)
  with pytest.raises(ValueError, match="max_output"):
    nms(jnp.zeros((4, 4)), jnp.zeros(4), 0.5, -1)
