"""Evaluation protocols: which toolkit's rules each benchmark is scored with.

Official protocol per benchmark (metrics.md §5), selected by default:

  otb, uav123, uav20l, tc128, nfs, dtb70   OTB MATLAB logic (§6.1)
  lasot        LaSOT MATLAB toolkit: absent frames removed, denominator N
  tlp          neuron's EvaluatorTLP (101 bins, invalid GT frames dropped)
  trackingnet  devkit = server (rounding, `>=`, trapezoid areas)
  got10k       got10k ExperimentGOT10k (AO/SR pooled over frames and runs)
  oxuva        OxUvA toolkit (TPR/TNR/GM/MaxGM, pooled counts)

Variants (`--protocol`, §7): `matlab` (OTB MATLAB logic without absent
flags), `got10k` (the got10k Python toolkit), `pytracking`, `neuron` (the
GlobalTrack paper's evaluator).

The drivers here take arrays already loaded (see `report.py` for files) and
return `(overall, per_sequence, plot_curves)` with the metric keys of
metrics.md §11.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from gt_jax.evaluation import longterm
from gt_jax.evaluation import metrics

OTB_LIKE = ("otb", "otb2013", "tb50", "uav123", "uav20l", "tc128", "nfs",
            "dtb70")
BENCHMARKS = OTB_LIKE + ("lasot", "tlp", "trackingnet", "got10k", "oxuva")
VARIANTS = ("official", "matlab", "got10k", "pytracking", "neuron")

# neuron's bins: 101 for OTB-2015, TLP, UAV, DTB70, NfS, TC128; 21 for LaSOT
# (metrics.md §4.1, §7).
_NEURON_BINS = {"lasot": 21, "otb2013": 21}
# pytracking dataset names (only `lasot` and `uav` change the rules).
_PYTRACKING_DATASET = {"uav123": "uav", "uav20l": "uav", "lasot": "lasot",
                       "tlp": "tlp", "otb": "otb", "otb2013": "otb",
                       "tb50": "otb", "nfs": "nfs",
                       "trackingnet": "trackingnet", "tc128": "tc128",
                       "dtb70": "dtb70"}
_MATLAB_EPS = np.finfo(np.float64).eps


@dataclasses.dataclass(frozen=True)
class Protocol:
  """How one benchmark is scored.

  Attributes:
    name: the label written to report.json (e.g. `lasot_official`).
    benchmark: benchmark key.
    kind: `matlab`, `got10k`, `pytracking`, `neuron`, `trackingnet`,
      `got10k_ao` or `oxuva`.
    success_bins: number of IoU thresholds (21 or 101).
    use_absent: drop absent frames keeping the denominator (LaSOT MATLAB).
    pytracking_dataset: pytracking's dataset name.
    drop_nan_gt: got10k UAV/LaSOT: NaN GT rows leave the denominator.
    got10k_lasot_norm: got10k ExperimentLaSOT normalised precision.
    comma_only: results must be comma separated (got10k's loader).
  """
  name: str
  benchmark: str
  kind: str
  success_bins: int = 21
  use_absent: bool = False
  pytracking_dataset: str = ""
  drop_nan_gt: bool = False
  got10k_lasot_norm: bool = False
  comma_only: bool = False

  @property
  def otb_style(self) -> bool:
    return self.kind in ("matlab", "got10k", "pytracking", "neuron")


def get_protocol(benchmark: str, variant: str | None = None) -> Protocol:
  """The protocol for `benchmark` (official when `variant` is None).

  Raises:
    ValueError: unknown benchmark, or a variant the benchmark lacks.
  """
  b = benchmark.lower()
  if b not in BENCHMARKS:
    raise ValueError(f"unknown benchmark {benchmark!r}; expected one of "
                     f"{', '.join(BENCHMARKS)}")
  v = (variant or "official").lower()
  if v.endswith("_official"):
    v = "official"
  if v not in VARIANTS:
    raise ValueError(f"unknown --protocol {variant!r}; expected one of "
                     f"{', '.join(VARIANTS)}")
  if v == "official":
    name = f"{b}_official"
    if b in OTB_LIKE:
      return Protocol(name, b, "matlab")
    if b == "lasot":
      return Protocol(name, b, "matlab", use_absent=True)
    if b == "tlp":
      return Protocol(name, b, "neuron", success_bins=101)
    if b == "trackingnet":
      return Protocol(name, b, "trackingnet")
    if b == "got10k":
      return Protocol(name, b, "got10k_ao", success_bins=101)
    return Protocol(name, b, "oxuva")
  if b in ("got10k", "oxuva") or (b == "trackingnet" and v in ("matlab",
                                                               "neuron")):
    raise ValueError(f"benchmark {b!r} has no {v!r} protocol variant; only "
                     "its official protocol is implemented")
  if v == "matlab":
    return Protocol(v, b, "matlab")
  if v == "got10k":
    nan = b in ("uav123", "uav20l", "lasot")
    return Protocol(v, b, "got10k", drop_nan_gt=nan,
                    got10k_lasot_norm=(b == "lasot"), comma_only=True)
  if v == "pytracking":
    return Protocol(v, b, "pytracking",
                    pytracking_dataset=_PYTRACKING_DATASET.get(b, b))
  return Protocol(v, b, "neuron", success_bins=_NEURON_BINS.get(b, 101))


# ---------------------------------------------------------------------------
# OTB-style protocols.


@dataclasses.dataclass
class SequenceInput:
  """One sequence's ground truth and one tracker's result.

  Attributes:
    name: sequence name.
    gt: `(N, 4)` xywh.
    pred: `(M, 4)` xywh.
    absent: `(N,)` bool absent flags (LaSOT) or None.
    visible: `(N,)` bool visible flags (pytracking LaSOT) or None.
    source: result path for error messages.
  """
  name: str
  gt: np.ndarray
  pred: np.ndarray
  absent: np.ndarray | None = None
  visible: np.ndarray | None = None
  source: str = "result"


def sequence_errors(p: Protocol, s: SequenceInput) -> metrics.FrameErrors:
  """Per-frame errors of one sequence under protocol `p`."""
  if p.kind == "matlab":
    return metrics.matlab_errors(s.pred, s.gt,
                                 s.absent if p.use_absent else None,
                                 what=s.source)
  if p.kind == "got10k":
    return metrics.got10k_otb_errors(s.pred, s.gt, p.drop_nan_gt,
                                     p.got10k_lasot_norm, what=s.source)
  if p.kind == "pytracking":
    vis = None
    if p.pytracking_dataset == "lasot":
      # pytracking's LaSOT visibility is the raw flags only (not validity).
      vis = (~np.asarray(s.absent, bool) if s.absent is not None
             else s.visible)
    return metrics.pytracking_errors(s.pred, s.gt, p.pytracking_dataset, vis,
                                     what=s.source)
  if p.kind == "neuron":
    return metrics.neuron_errors(s.pred, s.gt, what=s.source)
  raise ValueError(f"protocol {p.name!r} is not OTB-style")


def _norm_thresholds(p: Protocol) -> np.ndarray:
  if p.kind == "got10k":
    return metrics.GOT10K_NORM_THRESHOLDS
  return metrics.NORM_PRECISION_THRESHOLDS


def curve_scores(p: Protocol, c: dict[str, np.ndarray]) -> dict[str, float]:
  """Scalar scores read off (mean) curves, with the §11 keys."""
  bins = p.success_bins
  if c["success"].dtype == np.float32:
    # pytracking: percent curves (x100) in float32; scores read off them.
    c = {k: v * np.float32(100.0) for k, v in c.items()}
    scale = 100.0
  else:
    scale = 1.0
  s = c["success"]
  out = {
      "success_auc": float(np.mean(s, dtype=s.dtype)) / scale,
      # Pick indices, not float equality (metrics.md §4.2).
      "success_rate_050": float(s[(bins - 1) // 2]) / scale,
      "success_rate_075": float(s[(3 * (bins - 1)) // 4]) / scale,
      "precision_20px": float(c["precision"][20]) / scale,
  }
  if "norm_precision" in c:
    if p.kind == "got10k":
      # got10k's "normalized_precision_score": mean over 0..0.5 (not @0.2).
      out["norm_precision_mean"] = float(np.mean(c["norm_precision"]))
    else:
      out["norm_precision_020"] = float(c["norm_precision"][20]) / scale
  return out


def _mean_curve(p: Protocol, stack: np.ndarray) -> np.ndarray:
  if p.kind == "matlab":
    # MATLAB plot_draw_save: sequences whose curve sums to <= eps are dropped
    # (separately for each curve type).
    stack = stack[stack.sum(axis=1) > _MATLAB_EPS]
  if len(stack) == 0:
    return np.full(stack.shape[1], np.nan, stack.dtype)
  return stack.mean(axis=0, dtype=stack.dtype)


def evaluate_otb_style(p: Protocol, seqs: Sequence[SequenceInput]):
  """Scores OTB-family / LaSOT / TLP / UAV sequences.

  Returns:
    (overall scores, {seq: scores}, overall curves {name: (T,)}).
  """
  per_seq, per_curves = {}, []
  for s in seqs:
    err = sequence_errors(p, s)
    c = metrics.curves(err, p.success_bins, _norm_thresholds(p))
    if p.kind == "neuron":
      c.pop("norm_precision", None)
    if p.kind == "pytracking":
      # pytracking keeps per-sequence curves in float32 (~1e-7 noise).
      c = {k: v.astype(np.float32) for k, v in c.items()}
    per_curves.append(c)
    per_seq[s.name] = curve_scores(p, c)
  if not per_curves:
    raise ValueError("no sequences to evaluate")
  overall_curves = {k: _mean_curve(p, np.stack([c[k] for c in per_curves]))
                    for k in per_curves[0]}
  return curve_scores(p, overall_curves), per_seq, overall_curves


def curve_thresholds(p: Protocol) -> dict[str, np.ndarray]:
  """x-axes of the curves returned by the `evaluate_*` drivers."""
  if p.kind == "trackingnet":
    return {"success": metrics.TN_SUCCESS_THRESHOLDS,
            "precision": metrics.TN_PRECISION_THRESHOLDS,
            "norm_precision": metrics.TN_NORM_THRESHOLDS}
  if p.kind == "got10k_ao":
    return {"success": metrics.success_thresholds(101)}
  return {"success": metrics.success_thresholds(p.success_bins),
          "precision": metrics.PRECISION_THRESHOLDS,
          "norm_precision": _norm_thresholds(p)}


# ---------------------------------------------------------------------------
# TrackingNet, GOT-10k, OxUvA.


@dataclasses.dataclass
class TrackingNetSequence:
  """Devkit per-sequence curves (each count divided by the GT length).

  Attributes:
    success: `(21,)` share of IoU >= t over `linspace(0, 1, 21)`.
    precision: `(21,)` share of distance <= d over `linspace(0, 50, 21)`.
    norm_precision: `(21,)` over `linspace(0, 0.5, 21)`.
    covered: `(N,)` bool, rounded `x + y + w + h > 0` (coverage numerator).
  """
  success: np.ndarray
  precision: np.ndarray
  norm_precision: np.ndarray
  covered: np.ndarray


def trackingnet_sequence(pred: np.ndarray | None,
                         gt: np.ndarray) -> TrackingNetSequence:
  """TrackingNet devkit `metrics.py` on one sequence (metrics.md §6.3).

  Rows are matched by index: missing rows become NaN (fail every test),
  extra rows are ignored, a missing file (`pred=None`) is all zeros. Every
  coordinate is rounded half-to-even; frame 1 := rounded GT. The devkit's
  pandas row-wise max/min skip NaN, reproduced with `fmax`/`fmin`.

  Args:
    pred: `(M, 4)` xywh submission rows, or None for a missing file.
    gt: `(N, 4)` xywh ground truth.

  Returns:
    TrackingNetSequence.
  """
  gt = np.round(metrics.as_boxes(gt, "gt"))
  n = len(gt)
  if pred is None:
    sub = np.zeros((n, 4))
  else:
    pred = metrics.as_boxes(pred, "pred")
    sub = np.full((n, 4), np.nan)
    m = min(n, len(pred))
    sub[:m] = pred[:m]
  sub = np.round(sub)
  sub[0] = gt[0]
  gx2, gy2 = gt[:, 0] + gt[:, 2] - 1.0, gt[:, 1] + gt[:, 3] - 1.0
  sx2, sy2 = sub[:, 0] + sub[:, 2] - 1.0, sub[:, 1] + sub[:, 3] - 1.0
  gcx = gt[:, 0] + (gt[:, 2] + 1.0) / 2.0
  gcy = gt[:, 1] + (gt[:, 3] + 1.0) / 2.0
  scx = sub[:, 0] + (sub[:, 2] + 1.0) / 2.0
  scy = sub[:, 1] + (sub[:, 3] + 1.0) / 2.0
  ix1, iy1 = np.fmax(gt[:, 0], sub[:, 0]), np.fmax(gt[:, 1], sub[:, 1])
  ix2, iy2 = np.fmin(gx2, sx2), np.fmin(gy2, sy2)
  with np.errstate(invalid="ignore", divide="ignore"):
    iw = np.round(ix2 - ix1 + 1.0)
    ih = np.round(iy2 - iy1 + 1.0)
    # pandas .clip(lower=0) keeps NaN.
    iw = np.where(iw < 0, 0.0, iw)
    ih = np.where(ih < 0, 0.0, ih)
    inter = iw * ih
    iou = inter / (gt[:, 2] * gt[:, 3] + sub[:, 2] * sub[:, 3] - inter)
    dx, dy = gcx - scx, gcy - scy
    dist = np.sqrt(dx * dx + dy * dy)
    ndist = np.sqrt((dx / gt[:, 2]) * (dx / gt[:, 2]) +
                    (dy / gt[:, 3]) * (dy / gt[:, 3]))
    covered = (sub[:, 3] + sub[:, 2] + sub[:, 0] + sub[:, 1]) > 0
  return TrackingNetSequence(
      success=metrics.success_curve(iou, metrics.TN_SUCCESS_THRESHOLDS, n,
                                    inclusive=True),
      precision=metrics.precision_curve(dist, metrics.TN_PRECISION_THRESHOLDS,
                                        n),
      norm_precision=metrics.precision_curve(ndist, metrics.TN_NORM_THRESHOLDS,
                                             n),
      covered=covered)


def got10k_sequence_ious(preds: list[np.ndarray], gt: np.ndarray,
                         cover: np.ndarray, resolution: tuple[float, float],
                         what: str = "result") -> np.ndarray:
  """GOT-10k official IoUs of one sequence, pooled over repetitions (§6.5).

  Frame 1 is dropped, both boxes are clipped with the shifting rule of
  `clip_boxes_got10k` at `resolution`, and frames with `cover == 0` are
  removed.

  Args:
    preds: one `(N, 4)` xywh array per repetition (`_001`, `_002`, ...).
    gt: `(N, 4)` xywh.
    cover: `(N,)` cover labels 0..8.
    resolution: `(W, H)` from `meta_info.ini`.
    what: name used in error messages.

  Returns:
    `(R * K,)` IoUs, repetition-major.
  """
  gt = metrics.as_boxes(gt, "gt")
  cover = np.asarray(cover)
  if cover.shape != (len(gt),):
    raise ValueError(f"{what}: cover has {cover.shape[0]} labels for "
                     f"{len(gt)} GT rows")
  w, h = float(resolution[0]), float(resolution[1])
  keep = cover[1:] > 0
  g = metrics.clip_boxes_got10k(gt[1:], w, h)
  out = []
  for k, p in enumerate(preds):
    p = metrics.as_boxes(p, "pred")
    if p.shape != gt.shape:
      raise metrics.ResultLengthError(
          f"{what} (repetition {k + 1}): result shape {p.shape} != ground "
          f"truth shape {gt.shape} (GOT-10k requires equal lengths)")
    p = metrics.clip_boxes_got10k(p[1:], w, h)
    out.append(metrics.iou_got10k(p, g)[keep])
  return np.concatenate(out) if out else np.zeros((0,))


def evaluate_trackingnet(seqs: Sequence[tuple[str, np.ndarray,
                                              np.ndarray | None]]):
  """Devkit scores. `seqs`: (name, gt (N,4), pred (M,4) or None if missing).

  Returns:
    (overall, per_sequence, overall curves). Coverage is frame-pooled, the
    three areas sequence-weighted.
  """
  per_seq, results = {}, []
  for name, gt, pred in seqs:
    r = trackingnet_sequence(pred, gt)
    results.append(r)
    per_seq[name] = _tn_scores(r.success, r.precision, r.norm_precision,
                               float(np.mean(r.covered)))
  if not results:
    raise ValueError("no sequences to evaluate")
  curves = {k: np.mean([getattr(r, k) for r in results], axis=0)
            for k in ("success", "precision", "norm_precision")}
  coverage = float(np.mean(np.concatenate([r.covered for r in results])))
  overall = _tn_scores(curves["success"], curves["precision"],
                       curves["norm_precision"], coverage)
  return overall, per_seq, curves


def _tn_scores(s, pr, npr, coverage) -> dict[str, float]:
  return {"success_trapz": metrics.trapz_unit(s),
          "precision_trapz": metrics.trapz_unit(pr),
          "norm_precision_trapz": metrics.trapz_unit(npr),
          "coverage": coverage}


def _ao_scores(ious: np.ndarray) -> dict[str, float]:
  if not len(ious):  # every frame has cover 0: the toolkit's mean is NaN
    return {"ao": float("nan"), "sr_050": float("nan"),
            "sr_075": float("nan")}
  return {"ao": float(np.mean(ious)), "sr_050": float(np.mean(ious > 0.5)),
          "sr_075": float(np.mean(ious > 0.75))}


def evaluate_got10k(seqs: Sequence[tuple[str, np.ndarray, list, np.ndarray,
                                         tuple[float, float]]]):
  """GOT-10k official. `seqs`: (name, gt, runs, cover, (W, H)).

  Returns:
    (overall pooled AO/SR, per-sequence AO/SR pooled over runs, curves).
  """
  per_seq, pooled = {}, []
  for name, gt, runs, cover, res in seqs:
    ious = got10k_sequence_ious(runs, gt, cover, res, what=name)
    pooled.append(ious)
    per_seq[name] = _ao_scores(ious)
  if not pooled:
    raise ValueError("no sequences to evaluate")
  ious = np.concatenate(pooled)
  curve = metrics.success_curve(ious, metrics.success_thresholds(101),
                                max(len(ious), 1))
  return _ao_scores(ious), per_seq, {"success": curve}


def evaluate_oxuva(tracks: Sequence[tuple[str, dict, dict]]):
  """OxUvA official. `tracks`: (name, labels, predictions), see
  `longterm.oxuva_assess_track`.

  Returns:
    (overall from pooled counts, per-track scores, {}).
  """
  total, per_seq = longterm.OxuvaCounts(), {}
  for name, labels, preds in tracks:
    c = longterm.oxuva_assess_track(labels, preds, what=name)
    total = total + c
    per_seq[name] = longterm.oxuva_quality(c)
  if not per_seq:
    raise ValueError("no tracks to evaluate")
  return longterm.oxuva_quality(total), per_seq, {}
