"""One performance table: tracking, training, FLOP/s against a matmul peak.

  python bench/perf_table.py                       # CPU: official + demo
  python bench/perf_table.py --dtype bfloat16      # accelerators
  python bench/perf_table.py --sizes demo --train_sizes demo --json out.json

Rows (random-init weights: the cost does not depend on their values):
  track  size, B   search step of B sequences in lock-step, one target each
                   (the engine's lean top-1 step, `engine.compiled_steps`, what the batched
                   evaluation runs per frame): compile s, latency per step,
                   throughput in frames/s;
  train  size, M   one train step (`train_lib.make_train_step`, jitted as
                   train_loop does) of `--pairs` pairs with M instances each:
                   compile s, step time, pairs/s;
  matmul           an N x N x N matmul in the same dtype: the peak the other
                   rows' achieved FLOP/s are compared with;
  peer             torchvision's Faster R-CNN R50-FPN at the official size
                   (eval frame; train step with M boxes), measured in the
                   same run when torch is importable or `--torch_python`
                   names an interpreter that has it (bench/torch_peer.py
                   says how to install it; never a project dependency),
                   with our time / the peer's time for the matching rows.
Sizes: `official` = the paper config (ResNet-50-FPN, 800x1333 frames padded
to an 800x1344 canvas; training canvas 800x1344), `demo` = the demo config
(ResNet-18-FPN narrow, 128x160). FLOPs are XLA's cost analysis of the
compiled step; "peak MB" is the device's peak_bytes_in_use where the backend
reports it (GPU/TPU), else XLA's argument + output + temp size of the
compiled step (CPU). Process peak RSS is printed under the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_time  # pylint: disable=g-import-not-at-top,wrong-import-position
import torch_peer  # pylint: disable=g-import-not-at-top,wrong-import-position

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from gt_jax.tracking import engine  # pylint: disable=g-import-not-at-top
from gt_jax.tracking import search as inference  # pylint: disable=g-import-not-at-top
from gt_jax.training import step as train_lib  # pylint: disable=g-import-not-at-top
from gt_jax.config import load_config  # pylint: disable=g-import-not-at-top
from gt_jax.model.build import build_model, init_variables  # pylint: disable=g-import-not-at-top
from gt_jax.ops import conv as conv_lib  # pylint: disable=g-import-not-at-top

CONFIG = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "configs", "globaltrack_r50_fpn.py")
# (variant, tracking canvas, resized image size inside it).
SIZES = {"official": ("", (800, 1344), (800, 1333)),
         "demo": ("demo", (128, 160), (128, 160))}


def _cost(compiled: Any) -> tuple[float, float | None]:
  """(flops, XLA memory estimate in bytes) of a compiled function; donated
  arguments aliased to outputs are counted once."""
  flops = _flops(compiled.cost_analysis())
  mem = None
  try:
    ma = compiled.memory_analysis()
    mem = float(ma.argument_size_in_bytes + ma.output_size_in_bytes +
                ma.temp_size_in_bytes - ma.alias_size_in_bytes)
  except Exception:  # pylint: disable=broad-except
    pass  # not every backend implements it
  return flops, mem


def _device_peak() -> float | None:
  stats = jax.devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use")


def _compile(jitted: Any, *args) -> tuple[Any, float]:
  t0 = time.perf_counter()
  compiled = jitted.lower(*args).compile()
  return compiled, time.perf_counter() - t0


def _row(kind, size, batch, compile_s, step_s, items, flops, mem, dtype):
  peak = _device_peak()
  return dict(kind=kind, size=size, batch=batch, dtype=dtype,
              compile_s=compile_s, step_ms=step_s * 1e3,
              per_s=items / step_s, gflop=flops / 1e9,
              gflops_per_s=flops / step_s / 1e9,
              peak_mb=(peak if peak is not None else mem or float("nan"))
              / 2**20, peak_source="device" if peak is not None else "xla")


def matmul_peak(dtype: Any, n: int, runs: int) -> dict[str, float]:
  """Achieved FLOP/s of an n^3 matmul: the reference peak of this run."""
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
  b = jax.random.normal(jax.random.PRNGKey(1), (n, n), dtype)
  f = jax.jit(lambda x, y: x @ y)
  compiled, c = _compile(f, a, b)
  s = median_time(lambda: compiled(a, b), runs)
  return dict(kind="matmul", size=f"{n}^3", batch=1, dtype=str(
      jnp.dtype(dtype)), compile_s=c, step_ms=s * 1e3, per_s=1 / s,
              gflop=2 * n**3 / 1e9, gflops_per_s=2 * n**3 / s / 1e9,
              peak_mb=float("nan"), peak_source="-")


def _cfg(size: str, dtype: str):
  variant = SIZES[size][0]
  cfg = load_config(f"{CONFIG}:{variant}" if variant else CONFIG)
  cfg.compute_dtype = dtype
  return cfg


def bench_track(size: str, batch: int, dtype: str, runs: int) -> dict:
  cfg = _cfg(size, dtype)
  _, canvas, img_hw = SIZES[size]
  model = build_model(cfg.model, dtype)
  variables = init_variables(model, jax.random.PRNGKey(0))
  steps = engine.compiled_steps(model, inference.search_config(cfg))
  rng = np.random.RandomState(0)
  images = jnp.asarray(rng.randn(batch, *canvas, 3), jnp.float32)
  hw = jnp.asarray([img_hw] * batch, jnp.int32)
  scales = jnp.ones((batch,), jnp.float32)
  h, w = img_hw
  boxes = jnp.asarray([[[w * 0.4, h * 0.4, w * 0.6, h * 0.6]]] * batch,
                      jnp.float32)
  kernels = jax.block_until_ready(jax.vmap(
      lambda im, b: steps.query(variables, im, b))(images, boxes))
  # The batched runner's lean (top-1) step: what evaluation compiles.
  search = steps.search("top1", batched=True)
  compiled, c = _compile(search, variables, images, hw, scales, kernels)
  s = median_time(lambda: compiled(variables, images, hw, scales, kernels),
                  runs)
  flops, mem = _cost(compiled)
  return _row("track", size, f"B={batch}", c, s, batch, flops, mem, dtype)


class plain_convs:  # pylint: disable=invalid-name
  """Context: every model conv is lax's plain convolution (fresh traces)."""

  def __enter__(self):
    self._saved = conv_lib._conv  # pylint: disable=protected-access
    conv_lib._conv = conv_lib._lax_conv  # pylint: disable=protected-access
    jax.clear_caches()
    engine.compiled_steps.cache_clear()

  def __exit__(self, *exc):
    conv_lib._conv = self._saved  # pylint: disable=protected-access
    jax.clear_caches()
    engine.compiled_steps.cache_clear()


