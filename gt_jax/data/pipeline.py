"""The training input pipeline: one Grain chain per process.

  readers -> pair sources -> MixedPairSource (weighted draws; this is the
  shuffle) -> process slice -> map(PairTransform) ->
  batch(global_batch_size / process_count, drop_remainder) -> iterator
  (prefetch threads, or `num_workers` worker processes)

Every element is a pure function of (seed, global index), so the stream does
not depend on the number of workers. The iterator's state is the number of
batches consumed plus the pipeline `fingerprint`; it is saved with Orbax
(toolchain-notes §5) and restored with any worker count, and a resume into a
pipeline with another fingerprint raises (grain's own dataset state is a
bare position that any pipeline would silently accept):

  mngr.save(step, args=ocp.args.Composite(
      data=grain.checkpoint.CheckpointSave(iterator), ...))
  mngr.restore(step, args=ocp.args.Composite(
      data=grain.checkpoint.CheckpointRestore(iterator), ...))

Process sharding: with global batch G, P processes and local batch L = G / P,
process p's local batch b is items `b * G + p * L ... b * G + p * L + L - 1`
of the global stream: the contiguous slice p of global batch b. Each global
batch keeps one orientation (see `pairs.py`), and the global array assembled
from the processes' slices (in process order) is exactly the 1-process batch,
item for item (so per-item rng keys and losses match any host count). Worker processes are spawned: scripts
that iterate with `data.num_workers > 0` need an `if __name__ == "__main__"`
guard.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import types
from typing import Any, Callable, Mapping, Sequence

from gt_jax.data.pairs import (ImagePairSource, MixedPairSource,
                               SequencePairSource, load_rgb)
from gt_jax.data.transforms import PairTransform

# The stream is a pure function of the index, so its length only bounds the
# run; 10^5 epochs is "endless" for any schedule and keeps the fingerprint
# independent of total_steps.
_NUM_EPOCHS = 100_000
# Bump when the meaning of (seed, index) -> example changes.
_PIPELINE_VERSION = 1

# name -> (module under gt_jax.data.sources, reader function, kind, split).
_READERS = {
    "coco": ("coco", "read_coco", "images", "train"),
    "coco_tfds": ("coco_tfds", None, "images", "train"),
    "got10k": ("got10k", "read_got10k", "sequences", "train"),
    "lasot": ("lasot", "read_lasot", "sequences", "train"),
    "synthetic": ("got10k", "read_got10k", "sequences", "train"),
}


class _TfdsImages:
  """Picklable image loader of a tfds COCO source (record index -> image)."""

  def __init__(self, coco: Any):
    self.coco = coco  # CocoTfds; re-opens its source lazily per worker

  def __call__(self, ref: Any):
    return self.coco.image(types.SimpleNamespace(path=ref))


def _mark_flags_parsed() -> None:
  # Grain workers read absl flags; a library caller may not have parsed them
  # (toolchain-notes §4).
  from absl import flags  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def _cache_dir(cfg_cache_dir: str) -> str:
  return os.path.expanduser(cfg_cache_dir or "~/.cache/gt_jax")


def _synthetic_root(root: str, cache_dir: str) -> str:
  """The GOT-10k-layout folder of the synthetic dataset.

  `root` may be a GOT-10k-layout folder itself, or the output folder of
  `gt_jax.data.synthetic.generate` ("" -> `<cache_dir>/synthetic`), which is
  generated (default arguments) when absent.
  """
  if root and os.path.isfile(os.path.join(root, "train", "list.txt")):
    return root
  out = root or os.path.join(cache_dir, "synthetic")
  got = os.path.join(out, "got10k")
  if not os.path.isfile(os.path.join(got, "train", "list.txt")):
    synthetic = importlib.import_module("gt_jax.data.synthetic")
    got = synthetic.generate(out)["got10k"]
  return got


def read_source(name: str, root: str, *,
                cache_dir: str = "") -> tuple[list[Any], str, Callable]:
  """Reads the training records of dataset `name` at `root`.

  Args:
    name: one of coco, coco_tfds, got10k, lasot, synthetic.
    root: the dataset folder (for coco_tfds: the tfds data dir).
    cache_dir: config `data.cache_dir` ("" -> ~/.cache/gt_jax).

  Returns:
    (records, kind, load_image): kind is "images" or "sequences";
    load_image decodes a record's image reference to uint8 (H, W, 3).
  """
  if name not in _READERS:
    raise ValueError(f"data.sources: unknown dataset {name!r}; expected one "
                     f"of {sorted(_READERS)}")
  module_name, fn_name, kind, split = _READERS[name]
  cache = _cache_dir(cache_dir)
  if name == "synthetic":
    root = _synthetic_root(root, cache)
  if not root or not os.path.exists(root):
    raise FileNotFoundError(
        f"data.sources: root {root!r} of dataset {name!r} does not exist")
  module = importlib.import_module(f"gt_jax.data.sources.{module_name}")
  if name == "coco_tfds":
    coco = module.CocoTfds(root, split, cache_dir=cache)
    return coco.records, kind, _TfdsImages(coco)
  records = getattr(module, fn_name)(root, split, cache_dir=cache)
  return records, kind, load_rgb


def build_pair_source(name: str, records: Sequence[Any], kind: str, cfg: Any,
                      load_image: Callable[[Any], Any] = load_rgb) -> Any:
  """Wraps one dataset's records in its pair sampler (config `data`)."""
  d = cfg.data
  if kind == "images":
    return ImagePairSource(records, max_instances=d.max_instances,
                           seed=cfg.seed, load_image=load_image, name=name)
  if kind == "sequences":
    return SequencePairSource(records,
                              pairs_per_sequence=d.pairs_per_sequence,
                              max_frame_gap=d.max_frame_gap, seed=cfg.seed,
                              load_image=load_image, name=name)
  raise ValueError(f"{name}: unknown source kind {kind!r}")


