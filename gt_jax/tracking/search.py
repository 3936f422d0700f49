"""The tracking computation as pure functions (jitted by the Tracker).

Query side (once per target, LS §5): backbone + FPN of the query frame, RoI
feature `z` of the query box, the 5 RPN modulation vectors and proj_z(z).
Search side (every frame, LS §6-§10): backbone + FPN once, then per target
(vmap over T): modulated RPN -> proposals (test cfg) -> RoI features from the
UNmodulated P2..P5 -> RCNN modulator -> box head -> softmax -> top-1 ->
decode with stds (0.1, 0.1, 0.2, 0.2), clamped to the resized image.

The top-1 is `argmax_i softmax(cls_i)[1]` over the valid proposals (first
index on ties). Skipping the official final class NMS cannot change it
(LS §10, "Can skipping the final NMS change the top-1?").
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gt_jax.boxes import anchors as anchor_lib
from gt_jax.boxes import jnp_boxes as box_lib
from gt_jax.model.qg_rcnn import QGRCNN
from gt_jax.ops.nms import nms
from gt_jax.ops.proposals import rpn_proposals

Kernels = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class SearchConfig:
  """Static (hashable) settings of the search step; see `search_config`."""
  anchor_strides: tuple[int, ...] = (4, 8, 16, 32, 64)
  anchor_scales: tuple[float, ...] = (8.0,)
  anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
  nms_pre: int = 1000
  nms_post: int = 1000
  max_num: int = 1000
  nms_thr: float = 0.7
  rpn_stds: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
  rcnn_stds: tuple[float, ...] = (0.1, 0.1, 0.2, 0.2)
  rcnn_nms_thr: float = 0.5  # the final class NMS, for `candidates` only.


def search_config(cfg: ml_collections.ConfigDict) -> SearchConfig:
  """Builds the `SearchConfig` from the full config (model + test)."""
  m, t = cfg.model, cfg.test
  return SearchConfig(
      anchor_strides=tuple(int(s) for s in m.anchor_strides),
      anchor_scales=tuple(float(s) for s in m.anchor_scales),
      anchor_ratios=tuple(float(r) for r in m.anchor_ratios),
      nms_pre=int(t.rpn_nms_pre), nms_post=int(t.rpn_nms_post),
      max_num=int(t.rpn_max_num), nms_thr=float(t.rpn_nms_thr),
      rpn_stds=tuple(float(s) for s in m.rpn_target_stds),
      rcnn_stds=tuple(float(s) for s in m.rcnn_target_stds),
      rcnn_nms_thr=float(t.rcnn_nms_thr))


def query_step(model: QGRCNN, variables: Any, image: jax.Array,
               boxes: jax.Array) -> Kernels:
  """Query side for T targets of one frame.

  Args:
    model: the QG-RCNN.
    variables: {"params", "batch_stats"}.
    image: (Hc, Wc, 3) normalised, padded query canvas.
    boxes: (T, 4) legacy xyxy canvas pixels (scaled and bounded, LS §2.6).

  Returns:
    {"rpn": (T, 5, C), "rcnn": (T, 7, 7, C)}.
  """
  feats = model.apply(variables, image[None], method=QGRCNN.features)
  feats = [f[0] for f in feats]

  def one(box):
    z = model.apply(variables, feats, box, method=QGRCNN.query_embedding)
    return model.apply(variables, z, method=QGRCNN.query_kernels)

  return jax.vmap(one)(boxes)


def _anchors(canvas_hw: tuple[int, int],
             cfg: SearchConfig) -> list[np.ndarray]:
  return [
      np.asarray(a, np.float32) for a in anchor_lib.all_level_anchors(
          canvas_hw, cfg.anchor_strides, cfg.anchor_scales, cfg.anchor_ratios)
  ]


def search_step(model: QGRCNN, variables: Any, image: jax.Array,
                img_hw: jax.Array, kernels: Kernels,
                test_cfg: SearchConfig, scale: jax.Array | float = 1.0,
                candidates: bool = False) -> dict[str, jax.Array]:
  """Search side: one frame, T targets.

  Args:
    model: the QG-RCNN.
    variables: {"params", "batch_stats"}.
    image: (Hc, Wc, 3) normalised, zero-padded canvas (static shape).
    img_hw: (2,) int resized unpadded size (H', W') (data, may be traced).
    kernels: {"rpn": (T, 5, C), "rcnn": (T, 7, 7, C)} from `query_step`.
    test_cfg: static `SearchConfig`.
    scale: () the frame's rescale factor s (data); used by `candidates`.
    candidates: (static) also return every proposal's decoded class-1 box
      after the official final class NMS (LS §10.4-§10.5: IoU >
      `test_cfg.rcnn_nms_thr` on boxes in original pixels, scores > 0),
      ranked by score: what proposal recall (paper Tables 1-2) measures.

  Returns:
    dict with
      box (T, 4) top-1 legacy xyxy in resized coordinates,
      score (T,) its class-1 probability,
      index (T,) int32 its proposal index,
      proposals (T, P, 4), proposal_scores (T, P) (RPN sigmoid),
      proposal_valid (T, P) bool, rcnn_scores (T, P) class-1 probabilities
      (0 where invalid), with P = test_cfg.max_num;
    with `candidates` also detections (T, P, 4) (resized coordinates, best
      first), detection_scores (T, P), detection_valid (T, P) bool.
  """
  cfg = test_cfg
  canvas_hw = tuple(image.shape[:2])
  anchors = [jnp.asarray(a) for a in _anchors(canvas_hw, cfg)]
  feats = model.apply(variables, image[None], method=QGRCNN.features)
  feats = [f[0] for f in feats]
  img_hw = jnp.asarray(img_hw)

  def one_target(rpn_vec, rcnn_kernel):
    cls, deltas = model.apply(variables, feats, rpn_vec,
                              method=QGRCNN.rpn_outputs)
    # Box math in float32 even when the network computes in bfloat16.
    cls = [c.astype(jnp.float32) for c in cls]
    deltas = [d.astype(jnp.float32) for d in deltas]
    props, pscores, pvalid = rpn_proposals(
        cls, deltas, anchors, img_hw, cfg.nms_pre, cfg.nms_post, cfg.max_num,
        cfg.nms_thr, stds=cfg.rpn_stds)
    # Proposals are detached in the official code too (no grad at test).
    props = jax.lax.stop_gradient(props)
    logits, rdeltas = model.apply(variables, feats, props, rcnn_kernel,
                                  method=QGRCNN.rcnn_outputs)
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)[:, 1]
    masked = jnp.where(pvalid, probs, -jnp.inf)
    i = jnp.argmax(masked)
    box = box_lib.decode(props[i], rdeltas[i, 4:8].astype(jnp.float32),
                         stds=cfg.rcnn_stds, max_shape=img_hw)
    out = dict(box=box, score=probs[i], index=i.astype(jnp.int32),
               proposals=props, proposal_scores=pscores,
               proposal_valid=pvalid,
               rcnn_scores=jnp.where(pvalid, probs, 0.0))
    if candidates:
      dets = box_lib.decode(props, rdeltas[:, 4:8].astype(jnp.float32),
                            stds=cfg.rcnn_stds, max_shape=img_hw)
      # official multiclass_nms: candidates with score > 0 (strict), NMS on
      # the boxes rescaled to the original frame.
      ranked = jnp.where(pvalid & (probs > 0), probs, -jnp.inf)
      keep, kvalid = nms(dets / scale, ranked, cfg.rcnn_nms_thr,
                         props.shape[0])
      out.update(detections=dets[keep],
                 detection_scores=jnp.where(kvalid, probs[keep], 0.0),
                 detection_valid=kvalid)
    return out

  return jax.vmap(one_target)(kernels["rpn"], kernels["rcnn"])
