"""The training driver: mesh, data, model/optimizer, shard, step, checkpoint,
loop (read top to bottom, like big_vision's train.py).

`train(cfg, workdir)` trains `cfg.total_steps` steps, writes
`workdir/metrics.jsonl` (and TensorBoard events when a writer is installed)
and orbax checkpoints under `workdir/checkpoints`, and resumes from them
automatically. Init priority:
  1. resume from the latest checkpoint in `workdir` (params, optimizer state,
     step, rng and the data iterator; the data fingerprint must match);
  2. else `cfg.init_checkpoint` (orbax dir from `python -m gt_jax.convert`)
     merged over a random init (parts it lacks stay random);
  3. else a random init.
SIGTERM/SIGINT save a checkpoint at the current step and return cleanly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from typing import Any, Callable, Iterator

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from gt_jax.training import sharding
from gt_jax.training import step as train_lib
from gt_jax.model.build import build_model

# Field -> dtype of a training batch (docs/internals.md). Casting on the host
# keeps the compiled step's signature fixed whatever the pipeline emits.
BATCH_FIELDS = dict(query_image=np.float32, search_image=np.float32,
                    query_boxes=np.float32, search_boxes=np.float32,
                    instance_valid=np.bool_, query_hw=np.int32,
                    search_hw=np.int32)


@dataclasses.dataclass
class TrainResult:
  state: train_lib.TrainState
  step: int
  preempted: bool = False
  last_metrics: dict[str, float] = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------------------
# Metrics writer (process 0 only).


class MetricWriter:
  """JSON lines always; TensorBoard when tensorboardX is importable."""

  def __init__(self, workdir: str, enabled: bool):
    self.enabled = enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if enabled:
      try:
        import tensorboardX  # pylint: disable=g-import-not-at-top
        self._tb = tensorboardX.SummaryWriter(os.path.join(workdir, "tb"))
      except ImportError:
        self._tb = None

  def truncate_after(self, step: int) -> None:
    """Drops lines logged after `step` (a crash since the last checkpoint)."""
    if not self.enabled or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      lines = [l for l in f if l.strip() and json.loads(l)["step"] <= step]
    with open(self.path, "w") as f:
      f.writelines(lines)

  def write(self, step: int, metrics: dict[str, float]) -> None:
    if not self.enabled:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps(dict(step=step, **metrics)) + "\n")
    if self._tb is not None:
      for k, v in metrics.items():
        self._tb.add_scalar(k, v, step)

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


# ---------------------------------------------------------------------------
# Checkpoints: state + rng + data iterator + fingerprint in one composite.


def _is_grain_iterator(it: Any) -> bool:
  """Grain iterators and those following grain's `DataLoaderIterator`
  protocol (bytes state + `start_prefetch`, like the pipeline's) are saved
  by grain's handler (one file per process); others as JSON."""
  return (isinstance(it, (grain.DatasetIterator, grain.DataLoaderIterator))
          or hasattr(it, "start_prefetch"))


def _state_tree(state: train_lib.TrainState, rng: jax.Array) -> dict:
  # Optimizer state is stored as its leaf list: optax namedtuples with empty
  # nodes (MaskedNode, EmptyState) do not round-trip through orbax, and the
  # tree structure is rebuilt from the live optimizer anyway.
  return dict(step=state.step, params=state.params,
              batch_stats=state.batch_stats,
              opt_state=jax.tree.leaves(state.opt_state), rng=rng)


def _save(mngr: ocp.CheckpointManager, step: int,
          state: train_lib.TrainState, rng: jax.Array, data_it: Any,
          fingerprint: str) -> None:
  data_arg = (grain.checkpoint.CheckpointSave(data_it)
              if _is_grain_iterator(data_it) else
              ocp.args.JsonSave(data_it.get_state()))
  mngr.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(_state_tree(state, rng)),
      data=data_arg,
      meta=ocp.args.JsonSave(dict(step=step, fingerprint=fingerprint))),
            force=True)


