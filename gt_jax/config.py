"""Config loading: `load_config("configs/x.py[:variant]")` and overrides.

A config file defines `get_config(arg) -> ml_collections.ConfigDict`; the text
after the last ':' of the path is passed as `arg`. Command lines override
fields with `--config.a.b=value`; values are parsed as Python literals where
possible (`--config.total_steps=100`, `--config.model.anchor_ratios=(1.0,)`)
and as strings otherwise, then type-checked against the existing field.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from typing import Any, Iterable, Sequence

import ml_collections


def _split_variant(spec: str) -> tuple[str, str | None]:
  path, sep, variant = spec.rpartition(":")
  if sep and path.endswith(".py"):
    return path, variant or None
  return spec, None


def load_config(spec: str,
                overrides: Iterable[str] = ()) -> ml_collections.ConfigDict:
  """Loads `path.py[:variant]` and applies `key=value` overrides.

  Args:
    spec: a config file path, optionally followed by `:variant`.
    overrides: strings `a.b=value` (a leading `--config.` is accepted).

  Returns:
    The ConfigDict with overrides applied.

  Raises:
    FileNotFoundError: the config file does not exist.
    ValueError: the file has no get_config, or an override is malformed.
    KeyError: an override names a field that does not exist.
  """
  path, variant = _split_variant(spec)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"config file not found: {path!r}")
  module_spec = importlib.util.spec_from_file_location(
      f"_gt_jax_config_{abs(hash(os.path.abspath(path)))}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"config file {path!r} defines no get_config(arg)")
  cfg = module.get_config(variant)
  apply_overrides(cfg, overrides)
  return cfg


def _parse_value(text: str) -> Any:
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def apply_overrides(cfg: ml_collections.ConfigDict,
                    overrides: Iterable[str]) -> ml_collections.ConfigDict:
  """Applies `a.b=value` overrides in place (see module docstring)."""
  for item in overrides:
    item = item.removeprefix("--").removeprefix("config.")
    key, sep, raw = item.partition("=")
    if not sep or not key:
      raise ValueError(f"override {item!r} is not of the form key=value")
    *parents, leaf = key.split(".")
    node = cfg
    for p in parents:
      if p not in node:
        raise KeyError(f"config has no field {key!r} (no {p!r})")
      node = node[p]
    if leaf not in node:
      raise KeyError(f"config has no field {key!r}")
    value = _parse_value(raw)
    old = node[leaf]
    if isinstance(old, float) and isinstance(value, int) and not isinstance(
        value, bool):
      value = float(value)
    if isinstance(old, tuple) and isinstance(value, list):
      value = tuple(value)
    if isinstance(old, str) and not isinstance(value, str):
      value = raw
    try:
      node[leaf] = value
    except TypeError as e:
      raise ValueError(
          f"override {key}={raw!r}: wrong type for field of type "
          f"{type(old).__name__}") from e
  return cfg


def split_config_args(
    argv: Sequence[str]) -> tuple[list[str], list[str]]:
  """Separates `--config.key=value` overrides from other arguments."""
  overrides, rest = [], []
  for a in argv:
    (overrides if a.startswith("--config.") else rest).append(a)
  return overrides, rest
