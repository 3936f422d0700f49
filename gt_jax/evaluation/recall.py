"""Proposal recall: AR@k of the QG-RPN proposals and QG-RCNN detections.

The paper's Tables 1-2 / Figures 4-5: for every scored frame, the top-k
candidates of a stage (sorted by that stage's score) recall the target at
IoU threshold t when one of them has IoU >= t with the ground truth.

  recall_t@k = share of scored frames recalled at t with the top k,
  AR@k       = mean of recall_t@k over t in {0.50, 0.55, ..., 0.95}
               (the COCO / Hosang et al. average recall grid),

also reported at t = 0.5 and 0.7 alone. Candidates:
  * QG-RPN: the test-time proposals (LS §9: top `rpn_max_num` after NMS
    0.7, by RPN sigmoid score);
  * QG-RCNN: every proposal's decoded class-1 box (LS §10.4) with its
    softmax score, after the official final NMS (`cfg.test.rcnn_nms_thr`,
    on boxes in original pixels, scores > 0; LS §10.5), by score.
k beyond the number of candidates uses all of them. IoU is the legacy +1
IoU in original-frame pixels. Frame 0 is the query and is not scored, nor
are frames whose GT is invalid or marked not visible.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from gt_jax import boxes as box_lib
from gt_jax import inference
from gt_jax.data.records import SequenceRecord
from gt_jax.evaluation import runner
from gt_jax.evaluation.frame_loader import FramePrefetcher
from gt_jax.model.qg_rcnn import QGRCNN
from gt_jax.ops.nms import nms
from gt_jax.ops.proposals import rpn_proposals

IOU_THRESHOLDS = np.round(np.linspace(0.5, 0.95, 10), 2)
DEFAULT_KS = (1, 5, 10, 100, 500, 1000)
STAGES = ("QG-RPN", "QG-RCNN")


def candidates_step(model: QGRCNN, scfg: inference.SearchConfig,
                    rcnn_nms_thr: float, variables: Any, image: jax.Array,
                    img_hw: jax.Array, scale: jax.Array,
                    kernels: Any) -> dict[str, jax.Array]:
  """Both stages' ranked candidates for one frame and one target.

  Args:
    model, scfg, rcnn_nms_thr: static; variables: {"params", "batch_stats"}.
    image: (Hc, Wc, 3) canvas; img_hw: (2,) resized size; scale: () the
      rescale factor s; kernels: {"rpn": (1, 5, C), "rcnn": (1, 7, 7, C)}.

  Returns:
    rpn (P, 4), rpn_valid (P,), rcnn (P, 4), rcnn_valid (P,): legacy xyxy
    in original pixels, best first (P = test rpn_max_num).
  """
  anchors = [jnp.asarray(a, jnp.float32) for a in box_lib.all_level_anchors(
      tuple(image.shape[:2]), scfg.anchor_strides, scfg.anchor_scales,
      scfg.anchor_ratios)]
  feats = [f[0] for f in model.apply(variables, image[None],
                                     method=QGRCNN.features)]
  cls, deltas = model.apply(variables, feats, kernels["rpn"][0],
                            method=QGRCNN.rpn_outputs)
  props, _, pvalid = rpn_proposals(cls, deltas, anchors, img_hw, scfg.nms_pre,
                                   scfg.nms_post, scfg.max_num, scfg.nms_thr,
                                   stds=scfg.rpn_stds)
  logits, rdeltas = model.apply(variables, feats, props, kernels["rcnn"][0],
                                method=QGRCNN.rcnn_outputs)
  probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)[:, 1]
  dets = box_lib.decode(props, rdeltas[:, 4:8].astype(jnp.float32),
                        stds=scfg.rcnn_stds, max_shape=img_hw) / scale
  # official multiclass_nms: candidates with score > 0 (strict).
  score = jnp.where(pvalid & (probs > 0), probs, -jnp.inf)
  keep, kvalid = nms(dets, score, rcnn_nms_thr, props.shape[0])
  return dict(rpn=props / scale, rpn_valid=pvalid, rcnn=dets[keep],
              rcnn_valid=kvalid)


def legacy_iou(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
  """+1 IoU of (P, 4) legacy xyxy boxes with one (4,) box -> (P,)."""
  b = np.asarray(boxes, np.float64)
  g = np.asarray(gt, np.float64)
  iw = np.minimum(b[:, 2], g[2]) - np.maximum(b[:, 0], g[0]) + 1
  ih = np.minimum(b[:, 3], g[3]) - np.maximum(b[:, 1], g[1]) + 1
  inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
  area = lambda x: (x[..., 2] - x[..., 0] + 1) * (x[..., 3] - x[..., 1] + 1)
  return inter / (area(b) + area(g) - inter)


def best_iou_at_k(boxes: np.ndarray, valid: np.ndarray, gt_xywh: np.ndarray,
                  ks: Sequence[int]) -> np.ndarray:
  """Max IoU with the GT among the first k valid ranked boxes, per k.

  Args:
    boxes: (P, 4) legacy xyxy ranked best first; valid: (P,) bool.
    gt_xywh: (4,) x, y, w, h.
    ks: candidate counts.

  Returns:
    (len(ks),) float64 (0 where no candidate).
  """
  g = np.asarray(gt_xywh, np.float64)
  gt = np.array([g[0], g[1], g[0] + g[2] - 1, g[1] + g[3] - 1])
  ious = np.where(valid, legacy_iou(boxes, gt), 0.0)
  ious = np.nan_to_num(ious, nan=0.0)
  best = np.maximum.accumulate(ious) if len(ious) else np.zeros(1)
  return np.asarray([best[min(k, len(best)) - 1] if k >= 1 else 0.0
                     for k in ks])


@dataclasses.dataclass
class RecallResult:
  """best[stage]: (F, K) best IoU at each k over the F scored frames."""
  ks: tuple[int, ...]
  best: dict[str, np.ndarray]

  @property
  def num_frames(self) -> int:
    return len(next(iter(self.best.values())))

  def recall(self, stage: str, threshold: float) -> np.ndarray:
    """(K,) share of frames whose top-k reaches IoU >= threshold."""
    b = self.best[stage]
    return (b >= threshold).mean(axis=0) if len(b) else np.zeros(len(self.ks))

  def average_recall(self, stage: str) -> np.ndarray:
    """(K,) AR@k: recall averaged over IOU_THRESHOLDS."""
    return np.mean([self.recall(stage, t) for t in IOU_THRESHOLDS], axis=0)


def run_recall(tracker: Any, records: Sequence[SequenceRecord],
               ks: Sequence[int] = DEFAULT_KS, frame_stride: int = 1,
               max_frames: int | None = None, num_workers: int = 2,
               progress: bool = True) -> RecallResult:
  """Runs both stages on the frames of `records` and collects best IoUs.

  Args:
    tracker: a `runner.SearchEngine` or a `Tracker`.
    records: sequences with per-frame GT (frame 0 = the query).
    ks: candidate counts (sorted ascending in the result).
    frame_stride: score every k-th frame.
    max_frames: at most this many scored frames per sequence.
    num_workers: decoding threads.
    progress: show a tqdm bar.
  """
  engine = runner.as_engine(tracker)
  scfg = inference.search_config(engine.cfg)
  step = _step_fn(engine.model, scfg, float(engine.cfg.test.rcnn_nms_thr))
  ks = tuple(sorted(int(k) for k in ks))
  best = {s: [] for s in STAGES}
  with FramePrefetcher(engine.load, num_workers, 4) as loader, \
      tqdm.tqdm(unit="frame", disable=not progress) as pbar:
    for rec in records:
      if len(rec.boxes) != len(rec):
        raise ValueError(f"{rec.name}: recall needs a GT box for every frame")
      ids = [i for i in range(frame_stride, len(rec), frame_stride)
             if rec.valid[i] and rec.visible[i]][:max_frames]
      if not ids:
        continue
      loader.start(rec.name, [rec.frame_paths[i] for i in [0, *ids]])
      kernels = engine.query(loader.next(rec.name), rec.boxes[0],
                             f"{rec.name}: init box")
      for i in ids:
        pre = loader.next(rec.name)
        out = jax.device_get(step(engine.variables, pre.image,
                                  np.asarray(pre.img_hw, np.int32),
                                  np.float32(pre.scale), kernels))
        for stage, key in zip(STAGES, ("rpn", "rcnn")):
          best[stage].append(best_iou_at_k(out[key], out[key + "_valid"],
                                           rec.boxes[i], ks))
        pbar.update(1)
      loader.stop(rec.name)
  return RecallResult(ks, {s: np.asarray(v, np.float64).reshape(-1, len(ks))
                           for s, v in best.items()})


@functools.lru_cache(maxsize=8)
def _step_fn(model, scfg, rcnn_nms_thr):
  return jax.jit(functools.partial(candidates_step, model, scfg,
                                   rcnn_nms_thr))


def format_table(res: RecallResult) -> str:
  """A markdown table in % (rows: stage x {AR, R@0.5, R@0.7})."""
  head = "| (%) | " + " | ".join(f"@{k}" for k in res.ks) + " |"
  lines = [f"{res.num_frames} frames", "", head,
           "|---" * (len(res.ks) + 1) + "|"]
  for s in STAGES:
    for label, v in (("AR", res.average_recall(s)),
                     ("R0.5", res.recall(s, 0.5)),
                     ("R0.7", res.recall(s, 0.7))):
      lines.append(f"| {s} {label} | " +
                   " | ".join(f"{100 * x:.1f}" for x in v) + " |")
  return "\n".join(lines)


def plot_recall(res: RecallResult, path: str) -> str:
  """AR@k against k (log axis) for both stages, as the paper's Fig. 5."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(5, 4))
  for s in STAGES:
    ax.plot(res.ks, 100 * res.average_recall(s), marker="o", label=s)
  ax.set_xscale("log")
  ax.set_xlabel("number of candidates k")
  ax.set_ylabel("AR@k (%)")
  ax.set_ylim(0, 100)
  ax.grid(True, alpha=0.3)
  ax.legend()
  ax.set_title(f"AR@k over {res.num_frames} frames")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def to_json(res: RecallResult) -> dict:
  """{"ks", "num_frames", stage: {"AR", "R50", "R70"}} as plain lists."""
  out = {"ks": list(res.ks), "num_frames": res.num_frames}
  for s in STAGES:
    out[s] = {"AR": res.average_recall(s).tolist(),
              "R50": res.recall(s, 0.5).tolist(),
              "R70": res.recall(s, 0.7).tolist()}
  return out
