"""Tests of gt_jax.boxes against numpy_reference and hand-computed values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gt_jax.boxes import anchors as anchor_lib
from gt_jax.boxes import rescale
from gt_jax.boxes import jnp_boxes as bl
import numpy_reference as ref

pairwise_iou = jax.jit(bl.pairwise_iou)
encode = jax.jit(bl.encode, static_argnames=("stds",))
decode = jax.jit(bl.decode, static_argnames=("stds", "wh_ratio_clip"))
RCNN_STDS = (0.1, 0.1, 0.2, 0.2)


def _random_boxes(rng, n, lo=-20.0, hi=120.0, max_wh=60.0):
  xy = rng.uniform(lo, hi, (n, 2))
  wh = rng.uniform(0.0, max_wh, (n, 2))  # includes widths < 1 (+1 rule)
  return np.concatenate([xy, xy + wh - 1], 1).astype(np.float32)


# --- anchors ---------------------------------------------------------------

# legacy-semantics §7 table, ratios 0.5, 1, 2.
ANCHOR_TABLE = {
    4: [[-21, -9, 24, 12], [-14, -14, 17, 17], [-9, -21, 12, 24]],
    8: [[-41, -19, 48, 26], [-28, -28, 35, 35], [-19, -41, 26, 48]],
    16: [[-83, -37, 98, 52], [-56, -56, 71, 71], [-37, -83, 52, 98]],
    32: [[-165, -75, 196, 106], [-112, -112, 143, 143],
         [-75, -165, 106, 196]],
    64: [[-330, -149, 393, 212], [-224, -224, 287, 287],
         [-149, -330, 212, 393]],
}


@pytest.mark.parametrize("stride", sorted(ANCHOR_TABLE))
def test_anchor_base_matches_official_table(stride):
  base = anchor_lib.anchor_base(stride, (8,), (0.5, 1.0, 2.0))
  assert base.dtype == np.float32
  np.testing.assert_array_equal(base, np.array(ANCHOR_TABLE[stride]))
  np.testing.assert_array_equal(base, ref.np_anchors(stride, 1, 1))


def test_grid_anchors_order_is_y_x_a():
  stride, fh, fw = 8, 3, 5
  grid = anchor_lib.grid_anchors(stride, fh, fw)
  assert grid.shape == (fh * fw * 3, 4)
  np.testing.assert_array_equal(grid, ref.np_anchors(stride, fh, fw))
  base = np.array(ANCHOR_TABLE[8], np.float32)
  for y in range(fh):
    for x in range(fw):
      for a in range(3):
        shift = np.array([x, y, x, y], np.float32) * stride
        np.testing.assert_array_equal(grid[(y * fw + x) * 3 + a],
                                      base[a] + shift)


def test_grid_anchors_multiple_scales_are_ratio_major():
  grid = anchor_lib.anchor_base(16, scales=(4, 8), ratios=(0.5, 1.0))
  assert grid.shape == (4, 4)
  # ratio 0.5 with scales 4, 8 first; ratio 1 scale 8 is the table's box.
  np.testing.assert_array_equal(grid[3], ANCHOR_TABLE[16][1])
  np.testing.assert_array_equal(grid[1], ANCHOR_TABLE[16][0])


def test_all_level_anchors_counts_800x1088():
  anchors = anchor_lib.all_level_anchors((800, 1088))
  # legacy-semantics §7 example.
  assert [len(a) for a in anchors] == [163200, 40800, 10200, 2550, 663]
  np.testing.assert_array_equal(anchors[4][:3], ANCHOR_TABLE[64])
  # last P6 cell is (y, x) = (12, 16).
  np.testing.assert_array_equal(
      anchors[4][-1], np.array(ANCHOR_TABLE[64][2]) + [1024, 768, 1024, 768])


# --- formats and areas -----------------------------------------------------


def test_xywh_xyxy_conversions_use_plus_one():
  xywh = np.array([[10.0, 20.0, 5.0, 1.0], [0.0, 0.0, 1.0, 1.0]], np.float32)
  xyxy = np.asarray(jax.jit(bl.xywh_to_xyxy)(xywh))
  np.testing.assert_array_equal(xyxy, [[10, 20, 14, 20], [0, 0, 0, 0]])
  np.testing.assert_array_equal(np.asarray(jax.jit(bl.xyxy_to_xywh)(xyxy)),
                                xywh)
  np.testing.assert_array_equal(np.asarray(bl.box_area(xyxy)), [5.0, 1.0])


# --- IoU -------------------------------------------------------------------


def test_iou_hand_computed():
  a = np.array([[0, 0, 9, 9]], np.float32)
  b = np.array([
      [5, 5, 14, 14],  # inter 5x5 of 100 + 100
      [9, 0, 18, 9],  # shares one column: inter 1x10
      [10, 0, 19, 9],  # touching: no overlap
      [3, 3, 3, 3],  # a single pixel, area 1
      [0, 0, 9, 9],  # itself
  ], np.float32)
  iou = np.asarray(pairwise_iou(a, b))[0]
  expect = [25 / 175, 10 / 190, 0.0, 1 / 100, 1.0]
  np.testing.assert_allclose(iou, expect, rtol=1e-6, atol=0)


def test_iou_degenerate_boxes():
  point = np.array([[4, 4, 4, 4]], np.float32)
  empty = np.array([[5, 5, 4, 4]], np.float32)  # +1 width 0
  np.testing.assert_array_equal(np.asarray(pairwise_iou(point, point)), 1.0)
  assert np.isnan(np.asarray(pairwise_iou(empty, empty))[0, 0])  # 0 / 0
  np.testing.assert_array_equal(np.asarray(pairwise_iou(empty, point)), 0.0)


def test_iou_matches_reference_and_is_symmetric():
  rng = np.random.default_rng(0)
  a = _random_boxes(rng, 37)
  b = _random_boxes(rng, 23)
  got = np.asarray(pairwise_iou(a, b))
  np.testing.assert_allclose(got, ref.np_iou(a, b), rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(np.asarray(pairwise_iou(b, a)), got.T,
                             rtol=1e-6, atol=0)
  assert (got >= 0).all() and (got <= 1).all()


# --- encode / decode -------------------------------------------------------


def test_encode_matches_reference_and_round_trips():
  rng = np.random.default_rng(1)
  p = _random_boxes(rng, 50, max_wh=80.0) + np.float32(2)
  p[:, 2:] = np.maximum(p[:, 2:], p[:, :2] + 1)  # widths >= 2
  g = _random_boxes(rng, 50, max_wh=80.0)
  g[:, 2:] = np.maximum(g[:, 2:], g[:, :2] + 1)
  d = np.asarray(encode(p, g, stds=RCNN_STDS))
  np.testing.assert_allclose(d, ref.np_encode(p, g, RCNN_STDS), rtol=1e-5,
                             atol=1e-5)
  back = np.asarray(decode(p, d, stds=RCNN_STDS))
  np.testing.assert_allclose(back, g, rtol=0, atol=1e-3)


def test_decode_matches_reference_with_clip_and_clamp():
  rng = np.random.default_rng(2)
  p = _random_boxes(rng, 200)
  d = rng.normal(scale=2.0, size=(200, 4)).astype(np.float32)
  d[:10, 2:] = 9.0  # beyond the wh clip on both sides
  d[10:20, 2:] = -9.0
  hw = np.array([90, 110], np.int32)
  got = np.asarray(decode(p, d, max_shape=hw))
  np.testing.assert_allclose(got, ref.np_decode(p, d, max_shape=hw),
                             rtol=1e-5, atol=1e-4)
  assert (got[:, [0, 2]] >= 0).all() and (got[:, [0, 2]] <= 109).all()
  assert (got[:, [1, 3]] >= 0).all() and (got[:, [1, 3]] <= 89).all()
  got_free = np.asarray(decode(p, d))
  np.testing.assert_allclose(got_free, ref.np_decode(p, d), rtol=1e-5,
                             atol=1e-3)


def test_decode_wh_clip_hand_computed():
  p = np.array([[0, 0, 9, 9], [0, 0, 9, 9]], np.float32)  # w = 10, cx 4.5
  d = np.array([[0, 0, 10.0, 0], [0, 0, -10.0, 0]], np.float32)
  got = np.asarray(decode(p, d))
  # |ln(16/1000)| clip: gw = 10 * 1000/16 = 625 and 10 * 16/1000 = 0.16.
  assert math.isclose(abs(math.log(16 / 1000)), 4.135166556742356)
  np.testing.assert_allclose(got[0], [4.5 - 312.5 + 0.5, 0, 4.5 + 312.5 - 0.5,
                                      9], rtol=1e-5)
  np.testing.assert_allclose(got[1], [4.5 - 0.08 + 0.5, 0, 4.5 + 0.08 - 0.5,
                                      9], rtol=1e-5)


def test_decode_clamps_each_corner_after_conversion():
  p = np.array([[40, 5, 49, 14], [-30, -30, -21, -21]], np.float32)
  d = np.array([[3.0, 0, 0, 0], [0, 0, 0, 0]], np.float32)
  got = np.asarray(decode(p, d, max_shape=np.array([20, 30])))
  # Box 0 moves 30 px right, entirely past x = 29: both x corners -> 29.
  np.testing.assert_array_equal(got[0], [29, 5, 29, 14])
  # Box 1 is entirely above-left: all corners -> 0 (a 1x1 box remains).
  np.testing.assert_array_equal(got[1], [0, 0, 0, 0])


def test_decode_traced_max_shape_and_classwise_broadcast():
  p = np.array([[0, 0, 99, 49]], np.float32)
  d = np.zeros((1, 2, 4), np.float32)
  d[0, 1, 2] = 1.0  # class 1 grows w by e

  @jax.jit
  def run(hw):
    return bl.decode(p[:, None, :], d, RCNN_STDS, max_shape=hw)

  small = np.asarray(run(jnp.array([30, 60])))
  large = np.asarray(run(jnp.array([300, 600])))
  assert small.shape == (1, 2, 4)
  np.testing.assert_array_equal(small[0, 0], [0, 0, 59, 29])
  np.testing.assert_array_equal(large[0, 0], [0, 0, 99, 49])
  gw = 100 * math.exp(0.2)
  # x1 = 49.5 - gw/2 + 0.5 < 0 is clamped to 0; x2 stays.
  np.testing.assert_allclose(large[0, 1, [0, 2]], [0.0, 49.5 + gw / 2 - 0.5],
                             rtol=1e-6)


# --- rescale rule (legacy-semantics §2) ------------------------------------


@pytest.mark.parametrize("hw, s, out", [
    ((480, 640), 5 / 3, (800, 1067)),
    ((640, 480), 5 / 3, (1067, 800)),
    ((720, 1280), 1333 / 1280, (750, 1333)),
    ((800, 1333), 1.0, (800, 1333)),
    ((100, 1000), 1.333, (133, 1333)),
])
def test_rescale_rule_examples(hw, s, out):
  assert rescale.rescale_factor(*hw) == pytest.approx(s, rel=1e-12)
  assert rescale.rescaled_size(*hw) == out


def test_rescale_rounds_half_up():
  # s = min(1333/300, 800/200) = 4, and the scale's order does not matter.
  assert rescale.rescaled_size(300, 200, scale=(800, 1333)) == (1200, 800)
  # s = 1.5: h 2 -> 3.0 -> 3; w 3 -> 4.5 rounds up to 5.
  assert rescale.rescaled_size(2, 3, scale=(100, 3)) == (3, 5)
  # s = 2.5: w 5 -> 12.5 -> 13 (half up; numpy's half-to-even gives 12).
  assert rescale.rescaled_size(2, 5, scale=(100, 5)) == (5, 13)


# --- errors ----------------------------------------------------------------


def test_errors_name_the_argument():
  with pytest.raises(ValueError, match="pairwise_iou: a"):
    bl.pairwise_iou(np.zeros((3, 3)), np.zeros((2, 4)))
  with pytest.raises(ValueError, match="decode: max_shape"):
    bl.decode(np.zeros((2, 4)), np.zeros((2, 4)), max_shape=(1, 2, 3))
  with pytest.raises(ValueError, match="encode: gt"):
    bl.encode(np.zeros((2, 4)), np.zeros((2, 5)))
  with pytest.raises(ValueError, match="stds"):
    bl.decode(np.zeros((2, 4)), np.zeros((2, 4)), stds=(1, 1))
  with pytest.raises(ValueError, match="rescale_factor"):
    rescale.rescale_factor(0, 10)
  with pytest.raises(ValueError, match="anchor_base: stride"):
    anchor_lib.anchor_base(0)
  with pytest.raises(ValueError, match="all_level_anchors"):
    anchor_lib.all_level_anchors((800,))
