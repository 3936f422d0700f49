"""AR@k: hand-computed cases, and `evaluate.py recall` end to end.

The end-to-end check recomputes the QG-RPN recall from the Tracker's search
step (`inference.search_step` proposals, numpy +1 IoU written here) and the
QG-RCNN AR@1 from its top-1 box: the final NMS always keeps the arg-max, so
the best-ranked detection is the tracker's output (LS §10).
"""

from __future__ import annotations

import argparse
import functools
import json
import os

import jax
import numpy as np
import pytest

from dataset_fixtures import make_sequences

from gt_jax.tracking import search as inference
from gt_jax.boxes import np_boxes
from gt_jax.config import load_config
from gt_jax.data.sources.frames import read_rgb
from gt_jax.evaluation import recall
from gt_jax.evaluation import run_cli
from gt_jax.evaluation.datasets.folder import read_folder
from gt_jax.model.build import build_model, init_variables
from gt_jax.tracking.engine import SearchEngine

CONFIG = "configs/globaltrack_r50_fpn.py:tiny"


def np_iou(a, b):
  """+1 IoU of two legacy xyxy boxes (independent of np_boxes.pairwise_iou)."""
  w = min(a[2], b[2]) - max(a[0], b[0]) + 1
  h = min(a[3], b[3]) - max(a[1], b[1]) + 1
  inter = max(w, 0) * max(h, 0)
  area = lambda x: (x[2] - x[0] + 1) * (x[3] - x[1] + 1)
  return inter / (area(a) + area(b) - inter)


def test_best_iou_at_k_hand_computed():
  gt_xywh = [0, 0, 10, 10]  # legacy xyxy (0, 0, 9, 9), area 100
  boxes = np.array([[0, 0, 9, 4],     # IoU 50 / 100 = 0.5
                    [0, 0, 9, 9],     # invalid slot: must not count
                    [5, 0, 14, 9],    # inter 5x10=50, union 150 -> 1/3
                    [0, 0, 9, 9]],    # 1.0
                   np.float64)
  valid = np.array([True, False, True, True])
  got = recall.best_iou_at_k(boxes, valid, gt_xywh, [1, 2, 3, 4, 50])
  np.testing.assert_allclose(got, [0.5, 0.5, 0.5, 1.0, 1.0])
  np.testing.assert_allclose(
      np_boxes.pairwise_iou(boxes[2:4], [[0, 0, 9, 9]]), [[1 / 3], [1.0]])


def test_average_recall_hand_computed():
  # frame 1: top-1 IoU 0.5, top-2 1.0; frame 2: 0.72 at both k.
  res = recall.RecallResult((1, 2), {
      "QG-RPN": np.array([[0.5, 1.0], [0.72, 0.72]]),
      "QG-RCNN": np.array([[0.0, 0.96], [0.96, 0.96]])})
  # Thresholds 0.50..0.95: 0.5 passes 1 of 10, 0.72 passes 5 (0.50-0.70),
  # 1.0 passes 10, 0.96 passes 10, 0 passes none.
  np.testing.assert_allclose(res.average_recall("QG-RPN"),
                             [(0.1 + 0.5) / 2, (1.0 + 0.5) / 2])
  np.testing.assert_allclose(res.average_recall("QG-RCNN"), [0.5, 1.0])
  np.testing.assert_allclose(res.recall("QG-RPN", 0.5), [1.0, 1.0])
  np.testing.assert_allclose(res.recall("QG-RPN", 0.7), [0.5, 1.0])
  table = recall.format_table(res)
  assert "| QG-RPN AR | 30.0 | 75.0 |" in table
  assert "| QG-RCNN R0.7 | 50.0 | 100.0 |" in table


@pytest.fixture(scope="module")
def recall_run(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("bench"))
  # Large targets, so that even random weights recall some of them.
  make_sequences(root, (("p", [(96, 128)] * 5, (4, 3, 110, 80)),
                        ("q", [(96, 128)] * 4, (30, 20, 60, 50))), seed=5)
  out = str(tmp_path_factory.mktemp("recall"))
  parser = argparse.ArgumentParser()
  run_cli.add_recall_parser(parser.add_subparsers(dest="command"))
  args = parser.parse_args([
      "recall", "--benchmark", "folder", "--root", root, "--config", CONFIG,
      "--random-init", "7", "--out", out, "--ks", "1,3,10,64,100",
      "--frame-stride", "2", "--workers", "1", "--no-progress"])
  assert args.handler(args, ["--config.test.rcnn_nms_thr=0.5"]) == 0
  with open(os.path.join(out, "recall.json"), encoding="utf-8") as f:
    return root, out, json.load(f)


