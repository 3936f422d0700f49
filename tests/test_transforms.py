"""Tests for gt_jax/data/transforms.py (LS §13.5).

The photometric reference is written with Python's `colorsys`; geometry is
checked by rendering a marker rectangle and finding it again on the canvas.
"""

import colorsys

import numpy as np
import pytest

from gt_jax.data import transforms as T

_MEAN = (123.675, 116.28, 103.53)
_STD = (58.395, 57.12, 57.375)
_RED = (255, 0, 0)


def _transform(photometric=False, max_instances=3, flip_prob=0.5):
  # The tiny config's scale and canvases.
  return T.PairTransform(scale=(160, 128), mean=_MEAN, std=_STD,
                         size_divisor=32, canvas_landscape=(128, 160),
                         canvas_portrait=(160, 128),
                         max_instances=max_instances,
                         photometric=photometric, flip_prob=flip_prob)


def _denorm(x):
  return x * np.array(_STD, np.float32) + np.array(_MEAN, np.float32)


def _marker_image(h, w, box):
  img = np.full((h, w, 3), 128, np.uint8)
  x1, y1, x2, y2 = box
  img[y1:y2 + 1, x1:x2 + 1] = _RED  # legacy inclusive corners
  return img


def _marker_extent(canvas_img):
  rgb = _denorm(canvas_img)
  mask = (rgb[..., 0] > 191) & (rgb[..., 1] < 64)
  ys, xs = np.nonzero(mask)
  return np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float32)


@pytest.mark.parametrize("hw,expect", [
    ((480, 640), (800, 1067)),  # LS §2 examples
    ((640, 480), (1067, 800)),
    ((720, 1280), (750, 1333)),
])
def test_rescale_rule_official(hw, expect):
  s = T.rescale_factor(*hw, (1333, 800))
  assert T.rescaled_size(*hw, s) == expect


def test_rescale_rule_tiny_and_canvas_cap():
  s = T.rescale_factor(480, 640, (160, 128))
  assert s == pytest.approx(0.25)  # min(160/640, 128/480)
  assert T.rescaled_size(480, 640, s) == (120, 160)
  # A portrait image forced into a landscape canvas is capped to fit.
  s = T.rescale_factor(640, 480, (160, 128), canvas_hw=(128, 160))
  assert T.rescaled_size(640, 480, s) == (128, 96)


def _ref_photometric(rgb, brightness, contrast, saturation, hue):
  """Independent per-pixel reference with colorsys (values in [0, 255])."""
  out = np.empty_like(rgb, dtype=np.float64)
  for idx in np.ndindex(rgb.shape[:2]):
    r, g, b = (rgb[idx].astype(np.float64) + brightness) * contrast
    h, s, v = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
    h = h * 360 + hue
    h = h - 360 if h > 360 else (h + 360 if h < 0 else h)
    out[idx] = np.array(colorsys.hsv_to_rgb(h / 360, s * saturation, v)) * 255
  return out


def test_photometric_matches_colorsys_reference():
  rng = np.random.default_rng(0)
  img = rng.uniform(20, 200, (6, 7, 3)).astype(np.float32)
  img[0, 0] = (200, 30, 25)  # red-ish: hue near 0 wraps below zero
  p = T.Photometric(brightness=10.0, contrast=1.2, contrast_first=True,
                    saturation=0.7, hue=-15.0)
  got = T.photometric_distort(img, p)
  assert got.shape == img.shape and got.dtype == np.float32
  np.testing.assert_allclose(got, _ref_photometric(img, 10, 1.2, 0.7, -15),
                             atol=2e-3, rtol=1e-5)
  # Contrast after the HSV part gives the same for these in-range values.
  late = T.photometric_distort(
      img, T.Photometric(10.0, 1.2, False, 0.7, -15.0))
  np.testing.assert_allclose(late, got, atol=2e-3)


def test_photometric_never_clips():
  img = np.full((2, 2, 3), 250, np.float32)
  out = T.photometric_distort(img, T.Photometric(brightness=30.0,
                                                 contrast=1.5))
  np.testing.assert_allclose(out, 420.0, rtol=1e-5)  # (250 + 30) * 1.5
  out = T.photometric_distort(img, T.Photometric(brightness=-300.0))
  assert (out < 0).all()


def test_flip_and_clip_hand_cases():
  b = np.array([[2, 3, 4, 5]], np.float32)
  np.testing.assert_array_equal(T.flip_boxes(b, 10), [[5, 3, 7, 5]])
  np.testing.assert_array_equal(
      T.clip_boxes(np.array([[-3, 2, 50, 40], [70, 1, 60, 2]], np.float32),
                   32, 64), [[0, 2, 50, 31], [63, 1, 63, 2]])
  inside = T.inside_image(np.array([[-5, 0, -1, 4],  # left of the image
                                    [-5, 0, 0, 4],  # touches column 0
                                    [64, 0, 70, 4],  # right of it
                                    [10, -9, 20, -1]], np.float32), 32, 64)
  np.testing.assert_array_equal(inside, [False, True, False, False])


