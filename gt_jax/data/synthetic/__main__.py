"""Command line: python -m gt_jax.data.synthetic --out DIR [options]."""

from __future__ import annotations

import argparse
import json
import sys
import time

from gt_jax.data.synthetic.generate import generate


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m gt_jax.data.synthetic",
      description="Writes the embedded synthetic tracking dataset "
      "(GOT-10k / LaSOT / COCO layouts) built from offline images.")
  parser.add_argument("--out", required=True, help="output folder")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--num-train", type=int, default=24)
  parser.add_argument("--num-val", type=int, default=6)
  parser.add_argument("--num-test", type=int, default=8)
  parser.add_argument("--num-heldout", type=int, default=None,
                      help="held-out videos (default: num-test)")
  parser.add_argument("--num-frames", type=int, default=60)
  parser.add_argument("--num-test-frames", type=int, default=None,
                      help="frames per test video (default 2 x num-frames)")
  parser.add_argument("--height", type=int, default=128)
  parser.add_argument("--width", type=int, default=160)
  parser.add_argument("--num-coco-images", type=int, default=40)
  parser.add_argument("--num-coco-val-images", type=int, default=8)
  parser.add_argument("--overwrite", action="store_true",
                      help="replace a synthetic dataset made with other args")
  parser.add_argument("--quiet", action="store_true")
  args = parser.parse_args(argv)
  start = time.time()
  try:
    paths = generate(
        args.out, seed=args.seed, num_train=args.num_train,
        num_val=args.num_val, num_test=args.num_test,
        num_heldout=args.num_heldout,
        num_frames=args.num_frames, num_test_frames=args.num_test_frames,
        height=args.height, width=args.width,
        num_coco_images=args.num_coco_images,
        num_coco_val_images=args.num_coco_val_images,
        overwrite=args.overwrite, verbose=not args.quiet)
  except (ValueError, TypeError, FileExistsError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if not args.quiet:
    print(f"[synthetic] finished in {time.time() - start:.1f} s")
  print(json.dumps(paths, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
