"""`evaluate.py run` and `evaluate.py recall`: parsers and handlers.

  python evaluate.py run --benchmark lasot --root data/LaSOT \
      --checkpoint ckpt/globaltrack --results results/lasot [--batch-size 4]
  python evaluate.py recall --benchmark otb --root data/OTB2015 \
      --checkpoint ckpt/globaltrack --out reports/recall --frame-stride 10

`run` writes `RESULTS/<tracker-name>/...` in the benchmark's layout (see
`gt_jax.evaluation.runner`); re-running the same command resumes (finished
sequences are skipped). The folder records what produced it
(`provenance.json`: weights fingerprint, settings, benchmark, layout); a
rerun with another model or other settings is refused unless `--retrack`
(see `gt_jax.evaluation.provenance`). A sequence whose frames cannot be read
is reported and skipped; the exit status is then 1.

Without `--config`, the config a checkpoint directory records (its `info`:
`config` spec or `variant`) is used, else the default config; weights that
do not fit the model are a one-line error naming the variables.

sequences are skipped). Several processes (hosts): run the same command
once per process with `--coordinator_address HOST:PORT --num_processes N
--process_id I`, or with `--distributed` inside SLURM / Open MPI / TPU / GKE
(JAX detects the cluster). Each process tracks its own share of the
sequences and writes each result file once (atomically); all processes then
wait at a barrier, and process 0 alone writes the TrackingNet zip and the
report. (`--process-index/--process-count` without a coordinator shard too,
but cannot wait for each other: run `evaluate.py report` after all finish.)

Imports of jax and the model are deferred to the handlers, so that
`evaluate.py --help` and `report` stay fast.

Wiring (evaluate.py):
  add_run_parser(sub); add_recall_parser(sub)
  ...; return args.handler(args, unknown)   # unknown: --config.k=v overrides
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DEFAULT_CONFIG = os.path.join(_REPO, "configs", "globaltrack_r50_fpn.py")


def add_model_args(p: argparse.ArgumentParser) -> None:
  """--config / --checkpoint / --random-init (shared with track.py)."""
  p.add_argument("--config", default=None,
                 help="config file[:variant]; override fields with "
                 "--config.key=value (default: the config the checkpoint "
                 "records, else configs/globaltrack_r50_fpn.py)")
  g = p.add_mutually_exclusive_group(required=True)
  g.add_argument("--checkpoint",
                 help="orbax checkpoint dir (python -m gt_jax.convert)")
  g.add_argument("--random-init", type=int, metavar="SEED",
                 help="random weights (smoke tests only)")


def _add_data_args(p: argparse.ArgumentParser) -> None:
  from gt_jax.evaluation import benchmarks
  p.add_argument("--benchmark", required=True,
                 choices=sorted(benchmarks.BENCHMARKS))
  p.add_argument("--root", required=True,
                 help="the benchmark folder in its own layout")
  p.add_argument("--subset", default=None,
                 help="'available', a split name, or comma-separated "
                 "sequence names")
  p.add_argument("--workers", type=int, default=4,
                 help="frame-decoding threads")
  p.add_argument("--no-progress", action="store_true")


def add_run_parser(subparsers: Any) -> argparse.ArgumentParser:
  """Adds `run` (track a benchmark, write result files)."""
  p = subparsers.add_parser("run", help="track a benchmark with a checkpoint "
                            "and write result files (resumable)")
  _add_data_args(p)
  add_model_args(p)
  p.add_argument("--results", required=True, help="results folder; files go "
                 "to RESULTS/<tracker-name>/")
  p.add_argument("--tracker-name", default="GlobalTrack")
  p.add_argument("--batch-size", type=int, default=1,
                 help="sequences per device step")
  p.add_argument("--layout", default=None,
                 help="otb | got10k | trackingnet | oxuva (default: the "
                 "benchmark's own)")
  p.add_argument("--frame-stride", type=int, default=1,
                 help="track every k-th frame (oxuva only)")
  p.add_argument("--prefetch", type=int, default=4,
                 help="frames decoded ahead per sequence slot")
  p.add_argument("--distributed", action="store_true",
                 help="join a cluster detected by JAX (SLURM, Open MPI, "
                 "TPU, GKE) through jax.distributed.initialize()")
  g = p.add_argument_group("multi-process", "all three, or none")
  g.add_argument("--coordinator_address", default=None, metavar="HOST:PORT")
  g.add_argument("--num_processes", type=int, default=None)
  g.add_argument("--process_id", type=int, default=None)
  p.add_argument("--process-index", type=int, default=None)
  p.add_argument("--process-count", type=int, default=None)
  p.add_argument("--retrack", action="store_true",
                 help="the results folder was produced by another model or "
                 "other settings: move it to RESULTS/.replaced/ and track "
                 "again (default: refuse)")
  p.set_defaults(handler=handle_run)
  return p


def add_recall_parser(subparsers: Any) -> argparse.ArgumentParser:
  """Adds `recall` (AR@k of QG-RPN proposals and QG-RCNN detections)."""
  p = subparsers.add_parser("recall", help="AR@k of the QG-RPN proposals "
                            "and QG-RCNN detections (paper Tables 1-2)")
  _add_data_args(p)
  add_model_args(p)
  p.add_argument("--out", required=True,
                 help="writes recall.json, recall.md, recall.png")
  p.add_argument("--ks", default="1,5,10,100,500,1000",
                 help="comma-separated candidate counts")
  p.add_argument("--frame-stride", type=int, default=1)
  p.add_argument("--max-frames", type=int, default=None,
                 help="scored frames per sequence at most")
  p.add_argument("--max-sequences", type=int, default=None)
  p.add_argument("--batch-size", type=int, default=1,
                 help="sequences per device step")
  p.set_defaults(handler=handle_recall)
  return p


def recorded_config(checkpoint: str | None) -> str:
  """The config spec to use when `--config` is omitted.

  A checkpoint's `info` may record `config` (a spec, e.g. by
  `python -m gt_jax.convert --config`) or `variant` (train.py's export):
  the spec if its file exists, else the default file with that variant,
  else the default config.
  """
  if not checkpoint:
    return DEFAULT_CONFIG
  from gt_jax import checkpoint as ckpt_lib
  info = ckpt_lib.restore_info(checkpoint)
  spec = info.get("config")
  if isinstance(spec, str) and spec:
    path = spec.rpartition(":")[0] if ".py:" in spec else spec
    if os.path.isfile(path):
      return spec
  variant = info.get("variant")
  if isinstance(variant, str) and variant:
    return f"{DEFAULT_CONFIG}:{variant}"
  return DEFAULT_CONFIG


def load_engine(config: str | None, overrides: Sequence[str] = (),
                checkpoint: str | None = None,
                random_init: int | None = None):
  """Config + weights -> (cfg, `SearchEngine`).

  `config=None`: the checkpoint's recorded config (`recorded_config`).

  Raises:
    ConfigError, FileNotFoundError (no checkpoint), ValueError (not a
    checkpoint), CheckpointMismatchError: weights that do not fit the model
    (naming the first variables and the config used).
  """
  import jax
  from gt_jax import checkpoint as ckpt_lib
  from gt_jax.config import load_config
  from gt_jax.model.build import build_model, init_variables
  from gt_jax.tracking.engine import SearchEngine
  spec = config or recorded_config(checkpoint)
  cfg = load_config(spec, overrides)
  model = build_model(cfg.model, cfg.get("compute_dtype", "float32"))
  if checkpoint:
    variables = ckpt_lib.restore_variables(checkpoint)
    expected = jax.eval_shape(
        lambda: init_variables(model, jax.random.PRNGKey(0)))
    how = "given" if config else "recorded or default"
    ckpt_lib.check_variables_fit(
        variables, expected, checkpoint,
        hint=f" built from the {how} config {spec}; pass "
        "the --config it was trained with")
  else:
    variables = init_variables(model, jax.random.PRNGKey(int(random_init)))
  engine = SearchEngine(cfg, variables, model)
  engine.config_spec = spec  # what was loaded (for provenance records).
  return cfg, engine


def _overrides(extra: Sequence[str], command: str) -> list[str]:
  bad = [a for a in extra if not a.startswith("--config.")]
  if bad:
    raise ValueError(f"evaluate.py {command}: unrecognized arguments: "
                     f"{' '.join(bad)}")
  return list(extra)


def _records(args):
  """The selected sequences; none is an error that says why."""
  from gt_jax.data.errors import DatasetLayoutError
  from gt_jax.evaluation import benchmarks
  if getattr(args, "workers", 0) < 0:  # was silently accepted
    raise ValueError(f"--workers {args.workers}: must be >= 0")
  subset = args.subset
  if subset and subset != benchmarks.AVAILABLE and "," in subset:
    subset = [s for s in subset.split(",") if s]
  records = benchmarks.load_benchmark(args.benchmark, args.root, subset)
  if not records:
    raise DatasetLayoutError(
        args.root, f"no {args.benchmark} sequences selected "
        f"(--subset {args.subset or 'default'}); is --root a "
        f"{args.benchmark} folder in its own layout, with its sequence "
        "list non-empty?")
  return records


def handle_run(args: argparse.Namespace, extra: Sequence[str] = ()) -> int:
  """Tracks the benchmark; returns the exit code (1 when a sequence failed;
  raises the project's errors, see `gt_jax.errors.run_main`)."""
  import jax
  from gt_jax.evaluation import provenance
  from gt_jax.evaluation import runner
  overrides = _overrides(extra, "run")
  coordinated = _initialize(args)
  records = _records(args)
  cfg, engine = load_engine(args.config, overrides, args.checkpoint,
                            args.random_init)
  out = os.path.join(args.results, args.tracker_name)
  layout = args.layout or runner.default_layout(args.benchmark)
  record = provenance.make_provenance(
      cfg, jax.device_get(engine.variables), checkpoint=args.checkpoint,
      config=engine.config_spec, benchmark=args.benchmark, layout=layout,
      frame_stride=args.frame_stride)
  count = (args.process_count if args.process_count is not None else
           jax.process_count())
  if args.retrack and count > 1:
    raise ValueError("--retrack with several processes: run it once with "
                     "one process (or move the folder away yourself)")
  moved = provenance.check_or_record(out, record, retrack=args.retrack)
  if moved:
    print(f"previous results of {out} moved to {moved}", file=sys.stderr)
  s = runner.run_benchmark(
      engine, records, out, batch_size=args.batch_size, layout=layout,
      frame_stride=args.frame_stride, num_workers=args.workers,
      prefetch=args.prefetch, process_index=args.process_index,
      process_count=args.process_count, progress=not args.no_progress)
  print(f"{out}: tracked {s.sequences} sequences ({s.frames} frames, "
        f"{s.fps:.2f} frames/s), {s.skipped} already done")
  # Every process reaches the barrier, failed sequences or not.
  args.is_reporter = _finish_shards(args, coordinated, out, records)
  for name, reason in s.failed:
    print(f"evaluate.py run: sequence {name} failed: {reason}",
          file=sys.stderr)
  if s.failed:
    print(f"evaluate.py run: error: {len(s.failed)} sequence(s) failed "
          "(listed above); fix their frames and rerun the same command to "
          "track them (finished sequences are kept)", file=sys.stderr)
    return 1
  return 0


def _initialize(args: argparse.Namespace) -> bool:
  """Joins the other processes; True when they can wait for each other."""
  from gt_jax.training import sharding
  if args.coordinator_address is not None or args.distributed:
    if args.process_index is not None or args.process_count is not None:
      raise ValueError("--process-index/--process-count are taken from the "
                       "coordinator; do not pass them with "
                       "--coordinator_address or --distributed")
  if args.coordinator_address is None and args.distributed:
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize()
    return True
  if sharding.maybe_initialize_distributed(args.coordinator_address,
                                           args.num_processes,
                                           args.process_id):
    return True
  import jax
  return jax.process_count() > 1


def _finish_shards(args: argparse.Namespace, coordinated: bool, out: str,
                   records) -> bool:
  """Waits for every process (barrier); True on the one that reports."""
  from gt_jax.evaluation import runner
  from gt_jax.training import hosts
  if coordinated:
    hosts.barrier("evaluate-run-done")
    reporter = hosts.is_primary()
  else:
    count = args.process_count or 1
    reporter = count == 1
    if not reporter and (args.process_index or 0) == 0:
      print("evaluate.py run: sharded with --process-index/--process-count: "
            "run `evaluate.py report` once every process has finished",
            file=sys.stderr)
  layout = args.layout or runner.default_layout(args.benchmark)
  if coordinated and reporter and layout == "trackingnet":
    # run_benchmark wrote it already unless other shares were still running.
    runner.write_trackingnet_zip(out, records)
  return reporter


def handle_recall(args: argparse.Namespace, extra: Sequence[str] = ()) -> int:
  """Runs the recall analysis; returns the exit code (raises the project's
  errors, see `gt_jax.errors.run_main`)."""
  from gt_jax.evaluation import recall
  overrides = _overrides(extra, "recall")
  try:
    ks = [int(k) for k in args.ks.split(",") if k.strip()]
  except ValueError:
    ks = []
  if not ks or min(ks) < 1:
    raise ValueError(f"--ks {args.ks!r}: need positive integers")
  records = _records(args)[:args.max_sequences]
  _, engine = load_engine(args.config, overrides, args.checkpoint,
                          args.random_init)
  res = recall.run_recall(engine, records, ks,
                          frame_stride=args.frame_stride,
                          max_frames=args.max_frames,
                          batch_size=args.batch_size,
                          num_workers=args.workers,
                          progress=not args.no_progress)
  os.makedirs(args.out, exist_ok=True)
  table = recall.format_table(res)
  with open(os.path.join(args.out, "recall.md"), "w", encoding="utf-8") as f:
    f.write(table + "\n")
  with open(os.path.join(args.out, "recall.json"), "w",
            encoding="utf-8") as f:
    json.dump(recall.to_json(res), f, indent=1)
  recall.plot_recall(res, os.path.join(args.out, "recall.png"))
  print(table)
  print("wrote", os.path.join(args.out, "recall.{json,md,png}"))
  return 0
