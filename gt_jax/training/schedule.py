"""The training schedule, derived once from the config (after overrides).

Official rule (LS §13.3): 12 epochs of `data.epoch_size` pairs at
`global_batch_size` pairs per step, lr x0.1 at epochs 8 and 11, peak lr
`optim.base_lr * global_batch_size / optim.base_batch_size` (0.01 x B / 8)
unless `optim.lr` gives it explicitly, linear warm-up over
`optim.warmup_steps` iterations (official 500, not scaled with the batch).

  steps_per_epoch = epoch_size // global_batch_size   (drop_remainder)
  total_steps     = epochs * steps_per_epoch          unless cfg.total_steps
  decay_steps     = round(e / epochs * total_steps) for e in decay_epochs

An explicit `total_steps` wins; the decay epochs are then scaled to it (the
same formula: with the derived total it gives exactly `e * steps_per_epoch`).
The step index (skipped non-finite steps included) drives the schedule.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import ml_collections


@dataclasses.dataclass(frozen=True)
class Schedule:
  """The resolved schedule (all in optimizer steps).

  Attributes:
    total_steps: steps to train.
    steps_per_epoch: `epoch_size // global_batch_size` (>= 1).
    epochs: `total_steps / steps_per_epoch` (fractional when total_steps was
      given explicitly).
    decay_steps: steps at which the lr is multiplied by `decay_factor`.
    decay_epochs: the configured decay epochs (of `optim.epochs`).
    peak_lr: lr after warm-up, before decays.
    lr_explicit: `optim.lr` was given (no batch scaling).
    warmup_steps, warmup_ratio, decay_factor: as configured.
    global_batch_size: pairs per step.
    total_steps_explicit: `total_steps` came from the config.
    configured_epochs: `optim.epochs` (the decay epochs are of these).
  """
  total_steps: int
  steps_per_epoch: int
  epochs: float
  decay_steps: tuple[int, ...]
  decay_epochs: tuple[float, ...]
  peak_lr: float
  lr_explicit: bool
  warmup_steps: int
  warmup_ratio: float
  decay_factor: float
  global_batch_size: int
  total_steps_explicit: bool
  configured_epochs: float = 12.0

  def describe(self) -> str:
    """One line for the log."""
    decays = ", ".join(str(s) for s in self.decay_steps) or "none"
    epochs = ", ".join(f"{e:g}" for e in self.decay_epochs)
    if self.total_steps_explicit:
      decays += (f" (epochs {epochs} of {self.configured_epochs:g}, scaled to"
                 f" the explicit total_steps)")
    else:
      decays += f" (epochs {epochs})"
    lr = (f"lr {self.peak_lr:g}" + (" (explicit optim.lr)" if self.lr_explicit
                                     else " (base_lr x batch / base_batch)"))
    return (f"schedule: {self.total_steps} steps = {self.epochs:g} epochs x "
            f"{self.steps_per_epoch} steps of {self.global_batch_size} pairs"
            f"{' (explicit total_steps)' if self.total_steps_explicit else ''}"
            f"; {lr}; warm-up {self.warmup_steps} steps; x{self.decay_factor:g}"
            f" at steps {decays}")

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=1)


def resolve_schedule(cfg: ml_collections.ConfigDict) -> Schedule:
  """Derives the schedule from `cfg` (pure; see the module docstring).

  Raises:
    ValueError: a non-positive batch, epoch count or epoch size, or a
      negative total_steps, naming the field.
  """
  o = cfg.optim
  batch = int(cfg.global_batch_size)
  if batch < 1:
    raise ValueError(f"config global_batch_size={batch} must be >= 1")
  if int(cfg.data.epoch_size) < 1:
    raise ValueError(f"config data.epoch_size={cfg.data.epoch_size} must be "
                     ">= 1")
  epochs = o.get("epochs", 12)
  if not epochs or epochs <= 0:
    raise ValueError(f"config optim.epochs={epochs} must be > 0")
  spe = max(int(cfg.data.epoch_size) // batch, 1)
  explicit = cfg.get("total_steps") is not None
  if explicit:
    total = int(cfg.total_steps)
    if total < 0:
      raise ValueError(f"config total_steps={total} must be >= 0")
  else:
    total = int(round(epochs * spe))
  decay_epochs = tuple(float(e) for e in o.decay_epochs)
  decay_steps = tuple(int(round(e / epochs * total)) for e in decay_epochs)
  lr = o.get("lr")
  if lr is None:
    if int(o.base_batch_size) < 1:
      raise ValueError(f"config optim.base_batch_size={o.base_batch_size} "
                       "must be >= 1")
    peak = float(o.base_lr) * batch / int(o.base_batch_size)
  else:
    peak = float(lr)
  return Schedule(total_steps=total, steps_per_epoch=spe,
                  epochs=total / spe, decay_steps=decay_steps,
                  decay_epochs=decay_epochs, peak_lr=peak,
                  lr_explicit=lr is not None,
                  warmup_steps=int(o.warmup_steps),
                  warmup_ratio=float(o.warmup_ratio),
                  decay_factor=float(o.decay_factor),
                  global_batch_size=batch, total_steps_explicit=explicit,
                  configured_epochs=float(epochs))


def resolved_config(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `cfg` with `total_steps` filled in (the schedule resolved).

  Resolving the result again gives the same schedule.
  """
  out = ml_collections.ConfigDict(cfg.to_dict())
  out.total_steps = resolve_schedule(cfg).total_steps
  return out


def config_json(cfg: ml_collections.ConfigDict) -> str:
  """The config as JSON (tuples as lists), for WORKDIR/config.json."""
  def default(x: Any) -> Any:
    return str(x)
  return json.dumps(cfg.to_dict(), indent=1, sort_keys=True, default=default)
