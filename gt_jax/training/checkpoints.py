"""Training checkpoints: save, restore with fallback, and the final export.

Layout of a workdir:
  checkpoints/<step>/         finite states (orbax CheckpointManager: state,
                              data iterator per process, meta); resumed from
  checkpoints_nonfinite/<step>/  the state at a non-finite abort (kept for
                              inspection, never resumed from, never rotates
                              a finite checkpoint out)
  checkpoints_damaged/<step>/ unreadable checkpoints moved aside on resume
  model/                      the final weights (`export_model`, atomic)

Every function that touches orbax is collective (all processes call it);
only moving directories aside is done by process 0, between barriers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from gt_jax.training import hosts
from gt_jax.training import step as train_lib

FINITE_DIR = "checkpoints"
NONFINITE_DIR = "checkpoints_nonfinite"
DAMAGED_DIR = "checkpoints_damaged"
MODEL_DIR = "model"


class ShapeMismatchError(ValueError):
  """The checkpoint's parameters do not fit the configured model."""


def log(msg: str) -> None:
  if hosts.is_primary():
    print(msg, file=sys.stderr, flush=True)


def manager(workdir: str, sub: str, keep: int) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, sub)),
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))


def is_grain_iterator(it: Any) -> bool:
  """Grain iterators and those following grain's `DataLoaderIterator`
  protocol (bytes state + `start_prefetch`, like the pipeline's) are saved
  by grain's handler (one file per process); others as JSON."""
  return (isinstance(it, (grain.DatasetIterator, grain.DataLoaderIterator))
          or hasattr(it, "start_prefetch"))


def state_tree(state: train_lib.TrainState, rng: jax.Array) -> dict:
  # Optimizer state is stored as its leaf list: optax namedtuples with empty
  # nodes (MaskedNode, EmptyState) do not round-trip through orbax, and the
  # tree structure is rebuilt from the live optimizer anyway.
  return dict(step=state.step, params=state.params,
              batch_stats=state.batch_stats,
              opt_state=jax.tree.leaves(state.opt_state), rng=rng)


def save(mngr: ocp.CheckpointManager, step: int, state: train_lib.TrainState,
         rng: jax.Array, data_it: Any, fingerprint: str,
         extra_meta: dict[str, Any] | None = None) -> bool:
  """Saves `step` (collective); False when that step already exists."""
  if step in mngr.all_steps():
    return False
  data_arg = (grain.checkpoint.CheckpointSave(data_it)
              if is_grain_iterator(data_it) else
              ocp.args.JsonSave(data_it.get_state()))
  mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state_tree(state, rng)),
      data=data_arg,
      meta=ocp.args.JsonSave(dict(step=step, fingerprint=fingerprint,
                                  **(extra_meta or {})))), force=True)
  return True


# ---------------------------------------------------------------------------
# Restore.


def _names(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def check_shapes(step_dir: str, target: dict) -> None:
  """Compares the saved state's array shapes with `target`'s.

  Raises:
    ShapeMismatchError: naming the parameters whose shapes differ (or that
      exist on one side only).
  """
  md = ocp.StandardCheckpointHandler().metadata(
      epath.Path(os.path.join(step_dir, "state")))
  saved = {_names(p): tuple(m.shape) for p, m in
           jax.tree_util.tree_flatten_with_path(md.tree)[0]
           if hasattr(m, "shape")}
  want = {_names(p): tuple(x.shape) for p, x in
          jax.tree_util.tree_flatten_with_path(target)[0]}
  # Parameters first: the optimizer state mirrors them.
  order = lambda k: (not k.startswith("params/"), k)
  bad = [f"{k}: checkpoint {saved[k]} vs model {want[k]}"
         for k in sorted(want, key=order) if k in saved and saved[k] != want[k]]
  missing = sorted(k for k in want if k not in saved)
  extra = sorted(k for k in saved if k not in want)
  if missing:
    bad.append(f"not in the checkpoint: {', '.join(missing[:5])}"
               + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""))
  if extra:
    bad.append(f"not in the model: {', '.join(extra[:5])}"
               + (f" (+{len(extra) - 5} more)" if len(extra) > 5 else ""))
  if bad:
    raise ShapeMismatchError(
        f"{step_dir}: the checkpoint does not fit the configured model "
        f"({len(bad)} differences): " + "; ".join(bad[:6]) +
        ". Use the config it was trained with, or another --workdir.")


def describe_damage(step_dir: str, exc: BaseException) -> str:
  """Names the damaged file of `step_dir` (best effort) and the error."""
  for root, _, files in sorted(os.walk(step_dir)):
    for f in sorted(files):
      path = os.path.join(root, f)
      if f.endswith(".json") or f in ("_CHECKPOINT_METADATA", "_METADATA",
                                      "metadata"):
        try:
          with open(path, encoding="utf-8") as fh:
            json.load(fh)
        except (OSError, ValueError) as e:
          return f"{path}: unreadable ({type(e).__name__}: {e})"
  text = str(exc)
  m = re.search(r"(/[^\s\"']+)", text)
  first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
  where = m.group(1) if m and step_dir in m.group(1) else step_dir
  return f"{where}: unreadable ({type(exc).__name__}: {first[:300]})"


