"""Trains GlobalTrack (QG-RCNN).

  python train.py --config configs/globaltrack_r50_fpn.py[:variant] \
      --workdir DIR [--config.key=value ...] [--dry_run]

The schedule (steps, epochs, decay steps, lr) is derived from the config
(gt_jax/training/schedule.py), printed at start and written to
DIR/schedule.json with the resolved DIR/config.json; `--dry_run` prints it
and exits. A run resumes from DIR automatically; rerunning a finished run is
a no-op. SIGTERM/SIGINT (on any process) save a checkpoint and exit 0.
Metrics go to DIR/metrics.jsonl and TensorBoard events to DIR/tb.

Multi-process (several hosts, or several processes on one machine): run the
same command once per process with
  --coordinator_address HOST:PORT --num_processes N --process_id I
or none of them inside SLURM / Open MPI / TPU / GKE (detected by JAX).
"""

import argparse
import os
import sys
import traceback

import jax

from gt_jax import config as config_lib
from gt_jax.errors import run_main
from gt_jax.training import schedule as schedule_lib
from gt_jax.training import sharding


def _main(argv: list[str]) -> int:
  overrides, rest = config_lib.split_config_args(argv)
  parser = argparse.ArgumentParser(prog="train.py",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--config", required=True,
                      help="config file, optionally :variant")
  parser.add_argument("--workdir", required=True, help="output directory")
  parser.add_argument("--no_progress", action="store_true",
                      help="disable the progress bar")
  parser.add_argument("--debug", action="store_true",
                      help="show the full traceback of an error (also: "
                      "GT_JAX_DEBUG=1); default: one line on stderr")
  parser.add_argument("--dry_run", action="store_true",
                      help="print the resolved schedule and exit")
  sharding.add_distributed_args(parser)
  args = parser.parse_args(rest)
  sharding.check_launch_args(args.coordinator_address, args.num_processes,
                             args.process_id)
  cfg = config_lib.load_config(args.config, overrides)
  plan = schedule_lib.resolve_schedule(cfg)
  if args.dry_run:
    print(plan.describe())
    return 0
  from gt_jax.training import loop as train_loop  # pylint: disable=g-import-not-at-top
  # Missing data roots / init_checkpoint: one line now, not after compiling.
  train_loop.check_inputs(cfg, args.workdir)
  sharding.initialize_from_args(args)
  result = train_loop.train(cfg, args.workdir, progress=not args.no_progress)
  if not result.last_metrics:
    print(f"step {result.step}: already finished")
    return 0
  loss = result.last_metrics["loss"]
  print(f"step {result.step}: loss {loss:.4f}"
        f"{' (stopped by signal)' if result.preempted else ''}")
  return 0


def _exit_now_if_multiprocess(_: BaseException) -> None:
  """A crash in one of several processes: exit at once, since a normal exit
  would wait at jax.distributed's shutdown barrier for processes that may be
  waiting for this one."""
  if jax.distributed.is_initialized() and jax.process_count() > 1:
    traceback.print_exc()
    sys.stderr.flush()
    os._exit(1)  # pylint: disable=protected-access


def main(argv: list[str] | None = None) -> int:
  """Trains; errors (config, paths, a non-finite abort) are one stderr line
  and status 1 (`--debug` or GT_JAX_DEBUG=1: the traceback)."""
  return run_main("train.py", _main, argv, on_crash=_exit_now_if_multiprocess)


if __name__ == "__main__":
  sys.exit(main())
