"""Tracks whole benchmarks: B sequences per device step, resumable, sharded.

```
engine = SearchEngine(cfg, variables)             # or a Tracker
run_benchmark(engine, records, "results/lasot/GlobalTrack", batch_size=4)
```

Schedule. Sequences are grouped by canvas (the first frame's resized size
rounded up to `cfg.test.canvas_multiple`); one group at a time fills B slots.
Each slot runs one sequence: its first frame sets the query (LS §1: the init
box is the result of frame 0), then every step searches the next frame of
all B slots in one vmapped call (`inference.search_step` over a leading
sequence axis). A slot whose sequence ends is refilled with the next one of
the group; when the group runs dry, empty slots get a blank frame whose
output is ignored (B stays static: one compile per canvas). A frame whose
own canvas differs from its group's (a mid-sequence size change) is searched
alone on its own canvas, so every frame sees exactly the canvas that
`Tracker.track` would give it and B = 1 and B = 4 agree.

Frames are decoded and preprocessed in threads ahead of the device
(`frame_loader.FramePrefetcher`), and step t's results are fetched only
after step t + 1 is dispatched, so the device never waits for the host.
Per-frame times are amortised: the wall time between consecutive result
fetches divided by the number of live slots (frame 0: the query step).

Resuming: a sequence whose result file exists with the expected number of
rows is skipped; every file is written to a temporary name and renamed, and
the box file (the one checked) is written last. Sharding: each jax process
takes a fixed, frame-balanced share of the sequences (`shard_sequences`).

Layouts (metrics.md §8.1), under `tracker_dir`:
  otb          `<seq>.txt` (x,y,w,h comma %.3f, every frame),
               `times/<seq>_time.txt`, `<seq>_object_presence_scores.txt`
               (top-1 score per frame, frame 0 = 1.0; pytracking's name).
  got10k       `<seq>/<seq>_001.txt`, `<seq>/<seq>_time.txt`,
               `<seq>/<seq>_001_confidence.value`.
  trackingnet  as otb, plus `<tracker_dir>.zip` (flat `<seq>.txt`, %.2f)
               once every sequence of the benchmark is done.
  oxuva        `<video>_<object>.csv` (absolute frame numbers init+1..last,
               present = score >= cfg.test.presence_threshold, normalised
               xmin,xmax,ymin,ymax), `times/<seq>_time.txt`.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import os
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from gt_jax import inference
from gt_jax import preprocess as pp
from gt_jax.data.records import SequenceRecord
from gt_jax.data.sources.frames import image_size, read_rgb
from gt_jax.evaluation import results_io
from gt_jax.evaluation.frame_loader import FramePrefetcher
from gt_jax.model.build import build_model

LAYOUTS = ("otb", "got10k", "trackingnet", "oxuva")


def default_layout(benchmark: str) -> str:
  """The result layout a benchmark's toolkit reads."""
  b = benchmark.lower().replace("-", "").replace("_", "")
  return b if b in ("got10k", "trackingnet", "oxuva") else "otb"


# ---------------------------------------------------------------------------
# Jitted steps.


def _search_fn(model, scfg, variables, image, img_hw, kernels):
  out = inference.search_step(model, variables, image, img_hw, kernels, scfg)
  return out["box"], out["score"]  # the rest is dead code for XLA.


def _search_batch_fn(model, scfg, variables, images, img_hw, kernels):
  fn = lambda im, hw, k: _search_fn(model, scfg, variables, im, hw, k)
  return jax.vmap(fn)(images, img_hw, kernels)


@functools.lru_cache(maxsize=8)
def _jitted_steps(model: Any, scfg: inference.SearchConfig):
  """(query, search, search_batch) jits, shared by equal (model, config).

  Weights are arguments, not constants, so engines built from the same
  config (a CLI call, a test module) reuse each other's compiled steps.
  """
  return (jax.jit(functools.partial(inference.query_step, model)),
          jax.jit(functools.partial(_search_fn, model, scfg)),
          jax.jit(functools.partial(_search_batch_fn, model, scfg)))


