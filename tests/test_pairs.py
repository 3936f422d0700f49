"""Tests for gt_jax/data/pairs.py (LS §13.4), against hand-computed cases."""

import types

import numpy as np
import pytest

from gt_jax.data import pairs


def _seq(name, boxes, height=100, width=200, cover=None, n=None):
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  n = len(boxes) if n is None else n
  meta = {"height": height, "width": width}
  if cover is not None:
    meta["cover"] = np.asarray(cover)
  return types.SimpleNamespace(
      name=name, frame_paths=[f"{name}/{i:08d}.jpg" for i in range(n)],
      boxes=boxes, valid=np.ones(len(boxes), bool), meta=meta)


def _img(path, boxes, height=100, width=150, meta=None):
  return types.SimpleNamespace(path=path, height=height, width=width,
                               boxes=np.asarray(boxes, np.float64),
                               meta=meta or {})


def test_valid_frames_hand_cases():
  # Frame 200 wide, 100 high; each row tests one rule edge.
  rows = [
      ([0, 0, 20, 20], True),
      ([0, 0, 9, 20], False),  # w < 10
      ([0, 0, 10, 10], True),  # sides exactly 10
      ([0, 0, 151, 20], False),  # w/W = 0.755 > 0.75
      ([0, 0, 49, 10], True),  # aspect 4.9
      ([0, 0, 50, 10], False),  # aspect 5 (upper bound excluded)
      ([0, 0, 10, 50], True),  # aspect 0.2 (lower bound included)
      ([0, 0, 10, 51], False),  # aspect < 0.2
      ([0, 0, 20, 76], False),  # h/H = 0.76
      ([-1, -1, -1, -1], False),  # GOT-10k absent frame
      ([np.nan, 0, 20, 20], False),
  ]
  got = pairs.valid_frames(np.array([r for r, _ in rows]), 100, 200)
  np.testing.assert_array_equal(got, [ok for _, ok in rows])
  # Relative-size floor and the 960 cap on a large frame.
  big = np.array([[0, 0, 19, 50], [0, 0, 20, 50], [0, 0, 961, 500],
                  [0, 0, 960, 500]])
  np.testing.assert_array_equal(pairs.valid_frames(big, 2000, 2000),
                                [False, True, False, True])


def test_valid_frames_cover_rule():
  boxes = np.tile([0, 0, 20, 20], (5, 1))
  # max 8 -> threshold max(1, 2.4) = 2.4.
  np.testing.assert_array_equal(
      pairs.valid_frames(boxes, 100, 200, cover=[8, 2, 3, 0, 5]),
      [True, False, True, False, True])
  # max 2 -> threshold max(1, 0.6) = 1.
  np.testing.assert_array_equal(
      pairs.valid_frames(boxes, 100, 200, cover=[2, 1, 2, 0, 1]),
      [True, False, True, False, False])
  with pytest.raises(ValueError, match="cover has 2 labels for 5"):
    pairs.valid_frames(boxes, 100, 200, cover=[1, 2])


def test_sample_frame_pair_rules():
  valid = np.array([0, 5, 100, 350, 700, 1000])
  for seed in range(200):
    a, b = pairs.sample_frame_pair(valid, 300, np.random.default_rng(seed))
    assert a in valid and b in valid
    assert a < b <= a + 300
  two = np.array([7, 900])
  assert pairs.sample_frame_pair(two, 300, np.random.default_rng(0)) == (7,
                                                                         900)
  # All gaps > 300: the with-replacement, unsorted fallback.
  far = np.array([0, 400, 800])
  got = [pairs.sample_frame_pair(far, 300, np.random.default_rng(s))
         for s in range(50)]
  assert all(a in far and b in far for a, b in got)
  assert any(a >= b for a, b in got)
  with pytest.raises(ValueError, match="need >= 2 valid frames"):
    pairs.sample_frame_pair(np.array([3]), 300, np.random.default_rng(0))


