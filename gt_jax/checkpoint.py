"""Weight import (PyTorch `.pth` -> Flax variables) and orbax save/restore.

Imports never need torch: files are read by `gt_jax.pth_reader`. Every
format goes through one explicit name map, `checkpoint_layout(model_cfg)`:
the official mmdet-v1 key, its PyTorch shape, the Flax variable path and the
conversion (LS §12, Appendix A):

  conv    OIHW -> HWIO, `w.transpose(2, 3, 1, 0)`
  linear  (out, in) -> (in, out), `w.T`
  fc6     the first shared FC flattens a (C, R, R) RoI feature in NCHW order;
          our RoI features are (R, R, C), so the rows are permuted:
          `w.reshape(F, C, R, R).transpose(2, 3, 1, 0).reshape(R*R*C, F)`
  copy    BN weight/bias/running stats and all biases.

Expected shapes are derived from the model config, so the tiny config's
checkpoints are checked as strictly as the official ResNet-50 one; missing,
unexpected and mis-shaped keys are collected and reported in one error.

Variables are nested dicts `{'params': ..., 'batch_stats': ...}` of numpy
float32 arrays, e.g. `params/backbone/layer1_0/conv1/kernel`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

import numpy as np

from gt_jax import pth_reader

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
_MODULATOR_GROUPS = ("rpn_modulator", "rcnn_modulator")


class CheckpointMismatchError(ValueError):
  """A state dict does not match the expected layout (lists every key)."""

  def __init__(self, path: str, missing: Sequence[str] = (),
               unexpected: Sequence[str] = (),
               misshaped: Sequence[str] = (), hint: str = ""):
    self.path = path
    self.missing = list(missing)
    self.unexpected = list(unexpected)
    self.misshaped = list(misshaped)
    parts = []
    for label, items in (("missing keys", self.missing),
                         ("unexpected keys", self.unexpected),
                         ("mis-shaped keys", self.misshaped)):
      if items:
        parts.append(f"{len(items)} {label}: " + ", ".join(items))
    super().__init__(f"{path}: checkpoint does not fit the model{hint}; "
                     + "; ".join(parts))


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


def _model_fields(model_cfg: Any) -> dict[str, Any]:
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


def _conv(layout, key, path, o, i, k, bias):
  layout.append(LayoutEntry(key + ".weight", (o, i, k, k), path + ("kernel",),
                            "conv"))
  if bias:
    layout.append(LayoutEntry(key + ".bias", (o,), path + ("bias",), "copy"))


def _bn(layout, key, module_path, c):
  for suffix, leaf, col in (("weight", "scale", "params"),
                            ("bias", "bias", "params"),
                            ("running_mean", "mean", "batch_stats"),
                            ("running_var", "var", "batch_stats")):
    layout.append(LayoutEntry(f"{key}.{suffix}", (c,),
                              (col,) + module_path + (leaf,), "copy"))


def _backbone_layout(f: Mapping[str, Any]) -> list[LayoutEntry]:
  """ResNet keys in registration order (torchvision / mmdet names)."""
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
  f = _model_fields(model_cfg)
  out = _backbone_layout(f)
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


def _convert(entry: LayoutEntry, w: np.ndarray) -> np.ndarray:
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


def _set_nested(tree: dict, path: Sequence[str], value: np.ndarray) -> None:
  node = tree
  for p in path[:-1]:
    node = node.setdefault(p, {})
  node[path[-1]] = value


def flatten_variables(
    variables: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
  """Nested variables -> {path tuple: leaf}."""
  flat = {}

  def walk(node, prefix):
    if isinstance(node, Mapping):
      for k, v in node.items():
        walk(v, prefix + (str(k),))
    else:
      flat[prefix] = node

  walk(variables, ())
  return flat


def path_str(path: Sequence[str]) -> str:
  """("params", "neck", "fpn_0", "bias") -> "params/neck/fpn_0/bias"."""
  return "/".join(path)


def parameter_counts(variables: Mapping[str, Any]) -> dict[str, int]:
  """Number of `params` elements per top-level module (LS §12 groups)."""
  counts: dict[str, int] = {}
  for path, leaf in flatten_variables(variables.get("params", {})).items():
    counts[path[0]] = counts.get(path[0], 0) + int(np.size(leaf))
  return counts


def _state_dict(obj: Any, path: str) -> dict[str, Any]:
  """`obj['state_dict']` (or `obj` itself), `module.` stripped.

  `num_batches_tracked` buffers are dropped (PyTorch >= 0.4.1 saves them;
  frozen BN never uses them), so their absence is accepted too.
  """
  sd = obj.get("state_dict", obj) if isinstance(obj, Mapping) else obj
  if not isinstance(sd, Mapping) or not sd:
    raise CheckpointMismatchError(
        path, missing=["state_dict (the file holds a "
                       f"{type(sd).__name__}, not a state dict)"])
  out = {}
  for key, value in sd.items():
    if not isinstance(key, str):
      raise CheckpointMismatchError(path, unexpected=[repr(key)])
    key = key.removeprefix("module.")
    if key.endswith(".num_batches_tracked"):
      continue
    out[key] = value
  return out


def _apply_layout(
    state: Mapping[str, Any], layout: Sequence[LayoutEntry], path: str, *,
    optional: frozenset[str] = frozenset(),
    resizable: frozenset[str] = frozenset(),
    ignored_prefixes: tuple[str, ...] = (),
) -> tuple[dict[str, Any], list[str]]:
  """Converts `state` along `layout`; reports every mismatch at once.

  Args:
    state: PyTorch key -> numpy array.
    layout: the expected entries.
    path: file name for error messages.
    optional: keys that may be absent (left for initialisation).
    resizable: keys whose shape may differ (then left for initialisation).
    ignored_prefixes: keys with these prefixes are dropped silently.

  Returns:
    (variables, Flax paths of the entries not loaded).

  Raises:
    CheckpointMismatchError: listing all missing, unexpected and mis-shaped
      keys.
  """
  variables: dict[str, Any] = {}
  scratch, missing, misshaped = [], [], []
  for e in layout:
    if e.key not in state:
      (scratch if e.key in optional else missing).append(e)
      continue
    w = state[e.key]
    shape = tuple(np.shape(w))
    if not isinstance(w, np.ndarray) or not (
        np.issubdtype(w.dtype, np.floating) or w.dtype.name == "bfloat16"):
      misshaped.append(f"{e.key} (a {getattr(w, 'dtype', type(w).__name__)}"
                       " value, expected a float tensor)")
    elif shape != e.torch_shape:
      if e.key in resizable:
        scratch.append(e)
      else:
        misshaped.append(f"{e.key} {shape} (expected {e.torch_shape})")
    else:
      _set_nested(variables, e.path, _convert(e, w))
  known = {e.key for e in layout}
  unexpected = [k for k in state
                if k not in known and not k.startswith(ignored_prefixes)]
  if missing or unexpected or misshaped:
    hint = ""
    if len(missing) + len(misshaped) > len(layout) // 2:
      hint = " (is it for another model config or checkpoint format?)"
    raise CheckpointMismatchError(
        path, [f"{e.key} {e.torch_shape}" for e in missing], unexpected,
        misshaped, hint)
  return variables, [path_str(e.path) for e in scratch]


def load_mmdet_weights(path: str | os.PathLike[str],
                       model_cfg: Any = None) -> dict[str, Any]:
  """Loads an official GlobalTrack (mmdet-v1 QG-RCNN) checkpoint, no torch.

  Args:
    path: the `.pth` file (`{'meta', 'state_dict', ...}` or a bare state
      dict; legacy or zip layout; keys may carry a `module.` prefix).
    model_cfg: the `model` config section the variables are for; None =
      the official ResNet-50-FPN.

  Returns:
    `{'params': ..., 'batch_stats': ...}`, nested dicts of float32 numpy
    arrays with every variable of `checkpoint_layout(model_cfg)`.

  Raises:
    FileNotFoundError, pth_reader.PthFormatError: unreadable file.
    CheckpointMismatchError: any missing, unexpected or mis-shaped key.
  """
  path = os.fspath(path)
  state = _state_dict(pth_reader.load_pth(path), path)
  variables, _ = _apply_layout(state, checkpoint_layout(model_cfg), path)
  return variables


def load_torchvision_resnet50(path: str | os.PathLike[str],
                              model_cfg: Any = None) -> dict[str, Any]:
  """Loads torchvision ImageNet ResNet weights into the backbone only.

  torchvision names are the mmdet backbone names without `backbone.`
  (`conv1`, `bn1`, `layer{L}.{B}.conv{N}`, `...downsample.{0,1}`); its
  classifier `fc.*` is ignored.

  Args:
    path: e.g. `resnet50-19c8e357.pth` (a bare state dict).
    model_cfg: the `model` config section (None = ResNet-50).

  Returns:
    Partial variables `{'params': {'backbone': ...}, 'batch_stats':
    {'backbone': ...}}`; merge them into initialised variables with
    `merge_variables`.

  Raises:
    FileNotFoundError, pth_reader.PthFormatError, CheckpointMismatchError.
  """
  path = os.fspath(path)
  state = _state_dict(pth_reader.load_pth(path), path)
  layout = [dataclasses.replace(e, key=e.key.removeprefix("backbone."))
            for e in _backbone_layout(_model_fields(model_cfg))]
  variables, _ = _apply_layout(state, layout, path, ignored_prefixes=("fc.",))
  return variables


def load_mmdet_faster_rcnn(
    path: str | os.PathLike[str],
    model_cfg: Any = None) -> tuple[dict[str, Any], list[str]]:
  """Loads an mmdet-v1 Faster R-CNN R50-FPN (COCO) checkpoint as the init.

  This mirrors the official GlobalTrack initialisation, which loads the
  COCO detector non-strictly (mmcv `load_checkpoint(strict=False)`): the
  class-agnostic parts (backbone, neck, rpn_head, bbox_head shared_fcs) are
  copied; `bbox_head.fc_cls` (81 COCO classes) and `fc_reg` (324) do not
  fit the 2-class head and, like the modulators a detector lacks, are left
  to the model's initialiser. If their shapes happen to fit, they are used.

  Args:
    path: the detector `.pth`.
    model_cfg: the `model` config section (None = official).

  Returns:
    (partial variables, sorted Flax paths to initialise from scratch).

  Raises:
    FileNotFoundError, pth_reader.PthFormatError, CheckpointMismatchError
      (for any mismatch outside fc_cls / fc_reg / the modulators).
  """
  path = os.fspath(path)
  state = _state_dict(pth_reader.load_pth(path), path)
  layout = checkpoint_layout(model_cfg)
  optional = frozenset(e.key for e in layout
                       if e.key.split(".")[0] in _MODULATOR_GROUPS)
  resizable = frozenset(e.key for e in layout
                        if e.key.startswith(("bbox_head.fc_cls.",
                                             "bbox_head.fc_reg.")))
  variables, scratch = _apply_layout(state, layout, path, optional=optional,
                                     resizable=resizable)
  return variables, sorted(scratch)


FORMATS = ("globaltrack", "mmdet_faster_rcnn", "torchvision_resnet50")


def load_weights(path: str | os.PathLike[str], fmt: str = "globaltrack",
                 model_cfg: Any = None) -> tuple[dict[str, Any], list[str]]:
  """Dispatches on `fmt` (one of FORMATS).

  Returns:
    (variables, sorted Flax paths of `checkpoint_layout(model_cfg)` that the
    file does not provide and must be initialised from scratch).
  """
  if fmt == "globaltrack":
    return load_mmdet_weights(path, model_cfg), []
  if fmt == "mmdet_faster_rcnn":
    return load_mmdet_faster_rcnn(path, model_cfg)
  if fmt == "torchvision_resnet50":
    variables = load_torchvision_resnet50(path, model_cfg)
    loaded = flatten_variables(variables)
    scratch = [path_str(p) for p in expected_variable_shapes(model_cfg)
               if p not in loaded]
    return variables, sorted(scratch)
  raise ValueError(f"unknown checkpoint format {fmt!r}; expected one of "
                   f"{', '.join(FORMATS)}")


def merge_variables(base: Mapping[str, Any],
                    partial: Mapping[str, Any]) -> dict[str, Any]:
  """`base` (e.g. freshly initialised) with the leaves of `partial` put in.

  Raises:
    ValueError: a leaf of `partial` has no counterpart in `base` or a
      different shape (all offending paths are listed).
  """
  flat = flatten_variables(base)
  bad = []
  for p, leaf in flatten_variables(partial).items():
    if p not in flat:
      bad.append(f"{path_str(p)} (not in the model)")
    elif tuple(np.shape(flat[p])) != tuple(np.shape(leaf)):
      bad.append(f"{path_str(p)} {tuple(np.shape(leaf))} (model has "
                 f"{tuple(np.shape(flat[p]))})")
    else:
      flat[p] = leaf
  if bad:
    raise ValueError("cannot merge variables: " + ", ".join(bad))
  out: dict[str, Any] = {}
  for p, leaf in flat.items():
    _set_nested(out, p, leaf)
  return out


def save_variables(directory: str | os.PathLike[str],
                   variables: Mapping[str, Any],
                   info: Mapping[str, Any] | None = None,
                   overwrite: bool = False) -> str:
  """Writes variables (and a small JSON `info`) as an orbax checkpoint.

  Orbax writes into a temporary directory and renames it when complete, so
  a crash never leaves a half-written `directory`.

  Args:
    directory: the checkpoint directory to create.
    variables: a pytree of arrays (numpy or jax; fetched to host).
    info: JSON-serialisable provenance, e.g. the source file and the paths
      initialised from scratch (read back with `restore_info`).
    overwrite: replace an existing `directory`.

  Returns:
    The absolute checkpoint directory.

  Raises:
    FileExistsError: `directory` exists and `overwrite` is False.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  directory = os.path.abspath(os.fspath(directory))
  if os.path.exists(directory) and not overwrite:
    raise FileExistsError(f"checkpoint directory exists: {directory!r} "
                          "(pass overwrite=True to replace it)")
  host = jax.tree.map(np.asarray, jax.device_get(dict(variables)))
  with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
    ckptr.save(directory, args=ocp.args.Composite(
        variables=ocp.args.StandardSave(host),
        info=ocp.args.JsonSave(dict(info or {}))), force=overwrite)
  return directory


def _composite_restore(directory: str, item: str) -> Any:
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"checkpoint directory not found: {directory!r}")
  if not os.path.isdir(os.path.join(directory, item)):
    raise ValueError(f"{directory}: not a checkpoint written by "
                     f"save_variables (no {item!r} item)")
  restore = (ocp.args.StandardRestore() if item == "variables" else
             ocp.args.JsonRestore())
  with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
    return ckptr.restore(directory, args=ocp.args.Composite(
        **{item: restore}))[item]


def restore_variables(directory: str | os.PathLike[str]) -> dict[str, Any]:
  """Reads variables written by `save_variables` (numpy arrays on host).

  Raises:
    FileNotFoundError: no such directory.
    ValueError: the directory is not such a checkpoint.
  """
  import jax  # pylint: disable=g-import-not-at-top
  tree = _composite_restore(os.path.abspath(os.fspath(directory)),
                            "variables")
  return jax.tree.map(np.asarray, tree)


def restore_info(directory: str | os.PathLike[str]) -> dict[str, Any]:
  """The `info` dict stored by `save_variables` ({} if none was given)."""
  return dict(_composite_restore(os.path.abspath(os.fspath(directory)),
                                 "info") or {})