class SearchEngine:
  """The jitted query and (batched) search steps of one model.

  Each (canvas, B) compiles once per (model, search config), see
  `_jitted_steps`.
  """

  def __init__(self, cfg: ml_collections.ConfigDict, variables: Any,
               model: Any = None):
    self.cfg = cfg
    self.model = model or build_model(cfg.model,
                                      cfg.get("compute_dtype", "float32"))
    self.variables = jax.device_put(variables)
    self.presence_threshold = float(cfg.test.presence_threshold)
    self._query, self._search, self._search_batch = _jitted_steps(
        self.model, inference.search_config(cfg))

  @classmethod
  def from_tracker(cls, tracker: Any) -> "SearchEngine":
    """An engine on a `gt_jax.tracker.Tracker`'s config, model and weights."""
    return cls(tracker.cfg, tracker.variables, tracker.model)

  def canvas_hw(self, orig_hw: tuple[int, int]) -> tuple[int, int]:
    """The canvas `preprocess` gives a frame of size (H, W)."""
    _, hw = pp.rescale_size(orig_hw, self.cfg.preprocess.scale)
    return pp.padded_size(hw, self.cfg.test.canvas_multiple)

  def preprocess(self, frame: np.ndarray, name: str = "frame"
                 ) -> pp.Preprocessed:
    """(H, W, 3) uint8 RGB -> its own canvas (as `Tracker.track`)."""
    p = self.cfg.preprocess
    return pp.preprocess_frame(frame, p.scale, p.mean, p.std, p.size_divisor,
                               self.cfg.test.canvas_multiple, name=name)

  def load(self, path: str) -> pp.Preprocessed:
    """Reads and preprocesses one frame file (thread-safe)."""
    return self.preprocess(read_rgb(path), name=path)

  def query(self, pre: pp.Preprocessed, box_xywh: Sequence[float],
            name: str = "init box") -> Any:
    """Kernels {"rpn": (1, 5, C), "rcnn": (1, 7, 7, C)} of one target."""
    b = pp.check_box_xywh(box_xywh, pre.orig_hw, name)
    qbox = pp.query_box(b, pre.scale, pre.pad_hw)[None]
    return self._query(self.variables, pre.image, qbox)

  def search(self, pre: pp.Preprocessed, kernels: Any):
    """One frame alone: device (box (1, 4) xyxy resized, score (1,))."""
    return self._search(self.variables, pre.image,
                        np.asarray(pre.img_hw, np.int32), kernels)

  def search_batch(self, images: np.ndarray, img_hw: np.ndarray,
                   kernels: Any):
    """(B, Hc, Wc, 3), (B, 2), leaves (B, 1, ...) -> (B, 1, 4), (B, 1).

    Outputs stay on the device (xyxy resized, score); nothing blocks.
    """
    return self._search_batch(self.variables, images, img_hw, kernels)


def as_engine(tracker_or_engine: Any) -> SearchEngine:
  if isinstance(tracker_or_engine, SearchEngine):
    return tracker_or_engine
  return SearchEngine.from_tracker(tracker_or_engine)


# ---------------------------------------------------------------------------
# Sharding and result files.


def shard_sequences(records: Sequence[SequenceRecord], process_index: int,
                    process_count: int) -> list[SequenceRecord]:
  """This process's share: longest-first greedy balance of frame counts.

  Deterministic (ties -> lower index), so the shares of all processes are
  disjoint and cover `records`; returned in benchmark order.
  """
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index} must be in "
                     f"[0, process_count={process_count})")
  load = [0] * process_count
  owner = [0] * len(records)
  for i in sorted(range(len(records)), key=lambda i: (-len(records[i]), i)):
    p = min(range(process_count), key=lambda p: (load[p], p))
    owner[i] = p
    load[p] += len(records[i])
  return [r for i, r in enumerate(records) if owner[i] == process_index]


def result_path(layout: str, tracker_dir: str, name: str) -> str:
  """The file whose presence marks sequence `name` as done."""
  if layout == "got10k":
    return os.path.join(tracker_dir, name, f"{name}_001.txt")
  if layout == "oxuva":
    return os.path.join(tracker_dir, f"{name}.csv")
  if layout in ("otb", "trackingnet"):
    return os.path.join(tracker_dir, f"{name}.txt")
  raise ValueError(f"unknown result layout {layout!r}; expected one of "
                   f"{LAYOUTS}")


