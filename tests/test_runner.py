"""Batched benchmark runner: batching, resuming, sharding, result layouts.

The reference for the batched runs is a plain loop over each sequence's
frames with the engine's single-frame (un-vmapped) search on each frame's
own canvas: what `Tracker.init` / `Tracker.track` compute.
"""

from __future__ import annotations

import os
import zipfile

import jax
import numpy as np
import pytest

from gt_jax.tracking import preprocess as pp
from gt_jax.config import load_config
from gt_jax.data.errors import DatasetLayoutError
from gt_jax.data.records import SequenceRecord
from gt_jax.data.sources.frames import read_rgb
from gt_jax.evaluation import results_io
from gt_jax.evaluation import runner
from gt_jax.tracking import engine as engine_lib
from gt_jax.tracking.frame_loader import FramePrefetcher
from gt_jax.model.build import build_model, init_variables
from gt_jax.tracking.tracker import Tracker
from dataset_fixtures import make_sequences

CONFIG = "configs/globaltrack_r50_fpn.py:tiny"

@pytest.fixture(scope="module")
def engine():
  cfg = load_config(CONFIG)
  model = build_model(cfg.model)
  variables = init_variables(model, jax.random.PRNGKey(3))
  return engine_lib.SearchEngine(cfg, variables, model)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
  return make_sequences(str(tmp_path_factory.mktemp("frames")))


@pytest.fixture(scope="module")
def runs(engine, records, tmp_path_factory):
  """Result folders of B=1 and B=4 runs."""
  out = {}
  for b in (1, 4):
    d = str(tmp_path_factory.mktemp(f"b{b}"))
    s = runner.run_benchmark(engine, records, d, batch_size=b,
                             num_workers=2, prefetch=2, progress=False,
                             process_index=0, process_count=1)
    assert (s.sequences, s.skipped) == (len(records), 0)
    assert s.frames == sum(len(r) for r in records)
    out[b] = d
  return out


def _reference(engine, rec):
  """Plain per-frame loop (Tracker semantics) -> (N, 4) xywh, (N,) score."""
  pre0 = engine.preprocess(read_rgb(rec.frame_paths[0]))
  kernels = engine.query(pre0, rec.boxes[0])
  boxes, scores = [rec.boxes[0]], [1.0]
  for p in rec.frame_paths[1:]:
    pre = engine.preprocess(read_rgb(p))
    out = jax.device_get(engine.search(pre, kernels))
    box, score = out["box"], out["score"]
    boxes.append(pp.box_to_original_xywh(box[0], pre.scale))
    scores.append(float(score[0]))
  return np.stack(boxes), np.asarray(scores)


def _read(d, name):
  return (results_io.read_boxes(os.path.join(d, f"{name}.txt"),
                                comma_only=True),
          results_io.read_values(
              os.path.join(d, f"{name}_object_presence_scores.txt")))


def test_batched_equals_single_and_reference(engine, records, runs):
  for rec in records:
    b1, s1 = _read(runs[1], rec.name)
    b4, s4 = _read(runs[4], rec.name)
    ref_b, ref_s = _reference(engine, rec)
    assert b1.shape == b4.shape == (len(rec), 4), rec.name
    np.testing.assert_allclose(b4, b1, atol=1e-3, rtol=0, err_msg=rec.name)
    np.testing.assert_allclose(s4, s1, atol=1e-6, rtol=0, err_msg=rec.name)
    # %.3f files: rounding leaves at most 5e-4 px.
    np.testing.assert_allclose(b1, ref_b, atol=1e-3, rtol=0, err_msg=rec.name)
    np.testing.assert_allclose(s1, ref_s, atol=1e-6, rtol=0, err_msg=rec.name)
    # LS §1: the result of frame 0 is the init box.
    np.testing.assert_array_equal(b1[0], rec.boxes[0])
    times = results_io.read_values(
        os.path.join(runs[4], "times", f"{rec.name}_time.txt"))
    assert times.shape == (len(rec),) and np.all(times > 0)
  # The tracker really moves (a constant output would hide misalignment).
  b, _ = _read(runs[1], "f")
  assert np.abs(b[1:] - b[0]).max() > 1.0


class _Crash(RuntimeError):
  pass


def test_resume_after_crash_gives_identical_files(engine, records, runs,
                                                  tmp_path):
  d = str(tmp_path / "GlobalTrack")
  done = []

  def crash_after_two(name):
    done.append(name)
    if len(done) == 2:
      raise _Crash(name)

  with pytest.raises(_Crash):
    runner.run_benchmark(engine, records, d, batch_size=4, num_workers=2,
                         progress=False, on_sequence_done=crash_after_two,
                         process_index=0, process_count=1)
  assert sorted(f[:-4] for f in os.listdir(d) if f.endswith(".txt")
                and "_object" not in f) == sorted(done)
  stamps = {n: os.stat(os.path.join(d, f"{n}.txt")).st_mtime_ns
            for n in done}
  s = runner.run_benchmark(engine, records, d, batch_size=4, num_workers=2,
                           progress=False, process_index=0, process_count=1)
  assert (s.skipped, s.sequences) == (2, len(records) - 2)
  for n in done:  # skipped, not rewritten.
    assert os.stat(os.path.join(d, f"{n}.txt")).st_mtime_ns == stamps[n]
  for rec in records:
    for suffix in (".txt", "_object_presence_scores.txt"):
      with open(os.path.join(d, rec.name + suffix), "rb") as f:
        got = f.read()
      with open(os.path.join(runs[4], rec.name + suffix), "rb") as f:
        assert got == f.read(), rec.name + suffix
  assert not [f for f in os.listdir(d) if ".tmp" in f]


