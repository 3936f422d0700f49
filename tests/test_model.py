"""Tests for gt_jax/model: names, shapes, and numerics vs a numpy reference.

The numpy reference (tests/model_reference.py) is written from
legacy-semantics §3-§10 in PyTorch layout (NCHW maps, OIHW conv weights,
(out, in) linear weights, NCHW flattening for fc6), so it also checks the
layout conventions the checkpoint importer relies on (LS §12).
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from model_reference import (np_features, np_rcnn_outputs,
                             np_rpn_head_outputs, np_rpn_vectors,
                             random_model, randomize, relu,
                             variable_shapes)

from gt_jax.config import load_config
from gt_jax.model import fpn as fpn_lib
from gt_jax.model import resnet as resnet_lib
from gt_jax.model.build import build_model
from gt_jax.model.qg_rcnn import QGRCNN
from gt_jax.model.modulation import RCNNModulator, RPNModulator
from gt_jax.model.rcnn import BBoxHead
from gt_jax.model.rpn import RPNHead

CONFIG = "configs/globaltrack_r50_fpn.py"

# ---------------------------------------------------------------------------
# Shared fixtures: one tiny model, one compile per function.
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
  cfg = load_config(f"{CONFIG}:tiny")
  return (cfg, *random_model(cfg.model, 1))


def _bottleneck_cfg() -> ml_collections.ConfigDict:
  cfg = load_config(f"{CONFIG}:tiny")
  cfg.model.depth = 50
  cfg.model.base_width = 4
  return cfg


def _paths(tree) -> set[str]:
  return {
      "/".join(getattr(p, "key", str(p)) for p in path)
      for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]
  }


# ---------------------------------------------------------------------------
# Names and sizes (LS §12).
# ---------------------------------------------------------------------------


def _expected_official_paths() -> tuple[set[str], set[str]]:
  params, stats = set(), set()

  def bn(prefix):
    params.update({f"{prefix}/scale", f"{prefix}/bias"})
    stats.update({f"{prefix}/mean", f"{prefix}/var"})

  params.add("backbone/conv1/kernel")
  bn("backbone/bn1")
  for l, n in enumerate((3, 4, 6, 3), start=1):
    for b in range(n):
      pre = f"backbone/layer{l}_{b}"
      for j in (1, 2, 3):
        params.add(f"{pre}/conv{j}/kernel")
        bn(f"{pre}/bn{j}")
      if b == 0:
        params.add(f"{pre}/downsample_conv/kernel")
        bn(f"{pre}/downsample_bn")
  conv = lambda name: params.update({f"{name}/kernel", f"{name}/bias"})
  for i in range(4):
    conv(f"neck/lateral_{i}")
    conv(f"neck/fpn_{i}")
  for n in ("rpn_conv", "rpn_cls", "rpn_reg"):
    conv(f"rpn_head/{n}")
  for k in range(5):
    conv(f"rpn_modulator/proj_modulator_{k}")
    conv(f"rpn_modulator/proj_out_{k}")
  for n in ("proj_z", "proj_x", "proj_out"):
    conv(f"rcnn_modulator/{n}")
  for n in ("fc6", "fc7", "fc_cls", "fc_reg"):
    conv(f"bbox_head/{n}")
  return params, stats


def test_official_parameter_paths_and_counts():
  cfg = load_config(CONFIG)
  model = build_model(cfg.model)
  shapes = variable_shapes(model)
  want_params, want_stats = _expected_official_paths()
  assert _paths(shapes["params"]) == want_params
  assert _paths(shapes["batch_stats"]) == want_stats
  # LS §12 group sizes of the official checkpoint.
  want_counts = {"backbone": 23_508_032, "neck": 3_344_384,
                 "rpn_head": 593_935, "bbox_head": 13_905_930,
                 "rpn_modulator": 16_386_560, "rcnn_modulator": 1_245_952}
  for group, count in want_counts.items():
    n = sum(int(np.prod(x.shape))
            for x in jax.tree_util.tree_leaves(shapes["params"][group]))
    assert n == count, group
  n_stats = sum(int(np.prod(x.shape))
                for x in jax.tree_util.tree_leaves(shapes["batch_stats"]))
  assert n_stats == 2 * 26_560  # running mean + var of the 53 BNs.
  p = shapes["params"]
  assert p["bbox_head"]["fc6"]["kernel"].shape == (12544, 1024)
  assert p["rpn_modulator"]["proj_modulator_0"]["kernel"].shape == (7, 7, 256,
                                                                     256)
  assert p["backbone"]["layer2_0"]["conv2"]["kernel"].shape == (3, 3, 128, 128)
  assert p["rpn_head"]["rpn_reg"]["kernel"].shape == (1, 1, 256, 12)


# ---------------------------------------------------------------------------
# Shapes of every stage.
# ---------------------------------------------------------------------------

_features = jax.jit(lambda m, v, x: m.apply(v, x, method=QGRCNN.features),
                    static_argnums=0)


def test_stage_shapes_tiny(tiny):
  _, model, v = tiny
  # 96x160: P5 is 3x5, so P6 = ceil -> 2x3.
  images = jnp.zeros((2, 96, 160, 3))
  feats = _features(model, v, images)
  assert [f.shape for f in feats] == [(2, 24, 40, 16), (2, 12, 20, 16),
                                      (2, 6, 10, 16), (2, 3, 5, 16),
                                      (2, 2, 3, 16)]
  # The per-image stages: shapes only (eval_shape, no compile).
  one = [jax.ShapeDtypeStruct(f.shape[1:], f.dtype) for f in feats]
  box = jax.ShapeDtypeStruct((4,), jnp.float32)
  ev = lambda *a, method: jax.eval_shape(
      lambda *b: model.apply(v, *b, method=method), *a)
  z = ev(one, box, method=QGRCNN.query_embedding)
  assert z.shape == (7, 7, 16)
  k = ev(z, method=QGRCNN.query_kernels)
  assert k["rpn"].shape == (5, 16) and k["rcnn"].shape == (7, 7, 16)
  cls, deltas = ev(one, k["rpn"], method=QGRCNN.rpn_outputs)
  assert [c.shape for c in cls] == [(24 * 40 * 3,), (12 * 20 * 3,),
                                    (6 * 10 * 3,), (3 * 5 * 3,), (2 * 3 * 3,)]
  assert [d.shape for d in deltas] == [(c.shape[0], 4) for c in cls]
  rois = jax.ShapeDtypeStruct((5, 4), jnp.float32)
  logits, reg = ev(one, rois, k["rcnn"], method=QGRCNN.rcnn_outputs)
  assert logits.shape == (5, 2) and reg.shape == (5, 8)


def test_backbone_output_shapes_bottleneck():
  net = resnet_lib.ResNet(depth=50, stage_sizes=(1, 1, 1, 1), base_width=4)
  out, _ = jax.eval_shape(
      lambda: net.init_with_output(jax.random.PRNGKey(0),
                                   jnp.zeros((1, 64, 96, 3))))
  # base width 4 -> stage outputs 16/32/64/128 at strides 4/8/16/32.
  assert [o.shape for o in out] == [(1, 16, 24, 16), (1, 8, 12, 32),
                                    (1, 4, 6, 64), (1, 2, 3, 128)]


def test_remat_backbone_recomputes_with_the_same_gradients():
  # `remat=True` must keep only block inputs on XLA's CPU backend too, where
  # `nn.remat`'s recomputation was merged back into the forward pass (with a
  # 5-block ResNet-50 at 128x128 its temporaries were 1.54x the plain
  # step's; `remat_block`'s are 0.71x).
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 64, 64, 3)),
                  jnp.float32)
  got = {}
  for remat in (False, True):
    net = resnet_lib.ResNet(depth=50, stage_sizes=(1, 1, 1, 1), base_width=8,
                            remat=remat)
    v = net.init(jax.random.PRNGKey(0), x)

    def loss(p, net=net, v=v):
      outs = net.apply({"params": p, "batch_stats": v["batch_stats"]}, x)
      return sum(jnp.sum(o ** 2) for o in outs)

    step = jax.jit(jax.grad(loss))
    temp = step.lower(v["params"]).compile().memory_analysis()
    got[remat] = temp.temp_size_in_bytes, step(v["params"])
  assert got[True][0] < 0.8 * got[False][0], (got[True][0], got[False][0])
  paths = jax.tree_util.tree_flatten_with_path(got[False][1])[0]
  assert len(paths) > 20
  for (path, want), have in zip(paths, jax.tree.leaves(got[True][1])):
    rel = float(np.linalg.norm(have - want)) / float(np.linalg.norm(want))
    assert rel <= 1e-5, (jax.tree_util.keystr(path), rel)


# ---------------------------------------------------------------------------
# Numerics vs the numpy reference.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["basic", "bottleneck"])
def test_features_match_numpy(variant, tiny):
  if variant == "basic":
    cfg, model, v = tiny
  else:
    cfg = _bottleneck_cfg()
    model, v = random_model(cfg.model, 2)
  rng = np.random.default_rng(3)
  image = rng.normal(0, 1, (64, 96, 3)).astype(np.float32)
  got = _features(model, v, jnp.asarray(image)[None])
  want = np_features(v, image, cfg.model.depth, cfg.model.stage_sizes)
  for g, w in zip(got, want):
    w = w.transpose(1, 2, 0)
    np.testing.assert_allclose(np.asarray(g[0]), w, rtol=1e-4,
                               atol=1e-4 * np.abs(w).max())


def test_frozen_bn_uses_running_statistics():
  bn = resnet_lib.frozen_bn("bn", jnp.float32)
  x = jnp.asarray(np.random.default_rng(0).normal(3, 2, (2, 4, 4, 3)),
                  jnp.float32)
  v = bn.init(jax.random.PRNGKey(0), x)
  v = {"params": {"scale": jnp.array([1.0, 2.0, 0.5]),
                  "bias": jnp.array([0.0, 1.0, -1.0])},
       "batch_stats": {"mean": jnp.array([1.0, -2.0, 0.5]),
                       "var": jnp.array([4.0, 0.25, 1.0])}}
  y, upd = bn.apply(v, x, mutable=["batch_stats"])
  # Hand formula, eps 1e-5 (PyTorch default).
  want = (np.asarray(x) - [1.0, -2.0, 0.5]) / np.sqrt(
      np.array([4.0, 0.25, 1.0]) + 1e-5) * [1.0, 2.0, 0.5] + [0.0, 1.0, -1.0]
  np.testing.assert_allclose(np.asarray(y), want, rtol=1e-5, atol=1e-5)
  # Running statistics never move, not even when asked to be mutable.
  np.testing.assert_array_equal(upd["batch_stats"]["mean"], [1.0, -2.0, 0.5])
  np.testing.assert_array_equal(upd["batch_stats"]["var"], [4.0, 0.25, 1.0])


def test_upsample_nearest_repeats_pixels():
  x = jnp.arange(6.0).reshape(1, 2, 3, 1)
  y = np.asarray(fpn_lib.upsample_nearest2(x, (4, 6)))[0, ..., 0]
  want = np.array([[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2],
                   [3, 3, 4, 4, 5, 5], [3, 3, 4, 4, 5, 5]], np.float32)
  np.testing.assert_array_equal(y, want)


def test_fc6_flatten_matches_torch_layout():
  """BBoxHead on NHWC RoIs == torch Linear on NCHW-flattened RoIs."""
  c, d = 3, 5
  rng = np.random.default_rng(4)
  rois_nchw = rng.normal(size=(2, c, 7, 7))
  w6_torch = rng.normal(size=(d, c * 49)) / 10
  head = BBoxHead(fc_dim=d, num_classes=2)
  v = jax.eval_shape(head.init, jax.random.PRNGKey(0),
                     jnp.zeros((1, 7, 7, c)))
  params = randomize(v, 8)["params"]
  # The importer's conversion, verbatim from LS §12.
  params["fc6"]["kernel"] = w6_torch.reshape(d, c, 7, 7).transpose(
      2, 3, 1, 0).reshape(c * 49, d).astype(np.float32)
  params["fc6"]["bias"] = rng.normal(size=d).astype(np.float32)
  cls, reg = jax.jit(head.apply)({"params": params},
                        jnp.asarray(rois_nchw.transpose(0, 2, 3, 1),
                                    jnp.float32))
  h = relu(rois_nchw.reshape(2, -1) @ w6_torch.T + params["fc6"]["bias"])
  lin = lambda x, n: x @ params[n]["kernel"] + params[n]["bias"]
  h = relu(lin(h, "fc7"))
  np.testing.assert_allclose(np.asarray(cls), lin(h, "fc_cls"), rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(np.asarray(reg), lin(h, "fc_reg"), rtol=1e-4,
                             atol=1e-5)


def test_rpn_modulation_and_head_match_numpy(tiny):
  _, model, v = tiny
  rng = np.random.default_rng(5)
  sizes = [(8, 10), (4, 5), (2, 3), (1, 2), (1, 1)]
  feats = [rng.normal(size=(h, w, 16)).astype(np.float32) for h, w in sizes]
  z = rng.normal(size=(7, 7, 16)).astype(np.float32)
  k = model.apply(v, jnp.asarray(z), method=QGRCNN.query_kernels)
  want_vec = np_rpn_vectors(v, z.transpose(2, 0, 1).astype(np.float64))
  np.testing.assert_allclose(np.asarray(k["rpn"]), np.stack(want_vec),
                             rtol=1e-4, atol=1e-4)
  cls, deltas = model.apply(v, [jnp.asarray(f) for f in feats], k["rpn"],
                            method=QGRCNN.rpn_outputs)
  want_cls, want_reg = np_rpn_head_outputs(
      v, [f.transpose(2, 0, 1).astype(np.float64) for f in feats], want_vec)
  for g, w in zip(cls, want_cls):
    np.testing.assert_allclose(np.asarray(g), w, rtol=1e-4, atol=1e-4)
  for g, w in zip(deltas, want_reg):
    np.testing.assert_allclose(np.asarray(g), w, rtol=1e-4, atol=1e-4)


def test_rcnn_modulator_and_head_match_numpy(tiny):
  _, model, v = tiny
  rng = np.random.default_rng(6)
  rois = rng.normal(size=(3, 7, 7, 16)).astype(np.float32)
  z = rng.normal(size=(7, 7, 16)).astype(np.float32)

  def head(v, rois, z):
    zk = model.apply(v, z, method=QGRCNN.query_kernels)["rcnn"]
    x = RCNNModulator(16).apply({"params": v["params"]["rcnn_modulator"]},
                                rois, zk)
    return BBoxHead(32).apply({"params": v["params"]["bbox_head"]}, x)

  cls, reg = jax.jit(head)(v, jnp.asarray(rois), jnp.asarray(z))
  want_cls, want_reg = np_rcnn_outputs(
      v, rois.transpose(0, 3, 1, 2).astype(np.float64),
      z.transpose(2, 0, 1).astype(np.float64))
  np.testing.assert_allclose(np.asarray(cls), want_cls, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(np.asarray(reg), want_reg, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------
# Init, options and config errors.
# ---------------------------------------------------------------------------


def test_training_init_distributions():
  key = jax.random.PRNGKey(7)
  z = jnp.zeros((7, 7, 32))
  std = lambda x: float(np.std(np.asarray(x)))
  # official: modulators N(0, 0.01^2), RPN head N(0, 0.01^2), fc_cls
  # N(0, 0.01^2), fc_reg N(0, 0.001^2), biases 0.

  def init_all(k):  # one compile for the five small inits
    return (
        RPNModulator(32).init(k, z, method=RPNModulator.kernels)["params"],
        RCNNModulator(32).init(
            k, z[None], z, method=lambda m, x, q: m(x, m.query_kernel(q))),
        RPNHead(32).init(k, [z]),
        BBoxHead(256).init(k, jnp.zeros((1, 7, 7, 32))),
        resnet_lib.Bottleneck(width=64).init(k, jnp.zeros((1, 4, 4, 256))))

  rpn_mod, rcnn_mod, head, box, block = jax.jit(init_all)(key)
  for name in ("proj_modulator_0", "proj_modulator_4"):
    assert std(rpn_mod[name]["kernel"]) == pytest.approx(0.01, rel=0.1)
  for name in ("proj_z", "proj_x", "proj_out"):
    assert std(rcnn_mod["params"][name]["kernel"]) == pytest.approx(0.01,
                                                                    rel=0.1)
  assert std(head["params"]["rpn_conv"]["kernel"]) == pytest.approx(0.01,
                                                                   rel=0.1)
  assert std(box["params"]["fc_cls"]["kernel"]) == pytest.approx(0.01,
                                                                 rel=0.15)
  assert std(box["params"]["fc_reg"]["kernel"]) == pytest.approx(0.001,
                                                                 rel=0.15)
  for tree in (rpn_mod, rcnn_mod, head, box):
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
      if getattr(path[-1], "key", "") == "bias":
        assert not np.any(np.asarray(leaf)), path
  # Backbone: kaiming normal, fan_out, relu gain: std = sqrt(2 / fan_out).
  k = block["params"]["conv2"]["kernel"]
  assert std(k) == pytest.approx(math.sqrt(2 / (9 * 64)), rel=0.1)


def test_use_fx_option_adds_search_conv(tiny):
  cfg, _, _ = tiny
  cfg = load_config(f"{CONFIG}:tiny", ["model.rpn_modulator_fx=True"])
  v = variable_shapes(build_model(cfg.model))
  names = set(v["params"]["rpn_modulator"])
  assert {f"proj_x_{k}" for k in range(5)} <= names
  assert not any(re.match(r"proj_x_\d", n) for n in tiny[2]["params"][
      "rpn_modulator"])


def test_build_model_rejects_bad_config():
  cfg = load_config(f"{CONFIG}:tiny")
  cfg.model.depth = 42
  with pytest.raises(ValueError, match="depth=42"):
    variable_shapes(build_model(cfg.model))
  cfg = load_config(f"{CONFIG}:tiny")
  with pytest.raises(ValueError, match="compute_dtype"):
    build_model(cfg.model, "float16")
  cfg.model.anchor_strides = (4, 8, 16, 32)
  with pytest.raises(ValueError, match="anchor_strides"):
    build_model(cfg.model)


def test_features_rejects_non_rgb(tiny):
  _, model, v = tiny
  with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
    model.apply(v, jnp.zeros((64, 64, 3)), method=QGRCNN.features)


# ---------------------------------------------------------------------------
# bf16 compute: gradients that are sums over many positions stay float32.
# ---------------------------------------------------------------------------


def _bf16_exact(rng, shape, scale=1.0):
  """float32 values that bf16 represents exactly."""
  x = (rng.normal(size=shape) * scale).astype(np.float32)
  return np.asarray(jnp.asarray(x, jnp.bfloat16).astype(jnp.float32))


def test_bf16_bias_and_product_gradients_sum_in_float32():
  # A bias gradient is the sum of the output cotangent over every position;
  # summed in bf16 (what flax's nn.Conv / nn.Dense give a bf16 layer) it was
  # off by ~10-20 % on maps of this size. Reference: float64 numpy sums of
  # the same (bf16-exact) cotangents.
  from gt_jax.model import layers
  rng = np.random.default_rng(0)
  x = _bf16_exact(rng, (8, 32, 40, 8))
  ct = _bf16_exact(rng, (8, 32, 40, 8))
  conv = layers.Conv(8, (1, 1), padding="VALID", dtype=jnp.bfloat16)
  params = conv.init(jax.random.PRNGKey(0), x)["params"]
  y, vjp = jax.vjp(lambda p: conv.apply({"params": p}, x), params)
  assert y.dtype == jnp.bfloat16
  assert params["bias"].dtype == jnp.float32
  (g,) = vjp(jnp.asarray(ct, jnp.bfloat16))
  want = ct.astype(np.float64).sum((0, 1, 2))
  np.testing.assert_allclose(np.asarray(g["bias"]), want, rtol=0,
                             atol=1e-4 * np.abs(want).max())

  feats = _bf16_exact(rng, (4096, 16))
  ct2 = _bf16_exact(rng, (4096, 8))
  dense = layers.Dense(8, dtype=jnp.bfloat16)
  params = dense.init(jax.random.PRNGKey(1), feats)["params"]
  _, vjp = jax.vjp(lambda p: dense.apply({"params": p}, feats), params)
  (g,) = vjp(jnp.asarray(ct2, jnp.bfloat16))
  want = ct2.astype(np.float64).sum(0)
  np.testing.assert_allclose(np.asarray(g["bias"]), want, rtol=0,
                             atol=1e-4 * np.abs(want).max())

  # The modulators' broadcast products: d(x * v)/dv sums over the RoIs.
  rois = jnp.asarray(_bf16_exact(rng, (512, 7, 7, 8)), jnp.bfloat16)
  v = jnp.asarray(_bf16_exact(rng, (1, 7, 7, 8)), jnp.bfloat16)
  ct3 = _bf16_exact(rng, (512, 7, 7, 8))
  out, vjp = jax.vjp(lambda v: layers.mul(rois, v), v)
  assert out.dtype == jnp.bfloat16
  (gv,) = vjp(jnp.asarray(ct3, jnp.bfloat16))
  want = (ct3.astype(np.float64) * np.asarray(rois, np.float64)).sum(
      0, keepdims=True)
  # One final rounding to bf16 (8 significant bits).
  np.testing.assert_allclose(np.asarray(gv, np.float64), want, rtol=0,
                             atol=8e-3 * np.abs(want).max())


def test_bf16_layers_are_flax_layers_in_float32():
  # Same parameter names and, in float32, bit-identical outputs to nn.Conv.
  from gt_jax.model import layers
  import flax.linen as nn
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 9, 11, 4)).astype(np.float32)
  ours = layers.Conv(6, (3, 3), padding=((1, 1), (1, 1)))
  theirs = nn.Conv(6, (3, 3), padding=((1, 1), (1, 1)))
  v = ours.init(jax.random.PRNGKey(0), x)
  v = jax.tree.map(lambda a: a + 0.1, v)  # a non-zero bias
  assert jax.tree.structure(v) == jax.tree.structure(
      theirs.init(jax.random.PRNGKey(0), x))
  np.testing.assert_array_equal(np.asarray(ours.apply(v, x)),
                                np.asarray(theirs.apply(v, x)))
