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

from gt_jax.errors import ConfigError
from gt_jax.errors import ConfigFieldError


class ConfigFileNotFoundError(ConfigError, FileNotFoundError):
  """The config file of a spec does not exist."""


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
    ConfigFileNotFoundError (a FileNotFoundError): no such config file.
    ConfigError (a ValueError): the file fails to load, has no get_config,
      rejects the variant, or an override is malformed or mistyped.
    ConfigFieldError (also a KeyError): an override names a field that
      does not exist.
  """
  path, variant = _split_variant(spec)
  if not os.path.isfile(path):
    raise ConfigFileNotFoundError(f"config file not found: {path!r}")
  module_spec = importlib.util.spec_from_file_location(
      f"_gt_jax_config_{abs(hash(os.path.abspath(path)))}", path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except Exception as e:  # a broken config file: name it.
    raise ConfigError(f"config file {path!r} fails to load: "
                      f"{type(e).__name__}: {e}") from e
  if not hasattr(module, "get_config"):
    raise ConfigError(f"config file {path!r} defines no get_config(arg)")
  try:
    cfg = module.get_config(variant)
  except Exception as e:  # e.g. an unknown variant; --debug shows where.
    what = "" if isinstance(e, ValueError) else f"{type(e).__name__}: "
    raise ConfigError(f"{spec}: {what}{str(e).strip(chr(39))}") from e
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
      raise ConfigError(f"override --config.{item} is not of the form "
                        "--config.key=value")
    *parents, leaf = key.split(".")
    node = cfg
    for p in parents:
      if p not in node:
        raise ConfigFieldError(f"config has no field {key!r} (no {p!r})")
      node = node[p]
      if not isinstance(node, ml_collections.ConfigDict):
        raise ConfigFieldError(f"config has no field {key!r} ({p!r} is a "
                               "value, not a section)")
    if leaf not in node:
      raise ConfigFieldError(f"config has no field {key!r}")
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
    except (TypeError, ValueError) as e:
      raise ConfigError(
          f"override --config.{key}={raw}: wrong type for field of type "
          f"{type(old).__name__}") from e
  return cfg


def split_config_args(
    argv: Sequence[str]) -> tuple[list[str], list[str]]:
  """Separates `--config.key=value` overrides from other arguments.

  Raises:
    ConfigError: an override without `=` (`--config.total_steps 2`: the
      value would otherwise be taken for another argument).
  """
  overrides, rest = [], []
  for a in argv:
    if a.startswith("--config.") and "=" not in a:
      raise ConfigError(f"override {a!r} has no value: write {a}=VALUE "
                        "(with '=', no space)")
    (overrides if a.startswith("--config.") else rest).append(a)
  return overrides, rest
