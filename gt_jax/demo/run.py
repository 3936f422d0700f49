"""The main job: synthetic data -> train the demo config -> evaluate -> report.

  python -m gt_jax.demo --workdir runs/demo [--config.key=value ...]

Runs on 2 CPU cores in under 30 minutes (measured numbers: README):
  1. data      generates the embedded synthetic dataset (cached by its
               manifest: a second run reuses it);
  2. train     trains `configs/globaltrack_r50_fpn.py:demo` from scratch
               (train_loop: resumes from WORKDIR/train, progress bar); the
               final weights go to WORKDIR/model (an orbax dir that
               `Tracker`, `evaluate.py` and `--config.init_checkpoint` read);
  3. evaluate  tracks both LaSOT-layout test sets (in distribution: new
               instances of the training kinds; held out: object kinds,
               textures and motions that training never shows) with the
               trained model, the same model untrained (its random init)
               and the "stay at the first box" baseline; one result file
               per sequence under WORKDIR/results/<set>/<tracker>/
               (finished sequences are skipped on a rerun);
  4. report    WORKDIR/report/: report.json, report.md (one table per set,
               visible-normalised AUCs and their ratio), success /
               precision plots per set (official LaSOT protocol: absent
               frames count as failures; the GlobalTrack paper's evaluator,
               neuron, in the tables) and annotated GIFs.
Interrupt at any time (Ctrl-C saves a checkpoint) and rerun the same command
to continue.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Any, Mapping, Sequence

import numpy as np

from gt_jax import config as config_lib
from gt_jax.config import load_config
from gt_jax.data import synthetic
from gt_jax.data.records import SequenceRecord
from gt_jax.data.synthetic.generate import FORMAT_VERSION as SYNTHETIC_FORMAT
from gt_jax.demo import report as demo_report
from gt_jax.demo.report import TEST_SETS
from gt_jax.demo.report import TRACKERS
from gt_jax.demo.training import log
from gt_jax.demo.training import train_demo
from gt_jax.demo.training import untrained_variables
from gt_jax.errors import run_main
from gt_jax.evaluation import benchmarks
from gt_jax.evaluation import results_io
from gt_jax.evaluation import runner
from gt_jax.tracking.engine import SearchEngine

# The demo's dataset: more training videos and stills than the generator's
# defaults (generation takes well under a minute); the test sets are
# identical for any num_train (every video has its own (seed, split, index)
# stream).
DEMO_DATA = dict(num_train=160, num_val=6, num_test=16, num_heldout=16,
                 num_frames=60, num_coco_images=300)
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DEFAULT_CONFIG = os.path.join(_REPO, "configs", "globaltrack_r50_fpn.py:demo")
# The default dataset folder under data.cache_dir; versioned with the
# generator's format so that an older cached dataset is left alone.
DATA_SUBDIR = f"synthetic_demo_v{SYNTHETIC_FORMAT}"


# ---------------------------------------------------------------------------
# Data.


def prepare_data(data_dir: str, **overrides: Any) -> dict[str, str]:
  """Generates (or reuses) the synthetic dataset; returns its paths."""
  args = dict(DEMO_DATA, **overrides)
  return synthetic.generate(data_dir, verbose=True, **args)


def demo_config(spec: str, paths: Mapping[str, str],
                overrides: Sequence[str] = ()) -> Any:
  """Loads `spec` and points its synthetic/coco sources at `paths`.

  Raises:
    ValueError: a `data.sources` entry is not synthetic/coco.
  """
  cfg = load_config(spec, overrides)
  roots = {"synthetic": paths["got10k"], "coco": paths["coco"]}
  sources = []
  for name, root, weight in cfg.data.sources:
    if name not in roots:
      raise ValueError(f"{spec}: data.sources entry {name!r} is not part of "
                       f"the synthetic demo data ({sorted(roots)})")
    sources.append((name, root or roots[name], float(weight)))
  cfg.data.sources = tuple(sources)
  return cfg


# ---------------------------------------------------------------------------
# Tracking (the shared engine; result files in the OTB layout).


def first_box_results(records: Sequence[SequenceRecord],
                      tracker_dir: str) -> int:
  """The "stay at the first box" baseline; returns sequences written."""
  n = 0
  for r in records:
    if runner.is_done("otb", tracker_dir, r):
      continue
    k = len(r)
    res = runner.SequenceResult(np.repeat(r.boxes[:1], k, axis=0),
                                np.ones(k), np.zeros(k), np.arange(k))
    runner.write_result("otb", tracker_dir, r, res, 0.0)
    n += 1
  return n


def track_into(engine: SearchEngine, records: Sequence[SequenceRecord],
               tracker_dir: str, batch_size: int = 8,
               progress: bool = True) -> int:
  """Tracks the unfinished `records` into `tracker_dir`; returns how many."""
  return runner.run_benchmark(engine, records, tracker_dir,
                              batch_size=batch_size, layout="otb",
                              num_workers=2, process_index=0,
                              process_count=1, progress=progress).sequences


# ---------------------------------------------------------------------------
# The whole job.


@dataclasses.dataclass
class DemoOptions:
  workdir: str
  config: str = DEFAULT_CONFIG
  overrides: Sequence[str] = ()
  data_dir: str = ""  # "" -> <data.cache_dir>/DATA_SUBDIR
  data_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  batch_size: int = 8
  progress: bool = True


def _timings(workdir: str, stage: str | None = None,
             seconds: float = 0.0) -> dict[str, float]:
  path = os.path.join(workdir, "timings.json")
  t = {}
  if os.path.isfile(path):
    with open(path, encoding="utf-8") as f:
      t = json.load(f)
  if stage is not None:
    t[stage] = round(t.get(stage, 0.0) + seconds, 1)
    with open(path, "w", encoding="utf-8") as f:
      json.dump(t, f, indent=1)
  return t


def run(opts: DemoOptions) -> dict[str, Any]:
  """Runs (or continues) the four stages; returns the report dict."""
  os.makedirs(opts.workdir, exist_ok=True)
  t0 = time.time()
  log("1/4 data: synthetic dataset")
  base = load_config(opts.config, opts.overrides)
  cache = os.path.expanduser(base.data.cache_dir or "~/.cache/gt_jax")
  data_dir = opts.data_dir or os.path.join(cache, DATA_SUBDIR)
  paths = prepare_data(data_dir, **opts.data_args)
  cfg = demo_config(opts.config, paths, opts.overrides)
  _timings(opts.workdir, "data_s", time.time() - t0)

  log(f"2/4 train: {cfg.variant}, {cfg.total_steps} steps of "
      f"{cfg.global_batch_size} pairs")
  t0 = time.time()
  trained, train_info = train_demo(cfg, opts.workdir, opts.progress)
  _timings(opts.workdir, "train_s", time.time() - t0)

  log("3/4 evaluate: tracking the in-distribution and held-out test sets")
  t0 = time.time()
  sets = {name: benchmarks.load_benchmark(
      "lasot", paths[key], sorted(lasot_names(paths[key])))
          for name, key in TEST_SETS.items()}
  results_dir = os.path.join(opts.workdir, "results")
  engine = SearchEngine(cfg, trained)
  untrained = engine.with_variables(untrained_variables(cfg))
  for name, records in sets.items():
    set_dir = os.path.join(results_dir, name)
    first_box_results(records, os.path.join(set_dir, TRACKERS[2]))
    track_into(engine, records, os.path.join(set_dir, TRACKERS[0]),
               opts.batch_size, opts.progress)
    track_into(untrained, records, os.path.join(set_dir, TRACKERS[1]),
               opts.batch_size, opts.progress)
  _timings(opts.workdir, "evaluate_s", time.time() - t0)

  log("4/4 report")
  out_dir = os.path.join(opts.workdir, "report")
  os.makedirs(out_dir, exist_ok=True)
  info = dict(config=opts.config, overrides=list(opts.overrides),
              data=dict(DEMO_DATA, **opts.data_args), train=train_info,
              timings_s=_timings(opts.workdir))
  rep = demo_report.make_report(sets, results_dir, out_dir, info)
  for name, gif in (("in_distribution", "demo.gif"),
                    ("held_out", "held_out.gif")):
    if not sets.get(name):
      continue
    record = max(sets[name], key=lambda r: np.sum(~r.visible))
    demo_report.write_gif(record, {
        n: results_io.read_boxes(os.path.join(results_dir, name, n,
                                              f"{record.name}.txt"))
        for n in (TRACKERS[0], TRACKERS[2])
    }, os.path.join(out_dir, gif))
  return rep


def lasot_names(root: str) -> list[str]:
  """Sequence names of a LaSOT-layout folder (`<cat>/<cat>-<k>`)."""
  with open(os.path.join(root, "testing_set.txt"), encoding="utf-8") as f:
    return [l.strip() for l in f if l.strip()]


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the demo; errors are one stderr line and status 1 (`--debug` or
  GT_JAX_DEBUG=1: the traceback)."""
  return run_main("python -m gt_jax.demo", _main, argv)


