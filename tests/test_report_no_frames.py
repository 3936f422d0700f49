"""Scoring needs no frames, for every benchmark (issue 10, item 5).

For each benchmark `evaluate.py report` reads (the "folder" layout has no
report; its reader is checked directly): a tiny copy in its real layout (with frames),
result files derived from its ground truth, `evaluate.py report` once with
the frames, then again after every frame image is deleted (annotations
kept). The protocol's numbers must be identical. The one extra that needs a
frame: VOT-LT overlaps are bounded by the image size, read from the first
frame's header; without it VOT-LT is skipped with a warning (never computed
unbounded, which would silently change its numbers).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil

import numpy as np
import pytest

import dataset_fixtures as F
import evaluate
from gt_jax.data.errors import DatasetLayoutError
from gt_jax.evaluation import benchmarks, results_io
from gt_jax.evaluation.datasets import otb_tables

VOT_KEYS = ("vot_lt_precision", "vot_lt_recall", "vot_lt_f")


def _pred(gt: np.ndarray) -> np.ndarray:
  """A deterministic imperfect tracker: GT shifted by 0/1/2 px; a box where
  the GT is invalid."""
  pred = gt.copy()
  bad = ~np.isfinite(gt).all(1) | (gt[:, 2] <= 0) | (gt[:, 3] <= 0)
  pred[bad] = (1.0, 1.0, 6.0, 5.0)
  pred[:, :2] += (np.arange(len(gt)) % 3)[:, None]
  return pred


def _scores(n: int) -> np.ndarray:
  return (np.arange(n) % 4 + 1) / 5.0


def _otb_style(records, res):
  for r in records:
    d = os.path.join(res, "T")
    results_io.write_otb_result(d, r.name, _pred(r.boxes))
    results_io.write_values(os.path.join(d, f"{r.name}_scores.txt"),
                            _scores(len(r.boxes)))


def _delete(pattern):
  paths = glob.glob(pattern, recursive=True)
  assert paths, pattern
  for p in paths:
    shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)


def _otb(root, res):
  F.make_otb(root)
  return "otb", None, _otb_style, os.path.join(root, "*", "img")


def _uav(root, res):
  F.make_uav(root)
  return "uav123", None, _otb_style, os.path.join(root, "data_seq")


def _lasot(root, res):
  F.make_lasot(root)
  return "lasot", None, _otb_style, os.path.join(root, "*", "*", "img")


def _tlp(root, res):
  F.make_tlp(root)
  return "tlp", None, _otb_style, os.path.join(root, "*", "img")


def _got10k(root, res):
  F.make_got10k(root)

  def write(records, res):
    for r in records:
      results_io.write_got10k_result(os.path.join(res, "T"), r.name,
                                     [_pred(r.boxes)])
  return "got10k", "val", write, os.path.join(root, "val", "*", "*.jpg")


def _trackingnet(root, res):
  F.make_trackingnet(root)

  def write(records, res):
    results_io.write_trackingnet_zip(
        os.path.join(res, "T.zip"),
        {r.name: _pred(r.boxes) for r in records})
  return "trackingnet", None, write, os.path.join(root, "*", "frames")


def _oxuva(root, res):
  F.make_oxuva(root)

  def write(records, res):
    for r in records:
      m = r.meta
      frames = np.arange(m["init_frame"], m["last_frame"] + 1, 10)
      norm = np.tile([0.1, 0.5, 0.2, 0.6], (len(frames), 1))
      results_io.write_oxuva_csv(
          os.path.join(res, "T", f"{r.name}.csv"), m["video"], m["object"],
          frames, frames % 20 == 0, _scores(len(frames)), norm)
  return "oxuva", None, write, os.path.join(root, "images")


CASES = {"otb": _otb, "uav123": _uav, "lasot": _lasot, "tlp": _tlp,
         "got10k": _got10k, "trackingnet": _trackingnet,
         "oxuva": _oxuva}


def _report(tmp_path, benchmark, root, res, tag, *extra):
  out = str(tmp_path / f"report_{tag}")
  rc = evaluate.main(["report", "--benchmark", benchmark, "--root", root,
                      "--results", res, "--out", out, "--no-plots", *extra])
  assert rc == 0
  with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
    return json.load(f)["trackers"]["T"]


def _same(a, b) -> bool:
  """Equal to the last digit, NaN equal to NaN."""
  return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _without_vot(d):
  return {k: v for k, v in d.items() if k not in VOT_KEYS}


@pytest.mark.parametrize("name", sorted(CASES))
def test_report_is_the_same_without_frames(name, tmp_path, monkeypatch,
                                           caplog):
  # The fixtures' OTB David and UAV tables replace the official ones.
  monkeypatch.setattr(otb_tables, "FRAME_RANGES", F.OTB_RANGES)
  monkeypatch.setitem(benchmarks.BENCHMARKS, "uav123",
                      benchmarks._uav_loader(F.UAV_TABLE, "UAV123"))
  root, res = str(tmp_path / "data"), str(tmp_path / "results")
  benchmark, subset, write, frames_glob = CASES[name](root, res)
  bench_root = os.path.join(root, subset) if subset else root
  records = [r for r in benchmarks.load_benchmark(benchmark, bench_root,
                                                  benchmarks.AVAILABLE)
             if not r.first_frame_only]
  assert records
  write(records, res)

  with_frames = _report(tmp_path, benchmark, bench_root, res, "frames")
  otb_style = "success_auc" in with_frames["overall"]
  if otb_style:  # per-frame scores were written: VOT-LT is scored.
    assert set(VOT_KEYS) <= set(with_frames["overall"])

  _delete(frames_glob)
  with pytest.raises(DatasetLayoutError):  # tracking would need them
    benchmarks.load_benchmark(benchmark, bench_root,
                              [r.name for r in records])
  caplog.set_level(logging.WARNING)
  no_frames = _report(tmp_path, benchmark, bench_root, res, "annotations")
  assert _same(_without_vot(no_frames["overall"]),
               _without_vot(with_frames["overall"]))
  assert set(no_frames["per_sequence"]) == set(with_frames["per_sequence"])
  for seq, values in with_frames["per_sequence"].items():
    assert _same(_without_vot(no_frames["per_sequence"][seq]),
                 _without_vot(values)), seq
  if otb_style:
    # No frame header to bound VOT overlaps: skipped, and said so.
    assert not set(VOT_KEYS) & set(no_frames["overall"])
    assert "VOT-LT metrics skipped" in caplog.text


def test_folder_reader_without_frames(tmp_path):
  root = str(tmp_path / "seqs")
  F.make_sequences(root, (("a", [(40, 48)] * 4, (5, 6, 20, 15)),
                          ("b", [(40, 48)] * 3, (10, 8, 12, 12))))
  full = benchmarks.load_benchmark("folder", root)
  _delete(os.path.join(root, "*", "*.jpg"))
  with pytest.raises(DatasetLayoutError, match="no .*frames"):
    benchmarks.load_benchmark("folder", root)
  bare = benchmarks.load_benchmark("folder", root, frames=False)
  assert [r.name for r in bare] == ["a", "b"]
  for r, b in zip(full, bare):
    np.testing.assert_array_equal(b.boxes, r.boxes)
    assert b.frame_paths == r.frame_paths  # the same naming rule
