"""Data-parallel train step: XLA's partitioner against the by-hand shard_map.

  python bench/data_parallel.py [--variants tiny,demo] [--devices 4] \
      [--queries 2] [--steps 5]

Runs in one process with `--devices` forced CPU devices (set before jax is
imported). For each config variant it builds the train step twice on the
same mesh and the same random batch (global batch = the config's, at least
one pair per device):
  partitioner  `jax.value_and_grad(losses.batch_loss)` under `jax.jit` with
               a batch-sharded input (the step before the by-hand version);
  by_hand      the training loop's step (`step.sharded_loss_and_grads`:
               shard_map, one psum).
Prints one row each: compile seconds, median step seconds, the compiled
step's collectives (kind x count, how many inside while loops), and the
largest relative difference of the loss and of the updated parameters
between the two. On one 2-core host the forced devices share the cores, so
step times say what the collectives and moved feature maps cost there, not
what a real multi-device machine would gain.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--variants", default="tiny,demo")
  p.add_argument("--devices", type=int, default=4)
  p.add_argument("--queries", type=int, default=2)
  p.add_argument("--steps", type=int, default=5)
  args = p.parse_args(argv)
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_"
                             f"host_platform_device_count={args.devices}")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  sys.path[:0] = [root, os.path.join(root, "bench")]
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from gt_jax.config import load_config  # pylint: disable=g-import-not-at-top
  from gt_jax.training import loop, sharding  # pylint: disable=g-import-not-at-top
  from gt_jax.training import step as train_lib  # pylint: disable=g-import-not-at-top
  from train_speed import random_batch  # pylint: disable=g-import-not-at-top

  mesh = sharding.make_mesh(args.devices)
  print(f"{args.devices} CPU devices, M = {args.queries}, jax "
        f"{jax.__version__}")
  print("| variant | step | compile s | step s (median) | collectives "
        "| in loops | max rel. diff loss / params |")
  print("|---|---|---|---|---|---|---|")
  for variant in args.variants.split(","):
    cfg = load_config(os.path.join(root, "configs",
                                   f"globaltrack_r50_fpn.py:{variant}"))
    cfg.data.max_instances = args.queries
    b = max(cfg.global_batch_size, args.devices)
    b -= b % args.devices
    cfg.global_batch_size = b
    model, init_fn, by_hand = loop.compiled_fns(cfg, mesh)
    state0 = init_fn(jax.random.PRNGKey(0))
    mask = train_lib.trainable_mask(state0.params, cfg.optim.frozen_stages)
    plain = sharding.jit_train_step(train_lib.make_train_step(
        model,
        train_lib.loss_config_from(cfg),
        train_lib.optimizer_from_config(cfg, state0.params), mask,
        train_lib.schedule_from_config(cfg)), mesh)
    h, w = cfg.data.canvas_landscape
    batch = sharding.to_global(random_batch(b, args.queries, (h, w)), mesh)
    rng = sharding.replicate(jax.random.PRNGKey(1), mesh)
    first = {}
    for name, fn in (("partitioner", plain), ("by_hand", by_hand)):
      state = init_fn(jax.random.PRNGKey(0))
      t0 = time.perf_counter()
      compiled = fn.lower(state, batch, rng).compile()
      compile_s = time.perf_counter() - t0
      kinds, in_loops = sharding.collective_counts(compiled.as_text())
      times = []
      for i in range(args.steps + 1):
        t0 = time.perf_counter()
        state, metrics = compiled(state, batch, rng)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
        if i == 0:
          first[name] = (float(metrics["loss"]),
                         jax.tree.leaves(jax.device_get(state.params)))
      diff = ""
      if name == "by_hand":
        (l0, p0), (l1, p1) = first["partitioner"], first["by_hand"]
        rel = max(float(np.max(np.abs(a - c)) / (np.max(np.abs(a)) + 1e-12))
                  for a, c in zip(p0, p1))
        diff = f"{abs(l1 - l0) / abs(l0):.1e} / {rel:.1e}"
      coll = ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items()))
      print(f"| {variant} | {name} | {compile_s:.1f} | "
            f"{np.median(times[1:]):.3f} | {coll} | {in_loops} | {diff} |",
            flush=True)


if __name__ == "__main__":
  main()
