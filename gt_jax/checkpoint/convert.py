"""Converts a PyTorch checkpoint into an orbax directory of Flax variables.

  python -m gt_jax.convert qg_rcnn_r50_fpn_coco_got10k_lasot.pth ckpt/gt
  python -m gt_jax.convert faster_rcnn_r50_fpn_1x.pth ckpt/coco_init \
      --format mmdet_faster_rcnn
  python -m gt_jax.convert resnet50-19c8e357.pth ckpt/r50 \
      --format torchvision_resnet50

Formats: `globaltrack` (the official tracker; every variable), and two
partial initialisations for training, `mmdet_faster_rcnn` (all but fc_cls,
fc_reg and the modulators) and `torchvision_resnet50` (the backbone). The
output holds the variables that were loaded (`restore_variables(dir)`) and an
`info` record with the source, format and the variable paths left to the
initialiser (`restore_info(dir)`); `train.py --config.init_checkpoint=dir`
merges them into freshly initialised variables. No torch needed.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from gt_jax import checkpoint
from gt_jax.config import load_config
from gt_jax.errors import GtJaxError
from gt_jax.errors import run_main


class OverwriteRefusedError(GtJaxError, FileExistsError):
  """`--overwrite` would replace something that is not a gt-jax checkpoint."""


def check_output(input_path: str, output_dir: str, overwrite: bool) -> None:
  """Refuses an output that would destroy anything but an old checkpoint.

  `--overwrite` replaces only a directory written by `save_variables`; never
  the input file, a folder that contains it, a plain file or any other
  folder (e.g. `.`).

  Raises:
    OverwriteRefusedError / FileExistsError: with the reason.
  """
  out = os.path.realpath(output_dir)
  src = os.path.realpath(input_path)
  if src == out or src.startswith(out.rstrip(os.sep) + os.sep):
    raise OverwriteRefusedError(
        f"output {output_dir!r} is or contains the input {input_path!r}; "
        "choose another output directory")
  if not os.path.lexists(output_dir):
    return
  if not overwrite:
    raise FileExistsError(f"output {output_dir!r} exists; pass --overwrite "
                          "to replace a checkpoint written by this command")
  if not checkpoint.is_variables_checkpoint(output_dir):
    what = "a file" if not os.path.isdir(output_dir) else (
        "a directory that is not a gt-jax checkpoint")
    raise OverwriteRefusedError(
        f"--overwrite refused: {output_dir!r} is {what}; only a checkpoint "
        "directory written by `python -m gt_jax.convert` or train.py is "
        "replaced")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
  p = argparse.ArgumentParser(
      prog="python -m gt_jax.convert",
      description="PyTorch .pth -> orbax Flax variables (torch-free).")
  p.add_argument("input", help="the .pth checkpoint")
  p.add_argument("output_dir", help="orbax checkpoint directory to create")
  p.add_argument("--format", default="globaltrack", choices=checkpoint.FORMATS,
                 help="key layout of the input (default: globaltrack)")
  p.add_argument("--config", default=None,
                 help="config whose `model` section the variables are for, "
                 "e.g. configs/globaltrack_r50_fpn.py:tiny (default: the "
                 "official ResNet-50-FPN)")
  p.add_argument("--overwrite", action="store_true",
                 help="replace an existing output directory")
  return p.parse_args(argv)


def _main(argv: Sequence[str]) -> int:
  args = _parse(argv)
  if not os.path.isfile(args.input):
    raise FileNotFoundError(f"input {args.input!r}: no such file")
  check_output(args.input, args.output_dir, args.overwrite)
  cfg = load_config(args.config) if args.config else None
  variables, scratch = checkpoint.load_weights(
      args.input, args.format, cfg.model if cfg is not None else None)
  info = {"source": args.input, "format": args.format,
          "config": args.config or "", "initialise_from_scratch": scratch}
  if cfg is not None:
    info["variant"] = cfg.get("variant", "")
  out = checkpoint.save_variables(args.output_dir, variables, info=info,
                                  overwrite=args.overwrite)
  counts = checkpoint.parameter_counts(variables)
  n_stats = sum(v.size for v in checkpoint.flatten_variables(
      variables.get("batch_stats", {})).values())
  print(f"wrote {out}")
  for group, n in counts.items():
    print(f"  {group:16s} {n:>12,d} parameters")
  print(f"  {'(BN statistics)':16s} {n_stats:>12,d} values")
  if scratch:
    print(f"  {len(scratch)} variables left to the initialiser, e.g. "
          + ", ".join(scratch[:4]))
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the conversion; returns the process exit status (errors: one
  line on stderr, status 1; `--debug` shows the traceback)."""
  return run_main("python -m gt_jax.convert", _main, argv)


if __name__ == "__main__":
  sys.exit(main())
