"""Smoke test of the main job (gt_jax.demo) on a miniature dataset.

The whole pipeline (data -> 2 train steps of the tiny config -> tracking
three trackers -> report + GIF) runs once per session; a second run must
resume without redoing finished work. Metrics of the first-box baseline are
checked against an independent numpy version of the official LaSOT rule.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest
from PIL import Image

from gt_jax.demo import run as demo
from gt_jax.demo import training as demo_training
from gt_jax.evaluation import benchmarks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "configs", "globaltrack_r50_fpn.py:tiny")
# A miniature dataset: 2 training videos, 2 test videos of 20 frames.
SMALL_DATA = dict(num_train=2, num_val=0, num_test=2, num_heldout=2,
                  num_frames=20, num_test_frames=20, num_coco_images=2,
                  num_coco_val_images=0)
SET_ROOTS = {"in_distribution": "lasot_test", "held_out": "lasot_heldout"}


def _options(tmp, workdir="work"):
  return demo.DemoOptions(
      workdir=str(tmp / workdir), config=TINY,
      overrides=["total_steps=2", "checkpoint_every=1"],
      data_dir=str(tmp / "data"), data_args=SMALL_DATA, batch_size=2,
      progress=False)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("demo")
  opts = _options(tmp)
  rep = demo.run(opts)
  return tmp, opts, rep


def _lasot_success_auc(pred, gt, absent):
  """Official LaSOT (MATLAB) success AUC of one sequence, in plain numpy.

  Frame 1 takes the GT; absent frames count as failures (they stay in the
  denominator); IoU > t for t in 0:0.05:1; AUC = mean of the curve.
  """
  pred = pred.copy()
  pred[0] = gt[0]
  x1 = np.maximum(pred[:, 0], gt[:, 0])
  y1 = np.maximum(pred[:, 1], gt[:, 1])
  x2 = np.minimum(pred[:, 0] + pred[:, 2], gt[:, 0] + gt[:, 2])
  y2 = np.minimum(pred[:, 1] + pred[:, 3], gt[:, 1] + gt[:, 3])
  inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
  union = pred[:, 2] * pred[:, 3] + gt[:, 2] * gt[:, 3] - inter
  iou = np.where(absent, -1.0, inter / union)
  thresholds = np.linspace(0, 1, 21)
  return np.mean([(iou > t).sum() / len(iou) for t in thresholds])


def _records(tmp, set_name):
  root = os.path.join(str(tmp / "data"), SET_ROOTS[set_name])
  return benchmarks.load_benchmark("lasot", root, demo.lasot_names(root))


def test_outputs_exist_and_report_has_both_sets(demo_run):
  tmp, opts, rep = demo_run
  out = os.path.join(opts.workdir, "report")
  for name in ("report.json", "report.md", "demo.gif", "held_out.gif",
               "in_distribution/success_plot.png",
               "in_distribution/precision_plot.png",
               "held_out/success_plot.png", "held_out/precision_plot.png"):
    assert os.path.isfile(os.path.join(out, name)), name
  assert demo.TEST_SETS == SET_ROOTS
  assert set(rep["sets"]) == set(SET_ROOTS)
  with open(os.path.join(out, "report.json")) as f:
    on_disk = json.load(f)
  for name, s in on_disk["sets"].items():
    assert s["num_sequences"] == 2 and s["num_frames"] == 2 * 20, name
    for protocol in ("official", "neuron"):
      assert set(s[protocol]) == set(demo.TRACKERS), (name, protocol)
    assert set(s["visible_normalised_auc"]) == set(demo.TRACKERS)
  assert on_disk["demo"]["train"]["step"] == 2
  # One weight export per run: train_loop's WORKDIR/model, nothing else.
  exported = [d for d, _, files in os.walk(opts.workdir)
              if os.path.isdir(os.path.join(d, "variables"))]
  assert exported == [os.path.join(opts.workdir, "model")], exported
  md = open(os.path.join(out, "report.md")).read()
  # Two tables (one per set), each with all three trackers.
  assert md.count("| tracker |") == 2
  assert "in-distribution test set" in md and "held-out test set" in md
  for name in demo.TRACKERS:
    assert md.count(f"| {name} |") == 2, name
  assert "ratio held-out / in-distribution" in md


def test_visible_normalised_auc_and_ratio_from_the_files(demo_run):
  tmp, _, rep = demo_run
  vn = {}
  for set_name in SET_ROOTS:
    root = os.path.join(str(tmp / "data"), SET_ROOTS[set_name])
    hidden = []
    for name in demo.lasot_names(root):
      d = os.path.join(root, name.rsplit("-", 1)[0], name)
      flags = [np.array(open(os.path.join(d, f"{k}.txt")).read().split(","),
                        int) for k in ("out_of_view", "full_occlusion")]
      hidden.append((flags[0] == 1) | (flags[1] == 1))
    visible = 1 - np.concatenate(hidden).mean()
    s = rep["sets"][set_name]
    np.testing.assert_allclose(s["visible_fraction"], visible, rtol=1e-12)
    for t in demo.TRACKERS:
      np.testing.assert_allclose(s["visible_normalised_auc"][t],
                                 s["official"][t]["success_auc"] / visible,
                                 rtol=1e-9)
    vn[set_name] = s["visible_normalised_auc"]["globaltrack_demo"]
  summary = rep["summary"]
  np.testing.assert_allclose(summary["ratio_held_out_to_in_distribution"],
                             vn["held_out"] / vn["in_distribution"],
                             rtol=1e-9)
  assert summary["reached_in_distribution"] == (
      vn["in_distribution"] >= summary["target_visible_normalised_auc"])


@pytest.mark.parametrize("set_name", list(SET_ROOTS))
def test_first_box_baseline_matches_independent_lasot_auc(demo_run,
                                                          set_name):
  tmp, opts, rep = demo_run
  aucs = []
  for r in _records(tmp, set_name):
    pred = np.loadtxt(os.path.join(opts.workdir, "results", set_name,
                                   "first_box", f"{r.name}.txt"),
                      delimiter=",")
    np.testing.assert_allclose(pred, np.repeat(r.boxes[:1], len(pred), 0),
                               atol=1e-3)
    aucs.append(_lasot_success_auc(pred, r.boxes, ~r.visible))
  got = rep["sets"][set_name]["official"]["first_box"]["success_auc"]
  np.testing.assert_allclose(got, np.mean(aucs), atol=1e-6)


@pytest.mark.parametrize("set_name", list(SET_ROOTS))
def test_tracker_results_have_one_row_per_frame(demo_run, set_name):
  tmp, opts, _ = demo_run
  for r in _records(tmp, set_name):
    for t in ("globaltrack_demo", "globaltrack_untrained"):
      d = os.path.join(opts.workdir, "results", set_name, t)
      boxes = np.loadtxt(os.path.join(d, f"{r.name}.txt"), delimiter=",")
      scores = np.loadtxt(os.path.join(d, f"{r.name}_object_presence_scores.txt"))
      assert boxes.shape == (20, 4) and scores.shape == (20,)
      np.testing.assert_allclose(boxes[0], r.boxes[0], atol=1e-3)
      assert np.all(boxes[1:, 2:] > 0) and np.all((scores >= 0)
                                                  & (scores <= 1))


def test_gif_frames_and_ground_truth_colour(demo_run):
  tmp, opts, _ = demo_run
  with Image.open(os.path.join(opts.workdir, "report", "demo.gif")) as im:
    assert im.n_frames == 20  # 20-frame videos: every frame is kept
    im.seek(0)
    rgb = np.asarray(im.convert("RGB"))
  assert rgb.shape == (2 * 128, 2 * 160, 3)
  # Frame 1 shows the whole target: its GT rectangle is drawn in green.
  r = max(_records(tmp, "in_distribution"), key=lambda r: np.sum(~r.visible))
  # The GT outline is 3 px wide, the trackers' 2 px (drawn on top; on frame
  # 1 they equal the GT), so the innermost GT row stays green.
  x, y, w, h = r.boxes[0] * 2
  px = rgb[int(y + h - 1) - 2, int(x + w / 2)].astype(int)
  # GIF palettes are adaptive: the drawn (40, 220, 40) comes back close to,
  # not exactly, itself; green must still dominate clearly.
  assert px[1] > 150 and px[1] - max(px[0], px[2]) > 40, px


def test_rerun_resumes_without_redoing_work(demo_run):
  tmp, opts, rep = demo_run
  res = os.path.join(opts.workdir, "results", "held_out", "globaltrack_demo")
  files = sorted(os.listdir(res))
  before = {f: os.path.getmtime(os.path.join(res, f)) for f in files
            if f.endswith(".txt")}
  model_dir = os.path.join(opts.workdir, "model")
  model_mtime = os.path.getmtime(model_dir)
  rep2 = demo.run(opts)
  after = {f: os.path.getmtime(os.path.join(res, f)) for f in before}
  assert after == before
  assert os.path.getmtime(model_dir) == model_mtime
  for set_name in SET_ROOTS:
    for name in demo.TRACKERS:
      assert (rep2["sets"][set_name]["official"][name]["success_auc"] ==
              rep["sets"][set_name]["official"][name]["success_auc"])


def test_untrained_is_the_training_init_and_trained_differs(demo_run):
  tmp, opts, _ = demo_run
  from gt_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from gt_jax.training import loop as train_loop  # pylint: disable=g-import-not-at-top
  cfg = demo.demo_config(TINY, {"got10k": str(tmp / "data" / "got10k"),
                                "coco": str(tmp / "data" / "coco")},
                         ["total_steps=0"])
  state = train_loop.train(cfg, str(tmp / "zero_steps"),
                           make_data=demo_training._make_data, progress=False).state
  init = demo.untrained_variables(cfg)
  a = jax.tree.leaves(jax.device_get(state.params))
  b = jax.tree.leaves(init["params"])
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  trained = checkpoint.restore_variables(os.path.join(opts.workdir, "model"))
  diff = [float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
          for x, y in zip(jax.tree.leaves(trained["params"]), b)]
  assert max(diff) > 0


def test_bad_source_and_mismatched_model_dir_raise(demo_run, tmp_path):
  tmp, opts, _ = demo_run
  paths = {"got10k": str(tmp / "data" / "got10k"),
           "coco": str(tmp / "data" / "coco")}
  with pytest.raises(ValueError, match="lasot"):
    demo.demo_config(TINY, paths,
                     ["data.sources=(('lasot', '', 1.0),)"])
  cfg = demo.demo_config(TINY, paths, ["total_steps=5"])
  with pytest.raises(ValueError, match="2-step run"):
    demo.train_demo(cfg, opts.workdir, progress=False)


def test_modulator_reinit_draws_fan_in_scaled_kernels(demo_run):
  tmp, _, _ = demo_run
  paths = {"got10k": str(tmp / "data" / "got10k"),
           "coco": str(tmp / "data" / "coco")}
  cfg = demo.demo_config(TINY, paths)
  plain = demo.untrained_variables(cfg)
  cfg.demo_modulator_init = "fan_in"
  redrawn = demo.untrained_variables(cfg)
  for module in ("rpn_modulator", "rcnn_modulator"):
    for name, leaf in redrawn["params"][module].items():
      k = leaf["kernel"]
      want = np.sqrt(1.0 / np.prod(k.shape[:-1]))
      # Official N(0, 0.01) before; N(0, 1/fan_in) after (k.size >= 256).
      assert abs(np.std(k) / want - 1) < 0.15, (module, name)
      assert abs(np.std(plain["params"][module][name]["kernel"]) / 0.01
                 - 1) < 0.15
  np.testing.assert_array_equal(
      redrawn["params"]["backbone"]["conv1"]["kernel"],
      plain["params"]["backbone"]["conv1"]["kernel"])
  cfg.demo_modulator_init = "xavier"
  with pytest.raises(ValueError, match="demo_modulator_init"):
    demo.untrained_variables(cfg)
