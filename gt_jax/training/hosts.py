"""Agreement between processes (hosts): barriers and "did anyone ...?".

Every function here is collective: all processes must call it, in the same
order. With one process they return immediately without touching devices.
Used by the training loop (stop on a signal received by any host, the final
export) and `evaluate.py run` (wait for every shard before the report).
"""

from __future__ import annotations

import jax
import numpy as np


def any_process(flag: bool) -> bool:
  """True on every process when `flag` is True on at least one (collective)."""
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  flags = multihost_utils.process_allgather(np.asarray([int(bool(flag))],
                                                       np.int32))
  return bool(np.asarray(flags).any())


def all_processes(flag: bool) -> bool:
  """True on every process when `flag` is True on all of them (collective)."""
  return not any_process(not flag)


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier `name` (collective)."""
  if jax.process_count() == 1:
    return
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  multihost_utils.sync_global_devices(name)


def is_primary() -> bool:
  """Process 0: the one that writes human-facing files (logs, reports)."""
  return jax.process_index() == 0
