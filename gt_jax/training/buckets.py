"""Instance buckets: no work on padded instance slots.

The pipeline pads every pair to `data.max_instances` (8) instance slots,
valid slots first. GOT-10k and LaSOT pairs have one instance and most COCO
pairs a few, yet the cross-query loss costs one QG-RPN + QG-RCNN pass per
*slot*. Before each step the instance axis is cut to the smallest power of
two (1, 2, 4, 8) holding every valid slot of the global batch, so a step
compiles at most log2(max_instances) + 1 times and pays only for the
queries it has. The numbers do not change: padded slots never enter the
loss (masked mean) and the per-slot PRNG keys do not depend on the number of
slots (`jax.random.split(key, n)[i]` is the same for every n > i).
The training loop applies it before every step; with several processes the
bucket is the largest any process needs (one vote per step through the
coordination service), so every process runs the same program.
"""

from __future__ import annotations

import numpy as np

INSTANCE_FIELDS = ("query_boxes", "search_boxes", "instance_valid")


def needed_slots(batch: dict[str, np.ndarray]) -> int:
  """Largest number of valid instances of any pair in a (local) batch.

  Raises:
    ValueError: valid slots are not all before the padded ones.
  """
  valid = np.asarray(batch["instance_valid"], bool)
  counts = valid.sum(-1)
  prefix = np.arange(valid.shape[-1]) < counts[..., None]
  if not np.array_equal(valid, prefix):
    raise ValueError("training batch: instance_valid must list the valid "
                     "instances first (a prefix mask per pair)")
  return int(counts.max(initial=0))


def bucket(needed: int, max_instances: int) -> int:
  """Smallest power of two >= `needed` (at least 1), capped at the max."""
  m = 1
  while m < needed:
    m *= 2
  return min(m, max_instances)


def trim(batch: dict[str, np.ndarray], m: int) -> dict[str, np.ndarray]:
  """The batch with its instance axis cut to `m` slots."""
  out = dict(batch)
  for k in INSTANCE_FIELDS:
    out[k] = np.asarray(batch[k])[:, :m]
  return out