def test_sequence_source_pairs_are_deterministic_and_legal():
  box = [-4.0, 10.0, 30.0, 20.0]  # leaves the frame on the left
  good = _seq("a", [box] * 6)
  one_valid = _seq("b", [box] + [[-1, -1, -1, -1]] * 4)
  covered = _seq("c", [box] * 4, cover=[8, 1, 0, 0])  # only frame 0 valid
  src = pairs.SequencePairSource([good, one_valid, covered],
                                 pairs_per_sequence=3, seed=5)
  assert src.num_sequences == 1 and len(src) == 3
  src2 = pairs.SequencePairSource([good, one_valid, covered],
                                  pairs_per_sequence=3, seed=5)
  for i in range(len(src)):
    p, q = src[i], src2[i]
    assert (p.query_ref, p.search_ref, p.aug_seed) == (q.query_ref,
                                                       q.search_ref,
                                                       q.aug_seed)
    assert p.query_ref < p.search_ref  # distinct, query first
    # xywh (-4, 10, 30, 20) -> xyxy (-4, 10, 25, 29) -> clipped x1 = 0.
    np.testing.assert_array_equal(p.query_boxes, [[0, 10, 25, 29]])
    np.testing.assert_array_equal(p.search_boxes, [[0, 10, 25, 29]])
    assert p.landscape  # 200 x 100
  other = pairs.SequencePairSource([good], pairs_per_sequence=50, seed=6)
  same = pairs.SequencePairSource([good], pairs_per_sequence=50, seed=5)
  assert ([other[i].query_ref for i in range(50)] !=
          [same[i].query_ref for i in range(50)])


def test_sequence_source_boxes_match_their_frames():
  boxes = np.array([[2.0 * i, 10, 20, 20] for i in range(8)])
  boxes[[1, 4]] = -1  # absent frames are never drawn
  src = pairs.SequencePairSource([_seq("d", boxes)], pairs_per_sequence=40,
                                 seed=2)
  seen = set()
  for i in range(len(src)):
    p = src[i]
    for ref, box in ((p.query_ref, p.query_boxes), (p.search_ref,
                                                    p.search_boxes)):
      frame = int(ref.split("/")[1][:8])
      seen.add(frame)
      np.testing.assert_array_equal(box, [[2 * frame, 10, 2 * frame + 19,
                                           29]])
  assert seen == {0, 2, 3, 5, 6, 7}


def test_sequence_source_rejects_frame_box_mismatch():
  bad = _seq("x", [[0, 0, 20, 20]] * 3, n=4)
  with pytest.raises(ValueError, match="'x' has 4 frames and 3 boxes"):
    pairs.SequencePairSource([bad])


def test_image_source_subset_filters_and_clipping():
  many = [[i * 10.0, 5.0, 8.0, 8.0] for i in range(12)]  # 12 > 8 instances
  rec = _img("many.jpg", many)
  tiny = _img("tiny.jpg", [[0, 0, 5, 5]], height=31, width=100)  # min side
  thin = _img("thin.jpg", [[0, 0, 0.5, 5]])  # w < 1 only -> no box left
  crowd = _img("crowd.jpg", [[0, 0, 5, 5], [140, 90, 20, 20]],
               height=120, width=100,
               meta={"iscrowd": np.array([1, 0])})
  src = pairs.ImagePairSource([rec, tiny, thin, crowd], max_instances=8,
                              seed=1)
  assert len(src) == 2
  np.testing.assert_array_equal(src.landscape, [True, False])
  p = src[0]
  assert p.query_ref == p.search_ref == "many.jpg"
  assert p.query_boxes.shape == (8, 4)
  np.testing.assert_array_equal(p.query_boxes, p.search_boxes)
  x1 = p.query_boxes[:, 0]
  assert len(set(x1.tolist())) == 8 and set(x1.tolist()) <= set(
      np.arange(12) * 10.0)
  # xywh (10k, 5, 8, 8) -> (10k, 5, 10k + 7, 12).
  np.testing.assert_array_equal(p.query_boxes[:, 2], x1 + 7)
  np.testing.assert_array_equal(src[0].query_boxes, p.query_boxes)
  # Crowd box dropped; the other clipped to the 100 x 120 image.
  np.testing.assert_array_equal(src[1].query_boxes, [[99, 90, 99, 109]])
  with pytest.raises(ValueError, match="max_instances must be >= 1"):
    pairs.ImagePairSource([rec], max_instances=0)


