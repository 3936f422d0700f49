"""Train-step speed: compile time, step time and peak memory.

  python bench/train_speed.py [--variants tiny,default] [--queries 1,8] \
      [--batch 0] [--steps 3]

For every (config variant, M queries per pair) it compiles the sharded
train step of gt_jax.train_loop on a random batch of the config's landscape
canvas, then times `--steps` steps. Prints one table row each: compile
seconds, seconds per step, pairs per second, XLA's memory estimate of the
compiled step (arguments + outputs + temporaries) and the process peak RSS.
`--batch 0` uses the config's global_batch_size. With torch importable (or
`--torch_python` naming a venv that has it, see bench/torch_peer.py), the
default (official) variant is also timed against torchvision's Faster
R-CNN R50-FPN train step at the same size in the same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_peer  # pylint: disable=g-import-not-at-top,wrong-import-position

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

from gt_jax.training import sharding
from gt_jax.training import loop as train_loop
from gt_jax.config import load_config

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "configs", "globaltrack_r50_fpn.py")


def random_batch(b: int, m: int, canvas: tuple[int, int],
                 seed: int = 0) -> dict[str, np.ndarray]:
  """A training batch of `b` pairs with `m` valid instances each."""
  rs = np.random.RandomState(seed)
  h, w = canvas
  xy = rs.uniform(0, 0.6, (b, m, 2)) * [w, h]
  wh = rs.uniform(0.1, 0.35, (b, m, 2)) * [w, h]
  qb = np.concatenate([xy, xy + wh], -1).astype(np.float32)
  sb = (qb + rs.uniform(-4, 4, qb.shape)).clip(0, min(h, w) - 1)
  return dict(
      query_image=rs.randn(b, h, w, 3).astype(np.float32),
      search_image=rs.randn(b, h, w, 3).astype(np.float32),
      query_boxes=qb, search_boxes=sb.astype(np.float32),
      instance_valid=np.ones((b, m), bool),
      query_hw=np.tile([[h, w]], (b, 1)).astype(np.int32),
      search_hw=np.tile([[h, w]], (b, 1)).astype(np.int32))


def bench(variant: str, m: int, batch: int, steps: int) -> dict[str, float]:
  cfg = load_config(f"{CONFIG}:{variant}" if variant != "default" else CONFIG)
  cfg.data.max_instances = m
  if batch:
    cfg.global_batch_size = batch
  mesh = sharding.make_mesh()
  _, init_fn, step_fn = train_loop.compiled_fns(cfg, mesh)
  state = init_fn(jax.random.PRNGKey(0))
  rng = sharding.replicate(jax.random.PRNGKey(1), mesh)
  b = cfg.global_batch_size
  data = sharding.to_global(
      random_batch(b, m, tuple(cfg.data.canvas_landscape)), mesh)
  t0 = time.perf_counter()
  compiled = step_fn.lower(state, data, rng).compile()
  compile_s = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  xla_mb = float("nan")
  if mem is not None:
    xla_mb = (mem.argument_size_in_bytes + mem.output_size_in_bytes +
              mem.temp_size_in_bytes - mem.alias_size_in_bytes) / 2**20
  state, metrics = compiled(state, data, rng)  # warm-up
  jax.block_until_ready(metrics)
  t0 = time.perf_counter()
  for _ in range(steps):
    state, metrics = compiled(state, data, rng)
  jax.block_until_ready(metrics)
  step_s = (time.perf_counter() - t0) / steps
  rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  return dict(compile_s=compile_s, step_s=step_s, pairs_s=b / step_s,
              xla_mb=xla_mb, rss_mb=rss_mb, batch=b,
              loss=float(metrics["loss"]))


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--variants", default="tiny,default")
  p.add_argument("--queries", default="1,8")
  p.add_argument("--batch", type=int, default=0)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--torch_python", default="")
  p.add_argument("--no_peer", action="store_true")
  a = p.parse_args()
  print(f"devices: {jax.device_count()} x {jax.devices()[0].platform}")
  print(f"{'config':>8} {'M':>2} {'B':>2} {'compile s':>10} {'step s':>8} "
        f"{'pairs/s':>8} {'XLA MiB':>8} {'peak RSS MiB':>12} {'loss':>7}")
  ours = {}
  for variant in a.variants.split(","):
    for m in (int(x) for x in a.queries.split(",")):
      r = bench(variant, m, a.batch, a.steps)
      if variant == "default" and r["batch"] == 1:
        ours[m] = r["step_s"]
      print(f"{variant:>8} {m:>2} {r['batch']:>2} {r['compile_s']:>10.1f} "
            f"{r['step_s']:>8.3f} {r['pairs_s']:>8.2f} {r['xla_mb']:>8.0f} "
            f"{r['rss_mb']:>12.0f} {r['loss']:>7.3f}", flush=True)
  if ours and not a.no_peer:
    cfg = load_config(CONFIG)
    long_side, short_side = cfg.preprocess.scale
    peer = torch_peer.measure(short_side, long_side, sorted(ours),
                              max(2, a.steps), a.torch_python)
    if peer is not None:
      print(f"\ntorchvision Faster R-CNN R50-FPN train step (torch "
            f"{peer['torch']}, {peer['height']}x{peer['width']}):")
      for m, s in sorted(ours.items()):
        theirs = peer["train_s"][str(m)]
        print(f"  M = {m}: ours {s:.2f} s, peer {theirs:.2f} s, ours / peer "
              f"{s / theirs:.2f}")


if __name__ == "__main__":
  main()