def restore_target(state: train_lib.TrainState, rng: jax.Array) -> dict:
  """Shapes, dtypes and shardings to restore into (those of the live state)."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      state_tree(state, rng))


# Errors that are bugs, never damage: they propagate instead of moving
# checkpoints aside.
_NOT_DAMAGE = (AttributeError, NameError, ImportError, AssertionError,
               ShapeMismatchError)


def _restore_step(mngr: ocp.CheckpointManager, step: int,
                  state: train_lib.TrainState, rng: jax.Array, data_it: Any,
                  fingerprint: str) -> tuple[train_lib.TrainState, jax.Array]:
  """Restores `step` into the shapes/shardings of `state`."""
  step_dir = os.path.join(str(mngr.directory), str(step))
  meta = mngr.restore(step, args=ocp.args.Composite(
      meta=ocp.args.JsonRestore()))["meta"]
  from gt_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  try:
    pipeline.check_fingerprint(meta["fingerprint"], fingerprint)
  except ValueError as e:
    raise ValueError(f"{step_dir}: refusing to resume: {e}") from None
  target = restore_target(state, rng)
  check_shapes(step_dir, target)
  data_arg = (grain.checkpoint.CheckpointRestore(data_it)
              if is_grain_iterator(data_it) else ocp.args.JsonRestore())
  out = mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(target), data=data_arg))
  if not is_grain_iterator(data_it):
    data_it.set_state(out["data"])
  tree = out["state"]
  opt_state = jax.tree.unflatten(jax.tree.structure(state.opt_state),
                                 tree["opt_state"])
  new_state = train_lib.TrainState(step=tree["step"], params=tree["params"],
                                   batch_stats=tree["batch_stats"],
                                   opt_state=opt_state)
  return new_state, tree["rng"]


def restore_latest(
    workdir: str, mngr: ocp.CheckpointManager, state: train_lib.TrainState,
    rng: jax.Array, data_it: Any, fingerprint: str
) -> tuple[train_lib.TrainState, jax.Array, int | None]:
  """Restores the newest readable finite checkpoint (collective).

  A damaged checkpoint (truncated data, metadata or iterator file) is named
  in a warning and moved to `checkpoints_damaged/`, and the previous one is
  tried. A changed pipeline (fingerprint) or model (shapes) raises: those
  are configuration errors, not damage.

  Returns:
    (state, rng, step restored or None when no readable checkpoint exists).
  """
  restore_target(state, rng)  # a bad live state fails here, not as damage
  for step in sorted(mngr.all_steps(), reverse=True):
    step_dir = os.path.join(str(mngr.directory), str(step))
    error = None
    try:
      new_state, new_rng = _restore_step(mngr, step, state, rng, data_it,
                                         fingerprint)
    except _NOT_DAMAGE:
      raise
    except ValueError as e:
      if "refusing to resume" in str(e):
        raise
      error = e  # tensorstore / JSON errors of a damaged checkpoint
    except Exception as e:  # pylint: disable=broad-except
      error = e  # OS / orbax errors of a damaged checkpoint
    if hosts.all_processes(error is None):
      return new_state, new_rng, step
    why = (describe_damage(step_dir, error) if error is not None else
           "unreadable on another process")
    log(f"warning: checkpoint {step_dir} is damaged: {why}; moving it to "
        f"{os.path.join(workdir, DAMAGED_DIR)} and trying the previous one")
    hosts.barrier(f"damaged-{step}-a")
    if hosts.is_primary():
      dest = os.path.join(workdir, DAMAGED_DIR, str(step))
      if os.path.exists(dest):
        shutil.rmtree(dest)
      os.makedirs(os.path.dirname(dest), exist_ok=True)
      shutil.move(step_dir, dest)
    hosts.barrier(f"damaged-{step}-b")
    mngr.reload()
  return state, rng, None


# ---------------------------------------------------------------------------
# The exported model.


def export_model(workdir: str, state: train_lib.TrainState,
                 info: dict[str, Any]) -> str:
  """Writes the weights to WORKDIR/model atomically (collective).

  The new model is written to `model.partial` by every process (orbax
  synchronises them), then process 0 swaps it in: `model` -> `model.old`,
  `model.partial` -> `model`, and only then removes `model.old`. A crash at
  any point leaves either the old or the new complete model, or (between
  the two renames) `model.old`, which `recover_model` restores.
  """
  from gt_jax import checkpoint  # pylint: disable=g-import-not-at-top
  final = os.path.abspath(os.path.join(workdir, MODEL_DIR))
  partial, old = final + ".partial", final + ".old"
  recover_model(workdir)
  hosts.barrier("export-start")
  if hosts.is_primary() and os.path.exists(partial):
    shutil.rmtree(partial)
  hosts.barrier("export-clean")
  variables = jax.device_get({"params": state.params,
                              "batch_stats": state.batch_stats})
  checkpoint.save_variables(partial, variables, info, overwrite=True)
  hosts.barrier("export-written")
  if hosts.is_primary():
    if os.path.exists(final):
      os.replace(final, old)
    os.replace(partial, final)
    if os.path.exists(old):
      shutil.rmtree(old)
  hosts.barrier("export-done")
  return final


def recover_model(workdir: str) -> None:
  """Puts `model.old` back when a crash left it without `model` (process 0);
  removes a leftover `model.old` otherwise."""
  if not hosts.is_primary():
    return
  final = os.path.abspath(os.path.join(workdir, MODEL_DIR))
  old = final + ".old"
  if os.path.exists(old):
    if os.path.exists(final):
      shutil.rmtree(old)
    else:
      os.replace(old, final)
      log(f"restored {final} from an interrupted export")


def model_is_complete(workdir: str) -> bool:
  """Whether WORKDIR/model is a readable export (its info can be read)."""
  from gt_jax import checkpoint  # pylint: disable=g-import-not-at-top
  path = os.path.join(workdir, MODEL_DIR)
  if not os.path.isdir(path):
    return False
  try:
    checkpoint.restore_info(path)
  except Exception:  # pylint: disable=broad-except
    return False
  return True


def finite_leaves(tree: Any) -> bool:
  return all(bool(np.isfinite(np.asarray(x)).all())
             for x in jax.tree.leaves(jax.device_get(tree)))
