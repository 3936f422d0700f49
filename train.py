"""Trains GlobalTrack (QG-RCNN).

  python train.py --config configs/globaltrack_r50_fpn.py[:variant] \
      --workdir DIR [--config.key=value ...]

A run resumes from DIR automatically; SIGTERM/SIGINT save a checkpoint and
exit cleanly. Metrics go to DIR/metrics.jsonl (and TensorBoard if available).
Multi-host: launch one process per host; `jax.distributed.initialize()` runs
when a cluster environment is detected.
"""

import argparse
import sys

from gt_jax import config as config_lib
from gt_jax.errors import run_main
from gt_jax.training import sharding
from gt_jax.training import loop as train_loop


def main(argv: list[str]) -> int:
  overrides, rest = config_lib.split_config_args(argv)
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", required=True,
                      help="config file, optionally :variant")
  parser.add_argument("--workdir", required=True, help="output directory")
  parser.add_argument("--no_progress", action="store_true",
                      help="disable the progress bar")
  parser.add_argument("--debug", action="store_true",
                      help="show the full traceback of an error (also: "
                      "GT_JAX_DEBUG=1); default: one line on stderr")
  args = parser.parse_args(rest)
  sharding.maybe_initialize_distributed()
  cfg = config_lib.load_config(args.config, overrides)
  result = train_loop.train(cfg, args.workdir,
                            progress=not args.no_progress)
  loss = result.last_metrics.get("loss", float("nan"))
  print(f"step {result.step}: loss {loss:.4f}"
        f"{' (stopped by signal)' if result.preempted else ''}")
  return 0


if __name__ == "__main__":
  sys.exit(run_main("train.py", main, sys.argv[1:]))