def _main(argv: Sequence[str]) -> int:
  argv = list(argv)
  overrides, rest = config_lib.split_config_args(argv)
  parser = argparse.ArgumentParser(
      prog="python -m gt_jax.demo", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True,
                      help="output folder (rerun to resume)")
  parser.add_argument("--config", default=DEFAULT_CONFIG,
                      help="config file:variant (default: the demo variant)")
  parser.add_argument("--data_dir", default="",
                      help="synthetic dataset folder (default: "
                      f"<data.cache_dir>/{DATA_SUBDIR})")
  parser.add_argument("--batch_size", type=int, default=8,
                      help="test sequences tracked in lock-step")
  parser.add_argument("--no_progress", action="store_true")
  args = parser.parse_args(rest)
  start = time.time()
  try:
    rep = run(DemoOptions(args.workdir, args.config, overrides,
                          args.data_dir, batch_size=args.batch_size,
                          progress=not args.no_progress))
  except KeyboardInterrupt as e:
    log(f"interrupted: {e or 'rerun the same command to resume'}")
    return 130
  out = os.path.join(args.workdir, "report")
  with open(os.path.join(out, "report.md"), encoding="utf-8") as f:
    print(f.read())
  s = rep["summary"]
  msg = (f"done in {time.time() - start:.0f} s (this session); report in "
         f"{out}/ (report.md, report.json, <set>/*_plot.png, demo.gif, "
         "held_out.gif)")
  if "ratio_held_out_to_in_distribution" in s:
    def verdict(ok: bool) -> str:
      return "reached" if ok else "NOT reached"
    msg += ("; visible-normalised AUC "
            f"{s['visible_normalised_auc_in_distribution']:.3f} in "
            f"distribution (target >= {s['target_visible_normalised_auc']}: "
            f"{verdict(s['reached_in_distribution'])}), "
            f"{s['visible_normalised_auc_held_out']:.3f} held out, ratio "
            f"{s['ratio_held_out_to_in_distribution']:.2f} (target >= "
            f"{s['target_ratio']}: {verdict(s['reached_ratio'])})")
  log(msg)
  return 0


if __name__ == "__main__":
  sys.exit(main())