def bench_train(size: str, m: int, pairs: int, dtype: str,
                runs: int, remat: bool = False) -> dict:
  cfg = _cfg(size, dtype)
  cfg.data.max_instances = m
  cfg.model.remat_backbone = remat
  cfg.train.query_remat = remat
  canvas = tuple(cfg.data.canvas_landscape)
  model = build_model(cfg.model, dtype)
  variables = init_variables(model, jax.random.PRNGKey(0))
  optimizer = train_lib.optimizer_from_config(cfg, variables["params"])
  mask = train_lib.trainable_mask(variables["params"],
                                  cfg.optim.frozen_stages)
  step_fn = train_lib.make_train_step(
      model, train_lib.loss_config_from(cfg), optimizer, mask,
      train_lib.schedule_from_config(cfg))
  step = jax.jit(step_fn, donate_argnums=(0,))
  rng = np.random.RandomState(0)
  h, w = canvas
  xy = rng.uniform(0, 0.5, (pairs, m, 2)) * [w, h]
  wh = rng.uniform(0.1, 0.4, (pairs, m, 2)) * [w, h]
  qb = np.concatenate([xy, xy + wh], -1).astype(np.float32)
  batch = dict(
      query_image=jnp.asarray(rng.randn(pairs, h, w, 3), jnp.float32),
      search_image=jnp.asarray(rng.randn(pairs, h, w, 3), jnp.float32),
      query_boxes=jnp.asarray(qb), search_boxes=jnp.asarray(qb + 2.0),
      instance_valid=jnp.ones((pairs, m), bool),
      query_hw=jnp.asarray([[h, w]] * pairs, jnp.int32),
      search_hw=jnp.asarray([[h, w]] * pairs, jnp.int32))
  key = jax.random.PRNGKey(1)
  state = train_lib.init_state(variables, optimizer)
  compiled, c = _compile(step, state, batch, key)
  holder = [state]

  def one():
    holder[0], metrics = compiled(holder[0], batch, key)
    return metrics

  s = median_time(one, runs)
  _, mem = _cost(compiled)
  flops = _model_flops(step_fn, holder[0], batch, key)
  return _row("train", size, f"M={m}" + (" remat" if remat else ""), c, s,
              pairs, flops, mem, dtype)


