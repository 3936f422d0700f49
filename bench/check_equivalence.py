"""Loss and gradients of the fast train step vs the plain one, any size.

  python bench/check_equivalence.py                  # official, 1 pair, M=1
  python bench/check_equivalence.py --size tiny --queries 2

Computes `batch_loss` and its parameter gradients on one random pair three
ways: the default step (matmul convolutions, gt_jax/ops/conv.py), the lean
step (plus `model.remat_backbone` and `train.query_remat`), and the plain
implementation (lax's convolutions and transpose rules, vmapped queries,
nothing recomputed, autodiff's RoIAlign gradient). Prints the largest
relative difference of the loss terms and of any gradient leaf (|a - b| /
|b| in norm) for each; the acceptance bound of the speed work is 1e-5.
tests/test_train_equivalence.py runs the same comparison on the tiny config
in CI.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from gt_jax.config import load_config  # pylint: disable=g-import-not-at-top
from gt_jax.model.build import build_model, init_variables  # pylint: disable=g-import-not-at-top
from gt_jax.ops import conv as conv_lib  # pylint: disable=g-import-not-at-top
from gt_jax.ops import roi_align as roi_lib  # pylint: disable=g-import-not-at-top
from gt_jax.training import losses  # pylint: disable=g-import-not-at-top
from gt_jax.training import step as train_lib  # pylint: disable=g-import-not-at-top

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from profile_train import CONFIG, random_pair  # pylint: disable=g-import-not-at-top,wrong-import-position


def loss_and_grads(spec: str, m: int, remat: bool):
  cfg = load_config(spec)
  cfg.data.max_instances = m
  cfg.model.remat_backbone = remat
  cfg.train.query_remat = remat
  model = build_model(cfg.model, cfg.compute_dtype)
  variables = init_variables(model, jax.random.PRNGKey(0))
  lcfg = train_lib.loss_config_from(cfg)
  batch = random_pair(m, tuple(cfg.data.canvas_landscape))

  def f(params):
    v = {"params": params, "batch_stats": variables["batch_stats"]}
    return losses.batch_loss(model, v, batch, jax.random.PRNGKey(3), lcfg)

  (_, metrics), grads = jax.jit(jax.value_and_grad(f, has_aux=True))(
      variables["params"])
  return jax.device_get(metrics), jax.device_get(grads)


def differences(a, b) -> tuple[float, float, str]:
  """(max loss-term rel diff, max grad-leaf rel diff, its leaf name)."""
  loss = max(abs(a[0][k] - b[0][k]) / max(abs(b[0][k]), 1e-12)
             for k in losses.LOSS_TERMS + ("loss",))
  worst, name = 0.0, ""
  for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a[1])[0],
                          jax.tree.leaves(b[1])):
    ref = float(np.linalg.norm(y))
    if ref == 0.0:
      continue
    rel = float(np.linalg.norm(x - y)) / ref
    if rel > worst:
      worst, name = rel, jax.tree_util.keystr(path)
  return float(loss), worst, name


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--size", default="official",
                 choices=("official", "tiny", "demo"))
  p.add_argument("--queries", type=int, default=1)
  a = p.parse_args(argv)
  spec = CONFIG if a.size == "official" else f"{CONFIG}:{a.size}"
  default = loss_and_grads(spec, a.queries, remat=False)
  lean = loss_and_grads(spec, a.queries, remat=True)
  saved = conv_lib._conv, roi_lib._taps  # pylint: disable=protected-access
  conv_lib._conv = conv_lib._lax_conv  # pylint: disable=protected-access
  roi_lib._taps = roi_lib._plain_taps  # pylint: disable=protected-access
  jax.clear_caches()
  plain = loss_and_grads(spec, a.queries, remat=False)
  conv_lib._conv, roi_lib._taps = saved  # pylint: disable=protected-access
  print(f"{a.size}, 1 pair, M = {a.queries}: loss {plain[0]['loss']:.6f}")
  print("| step | max rel. diff, loss terms | max rel. diff, gradient leaf |"
        " worst leaf |")
  print("|---|---|---|---|")
  for name, run in (("default (matmul convs)", default),
                    ("lean (+ remat backbone, queries)", lean)):
    dl, dg, leaf = differences(run, plain)
    print(f"| {name} | {dl:.2e} | {dg:.2e} | {leaf} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
