"""Shared test helpers: numpy reference forward, random variables, frames.

The numpy reference is written from legacy-semantics §3-§10 in PyTorch
layout (NCHW maps, OIHW conv weights, (out, in) linear weights, NCHW
flattening for fc6), so it also checks the layout conventions the checkpoint
importer relies on (LS §12). Used by tests/test_model.py (per stage),
tests/test_inference.py (the whole search step) and tests/test_tracker.py
(random variables, frames). Test modules import from here, not from each
other.
"""

from __future__ import annotations

import math
import re

import jax
import numpy as np

from gt_jax.model.build import build_model, init_variables
from gt_jax.model.qg_rcnn import QGRCNN

# ---------------------------------------------------------------------------
# numpy reference, PyTorch layout (C, H, W), float64.
# ---------------------------------------------------------------------------


def oihw(kernel) -> np.ndarray:
  """Flax HWIO kernel -> torch OIHW weight (float64)."""
  return np.asarray(kernel, np.float64).transpose(3, 2, 0, 1)


def np_conv(x, w, b=None, stride=1, pad=0):
  """torch Conv2d on (C, H, W) with an OIHW weight, zero padding."""
  kh, kw = w.shape[2:]
  xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
  win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))
  win = win[:, ::stride, ::stride]
  y = np.einsum("chwij,ocij->ohw", win, w)
  if b is not None:
    y = y + np.asarray(b, np.float64)[:, None, None]
  return y


def np_bn(x, p, s):
  """Eval-mode BatchNorm2d: (x - mean) / sqrt(var + 1e-5) * w + b."""
  f = lambda a: np.asarray(a, np.float64)[:, None, None]
  return (x - f(s["mean"])) / np.sqrt(f(s["var"]) + 1e-5) * f(
      p["scale"]) + f(p["bias"])


def np_maxpool3s2(x):
  """MaxPool2d(3, stride 2, padding 1) (padding = -inf)."""
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
  win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(1, 2))
  return win[:, ::2, ::2].max(axis=(-1, -2))


def relu(x):
  return np.maximum(x, 0.0)


def np_resnet(v, x, depth, sizes):
  """ResNet "pytorch" style (stride on the 3x3) -> [C2..C5] (C, H, W)."""
  p, s = v["params"]["backbone"], v["batch_stats"]["backbone"]
  x = np_conv(x, oihw(p["conv1"]["kernel"]), stride=2, pad=3)
  x = np_maxpool3s2(relu(np_bn(x, p["bn1"], s["bn1"])))
  outs = []
  for i, n in enumerate(sizes):
    for b in range(n):
      bp, bs = p[f"layer{i + 1}_{b}"], s[f"layer{i + 1}_{b}"]
      st = 2 if (i > 0 and b == 0) else 1
      k = lambda name: oihw(bp[name]["kernel"])
      if depth >= 50:
        y = relu(np_bn(np_conv(x, k("conv1")), bp["bn1"], bs["bn1"]))
        y = relu(np_bn(np_conv(y, k("conv2"), stride=st, pad=1), bp["bn2"],
                       bs["bn2"]))
        y = np_bn(np_conv(y, k("conv3")), bp["bn3"], bs["bn3"])
      else:
        y = relu(np_bn(np_conv(x, k("conv1"), stride=st, pad=1), bp["bn1"],
                       bs["bn1"]))
        y = np_bn(np_conv(y, k("conv2"), pad=1), bp["bn2"], bs["bn2"])
      if "downsample_conv" in bp:
        x = np_bn(np_conv(x, k("downsample_conv"), stride=st),
                  bp["downsample_bn"], bs["downsample_bn"])
      x = relu(y + x)
    outs.append(x)
  return outs