def _same(p, q):
  return (p.query_ref == q.query_ref and p.search_ref == q.search_ref
          and p.landscape == q.landscape and p.aug_seed == q.aug_seed
          and np.array_equal(p.query_boxes, q.query_boxes)
          and np.array_equal(p.search_boxes, q.search_boxes))


def _mixed(g=4, seed=0, weights=(3.0, 1.0)):
  land = [_seq(f"l{i}", [[0, 0, 20, 20]] * 3) for i in range(3)]
  port = [_seq(f"p{i}", [[0, 0, 20, 20]] * 3, height=200, width=100)
          for i in range(2)]
  a = pairs.SequencePairSource(land + port, pairs_per_sequence=2, name="a")
  b = pairs.ImagePairSource([_img(f"b{i}.jpg", [[1, 1, 9, 9]])
                             for i in range(4)], name="b")  # all landscape
  return pairs.MixedPairSource({"a": a, "b": b},
                               {"a": weights[0], "b": weights[1]},
                               epoch_size=40, global_batch_size=g, seed=seed,
                               num_epochs=100)


def test_mixed_source_batches_share_orientation_and_weights_hold():
  mixed = _mixed()
  assert len(mixed) == 4000
  specs = [mixed.spec(i) for i in range(len(mixed))]
  flags = np.array([s.landscape for _, s in specs]).reshape(-1, 4)
  assert (flags == flags[:, :1]).all()  # one orientation per global batch
  assert 0 < flags[:, 0].mean() < 1
  for b in range(0, 1000, 97):
    assert flags[b, 0] == mixed.batch_is_landscape(b)
  names = np.array([n for n, _ in specs])
  # Overall source frequencies follow the weights 3:1 (std ~0.007).
  assert abs((names == "a").mean() - 0.75) < 0.03
  # "b" has no portrait items: portrait batches draw from "a" only.
  assert (names.reshape(-1, 4)[~flags[:, 0]] == "a").all()
  # P(landscape) = 0.75 * 6/10 + 0.25 * 1 = 0.7.
  assert mixed.p_landscape == pytest.approx(0.7)
  again = _mixed()
  for i in (0, 17, 3999):
    assert _same(again.spec(i)[1], specs[i][1])
  other = _mixed(seed=1)
  assert not all(_same(other.spec(i)[1], specs[i][1]) for i in range(40))
  with pytest.raises(IndexError):
    mixed.spec(4000)


def test_mixed_source_errors_name_the_source():
  a = pairs.ImagePairSource([_img("a.jpg", [[1, 1, 9, 9]])])
  empty = pairs.ImagePairSource([])
  with pytest.raises(ValueError, match="'e' has no usable pairs"):
    pairs.MixedPairSource({"a": a, "e": empty}, {"a": 1, "e": 1},
                          epoch_size=8, global_batch_size=2)
  with pytest.raises(ValueError, match="'a': weight must be > 0"):
    pairs.MixedPairSource({"a": a}, {"a": 0.0}, epoch_size=8,
                          global_batch_size=2)
  with pytest.raises(ValueError, match="name different datasets"):
    pairs.MixedPairSource({"a": a}, {"b": 1.0}, epoch_size=8,
                          global_batch_size=2)


def test_mixed_source_decodes_images(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / "x.jpg")
  Image.fromarray(np.full((40, 50, 3), 200, np.uint8)).save(path)
  src = pairs.ImagePairSource([_img(path, [[1, 1, 9, 9]], 40, 50)])
  mixed = pairs.MixedPairSource({"x": src}, {"x": 1.0}, epoch_size=4,
                                global_batch_size=2)
  ex = mixed[np.int64(1)]
  assert ex["query_image"].shape == (40, 50, 3)
  assert ex["query_image"].dtype == np.uint8
  assert abs(int(ex["search_image"].mean()) - 200) <= 2
  np.testing.assert_array_equal(ex["query_boxes"], [[1, 1, 9, 9]])
  assert bool(ex["landscape"])
