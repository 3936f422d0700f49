"""Tracking speed: per-frame latency, compile time, memory, GFLOP/s.

  python bench/track_speed.py                      # official + tiny
  python bench/track_speed.py --variants tiny --runs 20

For each config variant: a random-init model (weights do not change the
cost), a Tracker initialised on one synthetic frame, then
  compile   ahead-of-time lower + compile of the search step (one canvas),
  step      median wall time of the compiled search step alone (device),
  track     median wall time of `Tracker.track` (host preprocessing
            + transfer + step + result), after warm-up,
  GFLOP/s   XLA cost-analysis flops of the compiled step / median step time,
  memory    peak process RSS so far (cumulative: run small variants
            first, as the default does), and XLA's argument + temp buffer sizes
            (device memory_stats where the backend reports them).
The official variant uses a 480x800 frame, which rescales to 800x1333
(canvas 800x1344); the tiny variant a 96x128 frame (canvas 128x160).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_time  # pylint: disable=g-import-not-at-top,wrong-import-position

from gt_jax.config import load_config  # pylint: disable=g-import-not-at-top
from gt_jax.model.build import build_model, init_variables
from gt_jax.tracking.tracker import Tracker

CONFIG = "configs/globaltrack_r50_fpn.py"
FRAMES = {"": (480, 800), "tiny": (96, 128)}


def _frame(seed: int, hw: tuple[int, int]) -> np.ndarray:
  rng = np.random.default_rng(seed)
  small = rng.integers(0, 256, (hw[0] // 8 + 1, hw[1] // 8 + 1, 3))
  img = np.kron(small, np.ones((8, 8, 1)))[:hw[0], :hw[1]]
  return img.astype(np.uint8)


def bench_variant(variant: str, runs: int, warmup: int) -> dict[str, object]:
  cfg = load_config(f"{CONFIG}:{variant}" if variant else CONFIG)
  model = build_model(cfg.model)
  variables = init_variables(model, jax.random.PRNGKey(0))
  hw = FRAMES[variant]
  tracker = Tracker(cfg, variables, model)
  f0, f1 = _frame(0, hw), _frame(1, hw)
  tracker.init(f0, (hw[1] * 0.4, hw[0] * 0.4, hw[1] * 0.2, hw[0] * 0.2))

  t0 = time.perf_counter()
  lowered = tracker.lower_search(f1)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", float("nan")))
  mem = compiled.memory_analysis()
  xla_mb = (mem.argument_size_in_bytes + mem.temp_size_in_bytes) / 2**20

  pre = tracker.engine.preprocess(f1, "frame")
  args = jax.device_put(
      (tracker.variables, pre.image, np.asarray(pre.img_hw, np.int32),
       np.float32(pre.scale),
       tracker._query.kernels))  # pylint: disable=protected-access
  step_s = median_time(lambda: compiled(*args), runs, warmup)
  track_s = median_time(lambda: tracker.track(f1).score, runs, warmup)
  stats = jax.devices()[0].memory_stats() or {}
  dev_peak = stats.get("peak_bytes_in_use")
  return dict(
      variant=variant or "official",
      canvas="x".join(map(str, pre.image.shape[:2])),
      compile_s=compile_s, step_ms=step_s * 1e3, track_ms=track_s * 1e3,
      gflop=flops / 1e9, gflops=flops / 1e9 / step_s,
      rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      xla_mb=xla_mb,
      dev_peak_mb=None if dev_peak is None else dev_peak / 2**20)


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--variants", default="tiny,official",
                  help="comma list of config variants (official = default)")
  ap.add_argument("--runs", type=int, default=5)
  ap.add_argument("--warmup", type=int, default=2)
  a = ap.parse_args(argv)
  if a.runs < 5:
    ap.error("--runs must be >= 5 (the median of at least 5 runs)")
  rows = []
  for v in a.variants.split(","):
    rows.append(bench_variant("" if v == "official" else v, a.runs,
                              a.warmup))
  dev = jax.devices()[0]
  print(f"\nbackend: {dev.platform} ({dev.device_kind}), "
        f"{os.cpu_count()} CPUs, jax {jax.__version__}; median of {a.runs}"
        f" after {a.warmup} warm-up")
  print("| variant | canvas | compile s | step ms | track ms | GFLOP/frame |"
        " GFLOP/s | peak RSS MB | XLA arg+temp MB | device peak MB |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for r in rows:
    dp = "n/a" if r["dev_peak_mb"] is None else f"{r['dev_peak_mb']:.0f}"
    print(f"| {r['variant']} | {r['canvas']} | {r['compile_s']:.1f} | "
          f"{r['step_ms']:.1f} | {r['track_ms']:.1f} | {r['gflop']:.1f} | "
          f"{r['gflops']:.1f} | {r['rss_mb']:.0f} | {r['xla_mb']:.0f} | "
          f"{dp} |")


if __name__ == "__main__":
  main()
