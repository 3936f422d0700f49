"""Weight import: PyTorch `.pth` -> Flax variables (no torch needed).

Files are read by `pth_reader` (a whitelisting unpickler). Every format goes
through one explicit name map, `checkpoint_layout(model_cfg)` of `layout.py`: the official mmdet-v1 key, its PyTorch shape,
the Flax variable path and the conversion (LS §12, Appendix A). Missing,
unexpected and mis-shaped keys are collected and reported in one error.

Variables are nested dicts `{'params': ..., 'batch_stats': ...}` of numpy
float32 arrays, e.g. `params/backbone/layer1_0/conv1/kernel`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

import numpy as np

from gt_jax import errors

from gt_jax.checkpoint import pth_reader
from gt_jax.checkpoint.layout import (MODULATOR_GROUPS, LayoutEntry,
                                      backbone_layout, checkpoint_layout,
                                      convert_tensor, expected_variable_shapes,
                                      model_fields)


class CheckpointMismatchError(errors.CheckpointMismatchError):
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
      _set_nested(variables, e.path, convert_tensor(e, w))
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
            for e in backbone_layout(model_fields(model_cfg))]
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
                       if e.key.split(".")[0] in MODULATOR_GROUPS)
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


def check_variables_fit(variables: Mapping[str, Any],
                        expected: Mapping[str, Any], source: str,
                        hint: str = "", show: int = 3) -> None:
  """Raises if `variables` differ from `expected` in paths or shapes.

  Args:
    variables: restored variables (leaves with `.shape`).
    expected: the model's variables or their `jax.eval_shape` structs.
    source: the checkpoint, for the message.
    hint: appended to the message (e.g. which config was assumed).
    show: how many names of each kind the one-line message lists.

  Raises:
    CheckpointMismatchError: naming the first missing, unexpected and
      mis-shaped variables and how many there are.
  """
  have = {path_str(k): tuple(np.shape(v))
          for k, v in flatten_variables(variables).items()}
  want = {path_str(k): tuple(v.shape)
          for k, v in flatten_variables(expected).items()}
  missing = sorted(set(want) - set(have))
  unexpected = sorted(set(have) - set(want))
  misshaped = [f"{k} {have[k]} (model: {want[k]})"
               for k in sorted(set(have) & set(want)) if have[k] != want[k]]
  if not (missing or unexpected or misshaped):
    return

  def few(items):
    return items[:show] + ([f"... {len(items) - show} more"]
                           if len(items) > show else [])

  raise CheckpointMismatchError(source, few(missing), few(unexpected),
                                few(misshaped), hint)