def test_truncated_result_is_redone(records, tmp_path):
  rec = records[0]
  path = runner.result_path("otb", str(tmp_path), rec.name)
  results_io.write_boxes(path, np.ones((len(rec) - 1, 4)))
  assert not runner.is_done("otb", str(tmp_path), rec)
  results_io.write_boxes(path, np.ones((len(rec), 4)))
  assert runner.is_done("otb", str(tmp_path), rec)


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_shards_are_disjoint_cover_and_balanced(count):
  rng = np.random.default_rng(count)
  lengths = rng.integers(1, 50, size=17)
  recs = [SequenceRecord(f"s{i}", ["x"] * n, np.ones((1, 4)), [True],
                         [True]) for i, n in enumerate(lengths)]
  shards = [runner.shard_sequences(recs, p, count) for p in range(count)]
  names = [r.name for s in shards for r in s]
  assert len(names) == len(set(names)) == len(recs)
  for s in shards:  # benchmark order kept.
    idx = [int(r.name[1:]) for r in s]
    assert idx == sorted(idx)
  loads = [sum(len(r) for r in s) for s in shards]
  assert max(loads) - min(loads) <= lengths.max()
  # Every process computes the same split.
  assert [r.name for r in runner.shard_sequences(recs, 0, count)] == [
      r.name for r in shards[0]]


def test_shard_rejects_bad_index():
  with pytest.raises(ValueError, match="process_index=2"):
    runner.shard_sequences([], 2, 2)


def test_argument_errors(engine, records, tmp_path):
  with pytest.raises(ValueError, match="layout"):
    runner.run_benchmark(engine, records, str(tmp_path), layout="vot")
  with pytest.raises(ValueError, match="frame_stride"):
    runner.run_benchmark(engine, records, str(tmp_path), frame_stride=5)
  bad = SequenceRecord("broken", records[0].frame_paths,
                       np.tile([1.0, 1.0, -1.0, -1.0], (len(records[0]), 1)),
                       np.zeros(len(records[0]), bool),
                       np.zeros(len(records[0]), bool))
  with pytest.raises(ValueError, match="broken: the first-frame box"):
    runner.run_benchmark(engine, [bad], str(tmp_path), progress=False,
                         process_index=0, process_count=1)


def _result(n, stride=1):
  ids = np.arange(0, n * stride, stride)
  boxes = np.stack([np.arange(n) + 10.0, np.arange(n) + 20.0,
                    np.full(n, 30.0), np.full(n, 40.0)], axis=1)
  return engine_lib.SequenceResult(boxes, np.linspace(1, 0.5, n),
                               np.full(n, 0.01), ids)


def test_got10k_layout(tmp_path):
  rec = SequenceRecord("GOT-10k_Val_000001", ["f"] * 5, np.ones((5, 4)),
                       np.ones(5, bool), np.ones(5, bool))
  res = _result(5)
  runner.write_result("got10k", str(tmp_path), rec, res, 0.84)
  runs = results_io.read_got10k_result(str(tmp_path), rec.name)
  assert len(runs) == 1
  np.testing.assert_allclose(runs[0], res.boxes, atol=5e-4)
  t = results_io.read_values(str(tmp_path / rec.name /
                                 f"{rec.name}_time.txt"))
  np.testing.assert_allclose(t, res.times)
  assert runner.is_done("got10k", str(tmp_path), rec)


def test_oxuva_layout_absolute_frames_and_normalised_boxes(tmp_path):
  n, stride, init = 4, 30, 90
  meta = {"video": "vid0001", "object": "obj0002", "init_frame": init,
          "image_size": (200, 100)}
  rec = SequenceRecord("vid0001_obj0002", ["f"] * (n * stride),
                       np.ones((1, 4)), [True], [True], meta)
  res = _result(n, stride)
  runner.write_result("oxuva", str(tmp_path), rec, res, 0.8)
  rows = results_io.read_oxuva_csv(str(tmp_path / "vid0001_obj0002.csv"))
  assert sorted(rows) == [120, 150, 180]  # frame 0 (the init) not written.
  for k, frame in enumerate(sorted(rows), start=1):
    present, score, box = rows[frame]
    assert present == (res.scores[k] >= 0.8)
    assert score == pytest.approx(res.scores[k])
    if present:  # (x, y, w, h) = (10 + k, 20 + k, 30, 40) in a 200x100 frame
      np.testing.assert_allclose(
          box, [(10 + k) / 200, (40 + k) / 200, (20 + k) / 100,
                (60 + k) / 100])
  assert runner.is_done("oxuva", str(tmp_path), rec, stride)
  assert not runner.is_done("oxuva", str(tmp_path), rec, 1)