def _restore(mngr: ocp.CheckpointManager, step: int,
             state: train_lib.TrainState, rng: jax.Array, data_it: Any,
             fingerprint: str) -> tuple[train_lib.TrainState, jax.Array]:
  """Restores into the shapes/shardings of `state`; checks the fingerprint."""
  meta = mngr.restore(step, args=ocp.args.Composite(
      meta=ocp.args.JsonRestore()))["meta"]
  from gt_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  try:
    pipeline.check_fingerprint(meta["fingerprint"], fingerprint)
  except ValueError as e:
    raise ValueError(f"{mngr.directory}/{step}: refusing to resume: {e}"
                     ) from None
  target = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      _state_tree(state, rng))
  data_arg = (grain.checkpoint.CheckpointRestore(data_it)
              if _is_grain_iterator(data_it) else ocp.args.JsonRestore())
  out = mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(target), data=data_arg))
  if not _is_grain_iterator(data_it):
    data_it.set_state(out["data"])
  tree = out["state"]
  opt_state = jax.tree.unflatten(jax.tree.structure(state.opt_state),
                                 tree["opt_state"])
  new_state = train_lib.TrainState(step=tree["step"], params=tree["params"],
                                   batch_stats=tree["batch_stats"],
                                   opt_state=opt_state)
  return new_state, tree["rng"]


# ---------------------------------------------------------------------------
# Signals.


@contextlib.contextmanager
def _stop_on_signals():
  """Yields a dict whose "signal" entry is set by SIGTERM/SIGINT."""
  flag: dict[str, Any] = {"signal": None}

  def handler(signum, frame):
    del frame
    flag["signal"] = signum

  old = {}
  for s in (signal.SIGTERM, signal.SIGINT):
    try:
      old[s] = signal.signal(s, handler)
    except ValueError:  # not the main thread: leave signals alone
      pass
  try:
    yield flag
  finally:
    for s, h in old.items():
      signal.signal(s, h)


# ---------------------------------------------------------------------------
# Compiled pieces, shared between calls with the same settings (tests and
# notebooks run several short trainings in one process).

_COMPILED: dict[str, Any] = {}


def _settings_key(cfg: ml_collections.ConfigDict,
                  mesh: jax.sharding.Mesh) -> str:
  parts = dict(model=cfg.model.to_dict(), train=cfg.train.to_dict(),
               optim=cfg.optim.to_dict(), epoch=cfg.data.epoch_size,
               batch=cfg.global_batch_size, dtype=cfg.compute_dtype,
               devices=[d.id for d in mesh.devices.flat])
  return json.dumps(parts, sort_keys=True, default=str)


def compiled_fns(cfg: ml_collections.ConfigDict, mesh: jax.sharding.Mesh
                 ) -> tuple[Any, Callable[..., Any], Callable[..., Any]]:
  """`(model, init_fn, step_fn)` for `cfg` on `mesh`, cached per settings.

  `init_fn(rng) -> TrainState` (jitted, replicated output) and the sharded,
  jitted `step_fn(state, batch, rng) -> (state, metrics)` (state donated).
  """
  key = _settings_key(cfg, mesh)
  if key in _COMPILED:
    return _COMPILED[key]
  model = build_model(cfg.model, cfg.compute_dtype)
  images = jnp.zeros((1, 64, 64, 3), jnp.float32)
  box = jnp.array([[8.0, 8.0, 40.0, 40.0]], jnp.float32)
  abstract = jax.eval_shape(model.init, jax.random.PRNGKey(0), images, box)
  optimizer = train_lib.optimizer_from_config(cfg, abstract["params"])

  def init(rng):
    return train_lib.init_state(model.init(rng, images, box), optimizer)

  abstract_state = jax.eval_shape(init, jax.random.PRNGKey(0))
  init_fn = jax.jit(init, out_shardings=sharding.tree_replicated(
      abstract_state, mesh))
  mask = train_lib.trainable_mask(abstract["params"], cfg.optim.frozen_stages)
  step_fn = train_lib.make_train_step(model, train_lib.loss_config_from(cfg),
                                      optimizer, mask,
                                      train_lib.schedule_from_config(cfg))
  out = (model, init_fn, sharding.jit_train_step(step_fn, mesh))
  _COMPILED[key] = out
  return out


