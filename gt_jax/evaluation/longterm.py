"""Long-term metrics: OxUvA TPR/TNR/GM/MaxGM and VOT-LT precision/recall/F.

Host-only numpy, float64 (metrics.md §6.6, §6.7).

OxUvA: every labelled frame after the initial one is a TP/FN (target present)
or TN/FP (absent); counts are pooled over all frames of all tracks and the
rates computed once. MaxGM is the best geometric mean on the segment from
(TNR, TPR) to (1, 0), not a score sweep.

VOT-LT (vot toolkit `longterm.py`): precision and recall curves over
confidence thresholds, averaged over sequences; the reported triple is taken
at the first threshold that maximises F. Overlaps are pixel-rasterised inside
the image, and two empty regions overlap 1.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np

# official (OxUvA `assess_frame`): IoU >= 0.5 is a true positive.
OXUVA_IOU_THRESHOLD = 0.5
# official (vot toolkit PrecisionRecallCurves): resolution 100 thresholds.
VOT_LT_RESOLUTION = 100


# ---------------------------------------------------------------------------
# OxUvA.


@dataclasses.dataclass
class OxuvaCounts:
  """Frame counts of an OxUvA assessment."""
  tp: int = 0
  fn: int = 0
  tn: int = 0
  fp: int = 0

  def __add__(self, other: "OxuvaCounts") -> "OxuvaCounts":
    return OxuvaCounts(self.tp + other.tp, self.fn + other.fn,
                       self.tn + other.tn, self.fp + other.fp)


def oxuva_iou(a: Sequence[float], b: Sequence[float]) -> float:
  """IoU of two normalised `(xmin, xmax, ymin, ymax)` boxes, each clipped to
  the unit square first; inverted rectangles have zero area."""

  def clip(r):
    return (max(r[0], 0.0), min(r[1], 1.0), max(r[2], 0.0), min(r[3], 1.0))

  def vol(r):
    return max(0.0, r[1] - r[0]) * max(0.0, r[3] - r[2])

  a, b = clip(a), clip(b)
  inter = (max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3]))
  i = vol(inter)
  u = vol(a) + vol(b) - i
  return float(i) / float(u) if u != 0 else float("nan")


def oxuva_assess_track(labels: Mapping[int, tuple[bool, Sequence[float]]],
                       predictions: Mapping[int, tuple[bool, float,
                                                       Sequence[float]]],
                       what: str = "predictions") -> OxuvaCounts:
  """Counts TP/FN/TN/FP of one track.

  Args:
    labels: frame -> (present, (xmin, xmax, ymin, ymax)) for the scored
      frames (the initial frame excluded).
    predictions: frame -> (present, score, box). For a labelled frame without
      a prediction the latest earlier prediction is used.
    what: name used in the error message.

  Returns:
    OxuvaCounts.

  Raises:
    ValueError: no prediction at or before a labelled frame.
  """
  pred_frames = sorted(predictions)
  counts = OxuvaCounts()
  j, current = 0, None
  for t in sorted(labels):
    while j < len(pred_frames) and pred_frames[j] <= t:
      current = predictions[pred_frames[j]]
      j += 1
    if current is None:
      raise ValueError(f"{what}: no prediction at or before frame {t}")
    gt_present, gt_box = labels[t]
    p_present, _, p_box = current
    if gt_present:
      if p_present and oxuva_iou(gt_box, p_box) >= OXUVA_IOU_THRESHOLD:
        counts.tp += 1
      else:
        counts.fn += 1
    elif p_present:
      counts.fp += 1
    else:
      counts.tn += 1
  return counts


def max_geometric_mean_line(tnr: float, tpr: float) -> float:
  """Best `sqrt(x * y)` on the segment from (TNR, TPR) to (1, 0).

  `x = (1 - th) TNR + th`, `y = (1 - th) TPR`; a quadratic in th on [0, 1]
  whose interior peak is checked only when it is concave (OxUvA §6.6).
  """
  x1, y1, x2, y2 = tnr, tpr, 1.0, 0.0
  a = (x1 - x2) * (y1 - y2)
  b = -y1 * (x1 - x2) - x1 * (y1 - y2)
  candidates = [0.0, 1.0]
  if a < 0:
    th = -b / (2 * a)
    if 0 <= th <= 1:
      candidates.append(th)

  def h(th):
    return math.sqrt(((1 - th) * x1 + th * x2) * ((1 - th) * y1 + th * y2))

  # Python max keeps the first NaN, as the toolkit does.
  return max([h(th) for th in candidates])


def oxuva_quality(c: OxuvaCounts) -> dict[str, float]:
  """TPR, TNR, GM, MaxGM from pooled counts (NaN for 0/0)."""
  pos, neg = c.tp + c.fn, c.tn + c.fp
  tpr = c.tp / pos if pos else float("nan")
  tnr = c.tn / neg if neg else float("nan")
  with np.errstate(divide="ignore", invalid="ignore"):
    # official (oxuva util.geometric_mean): exp(mean(log(.))).
    gm = float(np.exp(np.mean(np.log([tpr, tnr]))))
  mgm = (max_geometric_mean_line(tnr, tpr)
         if not (math.isnan(tpr) or math.isnan(tnr)) else float("nan"))
  return {"TPR": tpr, "TNR": tnr, "GM": gm, "MaxGM": mgm}


# ---------------------------------------------------------------------------
# VOT-LT precision / recall / F.


def vot_thresholds(scores: np.ndarray,
                   resolution: int = VOT_LT_RESOLUTION) -> np.ndarray:
  """Confidence thresholds: +inf, up to resolution-2 sorted scores, -inf.

  Args:
    scores: all confidences of a tracker over all sequences (NaN ignored).
    resolution: total number of thresholds (vot default 100).

  Returns:
    `(T,)` descending thresholds.
  """
  s = np.asarray(scores, np.float64).ravel()
  s = np.sort(s[~np.isnan(s)])[::-1]
  k = resolution - 2
  if len(s) > k:
    delta = math.floor(len(s) / k)
    idx = np.round(np.linspace(delta, len(s) - delta, num=k)).astype(int)
    s = s[idx]
  return np.concatenate([[np.inf], s, [-np.inf]])


def vot_overlap(pred: np.ndarray, gt: np.ndarray,
                image_size: tuple[int, int] | None) -> float:
  """Pixel-rasterised overlap of two xywh rectangles (vot toolkit rules).

  Coordinates are rounded half-to-even; a rectangle covers the pixels
  `round(x) .. round(x) + round(w) - 1`. A NaN box is an empty region. When
  the union of the two regions' bounds is degenerate the regions are
  "identical" (overlap 1); pixels outside the image do not count.

  Args:
    pred: `(4,)` xywh prediction.
    gt: `(4,)` xywh ground truth (NaN row = target absent).
    image_size: `(W, H)` bounds, or None for unbounded.

  Returns:
    Overlap in [0, 1].
  """
  def bounds(r):
    if r is None:
      return (0, 0, 0, 0)
    return (int(r[0]), int(r[1]), int(r[0] + r[2] - 1), int(r[1] + r[3] - 1))

  p = None if np.isnan(pred).any() else np.round(np.asarray(pred, float))
  g = None if np.isnan(gt).any() else np.round(np.asarray(gt, float))
  b1, b2 = bounds(p), bounds(g)
  union = (min(b1[0], b2[0]), min(b1[1], b2[1]), max(b1[2], b2[2]),
           max(b1[3], b2[3]))
  if union[0] >= union[2] or union[1] >= union[3]:
    return 1.0
  if image_size is not None:
    rb = (max(0, union[0]), max(0, union[1]),
          min(image_size[0] - 1, union[2]), min(image_size[1] - 1, union[3]))
  else:
    rb = union
  if rb[0] >= rb[2] or rb[1] >= rb[3]:
    return 0.0

  def span(r):
    # Pixel index ranges of the rectangle inside the raster bounds.
    if r is None:
      return None
    x0, y0 = r[0], r[1]
    x1, y1 = r[0] + r[2] - 1, r[1] + r[3] - 1
    if x0 > rb[2] or x1 < rb[0] or y0 > rb[3] or y1 < rb[1]:
      return None
    sx = (max(x0, rb[0]), min(x1, rb[2]))
    sy = (max(y0, rb[1]), min(y1, rb[3]))
    if sx[1] < sx[0] or sy[1] < sy[0]:
      return None
    return sx, sy

  def area(s):
    return 0 if s is None else (s[0][1] - s[0][0] + 1) * (s[1][1] - s[1][0] + 1)

  s1, s2 = span(p), span(g)
  a1, a2 = area(s1), area(s2)
  inter = 0
  if s1 is not None and s2 is not None:
    ix = min(s1[0][1], s2[0][1]) - max(s1[0][0], s2[0][0]) + 1
    iy = min(s1[1][1], s2[1][1]) - max(s1[1][0], s2[1][0]) + 1
    inter = max(0, ix) * max(0, iy)
  u = a1 + a2 - inter
  return float(inter) / float(u) if u > 0 else 0.0


def vot_pr_curves(overlaps: np.ndarray, confidence: np.ndarray,
                  n_visible: int, thresholds: np.ndarray):
  """Per-sequence precision and recall over thresholds.

  Args:
    overlaps: `(N,)` per-frame overlaps.
    confidence: `(N,)` per-frame confidences.
    n_visible: number of frames whose GT is not special (target present).
    thresholds: `(T,)`.

  Returns:
    (precision `(T,)`, recall `(T,)`).
  """
  overlaps = np.asarray(overlaps, np.float64)
  confidence = np.asarray(confidence, np.float64)
  pr = np.zeros(len(thresholds))
  re = np.zeros(len(thresholds))
  for i, t in enumerate(thresholds):
    sel = confidence >= t
    if not sel.any():
      pr[i], re[i] = 1.0, 0.0
    else:
      pr[i] = overlaps[sel].mean()
      re[i] = overlaps[sel].sum() / n_visible if n_visible else np.nan
  return pr, re


def vot_best_f(pr: np.ndarray, re: np.ndarray) -> dict[str, float]:
  """Pr, Re and F at the first threshold maximising `F = 2 Pr Re / (Pr+Re)`."""
  with np.errstate(invalid="ignore", divide="ignore"):
    f = 2 * pr * re / (pr + re)
  best = max(range(len(f)), key=lambda i: (np.nan_to_num(f[i], nan=-1.0), -i))
  return {"vot_lt_precision": float(pr[best]),
          "vot_lt_recall": float(re[best]),
          "vot_lt_f": float(f[best])}


def vot_longterm(sequences: Sequence[dict]) -> tuple[dict, list[dict]]:
  """VOT-LT precision/recall/F over sequences.

  Args:
    sequences: each a dict with `pred (N,4)`, `gt (N,4)` (NaN rows = absent),
      `confidence (N,)` and `image_size (W, H)` or None.

  Returns:
    (overall dict, list of per-sequence dicts) with keys `vot_lt_precision`,
    `vot_lt_recall`, `vot_lt_f`.
  """
  thresholds = vot_thresholds(
      np.concatenate([np.asarray(s["confidence"], float) for s in sequences]))
  prs, res, per_seq = [], [], []
  for s in sequences:
    pred = np.asarray(s["pred"], float)
    gt = np.asarray(s["gt"], float)
    ov = np.array([vot_overlap(p, g, s.get("image_size"))
                   for p, g in zip(pred, gt)])
    n_vis = int((~np.isnan(gt).any(axis=1)).sum())
    pr, re = vot_pr_curves(ov, s["confidence"], n_vis, thresholds)
    prs.append(pr)
    res.append(re)
    per_seq.append(vot_best_f(pr, re))
  overall = vot_best_f(np.mean(prs, axis=0), np.mean(res, axis=0))
  return overall, per_seq
