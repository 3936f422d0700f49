"""The paper's ablations in miniature, on the demo's synthetic data.

  python -m gt_jax.ablations --workdir runs/ablations [--demo_workdir DIR]
      [--steps N] [--seeds 0 1 ...]

Three models of the demo config are trained per seed (same data, same
schedule; only the named switch differs):
  cross      `demo`               cross-query loss, query-guided RPN
  single     `demo_single_query`  one random instance per pair (paper Eq. 6
                                  without the cross-query average)
  unmod      `demo_unmodulated`   the RPN sees no query (rpn_query_guided
                                  False); RoI head still query-guided
and measured:
  Table 3  cross vs single: success AUC / precision on a distractor-heavy
           LaSOT-layout test set (3-4 look-alikes, no absences) and on the
           demo's test set;
  Table 1  QG-RPN (cross) vs unmodulated RPN (unmod): proposal AR@1/10/100
           on every visible frame of the demo's test set;
  Table 2  QG-RPN vs QG-RCNN of the same model (cross): the proposals
           ranked by RPN objectness vs the RoI head's class-1 detections
           (decoded, after the final NMS) ranked by score.
Recall is `gt_jax.evaluation.recall.run_recall` (what `evaluate.py recall`
prints): AR@k (COCO style) is the mean over IoU thresholds 0.5:0.05:0.95 of
the share of frames whose top-k boxes contain one with legacy +1 IoU >= the
threshold; R@k at 0.5 is reported too. Outputs WORKDIR/ablations.json and
ablations.md.
Every stage resumes like the demo (trained models and result files are
reused).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from typing import Any, Mapping, Sequence

import numpy as np

from gt_jax.config import load_config
from gt_jax.data.synthetic import domains
from gt_jax.data.synthetic import layouts
from gt_jax.data.synthetic import scenario
from gt_jax.demo import run as demo
from gt_jax.demo.training import log
from gt_jax.demo.training import train_demo
from gt_jax.errors import run_main
from gt_jax.evaluation import benchmarks
from gt_jax.evaluation import protocols
from gt_jax.evaluation import recall
from gt_jax.evaluation import report
from gt_jax.tracking.engine import SearchEngine

ARMS = {"cross": "demo", "single": "demo_single_query",
        "unmod": "demo_unmodulated"}
TOP_K = (1, 10, 100)
# Distractor-heavy videos for Table 3: many look-alikes, target always in
# view (absences would measure re-detection, not discrimination).
DISTRACTOR_SET = dict(num_videos=6, num_frames=60, seed=1)


# ---------------------------------------------------------------------------
# Data.


def distractor_test_set(out_dir: str, num_videos: int = 6,
                        num_frames: int = 60, seed: int = 1,
                        height: int = 128, width: int = 160) -> str:
  """Writes (or reuses) a LaSOT-layout set of distractor-heavy videos.

  Returns:
    The root folder (`<category>/<name>/img`, `testing_set.txt`).
  """
  # The package exports the function `generate`, which shadows the module.
  generate = importlib.import_module("gt_jax.data.synthetic.generate")
  params = dict(num_videos=num_videos, num_frames=num_frames, seed=seed,
                height=height, width=width, version=2)
  marker = os.path.join(out_dir, "params.json")
  if os.path.isfile(marker):
    with open(marker, encoding="utf-8") as f:
      if json.load(f) == params:
        return out_dir
    raise FileExistsError(f"{marker}: made with other parameters; remove "
                          f"{out_dir}")
  profile = scenario.Profile(num_absences=(0, 0), num_occlusions=(0, 1),
                             full_occlusion_prob=0.0,
                             num_distractors=(3, 4), num_clutter=(1, 2))
  names, counts = [], {}
  for i in range(num_videos):
    rng = np.random.default_rng([seed, 7, i])
    plan = scenario.plan_video(rng, num_frames, height, width, profile,
                               domains.TEST)
    category = domains.KIND_CLASSES[plan.target.sprite.kind][0]
    counts[category] = counts.get(category, 0) + 1
    name = f"{category}-{counts[category]}"
    seq_dir = os.path.join(out_dir, category, name)
    truths = generate.render_video_files(plan, os.path.join(seq_dir, "img"))
    layouts.write_lasot_sequence(seq_dir, layouts.lasot_labels(truths),
                                 f"the {category} among look-alikes")
    names.append(name)
  with open(os.path.join(out_dir, "testing_set.txt"), "w",
            encoding="utf-8") as f:
    f.write("\n".join(names))
  with open(marker, "w", encoding="utf-8") as f:
    json.dump(params, f)
  return out_dir


def load_records(root: str) -> list[Any]:
  return benchmarks.load_benchmark("lasot", root, demo.lasot_names(root))


# ---------------------------------------------------------------------------
# Recall.


def recall_table(res: recall.RecallResult, stage: str) -> dict[str, float]:
  """One stage of a `RecallResult` -> {"AR@k", "R@k" (IoU 0.5), "frames"}."""
  out = {}
  ar, r50 = res.average_recall(stage), res.recall(stage, 0.5)
  for j, k in enumerate(res.ks):
    out[f"AR@{k}"] = float(ar[j])
    out[f"R@{k}"] = float(r50[j])
  out["frames"] = res.num_frames
  return out


# ---------------------------------------------------------------------------
# The job.


def _scores(records, results_dir, trackers) -> dict[str, dict[str, float]]:
  out = {}
  for proto in (None, "neuron"):
    p = protocols.get_protocol("lasot", proto)
    for name in trackers:
      overall, _, _ = report.evaluate_tracker(
          p, records, os.path.join(results_dir, name))
      out.setdefault(name, {})[f"{p.name}_success_auc"] = float(
          overall["success_auc"])
      out[name][f"{p.name}_precision_20px"] = float(
          overall["precision_20px"])
  return out


def run(workdir: str, seeds: Sequence[int] = (0,), steps: int | None = None,
        demo_workdir: str = "", config: str = "",
        data_dir: str = "", progress: bool = True) -> dict[str, Any]:
  """Trains the arms, runs the measurements, writes the tables."""
  os.makedirs(workdir, exist_ok=True)
  base = config or demo.DEFAULT_CONFIG.rsplit(":", 1)[0]
  demo_cfg = load_config(base + ":demo")
  cache = os.path.expanduser(demo_cfg.data.cache_dir or "~/.cache/gt_jax")
  pairs_per_epoch = demo_cfg.global_batch_size / demo_cfg.optim.epochs
  paths = demo.prepare_data(data_dir or os.path.join(cache,
                                                     demo.DATA_SUBDIR))
  dis_root = distractor_test_set(os.path.join(workdir, "distractor_test"),
                                 **DISTRACTOR_SET)
  test = load_records(paths["lasot_test"])
  dis = load_records(dis_root)
  result: dict[str, Any] = dict(seeds=list(seeds), steps=steps, tables={})
  per_seed = []
  for seed in seeds:
    overrides = [f"seed={seed}"]
    if steps:
      # Keep the demo's 12-"epoch" shape (lr x0.1 at 8/12 and 11/12).
      overrides += [f"total_steps={steps}", "data.epoch_size="
                    f"{max(1, int(steps * pairs_per_epoch))}"]
    models, row = {}, {}
    for arm, variant in ARMS.items():
      cfg = demo.demo_config(f"{base}:{variant}", paths, overrides)
      wd = os.path.join(workdir, f"seed{seed}", arm)
      if arm == "cross" and demo_workdir and seed == 0:
        wd = demo_workdir  # reuse the demo's model (same config)
      log(f"ablation seed {seed}: {arm} ({variant}) in {wd}")
      t0 = time.time()
      models[arm] = SearchEngine(cfg, train_demo(cfg, wd, progress)[0])
      row[f"train_s_{arm}"] = round(time.time() - t0, 1)
    res = os.path.join(workdir, f"seed{seed}", "results")
    # Table 3: cross vs single on both test sets.
    for set_name, records in (("distractor", dis), ("demo_test", test)):
      for arm in ("cross", "single"):
        demo.track_into(models[arm], records,
                        os.path.join(res, set_name, arm), progress=progress)
      row[f"table3_{set_name}"] = _scores(records, os.path.join(res,
                                                                set_name),
                                          ("cross", "single"))
    # Tables 1 and 2: proposal recall on the demo test set (recomputed).
    for arm in ("cross", "unmod"):
      rr = recall.run_recall(models[arm], test, TOP_K, batch_size=8,
                             progress=progress)
      row[f"recall_{arm}"] = {"rpn": recall_table(rr, "QG-RPN"),
                              "rcnn": recall_table(rr, "QG-RCNN")}
    per_seed.append(row)
  result["per_seed"] = per_seed
  result["tables"] = _aggregate(per_seed)
  with open(os.path.join(workdir, "ablations.json"), "w",
            encoding="utf-8") as f:
    json.dump(result, f, indent=1)
  md = markdown(result)
  with open(os.path.join(workdir, "ablations.md"), "w",
            encoding="utf-8") as f:
    f.write(md)
  return result


def _mean_std(values: Sequence[float]) -> str:
  v = np.asarray(values, float)
  return (f"{v.mean():.3f}" if len(v) == 1 else
          f"{v.mean():.3f} ± {v.std(ddof=1):.3f}")


def _aggregate(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  t3 = {}
  for set_name in ("distractor", "demo_test"):
    for arm in ("cross", "single"):
      for key in rows[0][f"table3_{set_name}"][arm]:
        t3.setdefault(set_name, {}).setdefault(arm, {})[key] = _mean_std(
            [r[f"table3_{set_name}"][arm][key] for r in rows])
  rec = {}
  for name, arm, head in (("QG-RPN", "cross", "rpn"),
                          ("unmodulated RPN", "unmod", "rpn"),
                          ("QG-RCNN", "cross", "rcnn")):
    rec[name] = {k: _mean_std([r[f"recall_{arm}"][head][k] for r in rows])
                 for k in rows[0][f"recall_{arm}"][head] if k != "frames"}
    rec[name]["frames"] = rows[0][f"recall_{arm}"][head]["frames"]
  return dict(table3=t3, recall=rec)


def markdown(result: Mapping[str, Any]) -> str:
  """The three tables as markdown."""
  t = result["tables"]
  n = len(result["seeds"])
  lines = [f"# Ablations ({n} seed{'s' if n > 1 else ''}: "
           f"{result['seeds']}; mean ± std over seeds)", "",
           "## Table 3: cross-query vs single-query loss", "",
           "| test set | loss | success AUC (LaSOT official) | success AUC "
           "(neuron) | precision@20px (neuron) |", "|---|---|---|---|---|"]
  for set_name, arms in t["table3"].items():
    for arm, s in arms.items():
      lines.append(f"| {set_name} | {arm}-query | "
                   f"{s['lasot_official_success_auc']} | "
                   f"{s['neuron_success_auc']} | "
                   f"{s['neuron_precision_20px']} |")
  for title, names in (
      ("Table 1: QG-RPN vs unmodulated RPN (same backbone)",
       ("QG-RPN", "unmodulated RPN")),
      ("Table 2: QG-RPN vs QG-RCNN (same model, same proposals)",
       ("QG-RPN", "QG-RCNN"))):
    lines += ["", f"## {title}", "",
              "| proposals | " + " | ".join(f"AR@{k}" for k in TOP_K) +
              " | " + " | ".join(f"R@{k} (IoU 0.5)" for k in TOP_K) +
              " | frames |", "|---" * (2 * len(TOP_K) + 2) + "|"]
    for name in names:
      r = t["recall"][name]
      lines.append(f"| {name} | " + " | ".join(r[f"AR@{k}"] for k in TOP_K)
                   + " | " + " | ".join(r[f"R@{k}"] for k in TOP_K) +
                   f" | {r['frames']} |")
  return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the ablations; errors are one stderr line and status 1 (`--debug`
  or GT_JAX_DEBUG=1: the traceback)."""
  return run_main("python -m gt_jax.ablations", _main, argv)


def _main(argv: Sequence[str]) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m gt_jax.ablations", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--demo_workdir", default="",
                      help="reuse this demo run's model as seed 0's "
                      "cross-query arm (same schedule)")
  parser.add_argument("--steps", type=int, default=None,
                      help="training steps of every arm (default: the "
                      "demo config's)")
  parser.add_argument("--seeds", type=int, nargs="+", default=[0])
  parser.add_argument("--data_dir", default="")
  parser.add_argument("--no_progress", action="store_true")
  args = parser.parse_args(argv)
  if args.demo_workdir and args.steps:
    parser.error("--demo_workdir needs the demo's own schedule (no --steps)")
  if args.demo_workdir and not any(
      os.path.isdir(os.path.join(args.demo_workdir, d))
      for d in ("model", "checkpoints")):
    # Else the cross-query arm would silently train afresh in that folder.
    raise FileNotFoundError(f"--demo_workdir {args.demo_workdir}: no demo run "
                            "there (no model/ or checkpoints/)")
  result = run(args.workdir, args.seeds, args.steps, args.demo_workdir,
               data_dir=args.data_dir, progress=not args.no_progress)
  print(markdown(result))
  return 0


if __name__ == "__main__":
  sys.exit(main())