def _init_from_checkpoint(state: train_lib.TrainState, path: str,
                          mesh: jax.sharding.Mesh) -> train_lib.TrainState:
  from gt_jax import checkpoint  # pylint: disable=g-import-not-at-top
  loaded = checkpoint.restore_variables(path)
  base = jax.device_get({"params": state.params,
                         "batch_stats": state.batch_stats})
  try:
    merged = checkpoint.merge_variables(base, loaded)
  except ValueError as e:
    raise ValueError(f"config init_checkpoint={path!r}: {e}") from None
  merged = sharding.replicate(merged, mesh)
  return state.replace(params=merged["params"],
                       batch_stats=merged["batch_stats"])


def _initial_state(
    mngr: ocp.CheckpointManager, writer: MetricWriter,
    state: train_lib.TrainState, rng: jax.Array, data_it: Any,
    fingerprint: str, cfg: ml_collections.ConfigDict,
    mesh: jax.sharding.Mesh) -> tuple[train_lib.TrainState, jax.Array]:
  """Init priority: 1. resume, 2. init_checkpoint, 3. the random init."""
  latest = mngr.latest_step()
  if latest is not None:
    state, rng = _restore(mngr, latest, state, rng, data_it, fingerprint)
    writer.truncate_after(latest)
    _log(f"resumed from {mngr.directory}/{latest}")
  elif cfg.init_checkpoint:
    state = _init_from_checkpoint(state, cfg.init_checkpoint, mesh)
    _log(f"initialised from {cfg.init_checkpoint}")
  return state, rng


def _export_model(workdir: str, state: train_lib.TrainState,
                  cfg: ml_collections.ConfigDict, step: int) -> None:
  """Writes the final weights to WORKDIR/model (an orbax variables dir).

  That directory is what `Tracker`, `evaluate.py --checkpoint` and the next
  stage's `--config.init_checkpoint` read (e.g. paper stage 1 -> stage 2).
  """
  from gt_jax import checkpoint  # pylint: disable=g-import-not-at-top
  variables = jax.device_get({"params": state.params,
                              "batch_stats": state.batch_stats})
  if jax.process_index() == 0:
    path = checkpoint.save_variables(
        os.path.join(workdir, "model"), variables,
        dict(step=step, total_steps=int(cfg.total_steps),
             variant=cfg.get("variant", "")), overwrite=True)
    _log(f"final weights written to {path}")


