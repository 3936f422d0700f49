"""Flax variables on disk as orbax checkpoints (`save_variables` / `restore_*`).

A model directory holds two items: `variables` ({"params", "batch_stats"},
numpy on restore) and `info` (a small JSON dict of provenance).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np


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


# What `save_variables` writes at the top of a checkpoint directory.
_CHECKPOINT_ENTRIES = ("variables", "info")


def is_variables_checkpoint(directory: str | os.PathLike[str]) -> bool:
  """True when `directory` looks like a `save_variables` checkpoint: its
  `variables` and `info` items, nothing that orbax would not write."""
  directory = os.fspath(directory)
  if not os.path.isdir(directory) or os.path.islink(directory):
    return False
  entries = set(os.listdir(directory))
  known = set(_CHECKPOINT_ENTRIES) | {"_CHECKPOINT_METADATA",
                                      "commit_success.txt"}
  return (all(os.path.isdir(os.path.join(directory, e))
              for e in _CHECKPOINT_ENTRIES) and entries <= known)


def _composite_restore(directory: str, item: str) -> Any:
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  if os.path.isfile(directory):
    raise ValueError(f"{directory}: a file, not a checkpoint folder (convert "
                     "a .pth with `python -m gt_jax.convert`)")
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"checkpoint directory not found: {directory!r}")
  if not os.path.isdir(os.path.join(directory, item)):
    raise ValueError(f"{directory}: not a checkpoint written by "
                     f"save_variables (no {item!r} item)")
  restore = (ocp.args.StandardRestore() if item == "variables" else
             ocp.args.JsonRestore())
  try:
    with ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as ckptr:
      return ckptr.restore(directory, args=ocp.args.Composite(
          **{item: restore}))[item]
  except Exception as e:  # pylint: disable=broad-except
    # orbax / tensorstore errors: many lines, often without the folder.
    first = next((l.strip() for l in str(e).splitlines() if l.strip()),
                 type(e).__name__)
    raise ValueError(f"{directory}: damaged or incomplete checkpoint "
                     f"({item}: {first})") from e


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