def test_recall_cli_matches_search_step(recall_run):
  root, out, js = recall_run
  assert os.path.getsize(os.path.join(out, "recall.png")) > 1000
  assert js["ks"] == [1, 3, 10, 64, 100]
  assert js["num_frames"] == 2 + 1  # frames 2, 4 of p; frame 2 of q.

  cfg = load_config(CONFIG)
  model = build_model(cfg.model)
  variables = init_variables(model, jax.random.PRNGKey(7))
  engine = SearchEngine(cfg, variables, model)
  scfg = inference.search_config(cfg)
  search = jax.jit(functools.partial(inference.search_step, model,
                                     test_cfg=scfg))
  rpn_best, rcnn_top1 = [], []
  for rec in read_folder(root):
    kernels = engine.query(engine.preprocess(read_rgb(rec.frame_paths[0])),
                           rec.boxes[0])
    x, y, w, h = rec.boxes[0]
    gt = [x, y, x + w - 1, y + h - 1]
    for i in range(2, len(rec), 2):
      pre = engine.preprocess(read_rgb(rec.frame_paths[i]))
      o = jax.device_get(search(variables, pre.image,
                                np.asarray(pre.img_hw), kernels))
      props = np.asarray(o["proposals"][0], np.float64) / pre.scale
      ious = [np_iou(p, gt) if v else 0.0
              for p, v in zip(props, o["proposal_valid"][0])]
      rpn_best.append([max(ious[:k]) for k in js["ks"]])
      rcnn_top1.append(np_iou(np.asarray(o["box"][0], np.float64) /
                              pre.scale, gt))
  rpn_best, rcnn_top1 = np.asarray(rpn_best), np.asarray(rcnn_top1)
  # Per frame (the CLI's compiled step is reused: same model and config).
  res = recall.run_recall(engine, read_folder(root), js["ks"],
                          frame_stride=2, num_workers=0, progress=False)
  np.testing.assert_allclose(res.best["QG-RPN"], rpn_best, atol=1e-5)
  np.testing.assert_allclose(res.best["QG-RCNN"][:, 0], rcnn_top1,
                             atol=1e-5)
  thr = np.linspace(0.5, 0.95, 10)
  ar = np.mean([(rpn_best >= t - 1e-12).mean(0) for t in thr], axis=0)
  np.testing.assert_allclose(js["QG-RPN"]["AR"], ar, atol=1e-6)
  np.testing.assert_allclose(js["QG-RPN"]["R50"],
                             (rpn_best >= 0.5).mean(0), atol=1e-6)
  ar1 = np.mean([(rcnn_top1 >= t - 1e-12).mean() for t in thr])
  assert js["QG-RCNN"]["AR"][0] == pytest.approx(ar1, abs=1e-6)
  for stage in recall.STAGES:  # more candidates never lower the recall.
    assert np.all(np.diff(js[stage]["AR"]) >= 0)
  # Something was recalled and something was not: the test can fail.
  assert 0 < js["QG-RPN"]["R50"][-1] and js["QG-RPN"]["AR"][0] < 1
  assert 0 < js["QG-RCNN"]["R50"][-1] and np.all(rcnn_top1 > 0)


def test_recall_cli_rejects_bad_ks(recall_run):
  root, out, _ = recall_run
  parser = argparse.ArgumentParser()
  run_cli.add_recall_parser(parser.add_subparsers(dest="command"))
  args = parser.parse_args([
      "recall", "--benchmark", "folder", "--root", root, "--config", CONFIG,
      "--random-init", "0", "--out", out, "--ks", "0,5"])
  # The handlers raise; evaluate.py's run_main prints them as one line.
  with pytest.raises(ValueError, match="--ks '0,5'"):
    args.handler(args, [])
  with pytest.raises(ValueError, match="unrecognized arguments: --bogus"):
    args.handler(args, ["--bogus"])