def np_fpn(v, cs):
  """mmdet FPN: laterals, nearest x2 top-down, 3x3 convs, P6 = P5[::2,::2]."""
  p = v["params"]["neck"]
  lat = [np_conv(c, oihw(p[f"lateral_{i}"]["kernel"]),
                 p[f"lateral_{i}"]["bias"]) for i, c in enumerate(cs)]
  for i in range(len(lat) - 1, 0, -1):
    h, w = lat[i - 1].shape[1:]
    # F.interpolate(scale_factor=2, mode='nearest'): out[y, x] = in[y//2, x//2].
    up = lat[i][:, (np.arange(h) // 2)[:, None], (np.arange(w) // 2)[None, :]]
    lat[i - 1] = lat[i - 1] + up
  outs = [np_conv(l, oihw(p[f"fpn_{i}"]["kernel"]), p[f"fpn_{i}"]["bias"],
                  pad=1) for i, l in enumerate(lat)]
  outs.append(outs[-1][:, ::2, ::2])
  return outs


def np_features(v, image_hwc, depth, sizes):
  """Normalised canvas (H, W, 3) -> [P2..P6] each (C, H_k, W_k)."""
  x = np.asarray(image_hwc, np.float64).transpose(2, 0, 1)
  return np_fpn(v, np_resnet(v, x, depth, sizes))


def np_rpn_vectors(v, z_chw):
  """proj_modulator_k (7x7 valid conv) of z (C, 7, 7) -> list of (C,)."""
  p = v["params"]["rpn_modulator"]
  out = []
  for k in range(5):
    q = p[f"proj_modulator_{k}"]
    out.append(np.einsum("ochw,chw->o", oihw(q["kernel"]), z_chw) +
               np.asarray(q["bias"], np.float64))
  return out


def np_rpn_head_outputs(v, feats_chw, vectors):
  """Modulated RPN: torch permute(1,2,0) flattening -> cls (N,), reg (N, 4)."""
  pm, ph = v["params"]["rpn_modulator"], v["params"]["rpn_head"]
  cls, reg = [], []
  for k, f in enumerate(feats_chw):
    m = f * vectors[k][:, None, None]
    r = np_conv(m, oihw(pm[f"proj_out_{k}"]["kernel"]),
                pm[f"proj_out_{k}"]["bias"])
    t = relu(np_conv(r, oihw(ph["rpn_conv"]["kernel"]),
                     ph["rpn_conv"]["bias"], pad=1))
    c = np_conv(t, oihw(ph["rpn_cls"]["kernel"]), ph["rpn_cls"]["bias"])
    d = np_conv(t, oihw(ph["rpn_reg"]["kernel"]), ph["rpn_reg"]["bias"])
    cls.append(c.transpose(1, 2, 0).reshape(-1))
    reg.append(d.transpose(1, 2, 0).reshape(-1, 4))
  return cls, reg


def torch_fc6_weight(kernel) -> np.ndarray:
  """Flax fc6 kernel (49C, D), NHWC rows -> torch (D, C*49), NCHW columns.

  Inverse of LS §12: W_flax = W_torch.reshape(D, C, 7, 7).transpose(2, 3, 1,
  0).reshape(49C, D).
  """
  k = np.asarray(kernel, np.float64)
  d = k.shape[1]
  c = k.shape[0] // 49
  return k.reshape(7, 7, c, d).transpose(3, 2, 0, 1).reshape(d, c * 49)


def np_rcnn_outputs(v, rois_chw, z_chw):
  """RCNN modulator + SharedFCBBoxHead in torch layout.

  Args:
    rois_chw: (R, C, 7, 7) search RoI features; z_chw: (C, 7, 7).

  Returns:
    cls_logits (R, 2), deltas (R, 8).
  """
  pm, pb = v["params"]["rcnn_modulator"], v["params"]["bbox_head"]
  conv = lambda x, n, pad: np_conv(x, oihw(pm[n]["kernel"]), pm[n]["bias"],
                                   pad=pad)
  zk = conv(z_chw, "proj_z", 1)
  w6 = torch_fc6_weight(pb["fc6"]["kernel"])
  lin = lambda x, n: x @ np.asarray(pb[n]["kernel"], np.float64) + np.asarray(
      pb[n]["bias"], np.float64)
  cls, reg = [], []
  for x in rois_chw:
    m = conv(conv(x, "proj_x", 1) * zk, "proj_out", 0)
    h = relu(w6 @ m.reshape(-1) + np.asarray(pb["fc6"]["bias"], np.float64))
    h = relu(lin(h, "fc7"))
    cls.append(lin(h, "fc_cls"))
    reg.append(lin(h, "fc_reg"))
  return np.stack(cls), np.stack(reg)


# Kernel std = gain / sqrt(fan_in), chosen (by measuring the tiny model on
# smooth frames) to keep activations O(1) through the multiplicative
# modulators: RPN logits and RCNN logits of std ~2-4, deltas ~0.3.
_GAINS = {"lateral": 0.7, "fpn": 0.7, "proj_modulator": 0.6, "proj_z": 1.0,
          "rpn_cls": 3.0, "rpn_reg": 0.05, "fc_reg": 0.1, "fc_cls": 4.0}


def randomize(variables, seed: int):
  """Replaces every variable by a random value of a useful scale.

  The training init (std 0.01 heads) gives near-tied scores; tests need
  activations O(1) and well separated scores. BN statistics are random so
  that frozen-BN semantics matter. Works on shapes (jax.eval_shape output).
  """
  rng = np.random.default_rng(seed)
  flat = jax.tree_util.tree_flatten_with_path(variables)[0]
  out = {}
  for path, leaf in flat:
    names = tuple(getattr(p, "key", str(p)) for p in path)
    shape = np.shape(leaf)
    if names[-1] == "kernel":
      fan_in = int(np.prod(shape[:-1]))
      gain = _GAINS.get(re.sub(r"_\d+$", "", names[-2]), 1.0)
      val = rng.normal(0, gain / math.sqrt(fan_in), shape)
    elif names[-1] == "scale":
      val = rng.uniform(0.5, 1.5, shape)
    elif names[-1] == "var":
      val = rng.uniform(0.5, 2.0, shape)
    else:  # bias, mean
      val = rng.normal(0, 0.1, shape)
    out[names] = np.asarray(val, np.float32)
  return jax.tree_util.tree_map_with_path(
      lambda path, _: out[tuple(getattr(p, "key", str(p)) for p in path)],
      variables)


def variable_shapes(model: QGRCNN):
  """Shapes of the variables, without compiling the init."""
  return jax.eval_shape(
      lambda: init_variables(model, jax.random.PRNGKey(0), (64, 64)))


def random_model(model_cfg, seed: int) -> tuple[QGRCNN, dict]:
  """`(build_model(model_cfg), randomize(its variable shapes, seed))`."""
  model = build_model(model_cfg)
  return model, randomize(variable_shapes(model), seed)


def smooth_frame(seed: int, hw: tuple[int, int]) -> np.ndarray:
  """A uint8 RGB frame of a few coloured blobs on a gradient."""
  rng = np.random.default_rng(seed)
  h, w = hw
  yy, xx = np.mgrid[:h, :w].astype(np.float64)
  img = np.stack([xx / w, yy / h, (xx + yy) / (h + w)], -1) * 120
  for _ in range(6):
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    r = rng.uniform(4, min(h, w) / 3)
    blob = np.exp(-((yy - cy)**2 + (xx - cx)**2) / (2 * r * r))
    img += blob[..., None] * rng.uniform(-120, 135, 3)
  img += rng.normal(0, 6, img.shape)
  return np.clip(img, 0, 255).astype(np.uint8)
