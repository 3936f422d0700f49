"""Forward, input gradient and filter gradient of single convolutions.

Times, for ResNet-50-FPN layer shapes at the official 800x1344 canvas, the
three convolutions of a training step's conv layer as `gt_jax/ops/conv.py`
computes them (forward and input gradient through lax, filter gradient as
one matmul per kernel tap), plus one tap's matmul alone and a square
matmul as the machine's reference rate:

  python bench/conv_grad_speed.py [--runs 3] [--layers fpn_p2,layer2,narrow]

Prints a table: ms and GFLOP/s per part, and each part's time over the
forward's. Where the filter gradient stands well above the forward, the
train step loses its FLOP rate (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from perf_table import matmul_peak  # pylint: disable=g-import-not-at-top,wrong-import-position
from timing import median_time  # pylint: disable=g-import-not-at-top,wrong-import-position

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

from gt_jax.ops import conv as conv_lib  # pylint: disable=g-import-not-at-top

# name -> (H, W, C_in, C_out, kernel): 3x3 stride-1 layers of the step.
LAYERS = {
    "fpn_p2": (200, 336, 256, 256, 3),   # FPN output conv / RPN conv on P2
    "layer2": (100, 168, 128, 128, 3),   # ResNet-50 layer2 conv2
    "narrow": (200, 336, 64, 64, 3),     # 64-channel 3x3 (layer1 width)
}


def measure(h: int, w: int, ci: int, co: int, k: int,
            runs: int) -> dict[str, float]:
  """Seconds of each part for one image: fwd, dx, dw, one tap's matmul."""
  x = jax.random.normal(jax.random.PRNGKey(0), (1, h, w, ci))
  kern = jax.random.normal(jax.random.PRNGKey(1), (k, k, ci, co)) * 0.05
  pad = (k - 1) // 2
  pads = ((pad, pad), (pad, pad))
  fwd = jax.jit(lambda a, b: conv_lib._lax_conv(a, b, (1, 1), pads))  # pylint: disable=protected-access
  g = fwd(x, kern)
  dx = jax.jit(lambda gy, b: jax.linear_transpose(
      lambda v: conv_lib._lax_conv(v, b, (1, 1), pads),  # pylint: disable=protected-access
      jax.ShapeDtypeStruct(x.shape, x.dtype))(gy)[0])
  dw = jax.jit(lambda a, gy: conv_lib.filter_grad(a, gy, (k, k), (1, 1),
                                                  pads))
  tap = jax.jit(lambda a, gy: jnp.einsum("nhwi,nhwo->io", a, gy))
  return {"forward": median_time(lambda: fwd(x, kern), runs),
          "input grad": median_time(lambda: dx(g, kern), runs),
          "filter grad": median_time(lambda: dw(x, g), runs),
          "one tap matmul": median_time(lambda: tap(x, g), runs)}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--runs", type=int, default=3)
  p.add_argument("--layers", default=",".join(LAYERS))
  args = p.parse_args(argv)
  peak = matmul_peak(jnp.float32, 2048, args.runs)["gflops_per_s"]
  print(f"square 2048 matmul: {peak:.1f} GFLOP/s ({jax.devices()[0]})\n")
  print("| layer | H x W, Ci -> Co | part | ms | GFLOP/s | x forward |")
  print("|---|---|---|---|---|---|")
  for name in filter(None, args.layers.split(",")):
    h, w, ci, co, k = LAYERS[name]
    gflop = 2 * h * w * k * k * ci * co / 1e9
    times = measure(h, w, ci, co, k, args.runs)
    for part, s in times.items():
      work = gflop / (k * k) if part == "one tap matmul" else gflop
      print(f"| {name} | {h}x{w}, {ci} -> {co} | {part} | {s * 1e3:.0f} | "
            f"{work / s:.0f} | {s / times['forward']:.2f} |", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