@pytest.mark.parametrize("hw,zbox,xbox", [
    ((96, 128), (30, 20, 59, 49), (70, 40, 110, 80)),  # landscape
    ((128, 96), (10, 60, 40, 119), (50, 5, 80, 30)),  # portrait
])
def test_boxes_follow_marker_through_rescale_flip_pad(hw, zbox, xbox):
  t = _transform()
  landscape = hw[1] > hw[0]
  canvas = (128, 160) if landscape else (160, 128)
  resized = (120, 160) if landscape else (160, 120)  # s = 1.25
  pair = dict(query_image=_marker_image(*hw, zbox),
              search_image=_marker_image(*hw, xbox),
              query_boxes=np.array([zbox], np.float32),
              search_boxes=np.array([xbox], np.float32),
              landscape=landscape)
  flips, interps = set(), set()
  for seed in range(24):
    aug = t.draw(np.random.default_rng(seed))
    flips.add((aug.query.flip, aug.search.flip))
    interps.add(aug.query.interpolation)
    ex = t(dict(pair, aug_seed=seed))
    assert ex["query_image"].shape == canvas + (3,)
    assert ex["query_image"].dtype == np.float32
    np.testing.assert_array_equal(ex["query_hw"], resized)
    np.testing.assert_array_equal(ex["search_hw"], resized)
    np.testing.assert_array_equal(ex["instance_valid"], [True, False, False])
    for key, src_box in (("query", zbox), ("search", xbox)):
      img, box = ex[f"{key}_image"], ex[f"{key}_boxes"][0]
      assert not img[resized[0]:].any() and not img[:, resized[1]:].any()
      found = _marker_extent(img)
      np.testing.assert_allclose(box, found, atol=1.5)
      # The independent expectation: scale by 1.25, then maybe flip.
      flip = getattr(aug, key).flip
      want = np.array(src_box, np.float32) * 1.25
      if flip:
        want[[0, 2]] = resized[1] - want[[2, 0]] - 1
      np.testing.assert_allclose(box, want, atol=1e-4)
    np.testing.assert_array_equal(ex["query_boxes"][1:], 0)
  assert flips == {(False, False), (False, True), (True, False),
                   (True, True)}
  assert len(interps) == 5


def test_instances_leaving_the_frame_are_dropped():
  t = _transform(max_instances=3)
  img = np.full((96, 128, 3), 90, np.uint8)
  zb = np.array([[10, 10, 30, 30],  # stays
                 [130, 10, 140, 30],  # right of the query image
                 [100, 10, 140, 30],  # partly outside: clipped
                 [5, 5, 20, 20],  # left of the search image below
                 [40, 40, 50, 50]], np.float32)  # 4th survivor: over M = 3
  xb = zb.copy()
  xb[3] = [-30, 5, -2, 20]
  aug = T.PairAugment(T.ImageAugment(None, T.INTERPOLATIONS[0], False),
                      T.ImageAugment(None, T.INTERPOLATIONS[0], False), None)
  ex = t.apply(dict(query_image=img, search_image=img, query_boxes=zb,
                    search_boxes=xb, landscape=True), aug)
  np.testing.assert_array_equal(ex["instance_valid"], [True, True, True])
  # x1.25; the partial box [125, 12.5, 175, 37.5] is clipped to the padded
  # width 160 - 1 (resized 120 x 160, already a multiple of 32).
  want = np.array([[12.5, 12.5, 37.5, 37.5], [125, 12.5, 159, 37.5],
                   [50, 50, 62.5, 62.5]], np.float32)
  np.testing.assert_allclose(ex["query_boxes"], want, atol=1e-5)
  np.testing.assert_allclose(ex["search_boxes"], want, atol=1e-5)
  ex = t.apply(dict(query_image=img, search_image=img, query_boxes=zb[1:2],
                    search_boxes=xb[1:2], landscape=True), aug)
  assert not ex["instance_valid"].any()
  np.testing.assert_array_equal(ex["query_boxes"], 0)


