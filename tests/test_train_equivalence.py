"""The faster / leaner train step computes what the plain one computes.

`gt_jax.ops.conv` replaces only how filter gradients are computed,
`gt_jax.ops.roi_align` only how its feature gradient is accumulated;
`model.remat_backbone` and `train.query_remat` only what is kept for the
backward pass. The tiny model's loss terms and every parameter gradient,
with the defaults and with both remat switches on, are compared with the
plain implementation (lax's own convolution transpose rules, vmapped
queries, nothing recomputed, autodiff's RoIAlign gradient) on one random
batch of 2 pairs x 2 instances: loss terms to 1e-5 relative, each gradient
leaf to 1e-5 relative (in norm).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from gt_jax.model.build import build_model, init_variables
from gt_jax.ops import conv as conv_lib
from gt_jax.ops import roi_align as roi_lib
from gt_jax.training import buckets
from gt_jax.training import losses
from gt_jax.training import step as train_lib
from tests.test_train import make_batch, tiny_cfg


_JITTED = {}


def _loss_and_grads(model, variables, batch, lcfg):
  """Loss metrics and parameter gradients (one compile per model/settings,
  traced afresh when the conv / RoIAlign implementation is swapped)."""
  key = (model, lcfg, conv_lib._conv, roi_lib._taps)  # pylint: disable=protected-access
  if key not in _JITTED:
    def f(params, batch_stats, batch):
      v = {"params": params, "batch_stats": batch_stats}
      return losses.batch_loss(model, v, batch, jax.random.PRNGKey(3), lcfg)
    _JITTED[key] = jax.jit(jax.value_and_grad(f, has_aux=True))
  (_, metrics), grads = _JITTED[key](variables["params"],
                                     variables["batch_stats"], batch)
  return jax.device_get(metrics), jax.device_get(grads)


def _run(remat: bool):
  cfg = tiny_cfg(**{"model.remat_backbone": remat,
                    "train.query_remat": remat})
  model = build_model(cfg.model, cfg.compute_dtype)
  variables = init_variables(model, jax.random.PRNGKey(0))
  return _loss_and_grads(model, variables, make_batch(7, b=2),
                         train_lib.loss_config_from(cfg))


def _assert_same(ours_m, ours_g, ref_m, ref_g):
  for k in losses.LOSS_TERMS + ("loss",):
    np.testing.assert_allclose(ours_m[k], ref_m[k], rtol=1e-5, err_msg=k)
  flat_ours = jax.tree_util.tree_flatten_with_path(ours_g)[0]
  flat_ref = jax.tree.leaves(ref_g)
  # Same parameter names (the checkpoint layout), in the same order.
  paths = lambda t: [jax.tree_util.keystr(p)
                     for p, _ in jax.tree_util.tree_flatten_with_path(t)[0]]
  assert paths(ours_g) == paths(ref_g)
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


def test_loss_and_grads_equal_the_plain_implementation(monkeypatch):
  default = _run(remat=False)
  lean = _run(remat=True)
  monkeypatch.setattr(conv_lib, "_conv", conv_lib._lax_conv)  # pylint: disable=protected-access
  monkeypatch.setattr(roi_lib, "_taps", roi_lib._plain_taps)  # pylint: disable=protected-access
  plain = _run(remat=False)
  _assert_same(*default, *plain)
  _assert_same(*lean, *plain)


def _pad_instances(batch, m):
  out = dict(batch)
  for k in buckets.INSTANCE_FIELDS:
    a = np.asarray(batch[k])
    pad = np.zeros((a.shape[0], m - a.shape[1]) + a.shape[2:], a.dtype)
    out[k] = np.concatenate([a, pad], 1)
  return out


def test_trimmed_instance_slots_give_the_same_loss_and_grads():
  cfg = tiny_cfg()
  model = build_model(cfg.model, cfg.compute_dtype)
  variables = init_variables(model, jax.random.PRNGKey(0))
  lcfg = train_lib.loss_config_from(cfg)
  batch = make_batch(11, b=2)  # M = 2 slots, pair 0 has 1 valid instance
  padded = _pad_instances(batch, 4)
  m = buckets.bucket(buckets.needed_slots(padded), 8)
  assert m == 2
  trimmed = buckets.trim(padded, m)
  for k in buckets.INSTANCE_FIELDS:
    np.testing.assert_array_equal(trimmed[k], batch[k])
  _assert_same(*_loss_and_grads(model, variables, trimmed, lcfg),
               *_loss_and_grads(model, variables, padded, lcfg))


def test_buckets():
  valid = np.array([[1, 1, 1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0, 0]], bool)
  assert buckets.needed_slots({"instance_valid": valid}) == 3
  assert [buckets.bucket(n, 8) for n in (0, 1, 2, 3, 5, 8)] == [1, 1, 2, 4, 8,
                                                               8]
  assert buckets.bucket(5, 6) == 6
  with pytest.raises(ValueError, match="prefix"):
    buckets.needed_slots({"instance_valid": valid[:, ::-1]})