def _process(process_index: int | None,
             process_count: int | None) -> tuple[int, int]:
  # data/ never imports jax itself; when jax is loaded (by the caller, or by
  # grain, which imports it) the defaults come from it, so a multi-host run
  # cannot silently read the same shard on every host.
  jax = sys.modules.get("jax")
  if process_count is None:
    process_count = jax.process_count() if jax else 1
  if process_index is None:
    process_index = jax.process_index() if jax else 0
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} not in "
                     f"[0, {process_count})")
  return int(process_index), int(process_count)


def make_pipeline(sources: Mapping[str, Any], weights: Mapping[str, float],
                  cfg: Any, *, process_index: int | None = None,
                  process_count: int | None = None) -> tuple[Any, str]:
  """Builds the iterator over already-built pair sources.

  Args:
    sources: name -> pair source (`pairs.ImagePairSource` or
      `SequencePairSource`).
    weights: name -> sampling weight.
    cfg: the full config (`seed`, `global_batch_size`, `preprocess`, `data`).
    process_index: this process (default: jax.process_index() when jax is
      loaded, else 0).
    process_count: number of processes (default: jax.process_count() when
      jax is loaded, else 1).

  Returns:
    (iterator, fingerprint): a `TrainIterator` yielding dicts of numpy arrays
    with a leading local batch axis (docs/internals.md), and the JSON string
    describing the stream (sources, weights, sizes, seed, transform).
  """
  # grain imports jax; importing it here keeps `import gt_jax.data...` free
  # of jax for code that only reads datasets.
  import grain  # pylint: disable=g-import-not-at-top
  p, n = _process(process_index, process_count)
  g = int(cfg.global_batch_size)
  if g % n:
    raise ValueError(f"config global_batch_size={g} is not divisible by "
                     f"process_count={n}")
  mixed = MixedPairSource(sources, weights, epoch_size=cfg.data.epoch_size,
                          global_batch_size=g, seed=cfg.seed,
                          num_epochs=_NUM_EPOCHS)
  transform = PairTransform.from_config(cfg)
  workers = int(cfg.data.num_workers)
  prefetch = max(1, int(cfg.data.prefetch))

  batches = grain.MapDataset.source(
      ProcessSlice(mixed, p, n, g)).map(transform).batch(
          g // n, drop_remainder=True)
  desc = dict(
      # No process count: process p's local batch b is a slice of global
      # batch b, so the global stream is the same on any number of hosts.
      version=_PIPELINE_VERSION, **mixed.describe(),
      transform=dict(scale=transform.scale,
                     mean=[round(float(v), 6) for v in transform.mean],
                     std=[round(float(v), 6) for v in transform.std],
                     size_divisor=transform.size_divisor,
                     canvas_landscape=transform.canvas[True],
                     canvas_portrait=transform.canvas[False],
                     max_instances=transform.max_instances,
                     photometric=transform.photometric,
                     flip_prob=transform.flip_prob),
      pairs_per_sequence=int(cfg.data.pairs_per_sequence),
      max_frame_gap=int(cfg.data.max_frame_gap))
  desc.pop("length")
  fingerprint = json.dumps(desc, sort_keys=True)
  return TrainIterator(batches, fingerprint, workers=workers,
                       prefetch=prefetch), fingerprint


class ProcessSlice:
  """Random-access view of process `p`'s items of a global-batch stream.

  Local item `i` is global item `(i // L) * G + p * L + i % L` (L = G / P):
  local batch b is the contiguous slice p of global batch b.
  """

  def __init__(self, source: Any, process_index: int, process_count: int,
               global_batch: int):
    self._source = source
    self._p, self._n, self._g = process_index, process_count, global_batch
    self._l = global_batch // process_count

  def __len__(self) -> int:
    return (len(self._source) // self._g) * self._l

  def __getitem__(self, i: int) -> Any:
    b, j = divmod(int(i), self._l)
    return self._source[b * self._g + self._p * self._l + j]


class TrainIterator:
  """Iterator over the local batches with a portable, checked state.

  The state is the number of batches consumed plus the pipeline fingerprint
  (JSON bytes), so it can be restored with any worker count, and a resume
  into a different pipeline is refused. It follows grain's
  `DataLoaderIterator` protocol (`get_state() -> bytes`, `set_state(bytes)`,
  `start_prefetch()`), so `grain.checkpoint.CheckpointSave(it)` /
  `CheckpointRestore(it)` save and restore it inside an Orbax checkpoint.
  """

  def __init__(self, batches: Any, fingerprint: str, *, workers: int,
               prefetch: int):
    self._batches = batches  # grain.MapDataset of local batches
    self.fingerprint = fingerprint
    self._workers = workers
    self._prefetch = prefetch
    self._next = 0
    self._it = None

  def _open(self) -> None:
    import grain  # pylint: disable=g-import-not-at-top
    ds = self._batches[self._next:].to_iter_dataset(
        grain.ReadOptions(num_threads=1, prefetch_buffer_size=self._prefetch))
    if self._workers > 0:
      _mark_flags_parsed()
      ds = ds.mp_prefetch(grain.MultiprocessingOptions(
          num_workers=self._workers, per_worker_buffer_size=self._prefetch))
    self._it = iter(ds)

  def start_prefetch(self) -> None:
    """Starts the workers now instead of at the first `next()`."""
    if self._it is None:
      self._open()

  def __iter__(self) -> "TrainIterator":
    return self

  def __next__(self) -> dict[str, Any]:
    if self._it is None:
      self._open()
    batch = next(self._it)
    self._next += 1
    return batch

  def get_state(self) -> bytes:
    return json.dumps({"next_batch": self._next,
                       "fingerprint": self.fingerprint}).encode()

  def set_state(self, state: bytes | str) -> None:
    """Continues after the saved position; refuses another pipeline."""
    d = json.loads(state)
    check_fingerprint(d.get("fingerprint", ""), self.fingerprint)
    self.close()
    self._next = int(d["next_batch"])

  def close(self) -> None:
    """Stops prefetch threads / worker processes (reopened on `next()`)."""
    if self._it is not None and hasattr(self._it, "close"):
      self._it.close()
    self._it = None


def make_train_pipeline(cfg: Any, *, process_index: int | None = None,
                        process_count: int | None = None) -> tuple[Any, str]:
  """Reads `cfg.data.sources` ((name, root, weight) triples) and builds the
  training iterator; see `make_pipeline` for the rest.

  Name "synthetic" is the embedded synthetic dataset in GOT-10k layout under
  `root`, or under `<data.cache_dir>/synthetic` when root is "".
  """
  sources, weights = {}, {}
  for i, entry in enumerate(cfg.data.sources):
    if len(entry) != 3:
      raise ValueError(f"data.sources[{i}]={entry!r} is not (name, root, "
                       "weight)")
    name, root, weight = entry
    if name in sources:
      raise ValueError(f"data.sources[{i}]: dataset {name!r} listed twice")
    if not float(weight) > 0:
      raise ValueError(f"data.sources[{i}]: weight of {name!r} must be > 0, "
                       f"got {weight}")
    records, kind, load_image = read_source(name, root,
                                            cache_dir=cfg.data.cache_dir)
    sources[name] = build_pair_source(name, records, kind, cfg, load_image)
    weights[name] = float(weight)
  return make_pipeline(sources, weights, cfg, process_index=process_index,
                       process_count=process_count)


def check_fingerprint(saved: str, current: str) -> None:
  """Raises ValueError naming the fields where two fingerprints differ."""
  if saved == current:
    return
  try:
    a, b = json.loads(saved), json.loads(current)
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
  except (ValueError, AttributeError):
    diff = ["<unparseable>"]
  raise ValueError(
      "the data pipeline differs from the checkpointed one (fields: "
      f"{', '.join(diff)}); resuming would not continue the same data "
      f"stream.\n saved:   {saved}\n current: {current}")