def _model_flops(step_fn: Any, *args) -> float:
  """FLOPs of the train step's math: XLA's cost analysis of the step lowered
  with lax's plain convolutions and not compiled. The compiled step's own
  count undercounts: the matmul filter gradients of ops/conv.py loop over
  kernel taps (`lax.map`) and XLA counts a loop body once (1683 instead of
  2083 GFLOP at the official size, M = 1). Recomputed blocks (remat) are
  not counted: the rate is of the model's math, not of the work done."""
  with plain_convs():
    return _flops(jax.jit(step_fn).lower(*args).cost_analysis())


def _flops(cost_analysis: Any) -> float:
  """The "flops" entry of a (compiled or lowered) cost analysis, or NaN."""
  ca = cost_analysis
  if isinstance(ca, (list, tuple)):
    ca = ca[0] if ca else {}
  return float((ca or {}).get("flops", float("nan")))


def table(rows: list[dict], peak: float) -> str:
  head = ("| what | size | B / M | dtype | compile s | ms / step | items/s | "
          "GFLOP / step | GFLOP/s | % of matmul | peak MB |")
  lines = [head, "|" + "---|" * 11]
  for r in rows:
    pct = 100 * r["gflops_per_s"] / peak if peak else float("nan")
    unit = {"track": "frames", "train": "pairs", "matmul": "matmuls"}[
        r["kind"]]
    lines.append(
        f"| {r['kind']} | {r['size']} | {r['batch']} | {r['dtype']} | "
        f"{r['compile_s']:.1f} | {r['step_ms']:.1f} | {r['per_s']:.2f} "
        f"{unit} | {r['gflop']:.2f} | {r['gflops_per_s']:.1f} | {pct:.0f} | "
        f"{r['peak_mb']:.0f} ({r['peak_source']}) |")
  return "\n".join(lines)


