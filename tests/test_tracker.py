"""Tests for tracking/preprocess.py, boxes/np_boxes.py, tracking/tracker.py."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dataset_fixtures import make_sequences
from model_reference import random_model, smooth_frame

from gt_jax.boxes import np_boxes, rescale
from gt_jax.tracking import preprocess as pp
from gt_jax.config import load_config
from gt_jax.data.sources.frames import read_rgb
from gt_jax.tracking import engine
from gt_jax.tracking.tracker import Tracker, TrackResult

CONFIG = "configs/globaltrack_r50_fpn.py"

# ---------------------------------------------------------------------------
# Preprocessing (LS §2).
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("hw,s,new_hw", [
    ((480, 640), 5 / 3, (800, 1067)),
    ((640, 480), 5 / 3, (1067, 800)),
    ((720, 1280), 1333 / 1280, (750, 1333)),
])
def test_rescale_rule_official_examples(hw, s, new_hw):
  got_s, got_hw = pp.rescale_size(hw, (1333, 800))
  assert got_s == pytest.approx(s, rel=1e-12)
  assert got_hw == new_hw


def test_preprocess_resizes_normalises_and_pads():
  rng = np.random.default_rng(0)
  frame = rng.integers(0, 256, (100, 60, 3), dtype=np.uint8)
  mean, std = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
  p = pp.preprocess_frame(frame, (160, 128), mean, std, size_divisor=32,
                          canvas_multiple=64)
  # s = min(160 / 100, 128 / 60) = 1.6 -> (160, 96); int(x * s + 0.5).
  assert p.scale == pytest.approx(1.6)
  assert p.img_hw == (160, 96) and p.pad_hw == (160, 96)
  assert p.image.shape == (192, 128, 3) and p.image.dtype == np.float32
  resized = cv2.resize(frame, (96, 160), interpolation=cv2.INTER_LINEAR)
  for c in range(3):
    want = (resized[..., c].astype(np.float64) - mean[c]) / std[c]
    np.testing.assert_allclose(p.image[:160, :96, c], want, rtol=1e-6,
                               atol=1e-6)
  assert not p.image[160:].any() and not p.image[:, 96:].any()


def test_preprocess_round_half_up_and_canvas():
  frame = np.zeros((7, 9, 3), np.uint8)
  p = pp.preprocess_frame(frame, (10, 5), size_divisor=4, canvas_multiple=4)
  s = min(10 / 9, 5 / 7)
  assert p.img_hw == (int(7 * s + 0.5), int(9 * s + 0.5)) == (5, 6)
  assert p.pad_hw == (8, 8) and p.image.shape == (8, 8, 3)
  with pytest.raises(ValueError, match="does not fit the canvas"):
    pp.preprocess_frame(frame, (10, 5), canvas_hw=(4, 8))


def test_grey_and_rgba_frames_are_converted():
  rgb = smooth_frame(0, (20, 30))
  grey = rgb[..., 0]
  np.testing.assert_array_equal(pp.to_rgb_uint8(grey),
                                np.repeat(grey[..., None], 3, -1))
  np.testing.assert_array_equal(pp.to_rgb_uint8(grey[..., None]),
                                np.repeat(grey[..., None], 3, -1))
  rgba = np.concatenate([rgb, np.full((20, 30, 1), 7, np.uint8)], -1)
  np.testing.assert_array_equal(pp.to_rgb_uint8(rgba), rgb)


@pytest.mark.parametrize("frame,match", [
    (np.zeros((8, 8, 3), np.uint16), "uint16"),
    (np.zeros((8, 8, 3), np.float32), "float32"),
    (np.zeros((8, 8, 5), np.uint8), "shape"),
    (np.zeros((2, 8, 8, 3), np.uint8), "shape"),
    (np.zeros((0, 8, 3), np.uint8), "empty"),
    ([[1, 2], [3, 4]], "numpy array"),
])
def test_bad_frames_raise(frame, match):
  with pytest.raises(ValueError, match=match):
    pp.to_rgb_uint8(frame, "frame")


def test_query_box_scaling_and_bounding():
  # [x, y, x + w - 1, y + h - 1] * s, no +1 correction.
  b = pp.query_box((10, 20, 30, 40), 2.0, (128, 96))
  np.testing.assert_allclose(b, [20, 40, 78, 118])
  # Partly outside: clipped to the padded canvas [0, Wp-1] x [0, Hp-1].
  b = pp.query_box((-5, 50, 30, 100), 1.0, (64, 48))
  np.testing.assert_allclose(b, [0, 50, 24, 63])
  # Collapsed after clipping: x2 = max(x2, x1).
  b = pp.query_box((60, 10, 20, 5), 1.0, (64, 48))
  np.testing.assert_allclose(b, [47, 10, 47, 14])


def test_query_box_rejects_non_single_box():
  with pytest.raises(ValueError, match="query_box: box_xywh"):
    pp.query_box([[10, 20, 30, 40]], 1.0, (64, 64))


def test_box_back_to_original_xywh():
  got = pp.box_to_original_xywh(np.array([20.0, 40.0, 78.0, 118.0]), 2.0)
  np.testing.assert_allclose(got, [10, 20, 30, 40])


def test_geometry_numpy_box_rules_hand_computed():
  # The shared numpy rules behind preprocess.py and data/ (LS §1, §11).
  xywh = np.array([[10.0, 20.0, 30.0, 40.0], [0.5, 1.5, 1.0, 2.0]])
  xyxy = np_boxes.xywh_to_xyxy(xywh)
  np.testing.assert_array_equal(xyxy, [[10, 20, 39, 59], [0.5, 1.5, 0.5, 2.5]])
  assert xyxy.dtype == np.float64
  np.testing.assert_array_equal(np_boxes.xyxy_to_xywh(xyxy), xywh)
  assert np_boxes.xywh_to_xyxy(xywh[0], np.float32).dtype == np.float32
  boxes = np.array([[-3.0, 2.0, 50.0, 40.0], [70.0, 1.0, 60.0, 2.0]])
  # Bound to a 30 (H) x 64 (W) image: x in [0, 63], y in [0, 29].
  np.testing.assert_array_equal(np_boxes.clip_boxes(boxes, 30, 64),
                                [[0, 2, 50, 29], [63, 1, 60, 2]])
  np.testing.assert_array_equal(
      np_boxes.clip_boxes(boxes, 30, 64, fix_order=True),
      [[0, 2, 50, 29], [63, 1, 63, 2]])
  assert boxes[0, 0] == -3.0  # the input is not modified
  assert rescale.padded_size((100, 65), 32) == (128, 96)
  assert rescale.padded_size((96, 64), 32) == (96, 64)
  # 375x500 -> s = min(1333/500, 800/375) = 2.1333..: (800, 1066.67 -> 1067).
  assert rescale.rescaled_size(375, 500) == (800, 1067)
  assert rescale.scaled_size(3, 5, 0.5) == (2, 3)  # 1.5 + .5 -> 2 (half up)


@pytest.mark.parametrize("box,match", [
    ((np.nan, 0, 10, 10), "NaN"),
    ((0, 0, 0, 10), "zero or negative size"),
    ((0, 0, 10, -1), "zero or negative size"),
    ((200, 10, 10, 10), "entirely outside"),
    ((-30, 10, 10, 10), "entirely outside"),
    ((0, 0, 10), "shape"),
])
def test_bad_init_boxes_raise(box, match):
  with pytest.raises(ValueError, match=match):
    pp.check_box_xywh(box, (96, 128), "init box")


# ---------------------------------------------------------------------------
# Tracker (tiny random model; one Tracker so compiles are shared).
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tracker():
  cfg = load_config(f"{CONFIG}:tiny")
  return Tracker(cfg, random_model(cfg.model, 11)[1])


def _check_result(tracker, r, frame_hw):
  assert isinstance(r, TrackResult)
  assert r.box.shape == (4,) and r.box.dtype == np.float64
  assert 0.0 <= r.score <= 1.0
  assert r.present == (r.score >= tracker.presence_threshold)
  x, y, w, h = r.box
  assert w > 0 and h > 0 and x >= 0 and y >= 0
  # The result may reach (W' - 1) / s, slightly past W - 1 (LS §2).
  assert x + w - 1 <= frame_hw[1] + 1 and y + h - 1 <= frame_hw[0] + 1


@pytest.mark.parametrize("frame_hw", [(96, 128), (128, 96)],
                         ids=["landscape", "portrait"])
def test_track_returns_xywh_in_original_pixels(tracker, frame_hw):
  tracker.init(smooth_frame(1, frame_hw), (20, 30, 30, 24))
  r = tracker.track(smooth_frame(2, frame_hw))
  _check_result(tracker, r, frame_hw)
  # Independent mapping of the raw output: corners / s, w = x2 - x1 + 1.
  s = min(160 / max(frame_hw), 128 / min(frame_hw))
  x1, y1, x2, y2 = np.asarray(tracker.last_output["box"][0], np.float64) / s
  np.testing.assert_allclose(r.box, [x1, y1, x2 - x1 + 1, y2 - y1 + 1],
                             rtol=1e-6)
  assert r.score == pytest.approx(float(tracker.last_output["score"][0]))


def test_no_retrace_across_frames(tracker):
  tracker.init(smooth_frame(3, (96, 128)), (40, 20, 30, 40))
  tracker.track(smooth_frame(4, (96, 128)))
  before = dict(tracker.trace_counts)
  for k in range(5, 9):
    tracker.track(smooth_frame(k, (96, 128)))
  tracker.init(smooth_frame(9, (96, 128)), (10, 10, 20, 20))
  tracker.track(smooth_frame(10, (96, 128)))
  assert dict(tracker.trace_counts) == before
  assert tracker.trace_counts["search_search"] <= 2  # landscape + portrait


def test_grey_frame_tracks_like_replicated_rgb(tracker):
  grey = smooth_frame(11, (96, 128))[..., 1]
  tracker.init(np.repeat(grey[..., None], 3, -1), (30, 30, 40, 30))
  want = tracker.track(np.repeat(grey[..., None], 3, -1))
  tracker.init(grey, (30, 30, 40, 30))
  got = tracker.track(grey)
  np.testing.assert_allclose(got.box, want.box)
  assert got.score == want.score


def test_multi_target_equals_single_target_runs(tracker):
  f0, f1 = smooth_frame(12, (96, 128)), smooth_frame(13, (96, 128))
  boxes = [(20, 30, 30, 24), (60, 10, 50, 60)]
  tracker.init(f0, boxes)
  both = tracker.track(f1)
  assert isinstance(both, list) and len(both) == 2
  for b, r in zip(boxes, both):
    tracker.init(f0, b)
    single = tracker.track(f1)
    np.testing.assert_allclose(r.box, single.box, rtol=1e-5, atol=1e-3)
    assert r.score == pytest.approx(single.score, abs=1e-5)


def test_engine_batch_with_mixed_canvases_equals_tracker(tracker, tmp_path):
  # Tiny scale (160, 128): 96x128 -> canvas 128x160, 128x96 -> 160x128,
  # 100x100 -> 128x128, 60x200 -> 48x160 (s = 0.8). Sequence "mix" changes
  # size mid-way; B = 3 puts sequences of different canvases side by side.
  seqs = (("land", [(96, 128)] * 4, (20, 30, 30, 24)),
          ("port", [(128, 96)] * 3, (15, 20, 40, 30)),
          ("mix", [(96, 128), (100, 100), (60, 200), (96, 128)],
           (30, 10, 50, 40)),
          ("wide", [(60, 200)] * 2, (100, 10, 40, 30)))
  records = make_sequences(str(tmp_path), seqs, seed=4)
  canvases = {tracker.engine.canvas_hw(hw) for _, sizes, _ in seqs
              for hw in sizes}
  assert len(canvases) == 4  # the test covers four different canvases
  got = {}
  engine.track_sequences(
      engine.SearchEngine.from_tracker(tracker), records, batch_size=3,
      on_sequence=lambda rec, res: got.setdefault(rec.name, res),
      num_workers=0, progress=False)
  assert sorted(got) == sorted(r.name for r in records)
  for rec in records:
    tracker.init(read_rgb(rec.frame_paths[0]), rec.boxes[0])
    res = got[rec.name]
    np.testing.assert_array_equal(res.boxes[0], rec.boxes[0])
    for t in range(1, len(rec)):
      want = tracker.track(read_rgb(rec.frame_paths[t]))
      np.testing.assert_allclose(res.boxes[t], want.box, atol=1e-3)
      assert res.scores[t] == pytest.approx(want.score, abs=1e-5)


def test_partly_outside_init_box_is_bounded(tracker):
  tracker.init(smooth_frame(14, (96, 128)), (-10, 80, 40, 40))
  _check_result(tracker, tracker.track(smooth_frame(15, (96, 128))),
                (96, 128))


def test_tracker_bad_inputs_raise():
  cfg = load_config(f"{CONFIG}:tiny")
  t = Tracker(cfg, random_model(cfg.model, 0)[1])
  frame = smooth_frame(0, (96, 128))
  with pytest.raises(RuntimeError, match="before Tracker.init"):
    t.track(frame)
  with pytest.raises(ValueError, match="uint16"):
    t.init(frame.astype(np.uint16), (10, 10, 20, 20))
  with pytest.raises(ValueError, match="NaN"):
    t.init(frame, (10, np.nan, 20, 20))
  with pytest.raises(ValueError, match="zero or negative size"):
    t.init(frame, (10, 10, 0, 20))
  with pytest.raises(ValueError, match="entirely outside"):
    t.init(frame, (500, 10, 20, 20))
  with pytest.raises(ValueError, match=r"init box\[1\]"):
    t.init(frame, [(10, 10, 20, 20), (10, 10, -1, 20)])
  with pytest.raises(ValueError, match="x, y, w, h"):
    t.init(frame, (10, 10, 20))
  with pytest.raises(ValueError, match="shape"):
    t.init(np.zeros((96, 128, 5), np.uint8), (10, 10, 20, 20))
