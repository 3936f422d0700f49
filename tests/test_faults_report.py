"""Fault suite, `evaluate.py report` on damaged inputs (issue 10, item 8).

Each fault ends in one stderr line naming the file (and line) and a
non-zero exit, or, for the optional VOT-LT extra, a warning naming the file
while the protocol's own numbers stay; never a traceback or a silently
different number.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

import dataset_fixtures as F
import evaluate
from gt_jax.evaluation import results_io

@pytest.fixture()
def lasot(tmp_path):
  root = F.make_lasot(str(tmp_path / "LaSOT"))
  res = str(tmp_path / "results")
  gts = {"airplane-1": [[4, 4, 10, 8], [5, 4, 10, 8], [0, 0, 0, 0]],
         "bear-2": [[4, 4, 10, 8], [5, 4, 10, 8]]}
  for name, gt in gts.items():
    pred = np.asarray(gt, float) + 1.0
    results_io.write_otb_result(os.path.join(res, "T"), name, pred)
    results_io.write_values(os.path.join(res, "T", f"{name}_scores.txt"),
                            np.linspace(0.2, 0.9, len(gt)))
  return root, res


def _report(tmp_path, root, res):
  out = str(tmp_path / "out")
  shutil.rmtree(out, ignore_errors=True)
  rc = evaluate.main(["report", "--benchmark", "lasot", "--root", root,
                      "--results", res, "--out", out, "--no-plots"])
  rep = None
  if os.path.exists(os.path.join(out, "report.json")):
    with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
      rep = json.load(f)
  return rc, rep


def _error_lines(err):
  """The command's own lines (logging's WARNING lines aside)."""
  return [l for l in err.splitlines() if l.strip()
          and not l.startswith("WARNING ")]


def test_groundtruth_shorter_than_frames_is_an_error(tmp_path, lasot,
                                                     capsys):
  # Scoring reads annotations only, but frames that are there still catch
  # a ground truth cut at a line boundary.
  root, res = lasot
  gt = os.path.join(root, "airplane", "airplane-1", "groundtruth.txt")
  with open(gt, encoding="utf-8") as f:
    rows = f.read().splitlines()
  with open(gt, "w", encoding="utf-8") as f:
    f.write("\n".join(rows[:2]) + "\n")
  rc, _ = _report(tmp_path, root, res)
  err = capsys.readouterr().err
  assert rc == 1 and "Traceback" not in err
  assert _error_lines(err) == [f"evaluate.py: error: {gt}: 2 rows for 3 "
                               "frames"]


def test_infinite_result_value_names_file_and_line(tmp_path, lasot, capsys):
  root, res = lasot
  path = os.path.join(res, "T", "airplane-1.txt")
  with open(path, encoding="utf-8") as f:
    rows = f.read().splitlines()
  rows[1] = "inf,1,2,3"
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(rows) + "\n")
  rc, rep = _report(tmp_path, root, res)
  err = capsys.readouterr().err
  assert rc == 1 and "Traceback" not in err  # was an OverflowError
  assert _error_lines(err) == [
      f"evaluate.py report: tracker T not scored: {path}:2: infinite value "
      "in 'inf,1,2,3'"]
  assert "overall" not in rep["trackers"]["T"]


@pytest.mark.parametrize("damage,needle", [
    ("", ": empty file"),                 # was "cannot reshape array ..."
    ("0.5\nnan\n0.5\n", ":2: score is not a number"),  # was scored
])
def test_damaged_scores_skip_vot_lt_only(tmp_path, lasot, capsys, caplog,
                                         damage, needle):
  root, res = lasot
  rc, clean = _report(tmp_path, root, res)
  assert rc == 0 and "vot_lt_f" in clean["trackers"]["T"]["overall"]
  path = os.path.join(res, "T", "airplane-1_scores.txt")
  with open(path, "w", encoding="utf-8") as f:
    f.write(damage)
  caplog.clear()
  rc, rep = _report(tmp_path, root, res)
  assert rc == 0 and "Traceback" not in capsys.readouterr().err
  assert f"{path}{needle}" in caplog.text
  assert "VOT-LT metrics skipped" in caplog.text
  got, want = rep["trackers"]["T"]["overall"], clean["trackers"]["T"][
      "overall"]
  assert "vot_lt_f" not in got
  assert got == {k: v for k, v in want.items() if not k.startswith("vot_lt")}