def _num_rows(path: str) -> int:
  with open(path, "r", encoding="utf-8") as f:
    return sum(1 for line in f if line.strip())


def _atomic(path: str, write: Callable[[str], None]) -> None:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  write(tmp)
  os.replace(tmp, path)


@dataclasses.dataclass
class SequenceResult:
  """Per tracked frame: xywh boxes (K, 4), scores (K,), times (K,) s,
  frame_ids (K,) indices into the record's frames (0, s, 2s, ...)."""
  boxes: np.ndarray
  scores: np.ndarray
  times: np.ndarray
  frame_ids: np.ndarray


def _expected_rows(layout: str, n_tracked: int) -> int:
  return n_tracked - 1 if layout == "oxuva" else n_tracked


def is_done(layout: str, tracker_dir: str, rec: SequenceRecord,
            frame_stride: int = 1) -> bool:
  """True when `rec`'s result file exists and is complete."""
  path = result_path(layout, tracker_dir, rec.name)
  n = len(range(0, len(rec), frame_stride))
  return os.path.isfile(path) and _num_rows(path) == _expected_rows(layout, n)


def write_result(layout: str, tracker_dir: str, rec: SequenceRecord,
                 res: SequenceResult, presence_threshold: float) -> str:
  """Writes one sequence's files (atomically; main file last)."""
  name = rec.name
  main = result_path(layout, tracker_dir, name)
  times_path = os.path.join(tracker_dir, "times", f"{name}_time.txt")
  if layout == "got10k":
    d = os.path.join(tracker_dir, name)
    times_path = os.path.join(d, f"{name}_time.txt")
    _atomic(os.path.join(d, f"{name}_001_confidence.value"),
            lambda p: results_io.write_values(p, res.scores))
  elif layout in ("otb", "trackingnet"):
    _atomic(os.path.join(tracker_dir, f"{name}_object_presence_scores.txt"),
            lambda p: results_io.write_values(p, res.scores))
  _atomic(times_path, lambda p: results_io.write_values(p, res.times))
  if layout == "oxuva":
    w, h = rec.meta["image_size"]
    x, y, bw, bh = (res.boxes[1:, k] for k in range(4))
    norm = np.stack([x / w, (x + bw) / w, y / h, (y + bh) / h], axis=1)
    frames = int(rec.meta["init_frame"]) + res.frame_ids[1:]
    present = res.scores[1:] >= presence_threshold
    _atomic(main, lambda p: results_io.write_oxuva_csv(
        p, rec.meta["video"], rec.meta["object"], frames, present,
        res.scores[1:], norm))
  else:
    _atomic(main, lambda p: results_io.write_boxes(p, res.boxes))
  return main


def write_trackingnet_zip(tracker_dir: str,
                          records: Sequence[SequenceRecord]) -> str | None:
  """`<tracker_dir>.zip` when every record has its result, else None."""
  if not all(is_done("trackingnet", tracker_dir, r) for r in records):
    return None
  res = {r.name: results_io.read_boxes(result_path("trackingnet",
                                                   tracker_dir, r.name))
         for r in records}
  path = os.path.normpath(tracker_dir) + ".zip"
  _atomic(path, lambda p: results_io.write_trackingnet_zip(p, res))
  return path


# ---------------------------------------------------------------------------
# The batched loop.


@dataclasses.dataclass
class _Seq:
  """A sequence being tracked; filled as results come back."""
  rec: SequenceRecord
  frame_ids: np.ndarray
  boxes: np.ndarray
  scores: np.ndarray
  times: np.ndarray
  next_pos: int = 1  # next position of frame_ids to dispatch.
  collected: int = 1  # positions with results (frame 0 = the init box).

  @property
  def complete(self) -> bool:
    return self.collected == len(self.frame_ids)

  def result(self) -> SequenceResult:
    return SequenceResult(self.boxes, self.scores, self.times, self.frame_ids)


