"""Tests of gt_jax.ops.roi_align (jitted) vs numpy_reference and hand values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gt_jax.ops import roi_align as ra
import numpy_reference as ref

roi_align = jax.jit(ra.roi_align, static_argnames=("stride", "out_size",
                                                   "sample_num"))
multilevel = jax.jit(ra.multilevel_roi_align)
map_levels = jax.jit(ra.map_roi_levels)

CANVAS = (128, 160)
STRIDES = (4, 8, 16, 32)
ATOL = 2e-5


def _feats(rng, c=3):
  return [rng.normal(size=(CANVAS[0] // s, CANVAS[1] // s, c)).astype(
      np.float32) for s in STRIDES]


def _border_rois(stride, h, w):
  """Hand-picked RoIs (image pixels) that probe every kernel rule."""
  s = float(stride)
  fh, fw = h * s, w * s  # map extent in image pixels
  return np.array([
      [0, 0, fw - 1, fh - 1],  # whole map
      [-3 * s, -2 * s, 2 * s, 3 * s],  # partially outside top-left
      [fw - 3 * s, fh - 2 * s, fw + 4 * s, fh + 5 * s],  # past bottom-right
      [fw - s, fh - s, fw + s, fh + s],  # around the last pixel
      [2 * s + 1, 3 * s + 1, 2 * s + 1, 3 * s + 1],  # rw = rh = 1/s < 1
      [5, 7, 5.5, 7.25],  # narrower than a cell
      [9, 9, 8, 8],  # zero size (x2 = x1 - 1)
      [9, 9, 3, 2],  # negative size -> clamped to 0
      [-10 * s, 2 * s, -5 * s, 4 * s],  # entirely left: all samples x < -1
      [-1.2 * s, 0, -0.9 * s, 2 * s],  # straddles the x = -1 rule
  ], np.float32)


@pytest.mark.parametrize("level", range(4))
def test_single_level_matches_reference(level):
  rng = np.random.default_rng(level)
  feat = _feats(rng)[level]
  stride = STRIDES[level]
  h, w = feat.shape[:2]
  xy = rng.uniform(-0.3, 1.1, (25, 2)) * [w * stride, h * stride]
  wh = rng.uniform(0, 0.7, (25, 2)) * [w * stride, h * stride]
  rois = np.concatenate([
      np.concatenate([xy, xy + wh - 1], 1).astype(np.float32),
      _border_rois(stride, h, w)
  ])
  got = np.asarray(roi_align(feat, rois, stride=stride))
  assert got.shape == (len(rois), 7, 7, 3)
  np.testing.assert_allclose(got, ref.np_roi_align(feat, rois, stride),
                             rtol=0, atol=ATOL)
  # The fully-outside RoI is exactly zero.
  assert (got[-2] == 0).all()


def test_linear_map_hand_computed():
  # On f(y, x) = 10 y + x bilinear sampling is exact, so a bin's value is f
  # at the mean of its samples, i.e. the bin centre.
  h, w = 9, 11
  f = (10 * np.arange(h)[:, None] + np.arange(w)[None, :]).astype(np.float32)
  feat = f[..., None]
  rois = np.array([[0, 0, 6, 6]], np.float32)  # stride 1: bins of 1 px
  got = np.asarray(roi_align(feat, rois, stride=1))[0, ..., 0]
  centre = np.arange(7) + 0.5
  np.testing.assert_allclose(got, 10 * centre[:, None] + centre[None, :],
                             rtol=0, atol=1e-5)


def test_zero_size_roi_samples_one_point_not_one_pixel():
  h, w = 9, 11
  f = (10 * np.arange(h)[:, None] + np.arange(w)[None, :]).astype(np.float32)
  # x1 = 2, x2 = 1: size (x2 + 1) - x1 = 0 -> every sample at (3, 2). The
  # torchvision rule (size at least 1) would give 10 * 3.5 + 2.5 instead.
  rois = np.array([[2, 3, 1, 2], [2, 3, -5, -5]], np.float32)
  got = np.asarray(roi_align(f[..., None], rois, stride=1))[..., 0]
  np.testing.assert_allclose(got, np.full((2, 7, 7), 32.0), rtol=0, atol=1e-6)


def test_out_of_range_and_clamp_rules_hand_computed():
  h, w = 4, 5
  f = (10 * np.arange(h)[:, None] + np.arange(w)[None, :] + 1).astype(
      np.float32)[..., None]
  # A zero-size RoI (x2 = x1 - 1, stride 1: start = end = x1) puts every
  # sample exactly at (y1, x1).
  def at(y, x):
    roi = np.array([[x, y, x - 1, y - 1]], np.float32)
    return float(np.asarray(roi_align(f, roi, stride=1))[0, 0, 0, 0])

  assert at(2, -1.0) == f[2, 0, 0]  # x = -1 is inside: clamped to 0
  assert at(2, -1.01) == 0.0  # x < -1: zero
  assert at(-1.0, 3) == f[0, 3, 0]
  assert at(-1.5, 3) == 0.0
  assert at(1, 5.0) == f[1, 4, 0]  # x = W is inside: clamped to W - 1
  assert at(1, 5.01) == 0.0  # x > W: zero
  assert at(4.0, 2) == f[3, 2, 0]  # y = H
  assert at(4.2, 2) == 0.0
  assert at(1, 4.5) == f[1, 4, 0]  # between W - 1 and W: last column
  np.testing.assert_allclose(at(1.25, 2.5), 1 + 12.5 + 2.5, rtol=1e-6)


def test_map_levels_boundaries():
  def square(side):
    return [0.0, 0.0, side - 1, side - 1]

  sides = [1, 111.9, 112, 223.9, 224, 447.9, 448, 2000]
  rois = np.array([square(s) for s in sides] + [[5, 5, 4, 4]], np.float32)
  got = np.asarray(map_levels(rois))
  assert got.dtype == np.int32
  np.testing.assert_array_equal(got, [0, 0, 1, 1, 2, 2, 3, 3, 0])
  np.testing.assert_array_equal(got, ref.np_map_levels(rois))
  # The +1e-6 lowers each threshold by ~56e-6 px: 111.99997 is already P3.
  near = np.array([square(111.99997), square(111.9999), [0, 0, 111, 110.9]],
                  np.float32)
  got = np.asarray(map_levels(near))
  np.testing.assert_array_equal(got, [1, 0, 0])
  np.testing.assert_array_equal(got, ref.np_map_levels(near))


def test_multilevel_matches_reference_on_every_level():
  rng = np.random.default_rng(7)
  feats = _feats(rng, c=4)
  sides = np.concatenate([rng.uniform(2, 100, 8), rng.uniform(115, 220, 8),
                          rng.uniform(230, 440, 8), rng.uniform(460, 700, 8)])
  xy = rng.uniform(-60, 150, (len(sides), 2))
  aspect = rng.uniform(0.5, 2.0, len(sides))
  wh = np.stack([sides * np.sqrt(aspect), sides / np.sqrt(aspect)], 1)
  rois = np.concatenate([xy, xy + wh - 1], 1).astype(np.float32)
  levels = ref.np_map_levels(rois)
  assert set(levels.tolist()) == {0, 1, 2, 3}
  got = np.asarray(multilevel(feats, rois))
  np.testing.assert_allclose(
      got, ref.np_multilevel_roi_align(feats, rois, STRIDES), rtol=0,
      atol=ATOL)
  # Each RoI equals the single-level op on its own level.
  for lvl in range(4):
    sel = levels == lvl
    single = np.asarray(roi_align(feats[lvl], rois[sel], stride=STRIDES[lvl]))
    np.testing.assert_allclose(got[sel], single, rtol=0, atol=1e-6)


def test_multilevel_ignores_extra_p6_and_vmaps():
  rng = np.random.default_rng(8)
  feats = [np.stack([f, 2 * f]) for f in _feats(rng)]  # batch of 2
  p6 = np.ones((2, 2, 3, 3), np.float32)
  rois = np.array([[[0, 0, 50, 40], [10, 10, 300, 250]]] * 2, np.float32)
  out = jax.jit(jax.vmap(ra.multilevel_roi_align))(feats + [p6], rois)
  out = np.asarray(out)
  assert out.shape == (2, 2, 7, 7, 3)
  np.testing.assert_allclose(out[1], 2 * out[0], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(
      out[0], ref.np_multilevel_roi_align([f[0] for f in feats], rois[0]),
      rtol=0, atol=ATOL)


def test_bf16_features_keep_float32_coordinates():
  rng = np.random.default_rng(9)
  feat = rng.normal(size=(200, 336, 2)).astype(np.float32)
  feat_bf16 = jnp.asarray(feat, jnp.bfloat16)
  # Far from the origin, where a bf16 coordinate would be off by ~4 px.
  rois = np.array([[1201.3, 701.7, 1290.9, 760.2], [1003.1, 500.5, 1010.4,
                                                     520.6]], np.float32)
  got = roi_align(feat_bf16, rois, stride=4)
  assert got.dtype == jnp.bfloat16
  want = ref.np_roi_align(np.asarray(feat_bf16, np.float32), rois, 4)
  np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=1e-2,
                             atol=1e-2)


def test_gradient_wrt_features_is_the_adjoint():
  # RoIAlign is linear in the features, so <A f, g> = <f, A^T g> and the
  # VJP must reproduce it (the RCNN loss trains the FPN through it).
  rng = np.random.default_rng(10)
  feats = _feats(rng, c=2)
  rois = np.array([[3, 4, 40, 30], [0, 0, 300, 200], [-9, 50, 20, 140]],
                  np.float32)
  g = rng.normal(size=(3, 7, 7, 2)).astype(np.float32)
  fwd = lambda fs: multilevel(fs, rois)
  out, vjp = jax.vjp(fwd, feats)
  (grads,) = vjp(jnp.asarray(g))
  lhs = float(np.sum(np.asarray(out) * g))
  rhs = sum(float(np.sum(np.asarray(d) * f)) for d, f in zip(grads, feats))
  np.testing.assert_allclose(lhs, rhs, rtol=1e-4)
  assert any(float(np.abs(np.asarray(d)).sum()) > 0 for d in grads[1:])


def test_gradient_wrt_boxes_matches_finite_differences():
  # The hand-written VJP also returns the boxes' gradient (through the
  # bilinear weights): central differences of the numpy loop reference.
  # Every sample of these boxes lies > 0.02 px from a grid line, where the
  # interpolation has a kink (a sample exactly on one makes the derivative
  # one-sided, and which side depends on rounding).
  rng = np.random.default_rng(12)
  feat = rng.normal(size=(16, 20, 3)).astype(np.float32)
  rois = np.array([[2.3, 3.7, 11.6, 12.2], [5.3, 1.4, 17.6, 9.9]], np.float32)
  g = rng.normal(size=(2, 7, 7, 3))
  got = jax.grad(lambda r: jnp.sum(roi_align(feat, r, stride=1) * g))(
      jnp.asarray(rois))
  eps = 1e-2
  want = np.zeros_like(rois, np.float64)
  for i in range(2):
    for j in range(4):
      hi, lo = rois.copy(), rois.copy()
      hi[i, j] += eps
      lo[i, j] -= eps
      diff = (ref.np_roi_align(feat, hi, 1) - ref.np_roi_align(feat, lo, 1))
      want[i, j] = np.sum(diff * g) / (2 * eps)
  assert np.abs(want).max() > 0.5
  np.testing.assert_allclose(np.asarray(got), want, rtol=2e-2, atol=2e-2)


def test_empty_roi_set():
  out = roi_align(np.ones((8, 8, 3), np.float32), np.zeros((0, 4), np.float32),
                  stride=4)
  assert out.shape == (0, 7, 7, 3)


def test_bad_inputs_raise():
  feat = jnp.zeros((8, 8, 2))
  with pytest.raises(ValueError, match="roi_align: feat"):
    ra.roi_align(jnp.zeros((8, 8)), jnp.zeros((1, 4)), 4)
  with pytest.raises(ValueError, match="roi_align: rois"):
    ra.roi_align(feat, jnp.zeros((1, 5)), 4)
  with pytest.raises(ValueError, match="sample_num"):
    ra.roi_align(feat, jnp.zeros((1, 4)), 4, sample_num=0)
  with pytest.raises(ValueError, match="multilevel_roi_align: need"):
    ra.multilevel_roi_align([feat] * 3, jnp.zeros((1, 4)))
  with pytest.raises(ValueError, match=r"feats\[1\]"):
    ra.multilevel_roi_align([feat, jnp.zeros((4, 4, 3))] * 2,
                            jnp.zeros((1, 4)))
  with pytest.raises(ValueError, match="map_roi_levels"):
    ra.map_roi_levels(jnp.zeros((3,)))


def test_bf16_feature_gradient_accumulates_in_float32():
  # Many RoIs over one spot scatter-add their cotangents into the same
  # feature rows. A bf16 accumulator stops growing once the sum dwarfs each
  # term (at 256, 1.0 is half a bf16 step); here a bf16 accumulator was
  # off by 22 % of the largest entry. It must match the f32 adjoint.
  rng = np.random.default_rng(11)
  feats = [jnp.asarray(f, jnp.bfloat16) for f in _feats(rng, c=2)]
  rois = np.tile(np.array([[20, 16, 60, 50]], np.float32), (1000, 1))
  rois += rng.uniform(-2, 2, size=rois.shape).astype(np.float32)
  g = rng.uniform(0.5, 1.5, size=(1000, 7, 7, 2)).astype(np.float32)

  def grads(fs, dtype):
    fs = [f.astype(dtype) for f in fs]
    _, vjp = jax.vjp(lambda x: multilevel(x, rois), fs)
    return [np.asarray(d, np.float32) for d in vjp(jnp.asarray(g, dtype))[0]]

  got = grads(feats, jnp.bfloat16)
  want = grads(feats, jnp.float32)
  assert np.abs(want[0]).max() > 300  # the accumulation being tested
  for d, w in zip(got, want):
    # bf16 keeps 8 significant bits: one final rounding, ~0.4 %.
    np.testing.assert_allclose(d, w, rtol=1e-2, atol=1e-2)
