"""Evaluation command line: `run`, `report`, `recall`.

  python evaluate.py report --benchmark lasot --root data/LaSOT
      --results results/lasot --out reports/lasot [--protocol pytracking]

`report` scores every tracker folder under --results with the benchmark's
official protocol (or a --protocol variant: matlab, got10k, pytracking,
neuron) and writes OUT/report.json, OUT/report.md and the curve plots
(shared/reference/metrics.md §11). `run` tracks a benchmark with a
checkpoint (resumable), then reports (OUT defaults to RESULTS/report);
`recall` measures proposal recall (paper Tables 1-2):

  python evaluate.py run --benchmark lasot --root data/LaSOT \
      --checkpoint ckpt/globaltrack --results results/lasot [--batch-size 4]
  python evaluate.py recall --benchmark lasot --root data/LaSOT \
      --checkpoint ckpt/globaltrack --out reports/recall

Errors are one line on stderr with exit status 1; add `--debug` (or set
GT_JAX_DEBUG=1) for the full traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from gt_jax.errors import run_main
from gt_jax.evaluation import protocols
from gt_jax.evaluation import run_cli


def _add_report(sub) -> None:
  p = sub.add_parser("report", help="score result folders against a "
                     "benchmark and write report.json / report.md / plots")
  p.add_argument("--benchmark", required=True,
                 choices=sorted(protocols.BENCHMARKS))
  p.add_argument("--root", required=True,
                 help="the benchmark folder in its own layout")
  p.add_argument("--results", required=True,
                 help="one sub-folder per tracker (TrackingNet: or .zip)")
  p.add_argument("--out", required=True, help="output folder")
  p.add_argument("--protocol", default=None,
                 help="official (default) or one of "
                 f"{', '.join(protocols.VARIANTS[1:])}")
  p.add_argument("--trackers", nargs="*", default=None,
                 help="only these tracker folders")
  p.add_argument("--box-format", default="xywh", choices=("xywh", "xyxy"),
                 help="xyxy for neuron's corner-form result files")
  p.add_argument("--subset", default=None,
                 help="a split name or comma-separated sequence names "
                 "(default: every official sequence present)")
  p.add_argument("--no-plots", action="store_true")


def _report(args) -> int:
  from gt_jax.evaluation import report  # pylint: disable=g-import-not-at-top
  rep, curves = report.build_report(args.benchmark, args.root, args.results,
                                    args.protocol, args.box_format,
                                    args.trackers, exclude=[args.out],
                                    subset=args.subset)
  paths = report.write_report(rep, curves, args.out, plots=not args.no_plots)
  print(report.markdown_table(rep))
  for p in paths:
    print("wrote", p)
  failed = {n: t["error"] for n, t in rep["trackers"].items() if "error" in t}
  for n, e in failed.items():
    print(f"evaluate.py report: tracker {n} not scored: {e}", file=sys.stderr)
  # Some trackers scored: the report is usable (errors are recorded in it).
  return 1 if len(failed) == len(rep["trackers"]) else 0


def _run_then_report(args, unknown) -> int:
  """`run`: track the benchmark, then score the results folder."""
  rc = run_cli.handle_run(args, unknown)
  # Only one process reports, after every process has finished (barrier).
  if rc != 0 or args.no_report or not getattr(args, "is_reporter", False):
    return rc
  args.out = args.out or os.path.join(args.results, "report")
  # Score exactly what was tracked (the same --subset).
  args.protocol, args.box_format, args.trackers = None, "xywh", None
  args.no_plots = False
  try:
    return _report(args)
  except (ValueError, OSError) as e:
    # GOT-10k test / TrackingNet TEST have no public ground truth: the result
    # files are still written, only the local report is impossible.
    print(f"evaluate.py run: results written; no local report: {e}",
          file=sys.stderr)
    return 0


def _main(argv: list[str]) -> int:
  logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", required=True)
  _add_report(sub)
  run_parser = run_cli.add_run_parser(sub)
  run_parser.add_argument("--out", default=None,
                          help="report folder (default RESULTS/report)")
  run_parser.add_argument("--no-report", action="store_true",
                          help="only track; skip the report")
  run_parser.set_defaults(handler=_run_then_report)
  run_cli.add_recall_parser(sub)
  args, unknown = parser.parse_known_args(argv)
  if args.command == "report":
    if unknown:
      parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return _report(args)
  return args.handler(args, unknown)


def main(argv: list[str] | None = None) -> int:
  """Runs a command; errors are one stderr line and status 1 (`--debug` or
  GT_JAX_DEBUG=1: the traceback)."""
  return run_main("evaluate.py", _main, argv)


if __name__ == "__main__":
  sys.exit(main())
