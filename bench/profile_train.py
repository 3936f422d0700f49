"""Phase-by-phase profile of the train step (time, FLOPs, share, memory).

  python bench/profile_train.py                    # official size, M = 1, 8
  python bench/profile_train.py --size tiny --queries 1,8 --runs 3
  python bench/profile_train.py --json out.json    # also write the rows
  python bench/profile_train.py --memory_only --queries 8 [--remat]

Each phase of `training.losses.batch_loss` + the optimizer is jitted on its
own, on inputs of the real shapes (random-init weights, a random pair at
the config's landscape canvas), and timed (median of `--runs`); "bwd" rows
are `fwd+bwd - fwd` of the same phase. Per-query phases are vmapped over M
queries exactly as the loss does. The last rows are the whole train step
and the sum of the phases; "ideal M" is the backbone + optimizer cost plus
M times the per-query cost measured at M = 1 (what a perfectly shared
backbone would cost). FLOPs are XLA's cost analysis of each compiled
phase; "XLA MiB" is XLA's argument + output + temporary estimate.
`--memory_only` compiles the whole step only and prints that estimate
(with `--remat`: `model.remat_backbone` and `train.query_remat` on).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import median_time  # pylint: disable=g-import-not-at-top,wrong-import-position

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from gt_jax.config import load_config  # pylint: disable=g-import-not-at-top
from gt_jax.model.build import build_model, init_variables  # pylint: disable=g-import-not-at-top
from gt_jax.model.qg_rcnn import QGRCNN  # pylint: disable=g-import-not-at-top
from gt_jax.ops import proposals as proposal_lib  # pylint: disable=g-import-not-at-top
from gt_jax.training import losses  # pylint: disable=g-import-not-at-top
from gt_jax.training import step as train_lib  # pylint: disable=g-import-not-at-top

CONFIG = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "configs", "globaltrack_r50_fpn.py")


def _cost(compiled: Any) -> tuple[float, float]:
  ca = compiled.cost_analysis()
  if isinstance(ca, (list, tuple)):
    ca = ca[0] if ca else {}
  flops = float((ca or {}).get("flops", float("nan")))
  mem = float("nan")
  try:
    ma = compiled.memory_analysis()
    mem = (ma.argument_size_in_bytes + ma.output_size_in_bytes +
           ma.temp_size_in_bytes - ma.alias_size_in_bytes) / 2**20
  except Exception:  # pylint: disable=broad-except
    pass
  return flops, mem


def measure(fn: Callable[..., Any], args: tuple, runs: int) -> dict:
  """Compiles `fn(*args)`, times it; returns seconds, FLOPs, MiB."""
  t0 = time.perf_counter()
  compiled = jax.jit(fn).lower(*args).compile()
  compile_s = time.perf_counter() - t0
  s = median_time(lambda: compiled(*args), runs)
  flops, mem = _cost(compiled)
  return dict(s=s, gflop=flops / 1e9, mib=mem, compile_s=compile_s)


def _cotangent(tree: Any) -> Any:
  return jax.tree.map(lambda x: jnp.full(x.shape, 1e-3, x.dtype)
                      if jnp.issubdtype(x.dtype, jnp.floating) else None,
                      tree)


def _dot(a: Any, b: Any) -> jax.Array:
  """sum(a * b) over matching float leaves (a scalar to differentiate)."""
  la = [x for x in jax.tree.leaves(a)]
  lb = [x for x in jax.tree.leaves(b)]
  return sum(jnp.sum(x.astype(jnp.float32) * y.astype(jnp.float32))
             for x, y in zip(la, lb))


def random_pair(m: int, canvas: tuple[int, int], seed: int = 0) -> dict:
  rs = np.random.RandomState(seed)
  h, w = canvas
  xy = rs.uniform(0, 0.5, (1, m, 2)) * [w, h]
  wh = rs.uniform(0.1, 0.4, (1, m, 2)) * [w, h]
  qb = np.concatenate([xy, xy + wh], -1).astype(np.float32)
  return dict(
      query_image=jnp.asarray(rs.randn(1, h, w, 3), jnp.float32),
      search_image=jnp.asarray(rs.randn(1, h, w, 3), jnp.float32),
      query_boxes=jnp.asarray(qb), search_boxes=jnp.asarray(qb + 2.0),
      instance_valid=jnp.ones((1, m), bool),
      query_hw=jnp.asarray([[h, w]], jnp.int32),
      search_hw=jnp.asarray([[h, w]], jnp.int32))


def profile(cfg: Any, m: int, runs: int) -> list[dict]:
  """Rows {phase, s, gflop, mib} for one pair with M queries."""
  cfg.data.max_instances = m
  canvas = tuple(cfg.data.canvas_landscape)
  model = build_model(cfg.model, cfg.compute_dtype)
  variables = init_variables(model, jax.random.PRNGKey(0))
  params, stats = variables["params"], variables["batch_stats"]
  lcfg = train_lib.loss_config_from(cfg)
  mask = train_lib.trainable_mask(params, cfg.optim.frozen_stages)
  optimizer = train_lib.optimizer_from_config(cfg, params)
  batch = random_pair(m, canvas)
  images = jnp.concatenate([batch["query_image"], batch["search_image"]], 0)
  var = lambda p: {"params": p, "batch_stats": stats}
  rows = []

  def add(name, fn, args, fwd_row=None):
    r = measure(fn, args, runs)
    r["phase"] = name
    if fwd_row is not None:  # report the backward part alone
      r["s"] -= fwd_row["s"]
      r["gflop"] -= fwd_row["gflop"]
    rows.append(r)
    print(f"  {name:<40} {r['s']:8.3f} s {r['gflop']:9.1f} GFLOP "
          f"{r['mib']:8.0f} MiB (compile {r['compile_s']:.1f} s)", flush=True)
    return r

  # --- Backbone + FPN on the query and search images (shared by queries).
  features = lambda p, x: model.apply(var(p), x, method=QGRCNN.features)
  feats = jax.jit(features)(params, images)
  ct_feats = _cotangent(feats)
  f = add("backbone+FPN fwd (2 images)", features, (params, images))

  def backbone_grad(p, x):
    g = jax.grad(lambda q: _dot(features(q, x), ct_feats))(p)
    return [x for x, t in zip(jax.tree.leaves(g), jax.tree.leaves(mask)) if t]

  add("backbone+FPN bwd", backbone_grad, (params, images), f)
  qf = [x[0] for x in feats]
  sf = [x[1] for x in feats]
  qb, sb = batch["query_boxes"][0], batch["search_boxes"][0]
  hw = batch["search_hw"][0]
  anchors = losses.level_anchors(sf, lcfg)

  # --- Per-query phases, vmapped over the M queries as in the loss.
  def kernels_fn(p, qf, qb):
    def one(box):
      z = model.apply(var(p), qf, box, method=QGRCNN.query_embedding)
      return model.apply(var(p), z, method=QGRCNN.query_kernels)
    return jax.vmap(one)(qb)

  kern = jax.jit(kernels_fn)(params, qf, qb)
  add("query RoIAlign + kernels fwd+bwd", lambda p, qf, qb: jax.grad(
      lambda p, qf: _dot(kernels_fn(p, qf, qb), _cotangent(kern)),
      argnums=(0, 1))(p, qf), (params, qf, qb))

  def rpn_fn(p, sf, kr):
    return jax.vmap(lambda v: model.apply(var(p), sf, v,
                                          method=QGRCNN.rpn_outputs))(kr)

  rpn_out = jax.jit(rpn_fn)(params, sf, kern["rpn"])
  r = add("QG-RPN (modulator + head) fwd", rpn_fn, (params, sf, kern["rpn"]))
  add("QG-RPN bwd", lambda p, sf, kr: jax.grad(
      lambda p, sf: _dot(rpn_fn(p, sf, kr), _cotangent(rpn_out)),
      argnums=(0, 1))(p, sf), (params, sf, kern["rpn"]), r)
  cls_all = jax.vmap(lambda *c: jnp.concatenate(c, 0))(*rpn_out[0])
  del_all = jax.vmap(lambda *d: jnp.concatenate(d, 0))(*rpn_out[1])
  keys = jax.random.split(jax.random.PRNGKey(2), m)
  anchors_all = np.concatenate(anchors, 0)

  def rpn_loss_fn(c, d):
    out = jax.vmap(lambda k, c, d, b: losses.rpn_loss(
        k, c, d, anchors_all, b, hw, lcfg))(keys, c, d, sb)
    return out["loss_rpn_cls"].sum() + out["loss_rpn_bbox"].sum()

  add("RPN targets + sampling + loss fwd+bwd",
      jax.grad(rpn_loss_fn, argnums=(0, 1)), (cls_all, del_all))

  def proposals_fn(cls_list, delta_list):
    def one(c, d):
      return proposal_lib.rpn_proposals(
          c, d, [jnp.asarray(a) for a in anchors], hw,
          nms_pre=lcfg.proposal_nms_pre, nms_post=lcfg.proposal_nms_post,
          max_num=lcfg.proposal_max_num, nms_thr=lcfg.proposal_nms_thr,
          stds=lcfg.rpn_target_stds)
    return jax.vmap(one)(cls_list, delta_list)

  props = jax.jit(proposals_fn)(*rpn_out)
  add("training proposals (top-k + NMS)", proposals_fn, rpn_out)

  def targets_fn(boxes, valid):
    return jax.vmap(lambda k, b, v, g: losses.rcnn_targets(
        k, b, v, g, lcfg))(keys, boxes, valid, sb)

  targets = jax.jit(targets_fn)(props[0], props[2])
  add("RCNN targets + sampling", targets_fn, (props[0], props[2]))
  rois = targets["rois"]
  n_lvl = len(model.roi_strides)

  def roi_fn(sf, rois):
    return jax.vmap(lambda r: model._roi_features(sf, r))(rois)  # pylint: disable=protected-access

  pooled = jax.jit(roi_fn)(sf, rois)
  r = add("RoIAlign fwd (sampled RoIs)", roi_fn, (sf, rois))
  add("RoIAlign bwd", lambda sf, rois: jax.grad(
      lambda sf: _dot(roi_fn(sf, rois), _cotangent(pooled)))(sf[:n_lvl]),
      (sf[:n_lvl], rois), r)

  def head_fn(p, x, kr):
    def one(x, k):
      mod = model.apply(var(p), x, k, method=lambda mdl, x, k:
                        mdl.bbox_head(mdl.rcnn_modulator(x, k)))
      return mod
    return jax.vmap(one)(x, kr)

  head_out = jax.jit(head_fn)(params, pooled, kern["rcnn"])
  r = add("QG-RCNN (modulator + box head) fwd", head_fn,
          (params, pooled, kern["rcnn"]))
  add("QG-RCNN bwd", lambda p, x, kr: jax.grad(
      lambda p, x: _dot(head_fn(p, x, kr), _cotangent(head_out)),
      argnums=(0, 1))(p, x), (params, pooled, kern["rcnn"]), r)

  # --- Optimizer and the whole step.
  opt_state = optimizer.init(params)
  grads = jax.tree.map(lambda x: jnp.full_like(x, 1e-4), params)
  add("optimizer update", lambda g, s, p: optimizer.update(g, s, p),
      (grads, opt_state, params))
  step = train_lib.make_train_step(model, lcfg, optimizer, mask,
                                   train_lib.schedule_from_config(cfg))
  state = train_lib.init_state(variables, optimizer)
  add("whole train step", step, (state, batch, jax.random.PRNGKey(1)))
  return rows


def step_memory(cfg: Any, m: int) -> tuple[float, float]:
  """(XLA MiB, GFLOP) of the whole train step for one pair with M queries."""
  cfg.data.max_instances = m
  model = build_model(cfg.model, cfg.compute_dtype)
  variables = jax.eval_shape(lambda: init_variables(
      model, jax.random.PRNGKey(0)))
  mask = train_lib.trainable_mask(variables["params"],
                                  cfg.optim.frozen_stages)
  optimizer = train_lib.optimizer_from_config(cfg, variables["params"])
  step = train_lib.make_train_step(model, train_lib.loss_config_from(cfg),
                                   optimizer, mask,
                                   train_lib.schedule_from_config(cfg))
  state = jax.eval_shape(lambda v: train_lib.init_state(v, optimizer),
                         variables)
  batch = random_pair(m, tuple(cfg.data.canvas_landscape))
  compiled = jax.jit(step, donate_argnums=(0,)).lower(
      state, batch, jax.random.PRNGKey(1)).compile()
  flops, mem = _cost(compiled)
  return mem, flops / 1e9


def table(rows: list[dict], m: int) -> str:
  total = next(r for r in rows if r["phase"] == "whole train step")
  parts = [r for r in rows if r["phase"] != "whole train step"]
  lines = [f"| phase (M = {m}) | time s | GFLOP | GFLOP/s | share of step |"
           " XLA MiB |", "|---|---|---|---|---|---|"]
  for r in parts + [total]:
    rate = r["gflop"] / r["s"] if r["s"] > 0 else float("nan")
    lines.append(f"| {r['phase']} | {r['s']:.3f} | {r['gflop']:.1f} | "
                 f"{rate:.0f} | {100 * r['s'] / total['s']:.0f} % | "
                 f"{r['mib']:.0f} |")
  s = sum(r["s"] for r in parts)
  g = sum(r["gflop"] for r in parts)
  lines.append(f"| sum of phases | {s:.3f} | {g:.1f} | {g / s:.0f} | "
               f"{100 * s / total['s']:.0f} % | |")
  return "\n".join(lines)


SHARED = ("backbone+FPN fwd (2 images)", "backbone+FPN bwd",
          "optimizer update")


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--size", default="official", choices=("official", "tiny",
                                                        "demo"))
  p.add_argument("--queries", default="1,8")
  p.add_argument("--runs", type=int, default=3)
  p.add_argument("--dtype", default="float32",
                 choices=("float32", "bfloat16"))
  p.add_argument("--json", default="")
  p.add_argument("--memory_only", action="store_true")
  p.add_argument("--remat", action="store_true",
                 help="model.remat_backbone and train.query_remat on")
  a = p.parse_args(argv)
  spec = CONFIG if a.size == "official" else f"{CONFIG}:{a.size}"
  if a.memory_only:
    for m in (int(x) for x in a.queries.split(",")):
      cfg = load_config(spec)
      cfg.compute_dtype = a.dtype
      cfg.model.remat_backbone = cfg.train.query_remat = a.remat
      mib, gflop = step_memory(cfg, m)
      print(f"{a.size} M = {m} remat={a.remat}: XLA estimate {mib:.0f} MiB "
            f"for one pair, {gflop:.0f} GFLOP per step", flush=True)
    return 0
  results = {}
  for m in (int(x) for x in a.queries.split(",")):
    cfg = load_config(spec)
    cfg.compute_dtype = a.dtype
    cfg.model.remat_backbone = cfg.train.query_remat = a.remat
    print(f"M = {m}:", flush=True)
    results[m] = profile(cfg, m, a.runs)
  print(f"\n## Train-step profile: {a.size}, {a.dtype}, "
        f"{jax.devices()[0].device_kind} x {jax.device_count()}, "
        f"{os.cpu_count()} cores, jax {jax.__version__}\n")
  for m, rows in results.items():
    print(table(rows, m) + "\n")
  if 1 in results:
    one = results[1]
    shared = sum(r["s"] for r in one if r["phase"] in SHARED)
    per_query = sum(r["s"] for r in one
                    if r["phase"] not in SHARED + ("whole train step",))
    step1 = next(r["s"] for r in one if r["phase"] == "whole train step")
    for m, rows in results.items():
      if m == 1:
        continue
      step = next(r["s"] for r in rows if r["phase"] == "whole train step")
      ideal = step1 + (m - 1) * per_query
      print(f"M = {m}: step {step:.2f} s = {step / step1:.2f}x M = 1; ideal"
            f" (M=1 step + {m - 1} x per-query phases {per_query:.2f} s) "
            f"{ideal:.2f} s = {ideal / step1:.2f}x; measured / ideal "
            f"{step / ideal:.2f} (shared phases {shared:.2f} s)")
  if a.json:
    with open(a.json, "w", encoding="utf-8") as f:
      json.dump({str(m): rows for m, rows in results.items()}, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