def test_trackingnet_zip_only_when_complete(tmp_path):
  d = str(tmp_path / "GlobalTrack")
  recs = [SequenceRecord(n, ["f"] * 3, np.ones((3, 4)), np.ones(3, bool),
                         np.ones(3, bool)) for n in ("x1", "x2")]
  runner.write_result("trackingnet", d, recs[0], _result(3), 0.5)
  assert runner.write_trackingnet_zip(d, recs) is None
  runner.write_result("trackingnet", d, recs[1], _result(3), 0.5)
  path = runner.write_trackingnet_zip(d, recs)
  assert path == d + ".zip"
  with zipfile.ZipFile(path) as z:
    assert sorted(z.namelist()) == ["x1.txt", "x2.txt"]
    assert z.read("x1.txt").decode().splitlines()[1] == (
        "11.00,21.00,30.00,40.00")


def test_frame_loader_order_errors_and_restart(tmp_path):
  calls = []

  def prep(p):
    calls.append(p)
    if p == "bad":
      raise OSError("cannot decode bad")
    return p.upper()

  for workers in (0, 2):
    with FramePrefetcher(prep, num_workers=workers, depth=2) as loader:
      loader.start(0, ["a", "b", "c"])
      loader.start(1, ["x", "bad"])
      assert [loader.next(0), loader.next(1), loader.next(0)] == [
          "A", "X", "B"]
      with pytest.raises(OSError, match="cannot decode bad"):
        loader.next(1)
      loader.start(0, ["q"])  # a refill drops the old sequence's frames.
      assert loader.next(0) == "Q"
      with pytest.raises(IndexError, match="slot 0"):
        loader.next(0)
  with pytest.raises(ValueError, match="depth"):
    FramePrefetcher(prep, depth=0)


def test_engine_from_tracker_shares_model_and_weights(engine):
  t = Tracker(engine.cfg, engine.variables, engine.model)
  e = engine_lib.as_engine(t)
  assert isinstance(e, engine_lib.SearchEngine) and e.model == engine.model
  assert engine_lib.as_engine(engine) is engine
  leaves = zip(jax.tree.leaves(e.variables), jax.tree.leaves(engine.variables))
  assert all(np.array_equal(a, b) for a, b in leaves)
  assert e.presence_threshold == engine.cfg.test.presence_threshold


def test_unreadable_frames_fail_their_sequence_only(engine, records, runs,
                                                   tmp_path):
  """A missing frame, an undecodable middle frame and an undecodable first
  frame each fail their own sequence (named, with the file); the others are
  tracked exactly as in a clean run and written; a rerun retries only the
  failed ones."""
  rec = records[0]
  missing = str(tmp_path / "gone" / "0003.jpg")
  holes = SequenceRecord("holes", rec.frame_paths[:2] + [missing],
                         rec.boxes[:3], rec.valid[:3], rec.visible[:3])
  bad = tmp_path / "bad"
  bad.mkdir()
  junk = bad / "junk.jpg"
  junk.write_bytes(b"\xff\xd8\xff not a jpeg")
  mid = SequenceRecord("mid", rec.frame_paths[:2] + [str(junk)] +
                       rec.frame_paths[3:5], rec.boxes[:5], rec.valid[:5],
                       rec.visible[:5])
  first = SequenceRecord("first", [str(junk)] + rec.frame_paths[1:3],
                         rec.boxes[:3], rec.valid[:3], rec.visible[:3])
  good = list(records[1:3])
  out = str(tmp_path / "out")
  s = runner.run_benchmark(engine, [holes, good[0], mid, first, good[1]],
                           out, batch_size=2, num_workers=2, progress=False,
                           process_index=0, process_count=1)
  failed = dict(s.failed)
  assert sorted(failed) == ["first", "holes", "mid"]
  assert "gone/0003.jpg" in failed["holes"]
  assert "junk.jpg" in failed["mid"] and "junk.jpg" in failed["first"]
  assert s.sequences == 2
  for name in ("holes", "mid", "first"):
    assert not os.path.exists(os.path.join(out, f"{name}.txt"))
  for r in good:  # identical to the clean B=1 run.
    got, want = _read(out, r.name), _read(runs[1], r.name)
    np.testing.assert_allclose(got[0], want[0], atol=1e-3)
  again = runner.run_benchmark(engine, [holes, good[0], mid, first, good[1]],
                               out, batch_size=2, num_workers=0,
                               progress=False, process_index=0,
                               process_count=1)
  assert (again.skipped, again.sequences, len(again.failed)) == (2, 0, 3)
  # Without on_error the engine raises, naming the file.
  with pytest.raises(DatasetLayoutError, match="gone/0003.jpg"):
    engine_lib.track_sequences(engine, [holes], num_workers=0,
                               progress=False)


def test_zero_sequences_is_an_error(engine, tmp_path):
  with pytest.raises(ValueError, match="no sequences"):
    runner.run_benchmark(engine, [], str(tmp_path), progress=False,
                         process_index=0, process_count=1)
