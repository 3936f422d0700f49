"""Per-frame tracking errors and OTB-style curves, per reference toolkit.

Host-only numpy, float64 throughout (metrics.md §1: a float32 IoU near a
threshold can land on the wrong side). Boxes are `(..., 4)` arrays in
`x, y, w, h` pixels unless a docstring says otherwise.

Each reference toolkit computes "the same" IoU with a different formula; the
results agree to ~1e-13 except at the edges (zero size, NaN, division by zero),
so every toolkit's form is kept here to reproduce its edge cases exactly
(metrics.md §2):

  * `iou_got10k`    `inter / (union + eps)`, clipped to [0, 1] (got10k).
  * `iou_plus1`     +1-pixel corners, `inter / union` (MATLAB, pytracking).
  * `iou_neuron`    +1-pixel corners, `inter / max(union, 1e-12)` (neuron).
  * TrackingNet rounds every box to integers first
    (`protocols.trackingnet_sequence`).

The per-sequence recipes of the OTB-style toolkits (which frames count,
replacement of invalid predictions, denominators) are the `*_errors`
functions below; `protocols.py` picks one per benchmark and holds the
TrackingNet and GOT-10k recipes.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

# official (got10k `rect_iou`): np.finfo(float).eps added to the union.
_GOT10K_EPS = np.finfo(np.float64).eps
# official (neuron `rect_iou`): the union is floored at 1e-12.
_NEURON_EPS = 1e-12


class ResultLengthError(ValueError):
  """A result file has fewer rows than the ground truth (or a wrong shape)."""


class InvalidResultError(ValueError):
  """A toolkit refuses a result (pytracking: NaN or negative size)."""


def as_boxes(b: np.ndarray, name: str) -> np.ndarray:
  """`b` as float64 `(N, 4)`; raises ValueError naming `name` otherwise."""
  b = np.asarray(b, dtype=np.float64)
  if b.ndim != 2 or b.shape[1] != 4:
    raise ValueError(f"{name} must have shape (N, 4), got {b.shape}")
  return b


# ---------------------------------------------------------------------------
# Threshold grids (metrics.md §4.1).


def success_thresholds(bins: int = 21) -> np.ndarray:
  """IoU thresholds `linspace(0, 1, bins)`: 21 (OTB, LaSOT) or 101 (neuron)."""
  return np.linspace(0.0, 1.0, bins)


# Precision thresholds 0, 1, ..., 50 px (all OTB-style toolkits).
PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
# Normalised precision thresholds (0:50)/100 (MATLAB toolkit, pytracking).
NORM_PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0
# got10k ExperimentLaSOT: linspace(0, 0.5, 51).
GOT10K_NORM_THRESHOLDS = np.linspace(0.0, 0.5, 51)
# TrackingNet devkit: 21 points each (metrics.md §6.3).
TN_SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
TN_PRECISION_THRESHOLDS = np.linspace(0.0, 50.0, 21)
TN_NORM_THRESHOLDS = np.linspace(0.0, 0.5, 21)


# ---------------------------------------------------------------------------
# Per-frame quantities (metrics.md §2).


def iou_got10k(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
  """got10k IoU: continuous boxes, `inter / (union + eps)` clipped to [0, 1].

  Args:
    pred: `(N, 4)` xywh.
    gt: `(N, 4)` xywh.

  Returns:
    `(N,)` IoU; NaN where an input is NaN (NaN fails every threshold).
  """
  pred, gt = as_boxes(pred, "pred"), as_boxes(gt, "gt")
  x1 = np.maximum(pred[:, 0], gt[:, 0])
  y1 = np.maximum(pred[:, 1], gt[:, 1])
  x2 = np.minimum(pred[:, 0] + pred[:, 2], gt[:, 0] + gt[:, 2])
  y2 = np.minimum(pred[:, 1] + pred[:, 3], gt[:, 1] + gt[:, 3])
  inter = np.maximum(x2 - x1, 0.0) * np.maximum(y2 - y1, 0.0)
  union = pred[:, 2] * pred[:, 3] + gt[:, 2] * gt[:, 3] - inter
  return np.clip(inter / (union + _GOT10K_EPS), 0.0, 1.0)


def clip_boxes_got10k(boxes: np.ndarray, width: float,
                      height: float) -> np.ndarray:
  """GOT-10k's bound rule (metrics.md §2.2): shifts, does not crop.

  `x <- clip(x, 0, W)`, then `w <- clip(w, 0, W - x_new)` (same for y, h), so
  `x = -50, w = 100` becomes `x = 0, w = 100`.

  Args:
    boxes: `(N, 4)` xywh.
    width: image width W from `meta_info.ini`.
    height: image height H.

  Returns:
    `(N, 4)` clipped copy.
  """
  b = as_boxes(boxes, "boxes").copy()
  b[:, 0] = np.clip(b[:, 0], 0.0, width)
  b[:, 1] = np.clip(b[:, 1], 0.0, height)
  b[:, 2] = np.clip(b[:, 2], 0.0, width - b[:, 0])
  b[:, 3] = np.clip(b[:, 3], 0.0, height - b[:, 1])
  return b


def _plus1_inter_union(pred: np.ndarray, gt: np.ndarray):
  # +1-pixel form: right edge x + w - 1, widths right - left + 1.
  tl = np.maximum(pred[:, :2], gt[:, :2])
  br = np.minimum(pred[:, :2] + pred[:, 2:] - 1.0, gt[:, :2] + gt[:, 2:] - 1.0)
  size = np.maximum(br - tl + 1.0, 0.0)
  inter = size[:, 0] * size[:, 1]
  union = pred[:, 2] * pred[:, 3] + gt[:, 2] * gt[:, 3] - inter
  return inter, union


def iou_plus1(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
  """MATLAB `calcRectInt` / pytracking IoU (+1-pixel corners, no epsilon).

  Args:
    pred: `(N, 4)` xywh.
    gt: `(N, 4)` xywh.

  Returns:
    `(N,)` IoU (NaN for 0/0).
  """
  pred, gt = as_boxes(pred, "pred"), as_boxes(gt, "gt")
  inter, union = _plus1_inter_union(pred, gt)
  with np.errstate(invalid="ignore", divide="ignore"):
    return inter / union


def iou_neuron(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
  """neuron (GlobalTrack) IoU: corners `x2 = x + w - 1`, union >= 1e-12.

  Args:
    pred: `(N, 4)` xywh.
    gt: `(N, 4)` xywh.

  Returns:
    `(N,)` IoU; a zero-size prediction gives 0.
  """
  pred, gt = as_boxes(pred, "pred"), as_boxes(gt, "gt")
  pc = np.concatenate([pred[:, :2], pred[:, :2] + pred[:, 2:] - 1.0], 1)
  gc = np.concatenate([gt[:, :2], gt[:, :2] + gt[:, 2:] - 1.0], 1)
  iw = np.maximum(np.minimum(pc[:, 2], gc[:, 2]) -
                  np.maximum(pc[:, 0], gc[:, 0]) + 1.0, 0.0)
  ih = np.maximum(np.minimum(pc[:, 3], gc[:, 3]) -
                  np.maximum(pc[:, 1], gc[:, 1]) + 1.0, 0.0)
  inter = iw * ih
  area_p = (pc[:, 2] - pc[:, 0] + 1.0) * (pc[:, 3] - pc[:, 1] + 1.0)
  area_g = (gc[:, 2] - gc[:, 0] + 1.0) * (gc[:, 3] - gc[:, 1] + 1.0)
  return inter / np.maximum(area_p + area_g - inter, _NEURON_EPS)


def center_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
  """Centre distance with centres `x + (w - 1) / 2` (metrics.md §2.3).

  Args:
    pred: `(N, 4)` xywh.
    gt: `(N, 4)` xywh.

  Returns:
    `(N,)` Euclidean distance in pixels.
  """
  pred, gt = as_boxes(pred, "pred"), as_boxes(gt, "gt")
  cp = pred[:, :2] + (pred[:, 2:] - 1.0) / 2.0
  cg = gt[:, :2] + (gt[:, 2:] - 1.0) / 2.0
  return np.sqrt(np.sum((cp - cg) ** 2, axis=1))


def normalized_center_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
  """LaSOT normalised error: each centre divided by the GT w, h (§2.4).

  Written as the MATLAB toolkit and pytracking do (`c_p / w - c_g / w`).

  Args:
    pred: `(N, 4)` xywh.
    gt: `(N, 4)` xywh.

  Returns:
    `(N,)`; inf/NaN where the GT width or height is 0.
  """
  pred, gt = as_boxes(pred, "pred"), as_boxes(gt, "gt")
  with np.errstate(invalid="ignore", divide="ignore"):
    cp = (pred[:, :2] + (pred[:, 2:] - 1.0) / 2.0) / gt[:, 2:]
    cg = (gt[:, :2] + (gt[:, 2:] - 1.0) / 2.0) / gt[:, 2:]
    return np.sqrt(np.sum((cp - cg) ** 2, axis=1))


def normalized_center_error_got10k(pred: np.ndarray,
                                   gt: np.ndarray) -> np.ndarray:
  """got10k ExperimentLaSOT: centre offset divided by `max(1, w_gt, h_gt)`."""
  pred, gt = as_boxes(pred, "pred"), as_boxes(gt, "gt")
  cp = pred[:, :2] + (pred[:, 2:] - 1.0) / 2.0
  cg = gt[:, :2] + (gt[:, 2:] - 1.0) / 2.0
  d = (cp - cg) / np.maximum(1.0, gt[:, 2:])
  return np.sqrt(np.sum(d ** 2, axis=1))


# ---------------------------------------------------------------------------
# Curves.


def success_curve(ious: np.ndarray, thresholds: np.ndarray, denom: float,
                  inclusive: bool = False) -> np.ndarray:
  """Share of frames with `IoU > t` (`>=` if inclusive) per threshold.

  Args:
    ious: `(N,)` per-frame IoU; NaN and -1 fail every threshold under `>`.
    thresholds: `(T,)`.
    denom: the protocol's denominator (often N, sometimes larger).

  Returns:
    `(T,)` float64.
  """
  ious = np.asarray(ious, np.float64)[:, None]
  t = np.asarray(thresholds, np.float64)[None, :]
  hits = (ious >= t) if inclusive else (ious > t)
  return hits.sum(axis=0) / float(denom)


def precision_curve(errors: np.ndarray, thresholds: np.ndarray,
                    denom: float) -> np.ndarray:
  """Share of frames with `error <= t` per threshold (-1 passes, NaN fails)."""
  e = np.asarray(errors, np.float64)[:, None]
  t = np.asarray(thresholds, np.float64)[None, :]
  return (e <= t).sum(axis=0) / float(denom)


def trapz_unit(curve: np.ndarray) -> float:
  """`trapz(curve, x=linspace(0, 1, len(curve)))` (TrackingNet devkit)."""
  c = np.asarray(curve, np.float64)
  dx = 1.0 / (len(c) - 1)
  return float(dx * (c.sum() - 0.5 * (c[0] + c[-1])))


# ---------------------------------------------------------------------------
# Per-sequence recipes. Each returns `FrameErrors`.


@dataclasses.dataclass
class FrameErrors:
  """Per-frame errors of one sequence and the protocol's denominator.

  Attributes:
    iou: `(M,)` IoU per scored frame (-1 or NaN = failure).
    ce: `(M,)` centre error in px (-1 = counted precise, inf/NaN = failure).
    nce: `(M,)` normalised centre error, or None where not defined.
    denom: the number every count is divided by (may exceed M).
  """
  iou: np.ndarray
  ce: np.ndarray
  nce: np.ndarray | None
  denom: float


def _fit_length(pred: np.ndarray, n: int, what: str) -> np.ndarray:
  if len(pred) < n:
    raise ResultLengthError(
        f"{what}: result has {len(pred)} rows but the ground truth has {n}")
  return pred[:n].copy()


def _carry_forward(pred: np.ndarray, replace: np.ndarray) -> np.ndarray:
  """Replaces each flagged row (from row 2 on) by the already-fixed previous
  row, so a run of flagged rows takes the last unflagged row before it."""
  idx = np.arange(len(pred))
  src = np.where(replace & (idx > 0), 0, idx)
  return pred[np.maximum.accumulate(src)] if len(pred) else pred.copy()


def matlab_errors(pred: np.ndarray, gt: np.ndarray,
                  absent: np.ndarray | None = None,
                  what: str = "result") -> FrameErrors:
  """OTB MATLAB logic / LaSOT official toolkit (metrics.md §6.1, §6.2).

  1. Cut results to the GT length (shorter results are an error).
  2. Frames 2..N: a prediction with a NaN, w <= 0 or h <= 0 is replaced by
     the (already fixed) previous one, unless the GT row contains a NaN.
  3. Frame 1 := GT. 4. LaSOT: absent frames are removed, the denominator
     stays N. 5. GT rows not all > 0: IoU, CE and NCE = -1 (so CE and NCE
     count as precise, IoU as failure).

  Args:
    pred: `(>=N, 4)` xywh results.
    gt: `(N, 4)` xywh ground truth.
    absent: optional `(N,)` bool absent flags (LaSOT).
    what: name used in error messages (the result file).

  Returns:
    FrameErrors with denominator N.
  """
  gt = as_boxes(gt, "gt")
  n = len(gt)
  pred = _fit_length(as_boxes(pred, "pred"), n, what)
  with np.errstate(invalid="ignore"):
    bad = np.isnan(pred).any(axis=1) | (pred[:, 2] <= 0) | (pred[:, 3] <= 0)
  pred = _carry_forward(pred, bad & ~np.isnan(gt).any(axis=1))
  pred[0] = gt[0]
  if absent is not None:
    absent = np.asarray(absent, bool)
    if absent.shape != (n,):
      raise ValueError(f"absent flags have shape {absent.shape}, expected "
                       f"({n},)")
    pred, gt = pred[~absent], gt[~absent]
  with np.errstate(invalid="ignore"):
    valid = np.all(gt > 0, axis=1)
  iou = np.where(valid, iou_plus1(pred, gt), -1.0)
  ce = np.where(valid, center_error(pred, gt), -1.0)
  nce = np.where(valid, normalized_center_error(pred, gt), -1.0)
  return FrameErrors(iou, ce, nce, float(n))


def pytracking_errors(pred: np.ndarray, gt: np.ndarray, dataset: str,
                      visible: np.ndarray | None = None,
                      exclude_invalid_frames: bool = False,
                      what: str = "result") -> FrameErrors:
  """pytracking `calc_seq_err_robust` (metrics.md §3, §7).

  Args:
    pred: `(M, 4)` xywh results (NaN or negative size raises).
    gt: `(N, 4)` xywh ground truth (NaN only allowed for `uav`).
    dataset: pytracking dataset name: `lasot`, `uav` or another (`otb`, ...).
    visible: `(N,)` bool target-visible flags (LaSOT only).
    exclude_invalid_frames: divide by the number of valid frames.
    what: name used in error messages.

  Returns:
    FrameErrors.
  """
  pred, gt = as_boxes(pred, "pred").copy(), as_boxes(gt, "gt")
  n = len(gt)
  if np.isnan(pred).any() or (pred[:, 2:] < 0).any():
    raise InvalidResultError(
        f"{what}: NaN or negative width/height in the result (pytracking "
        "refuses such results)")
  gt_nan = np.isnan(gt).any(axis=1)
  if gt_nan.any() and dataset != "uav":
    raise InvalidResultError(
        f"{what}: NaN in the ground truth (pytracking allows it only for uav)")
  m = min(len(pred), n)
  zero = (pred[:, 2:] == 0).any(axis=1)
  zero[:m] &= ~gt_nan[:m]
  pred = _carry_forward(pred, zero)
  if len(pred) > n:
    pred = pred[:n]
  elif len(pred) < n:
    if dataset == "lasot":
      raise ResultLengthError(
          f"{what}: result has {len(pred)} rows but the ground truth has {n}")
    # Padding happens after the zero-size replacement: padded frames stay 0.
    pred = np.concatenate([pred, np.zeros((n - len(pred), 4))], axis=0)
  pred[0] = gt[0]
  with np.errstate(invalid="ignore"):
    valid = np.all(gt > 0, axis=1)
  if visible is not None:
    visible = np.asarray(visible, bool)
    valid = valid & visible
  iou = iou_plus1(pred, gt)
  ce = center_error(pred, gt)
  nce = normalized_center_error(pred, gt)
  ce[~valid] = -1.0 if dataset == "uav" else np.inf
  nce[~valid] = -1.0
  iou[~valid] = -1.0
  if dataset == "lasot" and visible is not None:
    nce[~visible] = np.inf
    ce[~visible] = np.inf
  if np.isnan(iou).any():
    raise InvalidResultError(f"{what}: NaN IoU")
  denom = float(valid.sum()) if exclude_invalid_frames else float(n)
  if denom <= 0:
    raise InvalidResultError(f"{what}: sequence length zero")
  # pytracking stores its per-sequence curves in float32; the ~1e-7 noise
  # this causes is below the 1e-6 report tolerance, so float64 is kept here.
  return FrameErrors(iou, ce, nce, denom)


def got10k_otb_errors(pred: np.ndarray, gt: np.ndarray,
                      drop_nan_gt: bool = False, lasot_norm: bool = False,
                      what: str = "result") -> FrameErrors:
  """got10k ExperimentOTB / UAV123 / LaSOT (metrics.md §7, `got10k`).

  Both arrays are cut to the shorter length (with a warning), frame 1 := GT,
  no replacement of invalid predictions. With `drop_nan_gt` (UAV, LaSOT),
  NaN GT rows leave the numerator and the denominator.

  Args:
    pred: `(M, 4)` xywh.
    gt: `(N, 4)` xywh.
    drop_nan_gt: remove GT rows containing NaN.
    lasot_norm: also compute the `max(1, w)` normalised error.
    what: name used in warnings.

  Returns:
    FrameErrors (nce None unless lasot_norm).
  """
  pred, gt = as_boxes(pred, "pred"), as_boxes(gt, "gt")
  if len(pred) != len(gt):
    warnings.warn(f"{what}: {len(pred)} result rows vs {len(gt)} GT rows; "
                  "both cut to the shorter (got10k behaviour)")
  n = min(len(pred), len(gt))
  pred, gt = pred[:n].copy(), gt[:n]
  pred[0] = gt[0]
  if drop_nan_gt:
    keep = ~np.isnan(gt).any(axis=1)
    pred, gt = pred[keep], gt[keep]
  iou = iou_got10k(pred, gt)
  ce = center_error(pred, gt)
  nce = normalized_center_error_got10k(pred, gt) if lasot_norm else None
  return FrameErrors(iou, ce, nce, float(len(gt)))


def neuron_errors(pred: np.ndarray, gt: np.ndarray,
                  what: str = "result") -> FrameErrors:
  """neuron (GlobalTrack) OTB/LaSOT/TLP/UAV evaluator (§6.4, §7).

  Frame 1 := GT; frames whose GT corners `(x, y, x+w-1, y+h-1)` are not all
  > 0 are removed from numerator and denominator; no replacement.

  Args:
    pred: `(>=N, 4)` xywh (convert neuron's corner files first).
    gt: `(N, 4)` xywh.
    what: name used in error messages.

  Returns:
    FrameErrors (no normalised error: neuron has none).
  """
  gt = as_boxes(gt, "gt")
  n = len(gt)
  pred = _fit_length(as_boxes(pred, "pred"), n, what)
  pred[0] = gt[0]
  corners = np.concatenate([gt[:, :2], gt[:, :2] + gt[:, 2:] - 1.0], 1)
  with np.errstate(invalid="ignore"):
    keep = np.all(corners > 0, axis=1)
  if not keep.any():
    # neuron asserts at least one valid frame.
    raise ValueError(f"{what}: no frame has a valid GT (corners all > 0)")
  pred, gt = pred[keep], gt[keep]
  with np.errstate(invalid="ignore"):
    iou = iou_neuron(pred, gt)
  return FrameErrors(iou, center_error(pred, gt), None, float(keep.sum()))


def curves(err: FrameErrors, success_bins: int = 21,
           norm_thresholds: np.ndarray = NORM_PRECISION_THRESHOLDS
           ) -> dict[str, np.ndarray]:
  """Success (`>`), precision and normalised precision curves of a sequence.

  Returns:
    dict with `success` `(bins,)`, `precision` `(51,)` and, when `err.nce`
    is set, `norm_precision` `(len(norm_thresholds),)`.
  """
  out = {
      "success": success_curve(err.iou, success_thresholds(success_bins),
                               err.denom),
      "precision": precision_curve(err.ce, PRECISION_THRESHOLDS, err.denom),
  }
  if err.nce is not None:
    out["norm_precision"] = precision_curve(err.nce, norm_thresholds,
                                            err.denom)
  return out
