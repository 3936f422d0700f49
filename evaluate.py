"""Evaluation command line: `run`, `report`, `recall`.

  python evaluate.py report --benchmark lasot --root data/LaSOT
      --results results/lasot --out reports/lasot [--protocol pytracking]

`report` scores every tracker folder under --results with the benchmark's
official protocol (or a --protocol variant: matlab, got10k, pytracking,
neuron) and writes OUT/report.json, OUT/report.md and the curve plots
(shared/reference/metrics.md §11). `run` (track a benchmark with a
checkpoint) and `recall` (proposal recall) are not available yet.
"""

from __future__ import annotations

import argparse
import logging
import sys

from gt_jax.evaluation import protocols


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
  p.add_argument("--no-plots", action="store_true")


def _report(args) -> int:
  from gt_jax.evaluation import report  # pylint: disable=g-import-not-at-top
  rep, curves = report.build_report(args.benchmark, args.root, args.results,
                                    args.protocol, args.box_format,
                                    args.trackers, exclude=[args.out])
  paths = report.write_report(rep, curves, args.out, plots=not args.no_plots)
  print(report.markdown_table(rep))
  for p in paths:
    print("wrote", p)
  failed = {n: t["error"] for n, t in rep["trackers"].items() if "error" in t}
  for n, e in failed.items():
    print(f"evaluate.py report: tracker {n} not scored: {e}", file=sys.stderr)
  # Some trackers scored: the report is usable (errors are recorded in it).
  return 1 if len(failed) == len(rep["trackers"]) else 0


def _not_available(args) -> int:
  print(f"evaluate.py {args.command}: not available yet (only `report` is "
        "implemented)", file=sys.stderr)
  return 2


def main(argv: list[str] | None = None) -> int:
  logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", required=True)
  _add_report(sub)
  # TODO(eval-run): `run` and `recall` are owned by another change; these
  # stubs only say so.
  for name, text in (("run", "track a benchmark with a checkpoint"),
                     ("recall", "proposal recall analysis")):
    sub.add_parser(name, help=f"{text} (not available yet)")
  args, unknown = parser.parse_known_args(argv)
  if args.command == "report":
    if unknown:
      parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
      return _report(args)
    except (ValueError, OSError) as e:
      print(f"evaluate.py report: error: {e}", file=sys.stderr)
      return 1
  return _not_available(args)


if __name__ == "__main__":
  sys.exit(main())
