"""`evaluate.py report`: score trackers' result folders against a benchmark.

Reads the benchmark in its own layout (`benchmarks.load_benchmark`), one
sub-folder per tracker under the results folder (TrackingNet may also be a
`<tracker>.zip`), scores each tracker with the protocol of `protocols.py`,
and writes (metrics.md §11):

  OUT/report.json   {"benchmark", "protocol", "subset", "num_sequences",
                     "trackers": {name: {"overall": {...},
                                         "per_sequence": {seq: {...}}}}}
  OUT/report.md     a markdown table, trackers ordered by the main score
  OUT/*_plot.png    success / precision / normalised precision curves of all
                    trackers, legends ordered by score as the toolkits do.
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Mapping, Sequence

import numpy as np
from PIL import Image

from gt_jax.evaluation import benchmarks
from gt_jax.evaluation import longterm
from gt_jax.evaluation import protocols
from gt_jax.evaluation import results_io

log = logging.getLogger(__name__)

# Sequences per official split, for the "subset" flag (TrackingNet: per
# chunk; official: 2,511 per TRAIN_k and 511 in TEST).
_OFFICIAL_SIZES = {"otb": 100, "otb2013": 51, "tb50": 50, "uav123": 123,
                   "uav20l": 20, "lasot": 280, "tlp": 50, "got10k": 180,
                   "oxuva": 200}
_TN_CHUNK_SIZE = {"TEST": 511, "TRAIN": 2511}
# official (pytracking otbdataset.py, from OTB's config): Tiger1 initOmit.
_TIGER1_INIT_OMIT = 5
# The score each plot / table is ordered by (first key present wins).
_MAIN_KEYS = {
    "success": ("success_auc", "success_trapz", "ao"),
    "precision": ("precision_20px", "precision_trapz"),
    "norm_precision": ("norm_precision_020", "norm_precision_trapz",
                       "norm_precision_mean"),
}


class ReportError(ValueError):
  """The report cannot be built (missing results, unsupported benchmark)."""


# ---------------------------------------------------------------------------
# Ground truth.


def load_sequences(benchmark: str, root: str, subset=None):
  """Reads the benchmark's sequences on disk.

  Args:
    benchmark: benchmark key.
    root: the benchmark's folder.
    subset: None = the official sequences present on disk; else what
      `benchmarks.load_benchmark` takes (a split name or a list of names; a
      comma-separated string is split).

  Returns:
    (records, subset) where subset is True when fewer sequences than the
    official split were found.
  """
  b = benchmark.lower()
  if b not in benchmarks.BENCHMARKS:
    raise ReportError(f"benchmark {benchmark!r} has no reader; readers exist "
                      f"for {sorted(benchmarks.BENCHMARKS)}")
  if isinstance(subset, str) and "," in subset:
    subset = [n for n in subset.split(",") if n]
  records = benchmarks.load_benchmark(
      b, root, benchmarks.AVAILABLE if subset is None else subset,
      frames=False)
  if b == "lasot" and not records and subset is None:
    # A copy without any official test sequence: score what is on disk.
    names = sorted(
        s for c in os.listdir(root) if os.path.isdir(os.path.join(root, c))
        for s in os.listdir(os.path.join(root, c))
        if os.path.isdir(os.path.join(root, c, s)) and s.startswith(c + "-"))
    records = benchmarks.load_benchmark(b, root, names, frames=False)
  if b in ("trackingnet", "got10k", "oxuva"):
    first_only = [r.name for r in records if r.first_frame_only]
    if first_only:
      log.warning("%d %s sequences have only the first-frame box (test "
                  "split, scored by the server); they are left out",
                  len(first_only), b)
    records = [r for r in records if not r.first_frame_only]
  if not records:
    raise ReportError(f"no {b} sequences with annotations under {root}")
  if b == "trackingnet":
    chunks = {r.meta.get("chunk", "") for r in records}
    expected = sum(_TN_CHUNK_SIZE["TEST" if c == "TEST" else "TRAIN"]
                   for c in chunks)
  else:
    expected = _OFFICIAL_SIZES.get(b, len(records))
  subset = len(records) < expected
  if subset:
    log.warning("%s: %d of %d official sequences found; the report covers "
                "a subset", b, len(records), expected)
  return records, subset


def _lasot_absent(r) -> np.ndarray | None:
  if "full_occlusion" in r.meta and "out_of_view" in r.meta:
    return ((np.asarray(r.meta["full_occlusion"]) == 1) |
            (np.asarray(r.meta["out_of_view"]) == 1))
  return None


def _vot_gt(benchmark: str, r) -> np.ndarray:
  """GT with NaN rows where the target is absent (VOT's special region)."""
  gt = r.boxes.copy()
  absent = None
  if benchmark == "lasot":
    absent = _lasot_absent(r)
  elif benchmark == "tlp" and "lost" in r.meta:
    absent = np.asarray(r.meta["lost"]) == 1
  if absent is not None:
    gt[absent] = np.nan
  return gt


def _image_size(path: str) -> tuple[int, int] | None:
  """(W, H) of a frame, the VOT rasterisation bounds; None if unreadable
  (scoring from annotations alone)."""
  try:
    with Image.open(path) as im:
      return im.size
  except OSError:
    return None


# ---------------------------------------------------------------------------
# One tracker.


def evaluate_tracker(p: protocols.Protocol, records: Sequence,
                     tracker_path: str, box_format: str = "xywh"):
  """Scores one tracker's results.

  Returns:
    (overall, per_sequence, curves) as the `protocols.evaluate_*` drivers.
  """
  b = p.benchmark
  if p.kind == "trackingnet":
    res = results_io.TrackingNetResults(tracker_path)
    seqs = []
    for r in records:
      pred = res.get(r.name)
      if pred is not None:
        pred = results_io.convert_box_format(pred, box_format)
      else:
        log.warning("%s: no result for %s; scored as all-zero boxes",
                    tracker_path, r.name)
      seqs.append((r.name, r.boxes, pred))
    return protocols.evaluate_trackingnet(seqs)
  if p.kind == "got10k_ao":
    seqs = []
    for r in records:
      if "cover" not in r.meta or "resolution" not in r.meta:
        raise ReportError(f"{r.name}: cover.label or the meta_info.ini "
                          "resolution is missing")
      runs = [results_io.convert_box_format(x, box_format)
              for x in results_io.read_got10k_result(tracker_path, r.name)]
      seqs.append((r.name, r.boxes, runs, np.asarray(r.meta["cover"]),
                   tuple(r.meta["resolution"])))
    return protocols.evaluate_got10k(seqs)
  if p.kind == "oxuva":
    tracks = []
    for r in records:
      m = r.meta
      init = int(m["init_frame"])
      idx = np.flatnonzero(np.asarray(m["labelled"]))
      labels = {init + int(i): (bool(m["present"][i]),
                                tuple(m["normalized_boxes"][i]))
                for i in idx if i > 0}
      path = os.path.join(tracker_path, f"{r.name}.csv")
      tracks.append((r.name, labels, results_io.read_oxuva_csv(path)))
    return protocols.evaluate_oxuva(tracks)
  seqs, vot = [], []
  for r in records:
    path = results_io.find_result_file(tracker_path, r.name)
    if path is None:
      raise ReportError(f"{tracker_path}: no result file for sequence "
                        f"{r.name} ({r.name}.txt)")
    pred = results_io.read_boxes(path, p.comma_only, box_format)
    absent = _lasot_absent(r) if b == "lasot" else None
    gt = r.boxes
    if (p.kind == "pytracking" and b in ("otb", "otb2013")
        and r.name == "Tiger1"
        and len(gt) > _TIGER1_INIT_OMIT):
      # pytracking follows OTB's sequence config: Tiger1 starts at frame 6
      # (initOmit = 5). A full-length result file is cut the same way.
      if len(pred) == len(gt):
        pred = pred[_TIGER1_INIT_OMIT:]
      gt = gt[_TIGER1_INIT_OMIT:]
    seqs.append(protocols.SequenceInput(r.name, gt, pred, absent=absent,
                                        visible=r.visible, source=path))
    scores = results_io.find_scores_file(tracker_path, r.name)
    vot.append((r, pred, scores))
  overall, per_seq, curves = protocols.evaluate_otb_style(p, seqs)
  if all(s is not None for _, _, s in vot):
    _add_vot_lt(b, vot, overall, per_seq)
  return overall, per_seq, curves


def _add_vot_lt(benchmark, vot, overall, per_seq) -> None:
  """Adds VOT-LT precision/recall/F where per-frame scores exist."""
  inputs = []
  for r, pred, scores_path in vot:
    try:
      conf = results_io.read_values(scores_path).reshape(-1)
    except results_io.ResultFileError as e:
      log.warning("%s; VOT-LT metrics skipped", e)
      return
    n = len(r.boxes)
    bad = np.flatnonzero(~np.isfinite(conf))
    if len(bad):
      log.warning("%s:%d: score is not a number; VOT-LT metrics skipped",
                  scores_path, bad[0] + 1)
      return
    if len(conf) < n or len(pred) < n:
      log.warning("%s: scores or results shorter than the GT; VOT-LT "
                  "metrics skipped", scores_path)
      return
    size = _image_size(r.frame_paths[0]) if r.frame_paths else None
    if size is None:
      # Unbounded overlaps would silently change the numbers.
      log.warning("%s: no frame to read the image size from (VOT-LT bounds "
                  "overlaps by the image); VOT-LT metrics skipped",
                  r.frame_paths[0] if r.frame_paths else r.name)
      return
    inputs.append({"pred": pred[:n], "gt": _vot_gt(benchmark, r),
                   "confidence": conf[:n], "image_size": size})
  lt_overall, lt_seq = longterm.vot_longterm(inputs)
  overall.update(lt_overall)
  for (r, _, _), s in zip(vot, lt_seq):
    per_seq[r.name].update(s)


# ---------------------------------------------------------------------------
# The report.


def build_report(benchmark: str, root: str, results_dir: str,
                 protocol: str | None = None, box_format: str = "xywh",
                 trackers: Sequence[str] | None = None,
                 exclude: Sequence[str] = (), subset=None):
  """Scores every tracker folder under `results_dir`.

  Args:
    benchmark: benchmark key (`otb`, `lasot`, ...).
    root: the benchmark's folder.
    results_dir: one sub-folder (or TrackingNet zip) per tracker.
    protocol: None (official) or a variant of `protocols.VARIANTS`.
    box_format: `xywh`, or `xyxy` for neuron's corner result files.
    trackers: restrict to these tracker names.
    exclude: paths never taken for a tracker (e.g. the output folder when it
      lies inside `results_dir`).
    subset: which sequences (see `load_sequences`); None = all official
      sequences present.

  Returns:
    (report dict, {tracker: curves}).
  """
  p = protocols.get_protocol(benchmark, protocol)
  records, subset = load_sequences(p.benchmark, root, subset)
  found = results_io.list_trackers(results_dir,
                                   allow_zip=p.kind == "trackingnet")
  skip = {os.path.realpath(e) for e in exclude}
  found = {n: f for n, f in found.items() if os.path.realpath(f) not in skip}
  if trackers:
    missing = [t for t in trackers if t not in found]
    if missing:
      raise ReportError(f"{results_dir}: no results for trackers {missing}")
    found = {t: found[t] for t in trackers}
  report = {"benchmark": p.benchmark, "protocol": p.name, "subset": subset,
            "num_sequences": len(records), "trackers": {}}
  all_curves = {}
  for name, path in found.items():
    try:
      overall, per_seq, curves = evaluate_tracker(p, records, path,
                                                  box_format)
    except (ValueError, OSError) as e:
      # One bad tracker folder must not hide the others' scores; the error
      # is recorded in the report and logged.
      log.error("tracker %s: %s", name, e)
      report["trackers"][name] = {"error": str(e)}
      continue
    report["trackers"][name] = {"overall": overall, "per_sequence": per_seq}
    all_curves[name] = curves
  return report, all_curves


def _scored(report: Mapping) -> dict:
  return {n: t for n, t in report["trackers"].items() if "overall" in t}


def _main_score(overall: Mapping[str, float], kind: str) -> float:
  for k in _MAIN_KEYS[kind]:
    if k in overall:
      v = overall[k]
      return -math.inf if v is None or math.isnan(v) else v
  return -math.inf


def ranked(report: Mapping, kind: str = "success") -> list[str]:
  """Tracker names by descending main score of `kind` (ties: name order)."""
  t = _scored(report)
  if not t:
    return []
  key = kind
  if not any(k in next(iter(t.values()))["overall"] for k in _MAIN_KEYS[kind]):
    key = "success"
  return sorted(t, key=lambda n: (-_main_score(t[n]["overall"], key), n))


def markdown_table(report: Mapping) -> str:
  """A markdown table: one row per tracker, one column per overall metric."""
  trackers = _scored(report)
  if not trackers:
    return ""
  order = ranked(report, "success")
  if report["benchmark"] == "oxuva":
    order = sorted(trackers, key=lambda n: (
        -np.nan_to_num(trackers[n]["overall"]["MaxGM"], nan=-1.0), n))
  keys = list(next(iter(trackers.values()))["overall"])
  lines = [f"# {report['benchmark']} ({report['protocol']}"
           f"{', subset' if report.get('subset') else ''}, "
           f"{report.get('num_sequences', '?')} sequences)", "",
           "| tracker | " + " | ".join(keys) + " |",
           "|---|" + "---|" * len(keys)]
  for n in order:
    o = trackers[n]["overall"]
    lines.append(f"| {n} | " + " | ".join(f"{o.get(k, float('nan')):.4f}"
                                          for k in keys) + " |")
  return "\n".join(lines) + "\n"


def plot_curves(report: Mapping, curves: Mapping[str, Mapping],
                out_dir: str) -> list[str]:
  """Writes one PNG per curve type comparing all trackers (matplotlib Agg).

  Legends read `name [score]` and list trackers by descending score, as the
  got10k / pytracking / MATLAB toolkits do.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  p = protocols.get_protocol(report["benchmark"],
                             None if report["protocol"].endswith("_official")
                             else report["protocol"])
  xs = protocols.curve_thresholds(p)
  labels = {"success": ("Overlap threshold", "Success rate", "Success plot"),
            "precision": ("Location error threshold (px)", "Precision",
                          "Precision plot"),
            "norm_precision": ("Normalised location error threshold",
                               "Normalised precision",
                               "Normalised precision plot")}
  paths = []
  if report["benchmark"] == "oxuva":
    paths.append(_plot_oxuva(report, out_dir, plt))
  for kind, (xlabel, ylabel, title) in labels.items():
    names = [n for n in ranked(report, kind) if kind in curves.get(n, {})]
    if not names:
      continue
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for n in names:
      score = _main_score(report["trackers"][n]["overall"], kind)
      ax.plot(xs[kind][:len(curves[n][kind])], curves[n][kind],
              label=f"{n} [{score:.3f}]")
    ax.set(xlabel=xlabel, ylabel=ylabel, ylim=(0, 1.02),
           title=f"{title}: {report['benchmark']} ({report['protocol']})")
    ax.grid(True, linestyle=":")
    # Legend order = descending score (the toolkits' convention).
    ax.legend(loc="lower left" if kind == "success" else "lower right",
              fontsize=8)
    fig.tight_layout()
    path = os.path.join(out_dir, f"{kind}_plot.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)
  return paths


def _plot_oxuva(report: Mapping, out_dir: str, plt) -> str:
  """TPR against TNR per tracker, with the MaxGM segment to (1, 0)."""
  t = _scored(report)
  order = sorted(t, key=lambda n: (
      -np.nan_to_num(t[n]["overall"]["MaxGM"], nan=-1.0), n))
  fig, ax = plt.subplots(figsize=(5, 5))
  for n in order:
    o = t[n]["overall"]
    (line,) = ax.plot([o["TNR"]], [o["TPR"]], "o",
                      label=f"{n} [{o['MaxGM']:.3f}]")
    ax.plot([o["TNR"], 1.0], [o["TPR"], 0.0], ":", color=line.get_color())
  ax.set(xlabel="TNR", ylabel="TPR", xlim=(0, 1.02), ylim=(0, 1.02),
         title=f"OxUvA ({report['protocol']}), legend: MaxGM")
  ax.grid(True, linestyle=":")
  ax.legend(loc="lower left", fontsize=8)
  fig.tight_layout()
  path = os.path.join(out_dir, "oxuva_plot.png")
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def _json_safe(x):
  if isinstance(x, dict):
    return {k: _json_safe(v) for k, v in x.items()}
  if isinstance(x, (np.floating, float)):
    return float(x)
  if isinstance(x, (np.integer,)):
    return int(x)
  if isinstance(x, (np.bool_,)):
    return bool(x)
  return x


def write_report(report: Mapping, curves: Mapping, out_dir: str,
                 plots: bool = True) -> list[str]:
  """Writes report.json, report.md and the plots; returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  paths = [os.path.join(out_dir, "report.json"),
           os.path.join(out_dir, "report.md")]
  with open(paths[0], "w", encoding="utf-8") as f:
    json.dump(_json_safe(dict(report)), f, indent=1)
  with open(paths[1], "w", encoding="utf-8") as f:
    f.write(markdown_table(report))
  if plots:
    paths += plot_curves(report, curves, out_dir)
  return paths
