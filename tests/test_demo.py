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
SMALL_DATA = dict(num_train=2, num_val=0, num_test=2, num_frames=20,
                  num_test_frames=20, num_coco_images=2,
                  num_coco_val_images=0)


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


def test_outputs_exist_and_report_has_all_trackers(demo_run):
  tmp, opts, rep = demo_run
  out = os.path.join(opts.workdir, "report")
  for name in ("report.json", "report.md", "success_plot.png",
               "precision_plot.png", "demo.gif"):
    assert os.path.isfile(os.path.join(out, name)), name
  assert set(rep["trackers"]) == set(demo.TRACKERS)
  assert rep["num_sequences"] == SMALL_DATA["num_test"]
  with open(os.path.join(out, "report.json")) as f:
    on_disk = json.load(f)
  assert set(on_disk["variants"]["neuron"]) == set(demo.TRACKERS)
  assert on_disk["demo"]["train"]["step"] == 2
  # One weight export per run: train_loop's WORKDIR/model, nothing else.
  exported = [d for d, _, files in os.walk(opts.workdir)
              if os.path.isdir(os.path.join(d, "variables"))]
  assert exported == [os.path.join(opts.workdir, "model")], exported
  assert on_disk["demo"]["num_test_frames"] == 2 * 20
  md = open(os.path.join(out, "report.md")).read()
  for name in demo.TRACKERS:
    assert name in md


def test_first_box_baseline_matches_independent_lasot_auc(demo_run):
  tmp, opts, rep = demo_run
  root = os.path.join(str(tmp / "data"), "lasot_test")
  records = benchmarks.load_benchmark("lasot", root, demo.lasot_names(root))
  aucs = []
  for r in records:
    pred = np.loadtxt(os.path.join(opts.workdir, "results", "first_box",
                                   f"{r.name}.txt"), delimiter=",")
    np.testing.assert_allclose(pred, np.repeat(r.boxes[:1], len(pred), 0),
                               atol=1e-3)
    aucs.append(_lasot_success_auc(pred, r.boxes, ~r.visible))
  got = rep["trackers"]["first_box"]["overall"]["success_auc"]
  np.testing.assert_allclose(got, np.mean(aucs), atol=1e-6)


def test_tracker_results_have_one_row_per_frame(demo_run):
  tmp, opts, _ = demo_run
  root = os.path.join(str(tmp / "data"), "lasot_test")
  for r in benchmarks.load_benchmark("lasot", root, demo.lasot_names(root)):
    for t in ("globaltrack_demo", "globaltrack_untrained"):
      d = os.path.join(opts.workdir, "results", t)
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
  root = os.path.join(str(tmp / "data"), "lasot_test")
  records = benchmarks.load_benchmark("lasot", root, demo.lasot_names(root))
  r = max(records, key=lambda r: np.sum(~r.visible))
  # The GT outline is 3 px wide, the trackers' 2 px (drawn on top; on frame
  # 1 they equal the GT), so the innermost GT row stays green.
  x, y, w, h = r.boxes[0] * 2
  px = rgb[int(y + h - 1) - 2, int(x + w / 2)].astype(int)
  # GIF palettes are adaptive: the drawn (40, 220, 40) comes back close to,
  # not exactly, itself; green must still dominate clearly.
  assert px[1] > 150 and px[1] - max(px[0], px[2]) > 40, px


def test_rerun_resumes_without_redoing_work(demo_run):
  tmp, opts, rep = demo_run
  res = os.path.join(opts.workdir, "results", "globaltrack_demo")
  files = sorted(os.listdir(res))
  before = {f: os.path.getmtime(os.path.join(res, f)) for f in files
            if f.endswith(".txt")}
  model_dir = os.path.join(opts.workdir, "model")
  model_mtime = os.path.getmtime(model_dir)
  rep2 = demo.run(opts)
  after = {f: os.path.getmtime(os.path.join(res, f)) for f in before}
  assert after == before
  assert os.path.getmtime(model_dir) == model_mtime
  for name in demo.TRACKERS:
    assert (rep2["trackers"][name]["overall"]["success_auc"] ==
            rep["trackers"][name]["overall"]["success_auc"])


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
