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
from typing import Any, Sequence

import numpy as np

from gt_jax.boxes import np_boxes
from gt_jax.data.records import SequenceRecord
from gt_jax.tracking.engine import as_engine
from gt_jax.tracking.engine import track_sequences

IOU_THRESHOLDS = np.round(np.linspace(0.5, 0.95, 10), 2)
DEFAULT_KS = (1, 5, 10, 100, 500, 1000)
STAGES = ("QG-RPN", "QG-RCNN")


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
  gt = np_boxes.xywh_to_xyxy(np.asarray(gt_xywh, np.float64)[None])
  ious = np.where(valid, np_boxes.pairwise_iou(boxes, gt)[:, 0], 0.0)
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
               max_frames: int | None = None, batch_size: int = 1,
               num_workers: int = 2, progress: bool = True) -> RecallResult:
  """Runs both stages on the frames of `records` and collects best IoUs.

  The frames go through the tracking engine (`track_sequences` with an
  `on_frame` hook, so the search step's own proposals and ranked class-1
  detections are measured); only the scored frames are searched (the
  tracker keeps no state between frames).

  Args:
    tracker: a `SearchEngine` or a `Tracker`.
    records: sequences with per-frame GT (frame 0 = the query).
    ks: candidate counts (sorted ascending in the result).
    frame_stride: score every k-th frame.
    max_frames: at most this many scored frames per sequence.
    batch_size: sequences per device step.
    num_workers: decoding threads.
    progress: show a tqdm bar.

  Returns:
    A `RecallResult`; frames in record order, then frame order.
  """
  engine = as_engine(tracker)
  ks = tuple(sorted(int(k) for k in ks))
  scored: dict[str, list[int]] = {}
  for rec in records:
    if len(rec.boxes) != len(rec):
      raise ValueError(f"{rec.name}: recall needs a GT box for every frame")
    ids = [i for i in range(frame_stride, len(rec), frame_stride)
           if rec.valid[i] and rec.visible[i]][:max_frames]
    if ids:
      scored[rec.name] = [0, *ids]
  best: dict[tuple[str, int], dict[str, np.ndarray]] = {}

  def on_frame(rec: SequenceRecord, t: int, out: dict[str, np.ndarray]):
    s = out["scale"]
    best[rec.name, t] = {
        "QG-RPN": best_iou_at_k(out["proposals"] / s, out["proposal_valid"],
                                rec.boxes[t], ks),
        "QG-RCNN": best_iou_at_k(out["detections"] / s,
                                 out["detection_valid"], rec.boxes[t], ks)}

  todo = [r for r in records if r.name in scored]
  track_sequences(engine, todo, batch_size=batch_size,
                  frame_ids=lambda rec: scored[rec.name], on_frame=on_frame,
                  num_workers=num_workers, progress=progress,
                  desc="recall")
  order = [(r.name, t) for r in todo for t in scored[r.name][1:]]
  return RecallResult(ks, {
      stage: np.asarray([best[k][stage] for k in order],
                        np.float64).reshape(-1, len(ks))
      for stage in STAGES})


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
