"""Speed of the parameter-free legacy ops at the official test size.

Prints the median wall time (ms) of the jitted ops on the default backend
(and the first call, compile included):
  nms            greedy NMS of 1000 / 2000 clustered boxes (RPN-like; a
                 spread-out and a dense, heavily suppressed set),
  roi_align      multilevel RoIAlign of 1000 RoIs, 7x7x256, P2..P5 of an
                 800x1344 canvas (800x1333 image padded to 32),
  rpn_proposals  5 levels of an 800x1344 canvas, test cfg (1000/1000/1000)
                 and train cfg (2000/2000/2000).

  python bench/ops_speed.py [--repeats 10] [--channels 256]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from gt_jax.boxes import anchors as anchor_lib
from gt_jax.ops.nms import nms
from gt_jax.ops.proposals import rpn_proposals
from gt_jax.ops.roi_align import multilevel_roi_align

CANVAS = (800, 1344)
IMG_HW = (800, 1333)


def _median_ms(fn, args, repeats: int) -> tuple[float, float]:
  """Returns (compile + first run ms, median ms of `repeats` runs)."""
  t0 = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = (time.perf_counter() - t0) * 1e3
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append((time.perf_counter() - t0) * 1e3)
  return first, statistics.median(times)


def _clustered_boxes(rng, n: int, spread: float = 30.0) -> np.ndarray:
  """Boxes jittered around 20 centres (small spread: heavy suppression)."""
  centres = rng.uniform([0, 0], [IMG_HW[1], IMG_HW[0]], (20, 2))
  c = centres[rng.integers(0, 20, n)] + rng.normal(0, spread, (n, 2))
  wh = rng.uniform(20, 300, (n, 2)) if spread > 10 else rng.uniform(
      80, 120, (n, 2))
  return np.concatenate([c - wh / 2, c + wh / 2], 1).astype(np.float32)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--channels", type=int, default=256)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  rows = []

  for n in (1000, 2000):
    for spread in (30.0, 6.0):
      boxes = jnp.asarray(_clustered_boxes(rng, n, spread))
      scores = jnp.asarray(rng.random(n).astype(np.float32))
      fn = jax.jit(lambda b, s, n=n: nms(b, s, 0.7, n))
      timing = _median_ms(fn, (boxes, scores), args.repeats)
      kept = int(np.asarray(fn(boxes, scores)[1]).sum())
      rows.append((f"nms {n} boxes, kept {kept}", *timing))

  c = args.channels
  feats = [
      jnp.asarray(rng.normal(size=(-(-CANVAS[0] // s), -(-CANVAS[1] // s),
                                   c)).astype(np.float32))
      for s in (4, 8, 16, 32)
  ]
  rois = jnp.asarray(_clustered_boxes(rng, 1000, 60.0))
  fn = jax.jit(multilevel_roi_align)
  rows.append((f"multilevel roi_align 1000 RoIs x 7x7x{c}",
               *_median_ms(fn, (feats, rois), args.repeats)))

  anchors = [jnp.asarray(a) for a in anchor_lib.all_level_anchors(CANVAS)]
  logits = [jnp.asarray(rng.normal(size=len(a)).astype(np.float32))
            for a in anchors]
  deltas = [jnp.asarray(rng.normal(scale=0.3, size=(len(a), 4)).astype(
      np.float32)) for a in anchors]
  img_hw = jnp.asarray(IMG_HW, jnp.int32)
  for pre in (1000, 2000):
    fn = jax.jit(lambda l, d, a, hw, pre=pre: rpn_proposals(
        l, d, a, hw, pre, pre, pre, 0.7))
    rows.append((f"rpn_proposals 5 levels, nms_pre {pre} "
                 f"({sum(len(a) for a in anchors)} anchors)",
                 *_median_ms(fn, (logits, deltas, anchors, img_hw),
                             args.repeats)))

  print(f"backend: {jax.default_backend()} ({jax.devices()[0].device_kind}),"
        f" median of {args.repeats}")
  width = max(len(r[0]) for r in rows)
  print(f"{'op':<{width}}  {'first ms':>9}  {'median ms':>9}")
  for name, first, med in rows:
    print(f"{name:<{width}}  {first:9.1f}  {med:9.2f}")


if __name__ == "__main__":
  main()