def _device_batch(batch: dict[str, np.ndarray],
                  mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  missing = [k for k in BATCH_FIELDS if k not in batch]
  if missing:
    raise KeyError(f"data pipeline batch lacks fields {missing}")
  return sharding.to_global(
      {k: np.asarray(batch[k], t) for k, t in BATCH_FIELDS.items()}, mesh)


def _log(msg: str) -> None:
  if jax.process_index() == 0:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# The driver.


def train(cfg: ml_collections.ConfigDict, workdir: str, *,
          make_data: Callable[[ml_collections.ConfigDict],
                              tuple[Iterator[Any], str]] | None = None,
          on_step: Callable[[int], None] | None = None,
          progress: bool = True) -> TrainResult:
  """Trains (or resumes) `cfg` in `workdir`.

  Args:
    cfg: the full config (see configs/globaltrack_r50_fpn.py).
    workdir: output directory (created).
    make_data: `cfg -> (iterator, fingerprint)`; default the grain pipeline
      `gt_jax.data.pipeline.make_train_pipeline`.
    on_step: called with the step number after each dispatched step (tests
      use it to send SIGTERM).
    progress: show a tqdm progress bar with ETA.

  Returns:
    TrainResult (final state, step reached, whether a signal stopped it).

  Raises:
    RuntimeError: `cfg.max_nonfinite_steps` non-finite steps in a row (a
      checkpoint is written first).
    ValueError: the workdir's checkpoint came from a different pipeline.
  """
  os.makedirs(workdir, exist_ok=True)
  # Mesh.
  mesh = sharding.make_mesh()
  sharding.local_batch_size(cfg.global_batch_size, mesh)  # validates

  # Data.
  if make_data is None:
    from gt_jax.data import pipeline  # pylint: disable=g-import-not-at-top
    make_data = pipeline.make_train_pipeline
  data_it, fingerprint = make_data(cfg)

  # Model, optimizer, compiled init and step.
  _, init_fn, step_fn = compiled_fns(cfg, mesh)
  root = jax.random.PRNGKey(cfg.seed)
  init_rng, train_rng = jax.random.split(root)
  state = init_fn(init_rng)
  rng = sharding.replicate(train_rng, mesh)

  # Checkpoint: resume > init_checkpoint > scratch.
  mngr = ocp.CheckpointManager(
      os.path.abspath(os.path.join(workdir, "checkpoints")),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=cfg.keep_checkpoints, create=True))
  writer = MetricWriter(workdir, jax.process_index() == 0)
  try:
    state, rng = _initial_state(mngr, writer, state, rng, data_it,
                                fingerprint, cfg, mesh)
  except Exception:
    mngr.close()
    raise
  step = int(jax.device_get(state.step))

  # Loop.
  bar = None
  if progress and jax.process_index() == 0:
    import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm.tqdm(total=cfg.total_steps, initial=step, desc="train",
                    dynamic_ncols=True)
  pending = None  # (step, device metrics) fetched one step late
  streak, last, preempted = 0, {}, False
  t_window, n_window = time.perf_counter(), 0

  def consume(s, m):
    nonlocal streak, last, t_window, n_window
    m = train_lib.host_float_metrics(m)
    last = m
    n_window += 1
    if m["skipped"] > 0:
      streak += 1
      _log(f"step {s}: non-finite loss={m['loss']} grad_norm="
           f"{m['grad_norm']}; update skipped ({streak} in a row)")
    else:
      streak = 0
    if bar is not None:
      bar.update(1)
      bar.set_postfix(loss=f"{m['loss']:.4f}")
    if s % cfg.log_every == 0 or s == 1 or s == cfg.total_steps:
      dt = time.perf_counter() - t_window
      m = dict(m, pairs_per_sec=n_window * cfg.global_batch_size / dt,
               steps_per_sec=n_window / dt)
      t_window, n_window = time.perf_counter(), 0
      writer.write(s, m)

  with _stop_on_signals() as flag:
    try:
      while step < cfg.total_steps:
        batch = _device_batch(next(data_it), mesh)
        with jax.transfer_guard("disallow"):
          state, metrics = step_fn(state, batch, rng)
        step += 1
        if pending is not None:
          consume(*pending)
        pending = (step, metrics)
        if on_step is not None:
          on_step(step)
        if streak >= cfg.max_nonfinite_steps:
          break
        if flag["signal"] is not None:
          preempted = True
          break
        if step % cfg.checkpoint_every == 0 and step < cfg.total_steps:
          _save(mngr, step, state, rng, data_it, fingerprint)
      if pending is not None:
        consume(*pending)
      _save(mngr, step, state, rng, data_it, fingerprint)
      mngr.wait_until_finished()
    finally:
      mngr.close()
      writer.close()
      if hasattr(data_it, "close"):  # stop prefetch threads / workers
        data_it.close()
      if bar is not None:
        bar.close()
  if streak >= cfg.max_nonfinite_steps:
    raise RuntimeError(
        f"{streak} non-finite training steps in a row (max_nonfinite_steps="
        f"{cfg.max_nonfinite_steps}) up to step {step}; checkpoint saved in "
        f"{mngr.directory}. Lower optim.base_lr or check the data.")
  if preempted:
    _log(f"signal {flag['signal']}: checkpoint saved at step {step}; exiting")
  else:
    _export_model(workdir, state, cfg, step)
  return TrainResult(state=state, step=step, preempted=preempted,
                     last_metrics=last)
