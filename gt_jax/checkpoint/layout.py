"""The official checkpoint name map: mmdet-v1 keys <-> Flax variables.

`checkpoint_layout(model_cfg)` lists, in official registration order, every
tensor of the GlobalTrack (mmdet-v1 QG-RCNN) state dict: its PyTorch key and
shape, the Flax variable path and the conversion (LS §12, Appendix A):

  conv    OIHW -> HWIO, `w.transpose(2, 3, 1, 0)`
  linear  (out, in) -> (in, out), `w.T`
  fc6     the first shared FC flattens a (C, R, R) RoI feature in NCHW order;
          our RoI features are (R, R, C), so the rows are permuted:
          `w.reshape(F, C, R, R).transpose(2, 3, 1, 0).reshape(R*R*C, F)`
  copy    BN weight/bias/running stats and all biases.

Expected shapes are derived from the model config, so the tiny config's
checkpoints are checked as strictly as the official ResNet-50 one. The file
readers and orbax save/restore that use this map are in `gt_jax.checkpoint`
(which re-exports `LayoutEntry`, `checkpoint_layout` and
`expected_variable_shapes`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

# official: mmdet arch_settings / torchvision resnet (blocks per stage).
_STAGE_SIZES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3),
                101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
_BOTTLENECK_DEPTHS = (50, 101, 152)

# The official GlobalTrack model (configs/globaltrack_r50_fpn.py defaults;
# official: qg_rcnn_r50_fpn_coco_got10k_lasot.py, LS §3-§10).
_OFFICIAL_MODEL = dict(
    depth=50, stage_sizes=None, base_width=64, fpn_channels=256,
    num_fpn_outs=5, anchor_scales=(8,), anchor_ratios=(0.5, 1.0, 2.0),
    roi_out_size=7, fc_dim=1024, num_classes=2, rpn_modulator_fx=False)

# Groups a COCO Faster R-CNN checkpoint cannot provide (GlobalTrack-only).
MODULATOR_GROUPS = ("rpn_modulator", "rcnn_modulator")


@dataclasses.dataclass(frozen=True)
class LayoutEntry:
  """One tensor of the official state dict and where it goes in Flax.

  Attributes:
    key: PyTorch key, e.g. "backbone.layer1.0.conv1.weight".
    torch_shape: its shape in the checkpoint, e.g. (64, 64, 1, 1).
    path: Flax path, e.g. ("params", "backbone", "layer1_0", "conv1",
      "kernel").
    kind: "conv", "linear", "fc6" or "copy" (see the module docstring).
    roi_chw: for "fc6", the (C, R, R) RoI feature its input flattens.
  """
  key: str
  torch_shape: tuple[int, ...]
  path: tuple[str, ...]
  kind: str
  roi_chw: tuple[int, int, int] | None = None

  @property
  def flax_shape(self) -> tuple[int, ...]:
    s = self.torch_shape
    if self.kind == "conv":
      return (s[2], s[3], s[1], s[0])
    if self.kind in ("linear", "fc6"):
      return (s[1], s[0])
    return s


def model_fields(model_cfg: Any) -> dict[str, Any]:
  """Architecture fields of `cfg.model` (None -> the official model)."""
  fields = dict(_OFFICIAL_MODEL)
  if model_cfg is not None:
    for name in fields:
      if name in model_cfg:
        fields[name] = model_cfg[name]
  if fields["depth"] not in _STAGE_SIZES:
    raise ValueError(f"model.depth={fields['depth']} not supported; expected "
                     f"one of {sorted(_STAGE_SIZES)}")
  if fields["rpn_modulator_fx"]:
    raise ValueError(
        "model.rpn_modulator_fx=True adds a conv no official checkpoint has "
        "(LS §6); import weights with rpn_modulator_fx=False")
  return fields


def _conv(layout: list[LayoutEntry], key: str, path: tuple[str, ...], o: int,
          i: int, k: int, bias: bool) -> None:
  """Appends a k x k conv `key` (OIHW (o, i, k, k)) and maybe its bias."""
  layout.append(LayoutEntry(key + ".weight", (o, i, k, k), path + ("kernel",),
                            "conv"))
  if bias:
    layout.append(LayoutEntry(key + ".bias", (o,), path + ("bias",), "copy"))


def _bn(layout: list[LayoutEntry], key: str, module_path: tuple[str, ...],
        c: int) -> None:
  """Appends the 4 tensors of BatchNorm `key` with `c` channels."""
  for suffix, leaf, col in (("weight", "scale", "params"),
                            ("bias", "bias", "params"),
                            ("running_mean", "mean", "batch_stats"),
                            ("running_var", "var", "batch_stats")):
    layout.append(LayoutEntry(f"{key}.{suffix}", (c,),
                              (col,) + module_path + (leaf,), "copy"))


def backbone_layout(f: Mapping[str, Any]) -> list[LayoutEntry]:
  """ResNet keys in registration order (torchvision / mmdet names).

  Args:
    f: architecture fields from `model_fields`.
  """
  out: list[LayoutEntry] = []
  bottleneck = f["depth"] in _BOTTLENECK_DEPTHS
  expansion = 4 if bottleneck else 1
  sizes = tuple(f["stage_sizes"] or _STAGE_SIZES[f["depth"]])
  w0 = f["base_width"]
  p = ("params", "backbone")
  _conv(out, "backbone.conv1", p + ("conv1",), w0, 3, 7, False)
  _bn(out, "backbone.bn1", ("backbone", "bn1"), w0)
  cin = w0
  for li, n in enumerate(sizes):
    width = w0 * 2**li
    cout = width * expansion
    for b in range(n):
      key = f"backbone.layer{li + 1}.{b}"
      mod = ("backbone", f"layer{li + 1}_{b}")
      block_in = cin if b == 0 else cout
      if bottleneck:
        convs = ((1, block_in, width), (3, width, width), (1, width, cout))
      else:
        convs = ((3, block_in, width), (3, width, width))
      for j, (k, i, o) in enumerate(convs, start=1):
        _conv(out, f"{key}.conv{j}", ("params",) + mod + (f"conv{j}",), o, i,
              k, False)
        _bn(out, f"{key}.bn{j}", mod + (f"bn{j}",), o)
      stride = 2 if (li > 0 and b == 0) else 1
      if b == 0 and (stride != 1 or block_in != cout):
        _conv(out, f"{key}.downsample.0", ("params",) + mod +
              ("downsample_conv",), cout, block_in, 1, False)
        _bn(out, f"{key}.downsample.1", mod + ("downsample_bn",), cout)
    cin = cout
  return out


def checkpoint_layout(model_cfg: Any = None) -> list[LayoutEntry]:
  """The official state-dict layout for a model config, in official order.

  Args:
    model_cfg: the `model` section of a config (ConfigDict or dict); None
      means the official GlobalTrack ResNet-50-FPN (374 keys in the file,
      321 without `num_batches_tracked`, which is not listed here).

  Returns:
    One `LayoutEntry` per parameter / BN statistic.
  """
  f = model_fields(model_cfg)
  out = backbone_layout(f)
  c, r, fc = f["fpn_channels"], f["roi_out_size"], f["fc_dim"]
  expansion = 4 if f["depth"] in _BOTTLENECK_DEPTHS else 1
  stage_out = [f["base_width"] * 2**i * expansion for i in range(4)]
  for i, cin in enumerate(stage_out):
    _conv(out, f"neck.lateral_convs.{i}.conv",
          ("params", "neck", f"lateral_{i}"), c, cin, 1, True)
  for i in range(4):
    _conv(out, f"neck.fpn_convs.{i}.conv", ("params", "neck", f"fpn_{i}"), c,
          c, 3, True)
  a = len(f["anchor_scales"]) * len(f["anchor_ratios"])
  rpn = ("params", "rpn_head")
  _conv(out, "rpn_head.rpn_conv", rpn + ("rpn_conv",), c, c, 3, True)
  _conv(out, "rpn_head.rpn_cls", rpn + ("rpn_cls",), a, c, 1, True)
  _conv(out, "rpn_head.rpn_reg", rpn + ("rpn_reg",), 4 * a, c, 1, True)
  # official order: fc_cls / fc_reg are registered before shared_fcs.
  head = ("params", "bbox_head")
  n = f["num_classes"]
  for name, o in (("fc_cls", n), ("fc_reg", 4 * n)):
    out.append(LayoutEntry(f"bbox_head.{name}.weight", (o, fc),
                           head + (name, "kernel"), "linear"))
    out.append(LayoutEntry(f"bbox_head.{name}.bias", (o,),
                           head + (name, "bias"), "copy"))
  for j, (name, i, kind) in enumerate((("fc6", c * r * r, "fc6"),
                                       ("fc7", fc, "linear"))):
    out.append(LayoutEntry(f"bbox_head.shared_fcs.{j}.weight", (fc, i),
                           head + (name, "kernel"), kind,
                           (c, r, r) if kind == "fc6" else None))
    out.append(LayoutEntry(f"bbox_head.shared_fcs.{j}.bias", (fc,),
                           head + (name, "bias"), "copy"))
  mod = ("params", "rpn_modulator")
  for k in range(f["num_fpn_outs"]):
    _conv(out, f"rpn_modulator.proj_modulator.{k}",
          mod + (f"proj_modulator_{k}",), c, c, r, True)
  for k in range(f["num_fpn_outs"]):
    _conv(out, f"rpn_modulator.proj_out.{k}", mod + (f"proj_out_{k}",), c, c,
          1, True)
  mod = ("params", "rcnn_modulator")
  for name, k in (("proj_z", 3), ("proj_x", 3), ("proj_out", 1)):
    _conv(out, f"rcnn_modulator.{name}", mod + (name,), c, c, k, True)
  return out


def expected_variable_shapes(
    model_cfg: Any = None) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Flax path -> shape of every variable the layout provides."""
  return {e.path: e.flax_shape for e in checkpoint_layout(model_cfg)}


def convert_tensor(entry: LayoutEntry, w: np.ndarray) -> np.ndarray:
  """PyTorch tensor -> Flax array (float32, C-contiguous)."""
  w = np.asarray(w, np.float32)
  if entry.kind == "conv":
    w = w.transpose(2, 3, 1, 0)
  elif entry.kind == "linear":
    w = w.T
  elif entry.kind == "fc6":
    # official: flatten index c*R*R + h*R + w (NCHW); ours (h*R + w)*C + c.
    fc = entry.torch_shape[0]
    w = w.reshape((fc,) + entry.roi_chw).transpose(2, 3, 1, 0)
    w = w.reshape(-1, fc)
  return np.ascontiguousarray(w)
