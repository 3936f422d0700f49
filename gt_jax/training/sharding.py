"""Device mesh and host -> device hand-off (the only module naming mesh axes).

Data parallelism: the batch is split over the `data` axis, the train state is
replicated. Each process loads only its own slice of the global batch; the
slices become one global `jax.Array` through
`jax.make_array_from_process_local_data` (JAX docs/multi_process.md). Moving
to FSDP or a pod slice should only touch this file and the config.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
  """A 1-D mesh over all (or the first `num_devices`) devices.

  Raises:
    ValueError: more devices requested than available.
  """
  n = jax.device_count() if num_devices is None else num_devices
  if not 1 <= n <= jax.device_count():
    raise ValueError(f"mesh of {n} devices requested; "
                     f"{jax.device_count()} available")
  devices = jax.devices()[:n]
  return jax.make_mesh((n,), (DATA_AXIS,),
                       axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices)


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  """Leading (batch) axis split over `data`, the rest replicated."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def local_batch_size(global_batch: int, mesh: jax.sharding.Mesh) -> int:
  """Pairs this process loads per step.

  Raises:
    ValueError: `global_batch` does not split evenly over devices/processes.
  """
  n_dev = mesh.devices.size
  if global_batch % n_dev:
    raise ValueError(f"global_batch_size={global_batch} is not divisible by "
                     f"the {n_dev} devices of the mesh")
  return global_batch // jax.process_count()


def to_global(batch: Mapping[str, np.ndarray],
              mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """Process-local numpy batch -> global arrays sharded on `data`.

  Args:
    batch: each field `(local_batch, ...)`; every process passes its own
      slice (in process order), all of the same size.
    mesh: the training mesh.

  Returns:
    Fields `(global_batch, ...)` sharded over `data`.
  """
  sharding = batch_sharding(mesh)
  return {
      k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
      for k, v in batch.items()
  }


def replicate(tree: Any, mesh: jax.sharding.Mesh) -> Any:
  """Places a host or device pytree replicated on every mesh device."""
  return jax.device_put(tree, replicated(mesh))


def tree_replicated(tree: Any, mesh: jax.sharding.Mesh) -> Any:
  """A pytree of replicated shardings matching `tree` (for jit)."""
  rep = replicated(mesh)
  return jax.tree.map(lambda _: rep, tree)


def maybe_initialize_distributed() -> None:
  """`jax.distributed.initialize()` when launched as one of several hosts.

  Cluster environments (TPU pods, SLURM, or JAX_COORDINATOR_ADDRESS set)
  are detected by JAX itself; a plain single-process run skips it.
  """
  markers = ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "TPU_WORKER_HOSTNAMES",
             "MEGASCALE_COORDINATOR_ADDRESS")
  if any(os.environ.get(m) for m in markers):
    jax.distributed.initialize()


def jit_train_step(train_step: Callable[..., Any],
                   mesh: jax.sharding.Mesh) -> Callable[..., Any]:
  """`jax.jit` of `train_step(state, batch, rng)` for data parallelism.

  State and rng replicated, batch split on `data`, outputs (new state and
  scalar metrics) replicated; the input state is donated so its buffers are
  reused for the new one.
  """
  rep = replicated(mesh)
  return jax.jit(train_step,
                 in_shardings=(rep, batch_sharding(mesh), rep),
                 out_shardings=(rep, rep), donate_argnums=(0,))
