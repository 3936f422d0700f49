"""Tests for gt_jax/evaluation/report.py and `evaluate.py report`.

Each benchmark fixture is written in its real on-disk layout (tiny JPEGs)
with the worked-example boxes of metrics.md §9, so the expected numbers are
the spec's hand-checked values.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import evaluate
from gt_jax.evaluation import report as report_lib
from gt_jax.evaluation import results_io

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
G = np.tile([10.0, 20.0, 40.0, 30.0], (5, 1))
PRED = np.array([[10, 20, 40, 30], [20, 25, 40, 30], [0, 0, 20, 20],
                 [15, 20, 30, 30], [30, 40, 0, 0]], np.float64)


def _write(path, text):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)


def _frames(folder, names, size=(64, 48)):
  os.makedirs(folder, exist_ok=True)
  for n in names:
    Image.new("RGB", size, (90, 120, 30)).save(os.path.join(folder, n))


def _rows(boxes, sep=","):
  return "".join(sep.join(f"{v:g}" for v in b) + "\n" for b in boxes)


def _run(tmp_path, benchmark, root, results, *extra):
  out = str(tmp_path / f"out_{benchmark}")
  rc = evaluate.main(["report", "--benchmark", benchmark, "--root", root,
                      "--results", results, "--out", out, *extra])
  assert rc == 0
  with open(os.path.join(out, "report.json")) as f:
    return json.load(f), out


@pytest.fixture(scope="module")
def otb(tmp_path_factory):
  d = tmp_path_factory.mktemp("otb")
  root, res = str(d / "OTB2015"), str(d / "results")
  names = [f"{i:04d}.jpg" for i in range(1, 6)]
  _frames(os.path.join(root, "Basketball", "img"), names)
  _write(os.path.join(root, "Basketball", "groundtruth_rect.txt"), _rows(G))
  _frames(os.path.join(root, "Jogging", "img"), names)
  _write(os.path.join(root, "Jogging", "groundtruth_rect.1.txt"),
         _rows(G, "\t"))
  _write(os.path.join(root, "Jogging", "groundtruth_rect.2.txt"), _rows(G))
  # Tracker A: the §9 predictions (tab-separated for Jogging.1, with an
  # extra row for Jogging.2); tracker B: perfect.
  _write(os.path.join(res, "A", "Basketball.txt"), _rows(PRED))
  _write(os.path.join(res, "A", "Jogging.1.txt"), _rows(PRED, "\t"))
  _write(os.path.join(res, "A", "Jogging.2.txt"), _rows(np.vstack([PRED,
                                                                   G[:1]])))
  for s in ("Basketball", "Jogging.1", "Jogging.2"):
    _write(os.path.join(res, "B", f"{s}.txt"), _rows(G))
  return root, res


def test_otb_report_official(tmp_path, otb):
  rep, out = _run(tmp_path, "otb", *otb)
  assert rep["benchmark"] == "otb" and rep["protocol"] == "otb_official"
  assert rep["subset"] is True and rep["num_sequences"] == 3
  a = rep["trackers"]["A"]
  assert sorted(a["per_sequence"]) == ["Basketball", "Jogging.1", "Jogging.2"]
  for seq in a["per_sequence"].values():  # E2 on every sequence
    assert seq["success_auc"] == pytest.approx(12 / 21, abs=1e-9)
    assert seq["precision_20px"] == pytest.approx(0.8, abs=1e-12)
  assert a["overall"]["success_auc"] == pytest.approx(12 / 21, abs=1e-9)
  assert a["overall"]["norm_precision_020"] == pytest.approx(0.6)
  b = rep["trackers"]["B"]["overall"]
  assert b["success_auc"] == pytest.approx(20 / 21, abs=1e-9)
  for png in ("success_plot.png", "precision_plot.png",
              "norm_precision_plot.png"):
    assert os.path.getsize(os.path.join(out, png)) > 1000
  with open(os.path.join(out, "report.md")) as f:
    md = f.read()
  assert md.index("| B |") < md.index("| A |")  # ordered by score


def test_otb_report_variants(tmp_path, otb):
  rep, _ = _run(tmp_path, "otb", *otb, "--protocol", "neuron")
  a = rep["trackers"]["A"]["overall"]
  assert rep["protocol"] == "neuron"
  # neuron: 101 bins, zero-size frame scores IoU 0 (E1 with 101 bins).
  assert a["success_auc"] == pytest.approx(44.2 / 101, abs=1e-9)
  assert "norm_precision_020" not in a
  # got10k reads comma-separated files only: A's tab file is refused, B is
  # still scored and A's error is recorded in the report.
  rep, out = _run(tmp_path, "otb", *otb, "--protocol", "got10k")
  assert "not comma separated" in rep["trackers"]["A"]["error"]
  assert "Jogging.1" in rep["trackers"]["A"]["error"]
  assert rep["trackers"]["B"]["overall"]["success_auc"] == pytest.approx(
      20 / 21)
  with open(os.path.join(out, "report.md")) as f:
    assert "| A |" not in f.read()


def test_report_subset_scores_only_the_named_sequences(tmp_path, otb):
  rep, _ = _run(tmp_path, "otb", *otb, "--subset", "Basketball,Jogging.2",
                "--no-plots")
  a = rep["trackers"]["A"]
  assert sorted(a["per_sequence"]) == ["Basketball", "Jogging.2"]
  assert rep["num_sequences"] == 2
  assert a["overall"]["success_auc"] == pytest.approx(12 / 21, abs=1e-9)


def test_ranking_puts_best_first(otb, tmp_path):
  rep, curves = report_lib.build_report("otb", *otb)
  assert report_lib.ranked(rep, "success") == ["B", "A"]
  assert len(curves["A"]["success"]) == 21


@pytest.fixture(scope="module")
def lasot(tmp_path_factory):
  d = tmp_path_factory.mktemp("lasot")
  root, res = str(d / "LaSOT"), str(d / "results")
  seq = os.path.join(root, "airplane", "airplane-1")
  _frames(os.path.join(seq, "img"), [f"{i:08d}.jpg" for i in range(1, 6)])
  gt = G.copy()
  gt[2] = 0
  _write(os.path.join(seq, "groundtruth.txt"), _rows(gt))
  _write(os.path.join(seq, "full_occlusion.txt"), "0,0,1,0,0")
  _write(os.path.join(seq, "out_of_view.txt"), "0,0,0,0,0")
  _write(os.path.join(seq, "nlp.txt"), "a plane")
  pred = PRED.copy()
  pred[2] = 0
  _write(os.path.join(res, "A", "airplane-1.txt"), _rows(pred))
  _write(os.path.join(res, "A", "airplane-1_object_presence_scores.txt"),
         "1\n0.9\n0.1\n0.5\n0.7\n")
  return root, res


@pytest.mark.parametrize("protocol,auc,p20", [
    (None, 12 / 21, 0.8), ("pytracking", 12 / 21, 0.8),
    ("neuron", 0.535714, 1.0)])
def test_lasot_report_e5(tmp_path, lasot, protocol, auc, p20):
  extra = ["--protocol", protocol] if protocol else []
  rep, _ = _run(tmp_path, "lasot", *lasot, *extra, "--no-plots")
  o = rep["trackers"]["A"]["overall"]
  assert o["success_auc"] == pytest.approx(auc, abs=1e-6)
  assert o["precision_20px"] == pytest.approx(p20, abs=1e-6)  # float32
  if protocol is None:
    assert rep["protocol"] == "lasot_official"
    assert o["norm_precision_020"] == pytest.approx(0.6)
    # Scores exist, so the long-term triple is reported too.
    assert 0 < o["vot_lt_f"] <= 1
    assert "vot_lt_f" in rep["trackers"]["A"]["per_sequence"]["airplane-1"]


def test_got10k_report_pools_repetitions(tmp_path):
  root = str(tmp_path / "GOT-10k" / "val")
  res = str(tmp_path / "results")
  gt = np.tile([0.0, 0.0, 10.0, 10.0], (4, 1))
  runs = {"GOT-10k_Val_000001": (gt, [[10, 10], [10, 9], [10, 8], [10, 7]]),
          "GOT-10k_Val_000002": (gt[:2], [[10, 10], [10, 2]])}
  _write(os.path.join(root, "list.txt"), "\n".join(runs) + "\n")
  for name, (g, wh) in runs.items():
    d = os.path.join(root, name)
    n = len(g)
    _frames(d, [f"{i:08d}.jpg" for i in range(1, n + 1)])
    _write(os.path.join(d, "groundtruth.txt"), _rows(g))
    _write(os.path.join(d, "absence.label"), "0\n" * n)
    _write(os.path.join(d, "cover.label"), "8\n" * n)
    _write(os.path.join(d, "cut_by_image.label"), "0\n" * n)
    _write(os.path.join(d, "meta_info.ini"),
           "[METAINFO]\nurl: x\nresolution: (64, 48)\n")
    pred = np.array([[0, 0, w, h] for w, h in wh], np.float64)
    _write(os.path.join(res, "T", name, f"{name}_001.txt"), _rows(pred))
    _write(os.path.join(res, "T", name, f"{name}_time.txt"), "0.1\n" * n)
  rep, out = _run(tmp_path, "got10k", root, res)
  o = rep["trackers"]["T"]["overall"]
  assert rep["protocol"] == "got10k_official"
  assert o["ao"] == pytest.approx(0.65) and o["sr_050"] == pytest.approx(0.75)
  assert rep["trackers"]["T"]["per_sequence"]["GOT-10k_Val_000001"][
      "ao"] == pytest.approx(0.8)
  assert os.path.exists(os.path.join(out, "success_plot.png"))


def test_trackingnet_report_from_zip(tmp_path):
  root, res = str(tmp_path / "TrackingNet"), str(tmp_path / "results")
  chunk = os.path.join(root, "TRAIN_0")
  for seq in ("-abc_0", "def_1"):
    _frames(os.path.join(chunk, "frames", seq), [f"{i}.jpg" for i in range(5)])
    _write(os.path.join(chunk, "anno", f"{seq}.txt"), _rows(G))
  os.makedirs(res)
  results_io.write_trackingnet_zip(os.path.join(res, "Z.zip"),
                                   {"-abc_0": PRED})  # def_1 missing
  rep, _ = _run(tmp_path, "trackingnet", root, res, "--no-plots")
  z = rep["trackers"]["Z"]
  assert z["per_sequence"]["-abc_0"]["success_trapz"] == pytest.approx(0.46)
  assert z["per_sequence"]["-abc_0"]["precision_trapz"] == pytest.approx(
      0.815)
  # The missing sequence is scored as zeros (frame 1 set to the GT).
  assert z["per_sequence"]["def_1"]["coverage"] == pytest.approx(0.2)
  assert z["overall"]["coverage"] == pytest.approx(0.6)


def test_oxuva_report(tmp_path):
  root, res = str(tmp_path / "OxUvA"), str(tmp_path / "results")
  _frames(os.path.join(root, "images", "dev", "vid0000"),
          [f"{i:06d}.jpeg" for i in range(61)], size=(32, 24))
  _write(os.path.join(root, "tasks", "dev.csv"),
         "vid0000,obj0000,0,60,0.1,0.5,0.2,0.6\n")
  row = "vid0000,obj0000,20,elephant,unknown,unknown,{},{},{}\n"
  _write(os.path.join(root, "annotations", "dev.csv"),
         row.format(0, "present", "0.1,0.5,0.2,0.6") +
         row.format(30, "present", "0.1,0.5,0.2,0.6") +
         row.format(60, "absent", "0.0,0.0,0.0,0.0"))
  _write(os.path.join(res, "T", "vid0000_obj0000.csv"),
         "vid0000,obj0000,30,true,0.9,0.12,0.5,0.2,0.6\n"
         "vid0000,obj0000,60,true,0.3,0.1,0.5,0.2,0.6\n")
  rep, out = _run(tmp_path, "oxuva", root, res)
  assert os.path.getsize(os.path.join(out, "oxuva_plot.png")) > 1000
  o = rep["trackers"]["T"]["overall"]
  assert (o["TPR"], o["TNR"], o["GM"]) == (1.0, 0.0, 0.0)
  assert o["MaxGM"] == pytest.approx(0.5)  # sqrt of max (1-t)(t) at t=1/2
  assert "vid0000_obj0000" in rep["trackers"]["T"]["per_sequence"]

  # Scoring needs no frames (as the OxUvA toolkit): a damaged frame, then
  # no images/ at all, give the same numbers from the CSVs alone.
  frame0 = os.path.join(root, "images", "dev", "vid0000", "000000.jpeg")
  with open(frame0, "wb") as f:
    f.write(b"not a jpeg")
  os.remove(os.path.join(root, "images", "dev", "vid0000", "000031.jpeg"))
  rep2, _ = _run(tmp_path, "oxuva", root, res)
  assert rep2["trackers"]["T"]["overall"] == o
  shutil.rmtree(os.path.join(root, "images"))
  rep3, _ = _run(tmp_path, "oxuva", root, res)
  assert rep3["trackers"]["T"]["overall"] == o


def test_tlp_report_neuron_drops_lost_frames(tmp_path):
  root, res = str(tmp_path / "TLP"), str(tmp_path / "results")
  seq = os.path.join(root, "Alladin")
  _frames(os.path.join(seq, "img"), [f"{i:05d}.jpg" for i in range(1, 5)])
  _write(os.path.join(seq, "groundtruth_rect.txt"),
         "1,4,4,10,8,0\n2,5,4,10,8,0\n3,0,0,0,0,1\n4,6,4,10,8,0\n")
  _write(os.path.join(res, "T", "Alladin.txt"),
         "4,4,10,8\n5,4,10,8\n30,30,5,5\n6,4,10,4\n")
  rep, _ = _run(tmp_path, "tlp", root, res, "--no-plots")
  o = rep["trackers"]["T"]["overall"]
  # Lost frame removed: IoUs [1, 1, 0.5] over 3 frames, 101 bins.
  want = (np.linspace(0, 1, 101)[None] < np.array([[1], [1], [0.5]])).mean(0)
  assert o["success_auc"] == pytest.approx(want.mean(), abs=1e-12)
  assert o["success_rate_050"] == pytest.approx(2 / 3)


def test_missing_result_file_is_a_clear_error(tmp_path, otb, capsys):
  res = str(tmp_path / "res")
  _write(os.path.join(res, "C", "Basketball.txt"), _rows(PRED))
  rc = evaluate.main(["report", "--benchmark", "otb", "--root", otb[0],
                      "--results", res, "--out", str(tmp_path / "o")])
  assert rc == 1
  assert "Jogging.1" in capsys.readouterr().err


def test_short_result_file_is_an_error(tmp_path, otb, capsys):
  res = str(tmp_path / "res")
  for s in ("Basketball", "Jogging.1", "Jogging.2"):
    _write(os.path.join(res, "C", f"{s}.txt"), _rows(PRED[:3]))
  rc = evaluate.main(["report", "--benchmark", "otb", "--root", otb[0],
                      "--results", res, "--out", str(tmp_path / "o")])
  assert rc == 1
  assert "3 rows but the ground truth has 5" in capsys.readouterr().err


def test_run_recall_wired_and_script_entry_point(tmp_path, otb, capsys):
  # `run` / `recall` need a model: without --checkpoint/--random-init
  # argparse refuses (exit 2) and names the missing option.
  for cmd in ("run", "recall"):
    with pytest.raises(SystemExit) as e:
      evaluate.main([cmd, "--benchmark", "otb", "--root", otb[0]])
    assert e.value.code == 2
    assert "--checkpoint" in capsys.readouterr().err
  out = str(tmp_path / "cli")
  r = subprocess.run(
      [sys.executable, os.path.join(ROOT, "evaluate.py"), "report",
       "--benchmark", "otb", "--root", otb[0], "--results", otb[1], "--out",
       out, "--no-plots"], capture_output=True, text=True, timeout=120,
      cwd=ROOT)
  assert r.returncode == 0, r.stderr
  assert "| B |" in r.stdout
  with open(os.path.join(out, "report.json")) as f:
    assert json.load(f)["trackers"]["B"]["overall"]["precision_20px"] == 1.0