def test_channel_swap_is_shared_by_the_pair():
  t = _transform(photometric=True)
  z = np.tile(np.array([200, 100, 50], np.uint8), (96, 128, 1))
  x = np.tile(np.array([10, 20, 30], np.uint8), (96, 128, 1))
  ident = T.Photometric()  # every step skipped: only the HSV round trip
  aug = T.PairAugment(T.ImageAugment(ident, T.INTERPOLATIONS[0], False),
                      T.ImageAugment(ident, T.INTERPOLATIONS[0], True),
                      (2, 0, 1))
  ex = t.apply(dict(query_image=z, search_image=x,
                    query_boxes=np.zeros((0, 4), np.float32),
                    search_boxes=np.zeros((0, 4), np.float32),
                    landscape=True), aug)
  np.testing.assert_allclose(_denorm(ex["query_image"][:120, :160]),
                             np.broadcast_to([50, 200, 100], (120, 160, 3)),
                             atol=1e-2)
  np.testing.assert_allclose(_denorm(ex["search_image"][:120, :160]),
                             np.broadcast_to([30, 10, 20], (120, 160, 3)),
                             atol=1e-2)
  # Drawn augmentations: a swap about half the time, photometric draws of
  # query and search independent.
  augs = [t.draw(np.random.default_rng(s)) for s in range(400)]
  swapped = np.mean([a.channel_order is not None for a in augs])
  assert 0.4 < swapped < 0.6
  assert np.mean([a.query.photometric == a.search.photometric
                  for a in augs]) < 0.2


def test_photometric_pair_keeps_shapes():
  t = _transform(photometric=True, max_instances=2)
  rng = np.random.default_rng(3)
  pair = dict(query_image=rng.integers(0, 256, (60, 80, 3), np.uint8),
              search_image=rng.integers(0, 256, (60, 80, 3), np.uint8),
              query_boxes=np.array([[5, 5, 30, 30]], np.float32),
              search_boxes=np.array([[10, 5, 40, 30]], np.float32),
              landscape=True)
  for seed in range(6):
    ex = t(dict(pair, aug_seed=seed))
    assert ex["query_image"].shape == ex["search_image"].shape == (128, 160,
                                                                   3)
    assert ex["query_boxes"].shape == (2, 4)
    assert ex["instance_valid"].dtype == bool
    assert ex["query_hw"].dtype == np.int32
    assert np.isfinite(ex["search_image"]).all()
    again = t(dict(pair, aug_seed=seed))
    np.testing.assert_array_equal(again["search_image"], ex["search_image"])


def test_config_errors_name_the_field():
  with pytest.raises(ValueError, match="data.canvas_portrait"):
    T.PairTransform(scale=(160, 128), mean=_MEAN, std=_STD, size_divisor=32,
                    canvas_landscape=(128, 160), canvas_portrait=(128, 160),
                    max_instances=2)
  with pytest.raises(ValueError, match="data.max_instances"):
    T.PairTransform(scale=(160, 128), mean=_MEAN, std=_STD, size_divisor=32,
                    canvas_landscape=(128, 160), canvas_portrait=(160, 128),
                    max_instances=0)
  with pytest.raises(ValueError, match=r"\(H, W, 3\) image"):
    _transform()(dict(query_image=np.zeros((8, 8), np.uint8),
                      search_image=np.zeros((8, 8, 3), np.uint8),
                      query_boxes=np.zeros((0, 4)),
                      search_boxes=np.zeros((0, 4)), landscape=True,
                      aug_seed=0))


def test_odd_orientation_and_odd_canvas_fit():
  t = _transform()
  aug = T.PairAugment(T.ImageAugment(None, T.INTERPOLATIONS[0], False),
                      T.ImageAugment(None, T.INTERPOLATIONS[0], False), None)
  port = np.full((128, 96, 3), 50, np.uint8)
  land = np.full((96, 128, 3), 50, np.uint8)
  box = np.array([[10, 10, 40, 40]], np.float32)
  # A portrait search image in a landscape pair: capped to fit 128 x 160.
  ex = t.apply(dict(query_image=land, search_image=port, query_boxes=box,
                    search_boxes=box, landscape=True), aug)
  np.testing.assert_array_equal(ex["search_hw"], [128, 96])  # s = 1
  np.testing.assert_array_equal(ex["query_hw"], [120, 160])  # s = 1.25
  # A canvas that is not a multiple of 32: boxes clip to the canvas.
  odd = T.PairTransform(scale=(150, 100), mean=_MEAN, std=_STD,
                        size_divisor=32, canvas_landscape=(100, 150),
                        canvas_portrait=(150, 100), max_instances=1,
                        photometric=False)
  img = np.full((100, 150, 3), 50, np.uint8)
  b = np.array([[140, 10, 170, 30]], np.float32)
  ex = odd.apply(dict(query_image=img, search_image=img, query_boxes=b,
                      search_boxes=b, landscape=True), aug)
  assert ex["query_image"].shape == (100, 150, 3)
  np.testing.assert_array_equal(ex["query_boxes"], [[140, 10, 149, 30]])
