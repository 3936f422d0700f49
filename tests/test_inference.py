"""The jitted search step vs an independent numpy re-implementation.

The reference runs the official forward in PyTorch layout
(tests/model_reference.py: numpy convs, frozen BN, FPN, modulators,
NCHW-flattened fc6) and the legacy ops of tests/numpy_reference.py (anchors,
RPN proposals with greedy NMS, legacy RoIAlign, delta2bbox), then takes the
official top-1 (argmax of softmax class 1, LS §10.6).
"""

from __future__ import annotations

import functools
import math
import time

import jax
import numpy as np
import pytest

import numpy_reference as nr
from model_reference import (np_features, np_rcnn_outputs,
                             np_rpn_head_outputs, np_rpn_vectors,
                             random_model, smooth_frame)

from gt_jax.tracking import search as inference
from gt_jax.tracking import preprocess as pp
from gt_jax.config import load_config
from gt_jax.model.build import build_model, init_variables

CONFIG = "configs/globaltrack_r50_fpn.py"


def _prep(cfg, frame):
  p = cfg.preprocess
  return pp.preprocess_frame(frame, p.scale, p.mean, p.std, p.size_divisor,
                             cfg.test.canvas_multiple)


@pytest.fixture(scope="module")
def tiny():
  cfg = load_config(f"{CONFIG}:tiny")
  model, variables = random_model(cfg.model, 11)
  scfg = inference.search_config(cfg)
  query = jax.jit(functools.partial(inference.query_step, model))
  search = jax.jit(functools.partial(inference.search_step, model,
                                     test_cfg=scfg))
  return cfg, model, variables, query, search


def np_search(cfg, v, query_image, query_box, search_image, img_hw):
  """Official forward for one target, all numpy -> (box, score, proposals)."""
  m, t = cfg.model, cfg.test
  to_hwc = lambda fs: [f.transpose(1, 2, 0) for f in fs]
  qf = np_features(v, query_image, m.depth, m.stage_sizes)
  z = nr.np_multilevel_roi_align(to_hwc(qf[:4]), query_box[None])[0]
  z = z.transpose(2, 0, 1)  # (C, 7, 7)
  sf = np_features(v, search_image, m.depth, m.stage_sizes)
  cls, reg = np_rpn_head_outputs(v, sf, np_rpn_vectors(v, z))
  hc, wc = search_image.shape[:2]
  anchors = [nr.np_anchors(s, math.ceil(hc / s), math.ceil(wc / s))
             for s in m.anchor_strides]
  props, _ = nr.np_rpn_proposals(cls, reg, anchors, img_hw, t.rpn_nms_pre,
                                 t.rpn_nms_post, t.rpn_max_num,
                                 t.rpn_nms_thr)
  rois = nr.np_multilevel_roi_align(to_hwc(sf[:4]), props)
  logits, deltas = np_rcnn_outputs(v, rois.transpose(0, 3, 1, 2), z)
  e = np.exp(logits - logits.max(-1, keepdims=True))
  prob = (e / e.sum(-1, keepdims=True))[:, 1]
  i = int(np.argmax(prob))
  box = nr.np_decode(props[i:i + 1], deltas[i:i + 1, 4:8],
                     stds=(0.1, 0.1, 0.2, 0.2), max_shape=img_hw)[0]
  return box, float(prob[i]), props


@pytest.mark.parametrize("frame_hw", [(96, 128), (128, 96)],
                         ids=["landscape", "portrait"])
def test_search_step_matches_numpy_reference(frame_hw, tiny):
  cfg, _, v, query, search = tiny
  q = _prep(cfg, smooth_frame(1, frame_hw))
  s = _prep(cfg, smooth_frame(2, frame_hw))
  # Two targets: one small (P2 RoI), one larger.
  boxes = np.stack([
      pp.query_box((20, 30, 30, 24), q.scale, q.pad_hw),
      pp.query_box((10, 8, 70, 60), q.scale, q.pad_hw)
  ])
  kernels = query(v, q.image, boxes)
  out = search(v, s.image, np.asarray(s.img_hw, np.int32), kernels)
  for t in range(2):
    box, score, props = np_search(cfg, v, q.image, boxes[t], s.image,
                                  s.img_hw)
    got = np.asarray(out["box"][t])
    iou = nr.np_iou(got[None], box[None])[0, 0]
    assert iou >= 0.99, (got, box)
    assert abs(float(out["score"][t]) - score) <= 1e-3
    # Proposal recall: the reference proposals are (nearly) all found.
    valid = np.asarray(out["proposal_valid"][t])
    mine = np.asarray(out["proposals"][t])[valid]
    assert valid.sum() == len(props)
    best = nr.np_iou(props, mine).max(axis=1)
    assert np.mean(best > 0.99) >= 0.95
    # The decoded box is clamped to the resized (unpadded) image.
    assert got[2] <= s.img_hw[1] - 1 and got[3] <= s.img_hw[0] - 1


def test_search_config_reads_test_settings():
  cfg = load_config(CONFIG)
  s = inference.search_config(cfg)
  # official test cfg (LS §9) and RCNN stds (LS §10.4).
  assert (s.nms_pre, s.nms_post, s.max_num, s.nms_thr) == (1000, 1000, 1000,
                                                           0.7)
  assert s.rcnn_stds == (0.1, 0.1, 0.2, 0.2)
  assert s.anchor_strides == (4, 8, 16, 32, 64)
  hash(s)  # static argument of jit


@pytest.mark.slow
def test_official_size_search_step_runs_on_cpu():
  """ResNet-50-FPN, 256 channels, 800x1333 frame: one compile, one run."""
  cfg = load_config(CONFIG)
  model = build_model(cfg.model)
  v = init_variables(model, jax.random.PRNGKey(0))
  frame = smooth_frame(7, (480, 800))  # s = 5/3 -> 800x1333, canvas 800x1344
  p = _prep(cfg, frame)
  assert p.img_hw == (800, 1333) and p.image.shape == (800, 1344, 3)
  box = pp.query_box((60, 40, 50, 40), p.scale, p.pad_hw)[None]
  # The query side does not depend on the canvas size: run it on a 256x256
  # crop so that only the search step compiles at full size.
  kernels = jax.jit(functools.partial(inference.query_step, model))(
      v, p.image[:256, :256], box)
  assert kernels["rpn"].shape == (1, 5, 256)
  search = jax.jit(functools.partial(
      inference.search_step, model,
      test_cfg=inference.search_config(cfg)))
  t0 = time.perf_counter()
  out = jax.block_until_ready(
      search(v, p.image, np.asarray(p.img_hw, np.int32), kernels))
  assert out["proposals"].shape == (1, 1000, 4)
  assert int(out["proposal_valid"].sum()) > 100
  b = np.asarray(out["box"][0])
  assert np.all(np.isfinite(b)) and b[2] <= 1332 and b[3] <= 799
  assert 0.0 <= float(out["score"][0]) <= 1.0
  print(f"official-size search step: compile+run "
        f"{time.perf_counter() - t0:.1f}s")
