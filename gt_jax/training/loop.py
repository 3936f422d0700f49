"""The training driver: mesh, data, model/optimizer, shard, step, checkpoint,
loop (read top to bottom, like big_vision's train.py).

`train(cfg, workdir)` trains the resolved schedule's steps
(`gt_jax.training.schedule`), writes `workdir/metrics.jsonl`, TensorBoard
events (`workdir/tb`), the resolved `config.json` / `schedule.json`, orbax
checkpoints under `workdir/checkpoints` (see `checkpoints.py` for the
layout), the final weights to `workdir/model`, and resumes automatically.
Every process of a multi-host run calls it; collective operations (saves,
restores, the export) run on all, human-facing files on process 0. Init
priority:
  1. resume from the latest readable finite checkpoint in `workdir` (params,
     optimizer state, step, rng and each process's data iterator; the data
     fingerprint and parameter shapes must match);
  2. else `cfg.init_checkpoint` (orbax dir from `python -m gt_jax.convert`)
     merged over a random init (parts it lacks stay random);
  3. else a random init.
SIGTERM/SIGINT on any process: all processes save the same step and return
cleanly. A finished run is not retrained.
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

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gt_jax.errors import GtJaxError
from gt_jax.training import buckets
from gt_jax.training import checkpoints as ckpt
from gt_jax.training import hosts
from gt_jax.training import schedule as schedule_lib
from gt_jax.training import sharding
from gt_jax.training import step as train_lib
from gt_jax.training import losses
from gt_jax.model.build import build_model

# Field -> dtype of a training batch (docs/internals.md). Casting on the host
# keeps the compiled step's signature fixed whatever the pipeline emits.
BATCH_FIELDS = dict(query_image=np.float32, search_image=np.float32,
                    query_boxes=np.float32, search_boxes=np.float32,
                    instance_valid=np.bool_, query_hw=np.int32,
                    search_hw=np.int32)


class NonFiniteAbort(GtJaxError, RuntimeError):
  """`max_nonfinite_steps` non-finite steps in a row (the message says which
  loss term went first and which checkpoint a rerun resumes from)."""


@dataclasses.dataclass
class TrainResult:
  state: train_lib.TrainState
  step: int
  preempted: bool = False
  last_metrics: dict[str, float] = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------------------
# Metrics writer (process 0 only).


class MetricWriter:
  """WORKDIR/metrics.jsonl and TensorBoard events (WORKDIR/tb), process 0."""

  def __init__(self, workdir: str, enabled: bool):
    self.enabled = enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if enabled:
      import tensorboardX  # pylint: disable=g-import-not-at-top
      self._tb = tensorboardX.SummaryWriter(os.path.join(workdir, "tb"))

  def truncate_after(self, step: int) -> None:
    """Drops lines logged after `step` (a crash since the last checkpoint)
    and torn lines (a crash while writing), so steps never repeat."""
    if not self.enabled or not os.path.exists(self.path):
      return
    kept, torn = [], 0
    with open(self.path, encoding="utf-8") as f:
      for n, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          row = json.loads(line)
          s = int(row["step"])
        except (ValueError, KeyError, TypeError):
          torn += 1
          _log(f"warning: {self.path}:{n}: dropping an unreadable line "
               f"({line.strip()[:60]!r})")
          continue
        if s <= step:
          kept.append(json.dumps(row) + "\n")
    tmp = self.path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
      f.writelines(kept)
    os.replace(tmp, self.path)

  def write(self, step: int, metrics: dict[str, float]) -> None:
    if not self.enabled:
      return
    with open(self.path, "a", encoding="utf-8") as f:
      f.write(json.dumps(dict(step=step, **metrics)) + "\n")
    if self._tb is not None:
      for k, v in metrics.items():
        self._tb.add_scalar(k, v, step)

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


# ---------------------------------------------------------------------------
# Checkpoints (kept importable under their old names).

_is_grain_iterator = ckpt.is_grain_iterator
_state_tree = ckpt.state_tree
_save = ckpt.save


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


def _settings_key(cfg: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
                  with_schedule: bool = True) -> str:
  """What the compiled functions depend on (the init: all but the lr
  schedule's numbers; the step: also those)."""
  optim = cfg.optim.to_dict()
  parts = dict(model=cfg.model.to_dict(), train=cfg.train.to_dict(),
               frozen=optim["frozen_stages"], dtype=cfg.compute_dtype,
               devices=[d.id for d in mesh.devices.flat])
  if with_schedule:
    plan = schedule_lib.resolve_schedule(cfg)
    parts.update(optim=optim, lr=plan.peak_lr, decays=plan.decay_steps,
                 warmup=(plan.warmup_steps, plan.warmup_ratio))
  return json.dumps(parts, sort_keys=True, default=str)


def compiled_fns(cfg: ml_collections.ConfigDict, mesh: jax.sharding.Mesh
                 ) -> tuple[Any, Callable[..., Any], Callable[..., Any]]:
  """`(model, init_fn, step_fn)` for `cfg` on `mesh`, cached per settings.

  `init_fn(rng) -> TrainState` (jitted, replicated output; shared by configs
  that differ only in the lr schedule) and the sharded, jitted
  `step_fn(state, batch, rng) -> (state, metrics)` (state donated).
  """
  key = _settings_key(cfg, mesh)
  if key in _COMPILED:
    return _COMPILED[key]
  init_key = "init:" + _settings_key(cfg, mesh, with_schedule=False)
  model = build_model(cfg.model, cfg.compute_dtype)
  images = jnp.zeros((1, 64, 64, 3), jnp.float32)
  box = jnp.array([[8.0, 8.0, 40.0, 40.0]], jnp.float32)
  abstract = jax.eval_shape(model.init, jax.random.PRNGKey(0), images, box)
  optimizer = train_lib.optimizer_from_config(cfg, abstract["params"])
  if init_key not in _COMPILED:
    # The optimizer state's structure does not depend on the schedule.
    def init(rng):
      return train_lib.init_state(model.init(rng, images, box), optimizer)

    abstract_state = jax.eval_shape(init, jax.random.PRNGKey(0))
    _COMPILED[init_key] = jax.jit(init, out_shardings=sharding.tree_replicated(
        abstract_state, mesh))
  init_fn = _COMPILED[init_key]
  mask = train_lib.trainable_mask(abstract["params"], cfg.optim.frozen_stages)
  step_fn = train_lib.make_train_step(model, train_lib.loss_config_from(cfg),
                                      optimizer, mask,
                                      train_lib.schedule_from_config(cfg),
                                      mesh=mesh, axis=sharding.DATA_AXIS)
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


def _first_nonfinite(m: dict[str, float]) -> str:
  """The first non-finite loss term (or gradient / parameter norm) of `m`."""
  for k in losses.LOSS_TERMS + ("loss", "grad_norm"):
    if k in m and not np.isfinite(m[k]):
      return f"{k}={m[k]}"
  return "the updated parameters (overflow)"


def _write_run_files(workdir: str, cfg: ml_collections.ConfigDict,
                     plan: schedule_lib.Schedule) -> None:
  """WORKDIR/config.json (resolved) and WORKDIR/schedule.json, process 0."""
  if not hosts.is_primary():
    return
  for name, text in (("config.json", schedule_lib.config_json(cfg)),
                     ("schedule.json", plan.to_json())):
    path = os.path.join(workdir, name)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
      f.write(text + "\n")
    os.replace(tmp, path)


def _export_info(cfg: ml_collections.ConfigDict, step: int) -> dict:
  return dict(step=step, total_steps=int(cfg.total_steps),
              variant=cfg.get("variant", ""))


def _has_finite_checkpoint(workdir: str) -> bool:
  d = os.path.join(workdir, ckpt.FINITE_DIR)
  return os.path.isdir(d) and any(n.isdigit() for n in os.listdir(d))


def check_inputs(cfg: ml_collections.ConfigDict, workdir: str,
                 data: bool = True) -> None:
  """Checks the paths a run needs, in a second, before anything is built.

  A missing dataset root or `init_checkpoint` would otherwise surface after
  the model is built and compiled (a minute on CPU, more on a pod).

  Args:
    cfg: the full config.
    workdir: the run folder; `init_checkpoint` is checked only when there is
      no checkpoint to resume from (resume wins, see the module docstring).
    data: check `data.sources` roots (False with a custom `make_data`).

  Raises:
    FileNotFoundError: a `data.sources` root or `init_checkpoint` is missing.
    ValueError: `init_checkpoint` is not a `gt_jax.convert` checkpoint.
  """
  for i, entry in enumerate(cfg.data.sources if data else ()):
    if len(entry) != 3:
      continue  # the pipeline names the malformed entry
    name, root, _ = entry
    if name == "synthetic" and not root:
      continue  # generated under data.cache_dir
    if not root or not os.path.exists(root):
      raise FileNotFoundError(f"config data.sources[{i}]: root {root!r} of "
                              f"dataset {name!r} does not exist")
  path = cfg.get("init_checkpoint", "")
  if not path or _has_finite_checkpoint(workdir):
    return
  if not os.path.exists(path):
    raise FileNotFoundError(f"config init_checkpoint={path!r}: not found")
  # What `checkpoint.restore_variables` reads (its own check, done early).
  if not os.path.isdir(os.path.join(path, "variables")):
    raise ValueError(
        f"config init_checkpoint={path!r}: not a checkpoint folder written by "
        "`python -m gt_jax.convert` (a .pth must be converted first)")


def train(cfg: ml_collections.ConfigDict, workdir: str, *,
          make_data: Callable[[ml_collections.ConfigDict],
                              tuple[Iterator[Any], str]] | None = None,
          on_step: Callable[[int], None] | None = None,
          progress: bool = True) -> TrainResult:
  """Trains (or resumes) `cfg` in `workdir`; every process calls it.

  Args:
    cfg: the full config (see configs/globaltrack_r50_fpn.py); its schedule
      is resolved here (`gt_jax.training.schedule`).
    workdir: output directory (created; shared by all processes).
    make_data: `cfg -> (iterator, fingerprint)`; default the grain pipeline
      `gt_jax.data.pipeline.make_train_pipeline` (this process's shard).
    on_step: called with the step number after each dispatched step (tests
      use it to send signals).
    progress: show a tqdm progress bar with ETA (process 0).

  Returns:
    TrainResult (final state, step reached, whether a signal stopped it).
    A run already finished in `workdir` is not retrained: its final state is
    returned (and WORKDIR/model written if missing).

  Raises:
    FileNotFoundError, ValueError: from `check_inputs`, before any work.
    NonFiniteAbort: (a RuntimeError) `cfg.max_nonfinite_steps` non-finite
      steps in a row (the
      state is saved under checkpoints_nonfinite/, never over a finite
      checkpoint; a rerun resumes from the last finite one).
    ValueError: the workdir's checkpoint came from a different pipeline, or
      its parameter shapes differ from the model's (naming them).
  """
  check_inputs(cfg, workdir, data=make_data is None)
  os.makedirs(workdir, exist_ok=True)
  plan = schedule_lib.resolve_schedule(cfg)
  cfg = schedule_lib.resolved_config(cfg)
  total = plan.total_steps
  _log(plan.describe())
  _write_run_files(workdir, cfg, plan)
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
  init_rng, _ = jax.random.split(root)  # [1]: the train rng, below
  state = init_fn(init_rng)
  # Line the processes up after their compiles: the first device collective
  # of each kind must find every process (gloo CPU contexts wait 30 s).
  hosts.barrier("initialised")
  # Replicated by a jitted computation, not `device_put` of a host value
  # (which all-gathers to check equality across processes).
  rng = jax.jit(lambda: jax.random.split(jax.random.PRNGKey(cfg.seed))[1],
                out_shardings=sharding.replicated(mesh))()

  # Checkpoint: resume > init_checkpoint > scratch.
  mngr = ckpt.manager(workdir, ckpt.FINITE_DIR, cfg.keep_checkpoints)
  writer = MetricWriter(workdir, hosts.is_primary())
  ckpt.recover_model(workdir)
  try:
    state, rng, restored = ckpt.restore_latest(workdir, mngr, state, rng,
                                               data_it, fingerprint)
    if restored is not None:
      _log(f"resumed from {mngr.directory}/{restored}")
    else:
      if os.path.isdir(os.path.join(workdir, ckpt.NONFINITE_DIR)):
        _log(f"no finite checkpoint in {mngr.directory}; the diverged state "
             f"in {os.path.join(workdir, ckpt.NONFINITE_DIR)} is not used: "
             "starting over")
      if cfg.init_checkpoint:
        state = _init_from_checkpoint(state, cfg.init_checkpoint, mesh)
        _log(f"initialised from {cfg.init_checkpoint}")
    writer.truncate_after(restored or 0)
  except Exception:
    mngr.close()
    writer.close()
    raise
  step = int(jax.device_get(state.step))

  if step >= total:
    mngr.close()
    writer.close()
    need = not ckpt.model_is_complete(workdir)
    if hosts.any_process(need):
      ckpt.export_model(workdir, state, _export_info(cfg, step))
      _log(f"run already finished at step {step} (total_steps={total}); "
           f"wrote the missing {os.path.join(workdir, ckpt.MODEL_DIR)}")
    else:
      _log(f"run already finished at step {step} (total_steps={total}); "
           f"nothing to do ({os.path.join(workdir, ckpt.MODEL_DIR)} exists)")
    return TrainResult(state=state, step=step)

  # Loop.
  bar = None
  if progress and hosts.is_primary():
    import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm.tqdm(total=total, initial=step, desc="train",
                    dynamic_ncols=True)
  pending = None  # (step, device metrics) fetched one step late
  streak, first_bad, last, preempted = 0, "", {}, False
  t_window, n_window = time.perf_counter(), 0
  multi = jax.process_count() > 1
  stop_every = max(1, int(cfg.get("stop_check_every", 1)))
  run_step = step_fn

  def consume(s, m):
    nonlocal streak, first_bad, last, t_window, n_window
    m = train_lib.host_float_metrics(m)
    last = m
    n_window += 1
    if m["skipped"] > 0:
      if streak == 0:
        first_bad = f"step {s}: first non-finite term {_first_nonfinite(m)}"
      streak += 1
      _log(f"step {s}: non-finite loss={m['loss']} grad_norm="
           f"{m['grad_norm']} ({_first_nonfinite(m)}); update skipped "
           f"({streak} in a row)")
    else:
      streak = 0
    if bar is not None:
      bar.update(1)
      bar.set_postfix(loss=f"{m['loss']:.4f}")
    if s % cfg.log_every == 0 or s == 1 or s == total:
      dt = time.perf_counter() - t_window
      m = dict(m, pairs_per_sec=n_window * cfg.global_batch_size / dt,
               steps_per_sec=n_window / dt)
      t_window, n_window = time.perf_counter(), 0
      writer.write(s, m)

  def save_finite_or_aside(s):
    """Finite states go to checkpoints/, others aside (never rotating a
    finite checkpoint out)."""
    if streak == 0:
      ckpt.save(mngr, s, state, rng, data_it, fingerprint)
    else:
      bad = ckpt.manager(workdir, ckpt.NONFINITE_DIR, 1)
      try:
        ckpt.save(bad, s, state, rng, data_it, fingerprint,
                  dict(nonfinite=first_bad))
        bad.wait_until_finished()
      finally:
        bad.close()

  # Every process cuts to the same bucket (the largest need of any process,
  # one vote through the coordination service per step).
  trim = cfg.train.get("trim_padded_instances", True)
  per_bucket = {}
  with _stop_on_signals() as flag:
    try:
      while step < total:
        host_batch = next(data_it)
        m = cfg.data.max_instances
        if trim:  # jit compiles once per bucket
          need = buckets.needed_slots(host_batch)
          if multi:
            need = hosts.max_over_processes(need)
          m = buckets.bucket(need, cfg.data.max_instances)
          host_batch = buckets.trim(host_batch, m)
        batch = _device_batch(host_batch, mesh)
        if multi:
          if m not in per_bucket:
            # Compile ahead, then start the bucket's first step together.
            per_bucket[m] = step_fn.lower(state, batch, rng).compile()
            hosts.barrier("step-compiled")
            _log(f"step {step + 1}: train step compiled for {m} instance "
                 f"slot(s) of {cfg.data.max_instances}")
          run_step = per_bucket[m]
        with jax.transfer_guard("disallow"):
          state, metrics = run_step(state, batch, rng)
        step += 1
        if pending is not None:
          consume(*pending)
        pending = (step, metrics)
        if on_step is not None:
          on_step(step)
        if streak >= cfg.max_nonfinite_steps:
          break
        # Stop together: a signal on any process stops every process at the
        # same step (the flags are gathered every `stop_check_every` steps).
        local_stop = flag["signal"] is not None
        if multi:
          if step % stop_every == 0 or step % cfg.checkpoint_every == 0:
            if hosts.any_process(local_stop):
              preempted = True
              break
        elif local_stop:
          preempted = True
          break
        if step % cfg.checkpoint_every == 0 and step < total:
          consume(*pending)  # is this step finite?
          pending = None
          if streak == 0:
            ckpt.save(mngr, step, state, rng, data_it, fingerprint)
          else:
            _log(f"step {step}: not checkpointed (non-finite)")
      if pending is not None:
        consume(*pending)
      save_finite_or_aside(step)
      mngr.wait_until_finished()
      if streak < cfg.max_nonfinite_steps and not preempted:
        # Inside the signal context: a signal now is noted, not fatal.
        path = ckpt.export_model(workdir, state, _export_info(cfg, step))
        _log(f"final weights written to {path}")
    finally:
      mngr.close()
      writer.close()
      if hasattr(data_it, "close"):  # stop prefetch threads / workers
        data_it.close()
      if bar is not None:
        bar.close()
  if streak >= cfg.max_nonfinite_steps:
    finite = mngr.latest_step()
    raise NonFiniteAbort(
        f"{streak} non-finite training steps in a row (max_nonfinite_steps="
        f"{cfg.max_nonfinite_steps}) up to step {step}; {first_bad}. The "
        f"state was saved aside in {os.path.join(workdir, ckpt.NONFINITE_DIR)}"
        f"; a rerun resumes from "
        + (f"the last finite checkpoint {mngr.directory}/{finite}"
           if finite is not None else "scratch (no finite checkpoint)")
        + ". Lower optim.base_lr or check the data.")
  if preempted:
    _log(f"signal: checkpoint saved at step {step}; exiting")
  return TrainResult(state=state, step=step, preempted=preempted,
                     last_metrics=last)
