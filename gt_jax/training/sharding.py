"""Device mesh and host -> device hand-off (the only module naming mesh axes).

Data parallelism: the batch is split over the `data` axis, the train state is
replicated. Each process loads only its own slice of the global batch; the
slices become one global `jax.Array` through
`jax.make_array_from_process_local_data` (JAX docs/multi_process.md). Moving
to FSDP or a pod slice should only touch this file and the config.
"""

from __future__ import annotations

import os
import re
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


# Environment variables by which JAX's own cluster detection (SLURM, Open MPI,
# TPU pods / GKE, Megascale, or an explicit JAX_COORDINATOR_ADDRESS) finds a
# multi-process launch.
CLUSTER_MARKERS = ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS",
                   "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES",
                   "MEGASCALE_COORDINATOR_ADDRESS")


def maybe_initialize_distributed(coordinator_address: str | None = None,
                                 num_processes: int | None = None,
                                 process_id: int | None = None) -> bool:
  """`jax.distributed.initialize` when launched as one of several processes.

  Pass all three of `coordinator_address` ("HOST:PORT", reachable from every
  process), `num_processes` and `process_id` (e.g. from
  `--coordinator_address/--num_processes/--process_id`), or none: then a
  cluster environment (`CLUSTER_MARKERS`) is detected by JAX itself, and a
  plain single-process run skips initialisation. JAX's CPU collectives (gloo)
  are enabled first, so that the same command joins several CPU processes on
  one machine (tests, a laptop); accelerator platforms ignore the setting.
  Must run before anything touches the jax backends.

  Returns:
    Whether `jax.distributed.initialize` was called.

  Raises:
    ValueError: only some of the three arguments given, or bad values.
  """
  if check_launch_args(coordinator_address, num_processes, process_id):
    if num_processes == 1:
      return False
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes,
                               process_id=process_id)
    return True
  if any(os.environ.get(m) for m in CLUSTER_MARKERS):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize()
    return True
  return False


def add_distributed_args(parser: Any) -> None:
  """Adds --coordinator_address / --num_processes / --process_id."""
  g = parser.add_argument_group(
      "multi-process", "all three, or none to let JAX detect the cluster "
      "(SLURM, Open MPI, TPU, GKE)")
  g.add_argument("--coordinator_address", default=None, metavar="HOST:PORT",
                 help="address of process 0's coordinator service")
  g.add_argument("--num_processes", type=int, default=None)
  g.add_argument("--process_id", type=int, default=None)


def check_launch_args(coordinator_address: str | None,
                      num_processes: int | None,
                      process_id: int | None) -> bool:
  """Validates the three launch flags; True when all three are given.

  Raises:
    ValueError: only some of them given, or bad values.
  """
  given = [coordinator_address is not None, num_processes is not None,
           process_id is not None]
  if any(given) and not all(given):
    raise ValueError("--coordinator_address, --num_processes and "
                     "--process_id go together (all three or none)")
  if not all(given):
    return False
  if ":" not in coordinator_address:
    raise ValueError(f"--coordinator_address={coordinator_address!r} is not"
                     " HOST:PORT")
  if num_processes < 1 or not 0 <= process_id < num_processes:
    raise ValueError(f"--process_id={process_id} must be in [0, "
                     f"--num_processes={num_processes})")
  return True


def initialize_from_args(args: Any) -> bool:
  """`maybe_initialize_distributed` from `add_distributed_args` flags."""
  return maybe_initialize_distributed(args.coordinator_address,
                                      args.num_processes, args.process_id)


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


_COLLECTIVE = re.compile(r"\b(all-reduce|all-gather|collective-permute|"
                         r"all-to-all|reduce-scatter)(?:-start)?\(")


def collective_counts(hlo_text: str) -> tuple[dict[str, int], int]:
  """The cross-device collectives of a compiled program's HLO text.

  Returns `(kinds, in_loops)`: the count of each collective kind
  (all-reduce, all-gather, collective-permute, all-to-all, reduce-scatter)
  and how many of them sit in a while-loop body (`bench/data_parallel.py`;
  the train step should have only its final all-reduce, outside loops).
  """
  bodies = set(re.findall(r"while\(.*?body=%?([\w.\-]+)", hlo_text))
  kinds: dict[str, int] = {}
  in_loops, comp = 0, None
  for line in hlo_text.splitlines():
    head = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
    if head:
      comp = head.group(1)
    for kind in _COLLECTIVE.findall(line):
      kinds[kind] = kinds.get(kind, 0) + 1
      in_loops += comp in bodies
  return kinds, in_loops