@jax.jit
def _set_slot(stacked: Any, i: jax.Array, new: Any) -> Any:
  return jax.tree.map(lambda s, n: s.at[i].set(n), stacked, new)


@dataclasses.dataclass
class RunSummary:
  """What `run_benchmark` did (this process only)."""
  sequences: int = 0  # tracked now.
  skipped: int = 0  # already done (resume).
  frames: int = 0
  seconds: float = 0.0

  @property
  def fps(self) -> float:
    return self.frames / self.seconds if self.seconds > 0 else 0.0


class _GroupRunner:
  """Runs one canvas group of sequences through B slots."""

  def __init__(self, engine: SearchEngine, canvas: tuple[int, int], b: int,
               loader: FramePrefetcher, finish: Callable[[_Seq], None],
               pbar: Any):
    self.engine, self.canvas, self.b = engine, canvas, b
    self.loader, self.finish, self.pbar = loader, finish, pbar
    self.lanes: list[_Seq | None] = [None] * b
    self.kernels = None

  def _collect(self, s: _Seq, pos: int, box: np.ndarray, score: float,
               scale: float, seconds: float) -> None:
    s.boxes[pos] = pp.box_to_original_xywh(box, scale)
    s.scores[pos] = score
    s.times[pos] = seconds
    s.collected += 1
    self.pbar.update(1)
    if s.complete:
      self.finish(s)

  def _start(self, lane: int, s: _Seq) -> None:
    """Loads frame 0 and sets the query of `lane` (frame 0 = init box)."""
    paths = [s.rec.frame_paths[k] for k in s.frame_ids]
    self.loader.start(lane, paths)
    pre = self.loader.next(lane)
    t0 = time.perf_counter()
    k = self.engine.query(pre, s.rec.boxes[0], f"{s.rec.name}: init box")
    if self.kernels is None:
      self.kernels = jax.tree.map(
          lambda n: jnp.zeros((self.b, *n.shape), n.dtype), k)
    self.kernels = _set_slot(self.kernels, np.int32(lane), k)
    jax.block_until_ready(self.kernels)
    s.times[0] = time.perf_counter() - t0
    self.pbar.update(1)
    self.lanes[lane] = s

  def run(self, queue: collections.deque) -> None:
    # Step t's device outputs (box, score, [(lane, seq, pos, scale)]), read
    # back after step t + 1 is dispatched.
    inflight = None
    last = time.perf_counter()
    while True:
      for i in range(self.b):
        while self.lanes[i] is None and queue:
          s = queue.popleft()
          self._start(i, s)
          if len(s.frame_ids) == 1:
            self.lanes[i] = None
            self.finish(s)
      entries = []
      images = np.zeros((self.b, *self.canvas, 3), np.float32)
      img_hw = np.tile(np.asarray(self.canvas, np.int32), (self.b, 1))
      for i, s in enumerate(self.lanes):
        if s is None:
          continue
        pos, s.next_pos = s.next_pos, s.next_pos + 1
        pre = self.loader.next(i)
        if s.next_pos == len(s.frame_ids):  # all dispatched: free the lane.
          self.lanes[i] = None
          self.loader.stop(i)
        if pre.image.shape[:2] != self.canvas:
          # A frame of another size: alone, on its own canvas.
          t0 = time.perf_counter()
          k = jax.tree.map(lambda a, i=i: a[i], self.kernels)
          box, score = jax.device_get(self.engine.search(pre, k))
          self._collect(s, pos, box[0], float(score[0]), pre.scale,
                        time.perf_counter() - t0)
          continue
        images[i], img_hw[i] = pre.image, pre.img_hw
        entries.append((i, s, pos, pre.scale))
      new = None
      if entries:
        new = (*self.engine.search_batch(images, img_hw, self.kernels),
               entries)
      if inflight is not None:
        box, score = jax.device_get(inflight[:2])
        now = time.perf_counter()
        dt = (now - last) / len(inflight[2])
        last = now
        for i, s, pos, scale in inflight[2]:
          self._collect(s, pos, box[i, 0], float(score[i, 0]), scale, dt)
      elif new is not None:
        last = time.perf_counter()
      inflight = new
      if inflight is None and not queue and all(
          s is None for s in self.lanes):
        return