def peer_table(rows: list[dict], peer: dict) -> str:
  """Our official-size rows next to torchvision's: times, GFLOP (when the
  peer counted them) and the time and FLOP-rate ratios."""
  lines = [f"PyTorch peer: torch {peer['torch']}, torchvision "
           f"{peer['torchvision']}, {peer['threads']} threads, "
           f"{peer['height']}x{peer['width']}, random init\n",
           "| what | ours ms | peer ms | ours / peer (time) | ours GFLOP | "
           "peer GFLOP | ours / peer (GFLOP/s) |", "|---|---|---|---|---|---|---|"]
  for r in rows:
    if r["size"] != "official":
      continue
    m = str(r["batch"])[2:].split()[0]
    if r["kind"] == "track":
      n = int(str(r["batch"]).split("=")[1])
      theirs, ours = peer["eval_s"] * 1e3, r["step_ms"] / n
      ours_g, theirs_g = r["gflop"] / n, peer.get("eval_gflop")
      what = f"tracking frame ({r['batch']}, per frame) vs eval frame"
    elif r["kind"] == "train" and m in peer["train_s"]:
      theirs, ours = peer["train_s"][m] * 1e3, r["step_ms"]
      ours_g = r["gflop"]
      theirs_g = peer.get("train_gflop", {}).get(m)
      what = f"train step {r['batch']} vs train step ({m} boxes)"
    else:
      continue
    if theirs_g:
      rate = (ours_g / ours) / (theirs_g / theirs)
      extra = f"{ours_g:.0f} | {theirs_g:.0f} | {rate:.2f} |"
    else:
      extra = f"{ours_g:.0f} | - | - |"
    lines.append(f"| {what} | {ours:.0f} | {theirs:.0f} | "
                 f"{ours / theirs:.2f} | {extra}")
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--sizes", default="demo,official",
                 help="tracking sizes (comma list of official, demo)")
  p.add_argument("--batches", default="1,4")
  p.add_argument("--train_sizes", default="demo",
                 help="train-step sizes ('official' needs minutes on CPU)")
  p.add_argument("--instances", default="1,8", help="M values")
  p.add_argument("--pairs", type=int, default=1,
                 help="pairs per train step (official: 1 per device)")
  p.add_argument("--dtype", default="float32",
                 choices=("float32", "bfloat16"))
  p.add_argument("--runs", type=int, default=5)
  p.add_argument("--matmul_n", type=int, default=0,
                 help="matmul size (0: 2048 on CPU, 8192 elsewhere)")
  p.add_argument("--json", default="", help="also write the rows here")
  p.add_argument("--torch_python", default="",
                 help="python of a venv with torch + torchvision for the "
                 "peer rows (default: this interpreter, if it has them)")
  p.add_argument("--no_peer", action="store_true",
                 help="skip the PyTorch peer rows")
  p.add_argument("--compare_plain", action="store_true",
                 help="also time every track/train row with lax's plain "
                 "convolutions (the implementation before the matmul convs "
                 "of gt_jax/ops/conv.py) and print before/after")
  p.add_argument("--remat", action="store_true",
                 help="train rows with model.remat_backbone and "
                 "train.query_remat on (memory)")
  args = p.parse_args(argv)
  backend = jax.default_backend()
  dev = jax.devices()[0]
  n = args.matmul_n or (2048 if backend == "cpu" else 8192)
  dt = jnp.bfloat16 if args.dtype == "bfloat16" else jnp.float32
  rows = [matmul_peak(dt, n, args.runs)]
  print(f"matmul peak: {rows[0]['gflops_per_s']:.1f} GFLOP/s", flush=True)
  plain = []

  def run(measure, *a):
    rows.append(measure(*a))
    print(table(rows[-1:], rows[0]["gflops_per_s"]).splitlines()[-1],
          flush=True)
    if args.compare_plain:
      with plain_convs():
        plain.append(measure(*a))
      print("  plain convs: " + table(plain[-1:], rows[0]["gflops_per_s"])
            .splitlines()[-1], flush=True)

  for size in filter(None, args.sizes.split(",")):
    for b in (int(x) for x in args.batches.split(",")):
      run(bench_track, size, b, args.dtype, args.runs)
  for size in filter(None, args.train_sizes.split(",")):
    for m in (int(x) for x in args.instances.split(",")):
      run(bench_train, size, m, args.pairs, args.dtype,
          max(2, args.runs // 2), args.remat)
  peer = None
  if not args.no_peer and "official" in (args.sizes + "," +
                                         args.train_sizes).split(","):
    h, w = SIZES["official"][2]
    peer = torch_peer.measure(h, w, [int(x) for x in
                                     args.instances.split(",")],
                              max(2, args.runs // 2), args.torch_python)
  machine = (f"{dev.device_kind} ({backend}, {jax.device_count()} device(s)"
             f", {os.cpu_count()} CPU cores, {platform.processor() or '?'}"
             f"), jax {jax.__version__}")
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(f"\n## Performance: {machine}\n")
  print(table(rows, rows[0]["gflops_per_s"]))
  print(f"\nprocess peak RSS: {rss:.0f} MB; train steps use {args.pairs} "
        "pair(s); items/s = frames/s (track) or pairs/s (train)")
  if plain:
    print("\nBefore (lax's plain convolutions) / after, same run:\n")
    print("| what | size | B / M | before ms | after ms | after / before |")
    print("|---|---|---|---|---|---|")
    for new, old in zip(rows[1:], plain):
      print(f"| {new['kind']} | {new['size']} | {new['batch']} | "
            f"{old['step_ms']:.0f} | {new['step_ms']:.0f} | "
            f"{new['step_ms'] / old['step_ms']:.2f} |")
  if peer is not None:
    print("\n" + peer_table(rows, peer))
  if args.json:
    with open(args.json, "w", encoding="utf-8") as f:
      json.dump(dict(machine=machine, rows=rows, peak_rss_mb=rss,
                     peer=peer), f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
