"""Tracks the demo test videos with saved weights in a chosen compute dtype.

  python tools/track_dtype.py --model W/model --dtype float32 --out OUT

Loads the weights of a demo run (`W/model`, written by `python -m gt_jax.demo`),
tracks the 8 held-out synthetic test videos with the demo config at
`--dtype` (float32 or bfloat16; the weights are the same f32 arrays either
way) and prints the success AUC (official LaSOT protocol, as the demo's
report), the precision@20px and the mean top-1 score. Used to separate bf16
*inference* from bf16 *training* (README, bf16 paragraph). Results go to
OUT/<name>/ (finished sequences are skipped on a rerun).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from gt_jax import checkpoint
from gt_jax.config import load_config
from gt_jax.demo import run as demo_run
from gt_jax.evaluation import benchmarks
from gt_jax.evaluation import protocols
from gt_jax.evaluation import report
from gt_jax.evaluation import results_io
from gt_jax.tracking.engine import SearchEngine


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawTextHelpFormatter)
  ap.add_argument("--model", required=True, help="orbax weights dir")
  ap.add_argument("--dtype", default="float32",
                  choices=("float32", "bfloat16"))
  ap.add_argument("--out", required=True, help="results folder")
  ap.add_argument("--name", default="", help="tracker name (default: dtype)")
  args = ap.parse_args(argv)

  base = load_config(demo_run.DEFAULT_CONFIG)
  cache = os.path.expanduser(base.data.cache_dir or "~/.cache/gt_jax")
  paths = demo_run.prepare_data(os.path.join(cache, "synthetic_demo"))
  cfg = demo_run.demo_config(demo_run.DEFAULT_CONFIG, paths,
                             [f"--config.compute_dtype={args.dtype}"])
  records = benchmarks.load_benchmark(
      "lasot", paths["lasot_test"],
      sorted(demo_run.lasot_names(paths["lasot_test"])))
  name = args.name or args.dtype
  tracker_dir = os.path.join(args.out, name)
  engine = SearchEngine(cfg, checkpoint.restore_variables(args.model))
  demo_run.track_into(engine, records, tracker_dir, progress=False)
  p = protocols.get_protocol("lasot", None)
  overall, _, _ = report.evaluate_tracker(p, records, tracker_dir)
  scores = np.concatenate([
      results_io.read_values(results_io.find_scores_file(tracker_dir, r.name))
      [1:] for r in records])
  out = dict(model=args.model, dtype=args.dtype,
             success_auc=round(float(overall["success_auc"]), 4),
             precision_20px=round(float(overall["precision_20px"]), 4))
  out["mean_score"] = round(float(scores.mean()), 4)
  print(json.dumps(out))
  return 0


if __name__ == "__main__":
  sys.exit(main())