def _canvas_of(engine: SearchEngine, rec: SequenceRecord) -> tuple[int, int]:
  w, h = image_size(rec.frame_paths[0])
  return engine.canvas_hw((h, w))


def run_benchmark(tracker: Any, sequences: Sequence[SequenceRecord],
                  results_dir: str, *, batch_size: int = 1,
                  layout: str = "otb", frame_stride: int = 1,
                  num_workers: int = 4, prefetch: int = 4,
                  process_index: int | None = None,
                  process_count: int | None = None,
                  progress: bool = True,
                  on_sequence_done: Callable[[str], None] | None = None
                  ) -> RunSummary:
  """Tracks `sequences` and writes one result per sequence.

  Args:
    tracker: a `SearchEngine` (reuse it to reuse compiled steps) or a
      `gt_jax.tracker.Tracker`.
    sequences: the benchmark's records (all processes pass the same list).
    results_dir: the tracker's folder (e.g. `results/lasot/GlobalTrack`).
    batch_size: B sequences per device step.
    layout: one of LAYOUTS (see the module docstring; `default_layout`).
    frame_stride: track every k-th frame (OxUvA only: its labels are at
      1 Hz and predictions may be sparse; neuron used 30).
    num_workers: frame-decoding threads (0: decode in the main thread).
    prefetch: frames decoded ahead per slot.
    process_index, process_count: this process's shard (default: jax's).
    progress: show a tqdm bar (frames/s, ETA).
    on_sequence_done: called with the name after each sequence is written.

  Returns:
    A `RunSummary` of this process's work.

  Raises:
    ValueError: bad arguments, an invalid init box (naming the sequence).
    DatasetLayoutError: a frame file that is missing or cannot be decoded.
  """
  engine = as_engine(tracker)
  if layout not in LAYOUTS:
    raise ValueError(f"layout={layout!r}; expected one of {LAYOUTS}")
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  if frame_stride < 1 or (frame_stride > 1 and layout != "oxuva"):
    raise ValueError(f"frame_stride={frame_stride}: only the oxuva layout "
                     "accepts sparse results (stride > 1)")
  if process_index is None:
    process_index = jax.process_index()
  if process_count is None:
    process_count = jax.process_count()
  mine = shard_sequences(sequences, process_index, process_count)
  summary = RunSummary()
  todo = []
  for rec in mine:
    if is_done(layout, results_dir, rec, frame_stride):
      summary.skipped += 1
      continue
    if not rec.valid[0]:
      raise ValueError(f"{rec.name}: the first-frame box "
                       f"{rec.boxes[0].tolist()} is not a valid init box")
    todo.append(rec)
  groups: dict[tuple[int, int], collections.deque] = {}
  for rec in todo:
    ids = np.arange(0, len(rec), frame_stride)
    k = len(ids)
    s = _Seq(rec, ids, np.zeros((k, 4)), np.zeros(k), np.zeros(k))
    s.boxes[0], s.scores[0] = rec.boxes[0], 1.0
    groups.setdefault(_canvas_of(engine, rec), collections.deque()).append(s)

  def finish(s: _Seq) -> None:
    write_result(layout, results_dir, s.rec, s.result(),
                 engine.presence_threshold)
    summary.sequences += 1
    summary.frames += len(s.frame_ids)
    if on_sequence_done is not None:
      on_sequence_done(s.rec.name)

  total = sum(len(s.frame_ids) for q in groups.values() for s in q)
  t0 = time.perf_counter()
  with tqdm.tqdm(total=total, unit="frame", dynamic_ncols=True,
                 disable=not progress or process_index != 0) as pbar, \
      FramePrefetcher(engine.load, num_workers, prefetch) as loader:
    for canvas, queue in groups.items():
      pbar.set_postfix_str(f"canvas {canvas[0]}x{canvas[1]}, B={batch_size}")
      _GroupRunner(engine, canvas, batch_size, loader, finish,
                   pbar).run(queue)
  summary.seconds = time.perf_counter() - t0
  if layout == "trackingnet" and process_index == 0:
    write_trackingnet_zip(results_dir, sequences)
  return summary
