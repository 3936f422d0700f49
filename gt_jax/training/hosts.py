"""Agreement between processes (hosts): barriers and "did anyone ...?".

Every function here is collective: all processes must call it, in the same
order. With one process they return immediately without touching devices.
Used by the training loop (stop on a signal received by any host, the final
export) and `evaluate.py run` (wait for every shard before the report).
"""

from __future__ import annotations

import jax
import numpy as np


def _client():
  """jax.distributed's coordination-service client (None if unavailable)."""
  try:
    from jax._src import distributed  # pylint: disable=g-import-not-at-top
    return distributed.global_state.client
  except (ImportError, AttributeError):
    return None


_VOTES = [0]


def _gather_ints(value: int, timeout_s: int = 1800) -> list[int]:
  """Every process's `value`, in process order (collective).

  Through the coordination service's key-value store (no device
  collective: nothing to compile, no CPU-collective set-up deadline), with a
  device all-gather as the fallback. Each process deletes its own key of
  two rounds ago (every process has read it by then), so the store does not
  grow with the number of rounds.
  """
  if jax.process_count() == 1:
    return [int(value)]
  client = _client()
  if client is None:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    values = multihost_utils.process_allgather(
        np.asarray([int(value)], np.int64))
    return [int(v) for v in np.asarray(values).reshape(-1)]
  _VOTES[0] += 1  # every process counts the same
  me = jax.process_index()
  client.key_value_set(f"gt_jax/vote/{_VOTES[0]}/{me}", str(int(value)))
  values = [int(client.blocking_key_value_get(f"gt_jax/vote/{_VOTES[0]}/{p}",
                                              timeout_s * 1000))
            for p in range(jax.process_count())]
  if _VOTES[0] > 2:
    try:
      client.key_value_delete(f"gt_jax/vote/{_VOTES[0] - 2}/{me}")
    except Exception:  # pylint: disable=broad-except
      pass  # housekeeping only
  return values


def any_process(flag: bool, timeout_s: int = 1800) -> bool:
  """True on every process when `flag` is True on at least one (collective)."""
  return any(_gather_ints(int(bool(flag)), timeout_s))


def max_over_processes(value: int, timeout_s: int = 1800) -> int:
  """The largest `value` over all processes, on every process (collective)."""
  return max(_gather_ints(int(value), timeout_s))


def all_processes(flag: bool) -> bool:
  """True on every process when `flag` is True on all of them (collective)."""
  return not any_process(not flag)


_BARRIERS = [0]


def barrier(name: str, timeout_s: int = 1800) -> None:
  """Waits until every process reaches the barrier `name` (collective).

  A barrier of the coordination service (no device collective, so no
  compile and no CPU-collective context whose set-up has a 30 s deadline):
  it also lines the processes up before their first device collective.
  """
  if jax.process_count() == 1:
    return
  _BARRIERS[0] += 1  # unique names; every process counts the same
  client = _client()
  if client is None:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)
    return
  client.wait_at_barrier(f"gt_jax:{name}:{_BARRIERS[0]}", timeout_s * 1000)


def is_primary() -> bool:
  """Process 0: the one that writes human-facing files (logs, reports)."""
  return jax.process_index() == 0
