"""The faster train step computes what the plain implementation computes.

`gt_jax.ops.conv` replaces only how filter gradients are computed. Here the
tiny model's loss and every parameter gradient are compared with the same
model differentiated by lax's own convolution transpose rules (the
implementation before the change), on one random batch of 2 pairs x 2
instances: loss terms to 1e-6 relative, each gradient leaf to 1e-5 relative
(in norm).
"""

from __future__ import annotations

import jax
import numpy as np

from gt_jax.model.build import build_model, init_variables
from gt_jax.ops import conv as conv_lib
from gt_jax.training import losses
from gt_jax.training import step as train_lib
from tests.test_train import make_batch, tiny_cfg


def _loss_and_grads(model, variables, batch, lcfg):
  def f(params):
    v = {"params": params, "batch_stats": variables["batch_stats"]}
    return losses.batch_loss(model, v, batch, jax.random.PRNGKey(3), lcfg)
  (_, metrics), grads = jax.jit(jax.value_and_grad(f, has_aux=True))(
      variables["params"])
  return jax.device_get(metrics), jax.device_get(grads)


def test_loss_and_grads_equal_lax_conv_gradients(monkeypatch):
  cfg = tiny_cfg()
  model = build_model(cfg.model, cfg.compute_dtype)
  variables = init_variables(model, jax.random.PRNGKey(0))
  lcfg = train_lib.loss_config_from(cfg)
  batch = make_batch(7, b=2)
  ours_m, ours_g = _loss_and_grads(model, variables, batch, lcfg)
  monkeypatch.setattr(conv_lib, "_conv", conv_lib._lax_conv)  # pylint: disable=protected-access
  ref_m, ref_g = _loss_and_grads(model, variables, batch, lcfg)
  for k in losses.LOSS_TERMS + ("loss",):
    np.testing.assert_allclose(ours_m[k], ref_m[k], rtol=1e-6, err_msg=k)
  flat_ours = jax.tree_util.tree_flatten_with_path(ours_g)[0]
  flat_ref = jax.tree.leaves(ref_g)
  nonzero = 0
  for (path, a), b in zip(flat_ours, flat_ref):
    name = jax.tree_util.keystr(path)
    ref_norm = float(np.linalg.norm(b))
    if ref_norm == 0.0:
      assert float(np.linalg.norm(a)) == 0.0, name
      continue
    nonzero += 1
    rel = float(np.linalg.norm(a - b)) / ref_norm
    assert rel <= 1e-5, (name, rel)
  assert nonzero > 30
