"""The ONE engine that tracks many sequences: B per device step, by canvas.

```
engine = SearchEngine(cfg, variables)
track_sequences(engine, records, batch_size=4,
                on_sequence=lambda rec, res: ...,      # SequenceResult
                on_frame=lambda rec, t, out: ...)      # optional hook
```
Every caller that tracks more than one frame uses this: the benchmark
runner (`gt_jax.evaluation.runner`, which adds result files, resume and
process sharding), proposal recall (`gt_jax.evaluation.recall`, through the
`on_frame` hook), the demo and the ablations.

Schedule. Sequences are grouped by canvas (the first frame's resized size
rounded up to `cfg.test.canvas_multiple`); one group at a time fills B
slots. Each slot runs one sequence: its first frame sets the query (LS §1:
the init box is the result of frame 0), then every step searches the next
frame of all B slots in one vmapped call. A slot whose sequence ends is
refilled with the next one of the group; when the group runs dry, empty
slots get a blank frame whose output is ignored (B stays static: one
compile per canvas). A frame whose own canvas differs from its group's (a
mid-sequence size change) is searched alone on its own canvas, so every
frame sees exactly the canvas `Tracker.track` would give it: batched and
single-sequence results agree.

Frames are decoded and preprocessed in threads ahead of the device
(`FramePrefetcher`), and step t's results are fetched only after step t + 1
is dispatched, so the device never waits for the host. Per-frame times are
amortised: the wall time between consecutive result fetches divided by the
number of live slots (frame 0: the query step).

Compiled steps: one cache, `compiled_steps(model, search_cfg)`, shared by
every engine and `Tracker` of equal (model, settings); weights are
arguments, so `engine.with_variables(other)` reuses the compiles.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from gt_jax.data.errors import DatasetLayoutError
from gt_jax.data.records import SequenceRecord
from gt_jax.data.sources.frames import image_size, read_rgb
from gt_jax.model.build import build_model
from gt_jax.tracking import preprocess as pp
from gt_jax.tracking import search
from gt_jax.tracking.frame_loader import FramePrefetcher

# What a search step returns: the top-1 only (tracking), the whole
# `search.search_step` dict (Tracker.last_output, parity), or that plus the
# ranked class-1 detections (proposal recall).
OUTPUTS = ("top1", "search", "candidates")

# on_frame(record, frame_index, outputs): one target's search-step outputs
# as numpy (no leading axes), plus "scale" (the frame's rescale factor).
FrameHook = Callable[[SequenceRecord, int, dict[str, np.ndarray]], None]
# on_error(record, error): a frame of `record` is missing or undecodable;
# the sequence is dropped (no on_sequence call) and the others go on.
ErrorHook = Callable[[SequenceRecord, DatasetLayoutError], None]


class CompiledSteps:
  """The jitted query and search steps of one (model, search settings).

  `trace_counts[name]` counts traces (compiles) per step, for tests.
  """

  def __init__(self, model: Any, scfg: search.SearchConfig):
    self.model, self.scfg = model, scfg
    self.trace_counts: collections.Counter[str] = collections.Counter()
    self.query = jax.jit(self._query)
    self._search: dict[tuple[str, bool], Callable[..., Any]] = {}

  def _query(self, variables, image, boxes):
    self.trace_counts["query"] += 1
    return search.query_step(self.model, variables, image, boxes)

  def _one(self, outputs, variables, image, img_hw, scale, kernels):
    out = search.search_step(self.model, variables, image, img_hw, kernels,
                             self.scfg, scale, outputs == "candidates")
    if outputs == "top1":  # the rest is dead code for XLA.
      out = {"box": out["box"], "score": out["score"]}
    return out

  def search(self, outputs: str = "top1", batched: bool = False
             ) -> Callable[..., Any]:
    """`fn(variables, image(s), img_hw, scale, kernels) -> dict`.

    Unbatched: (Hc, Wc, 3), (2,), (), leaves (T, ...) -> leaves (T, ...).
    Batched: a leading sequence axis B on every argument but `variables`.
    """
    if outputs not in OUTPUTS:
      raise ValueError(f"outputs={outputs!r}; expected one of {OUTPUTS}")
    key = (outputs, batched)
    if key not in self._search:
      name = f"search_{outputs}" + ("_batch" if batched else "")

      def fn(variables, image, img_hw, scale, kernels):
        self.trace_counts[name] += 1
        one = functools.partial(self._one, outputs, variables)
        return (jax.vmap(one) if batched else one)(image, img_hw, scale,
                                                    kernels)

      self._search[key] = jax.jit(fn)
    return self._search[key]


@functools.lru_cache(maxsize=16)
def compiled_steps(model: Any, scfg: search.SearchConfig) -> CompiledSteps:
  """The shared `CompiledSteps` of equal (model, settings)."""
  return CompiledSteps(model, scfg)


@jax.jit
def _set_slot(stacked: Any, i: jax.Array, new: Any) -> Any:
  return jax.tree.map(lambda s, n: s.at[i].set(n), stacked, new)


class SearchEngine:
  """One model's weights and compiled steps, with host pre/post-processing."""

  def __init__(self, cfg: ml_collections.ConfigDict, variables: Any,
               model: Any = None):
    """Args: cfg: full config; variables: {"params", "batch_stats"}."""
    self.cfg = cfg
    self.model = model or build_model(cfg.model,
                                      cfg.get("compute_dtype", "float32"))
    self.variables = jax.device_put(variables)
    self.presence_threshold = float(cfg.test.presence_threshold)
    self.search_cfg = search.search_config(cfg)
    self.steps = compiled_steps(self.model, self.search_cfg)

  @classmethod
  def from_tracker(cls, tracker: Any) -> "SearchEngine":
    """An engine on a `Tracker`'s config, model and weights."""
    return cls(tracker.cfg, tracker.variables, tracker.model)

  def with_variables(self, variables: Any) -> "SearchEngine":
    """The same model and compiled steps with other weights."""
    return SearchEngine(self.cfg, variables, self.model)

  def canvas_hw(self, orig_hw: tuple[int, int]) -> tuple[int, int]:
    """The canvas `preprocess` gives a frame of size (H, W)."""
    _, hw = pp.rescale_size(orig_hw, self.cfg.preprocess.scale)
    return pp.padded_size(hw, self.cfg.test.canvas_multiple)

  def preprocess(self, frame: np.ndarray, name: str = "frame"
                 ) -> pp.Preprocessed:
    """(H, W, 3) uint8 RGB -> its own canvas (LS §2)."""
    p = self.cfg.preprocess
    return pp.preprocess_frame(frame, p.scale, p.mean, p.std, p.size_divisor,
                               self.cfg.test.canvas_multiple, name=name)

  def load(self, path: str) -> pp.Preprocessed:
    """Reads and preprocesses one frame file (thread-safe)."""
    return self.preprocess(read_rgb(path), name=path)

  def query(self, pre: pp.Preprocessed, boxes_xywh: Any,
            name: str = "init box") -> Any:
    """Kernels {"rpn": (T, 5, C), "rcnn": (T, 7, 7, C)} of T targets.

    Args:
      pre: the preprocessed init frame.
      boxes_xywh: one (x, y, w, h) box or (T, 4) boxes in original pixels.
      name: for error messages.

    Raises:
      ValueError: a box that is NaN, has non-positive size or lies entirely
        outside the frame.
    """
    arr = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
    qboxes = np.stack([
        pp.query_box(pp.check_box_xywh(b, pre.orig_hw, f"{name}[{i}]"
                                       if len(arr) > 1 else name),
                     pre.scale, pre.pad_hw) for i, b in enumerate(arr)
    ]).astype(np.float32)
    return self.steps.query(self.variables, pre.image, qboxes)

  def search(self, pre: pp.Preprocessed, kernels: Any,
             outputs: str = "top1") -> dict[str, jax.Array]:
    """One frame on its own canvas -> device dict, leaves (T, ...)."""
    return self.steps.search(outputs)(
        self.variables, pre.image, np.asarray(pre.img_hw, np.int32),
        np.float32(pre.scale), kernels)

  def search_batch(self, images: np.ndarray, img_hw: np.ndarray,
                   scales: np.ndarray, kernels: Any,
                   outputs: str = "top1") -> dict[str, jax.Array]:
    """(B, Hc, Wc, 3), (B, 2), (B,), leaves (B, T, ...) -> leaves (B, T, ...).

    Outputs stay on the device; nothing blocks.
    """
    return self.steps.search(outputs, batched=True)(
        self.variables, images, img_hw, scales, kernels)


def as_engine(tracker_or_engine: Any) -> SearchEngine:
  """A `SearchEngine` as is, or one on a `Tracker`'s weights."""
  if isinstance(tracker_or_engine, SearchEngine):
    return tracker_or_engine
  return SearchEngine.from_tracker(tracker_or_engine)


# ---------------------------------------------------------------------------
# The batched loop.


@dataclasses.dataclass
class SequenceResult:
  """Per tracked frame: xywh boxes (K, 4) in original pixels, scores (K,),
  times (K,) s, frame_ids (K,) indices into the record's frames (frame 0 =
  the init box, score 1)."""
  boxes: np.ndarray
  scores: np.ndarray
  times: np.ndarray
  frame_ids: np.ndarray


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
  failed: bool = False  # a frame could not be read (see ErrorHook).

  @classmethod
  def start(cls, rec: SequenceRecord, frame_ids: np.ndarray) -> "_Seq":
    k = len(frame_ids)
    s = cls(rec, frame_ids, np.zeros((k, 4)), np.zeros(k), np.zeros(k))
    s.boxes[0], s.scores[0] = rec.boxes[0], 1.0
    return s

  @property
  def complete(self) -> bool:
    return self.collected == len(self.frame_ids)

  def result(self) -> SequenceResult:
    return SequenceResult(self.boxes, self.scores, self.times, self.frame_ids)


@dataclasses.dataclass
class TrackSummary:
  """What `track_sequences` did."""
  sequences: int = 0
  frames: int = 0
  seconds: float = 0.0

  @property
  def fps(self) -> float:
    return self.frames / self.seconds if self.seconds > 0 else 0.0


class _GroupRunner:
  """Runs one canvas group of sequences through B slots."""

  def __init__(self, engine: SearchEngine, canvas: tuple[int, int], b: int,
               loader: FramePrefetcher, finish: Callable[[_Seq], None],
               on_frame: FrameHook | None, pbar: Any,
               on_error: ErrorHook | None = None):
    self.engine, self.canvas, self.b = engine, canvas, b
    self.loader, self.finish, self.pbar = loader, finish, pbar
    self.on_frame, self.on_error = on_frame, on_error
    self.outputs = "top1" if on_frame is None else "candidates"
    self.lanes: list[_Seq | None] = [None] * b
    self.kernels = None

  def _collect(self, s: _Seq, pos: int, out: dict[str, np.ndarray],
               scale: float, seconds: float) -> None:
    """Stores one frame's result; `out` leaves have no leading axes."""
    if s.failed:
      return
    s.boxes[pos] = pp.box_to_original_xywh(out["box"], scale)
    s.scores[pos] = float(out["score"])
    s.times[pos] = seconds
    s.collected += 1
    self.pbar.update(1)
    if self.on_frame is not None:
      self.on_frame(s.rec, int(s.frame_ids[pos]),
                    dict(out, scale=np.float64(scale)))
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

  def _fail(self, lane: int, s: _Seq, error: DatasetLayoutError) -> None:
    """Drops `s` after a frame read error (re-raised without on_error)."""
    if self.on_error is None:
      raise error
    s.failed = True
    if self.lanes[lane] is s:
      self.lanes[lane] = None
    self.loader.stop(lane)
    self.on_error(s.rec, error)

  def _alone(self, lane: int, s: _Seq, pos: int, pre: pp.Preprocessed):
    """A frame whose canvas differs from the group's: its own canvas."""
    t0 = time.perf_counter()
    k = jax.tree.map(lambda a: a[lane], self.kernels)
    out = jax.device_get(self.engine.search(pre, k, self.outputs))
    self._collect(s, pos, {n: v[0] for n, v in out.items()}, pre.scale,
                  time.perf_counter() - t0)

  def run(self, queue: collections.deque) -> None:
    # Step t's device outputs and [(lane, seq, pos, scale)], read back
    # after step t + 1 is dispatched.
    inflight = None
    last = time.perf_counter()
    while True:
      for i in range(self.b):
        while self.lanes[i] is None and queue:
          s = queue.popleft()
          try:
            self._start(i, s)
          except DatasetLayoutError as e:
            self._fail(i, s, e)
            continue
          if len(s.frame_ids) == 1:
            self.lanes[i] = None
            self.loader.stop(i)
            self.finish(s)
      entries = []
      images = np.zeros((self.b, *self.canvas, 3), np.float32)
      img_hw = np.tile(np.asarray(self.canvas, np.int32), (self.b, 1))
      scales = np.ones(self.b, np.float32)
      for i, s in enumerate(self.lanes):
        if s is None:
          continue
        try:
          pre = self.loader.next(i)
        except DatasetLayoutError as e:
          self._fail(i, s, e)
          continue
        pos, s.next_pos = s.next_pos, s.next_pos + 1
        if s.next_pos == len(s.frame_ids):  # all dispatched: free the lane.
          self.lanes[i] = None
          self.loader.stop(i)
        if pre.image.shape[:2] != self.canvas:
          self._alone(i, s, pos, pre)
          continue
        images[i], img_hw[i], scales[i] = pre.image, pre.img_hw, pre.scale
        entries.append((i, s, pos, pre.scale))
      new = None
      if entries:
        new = (self.engine.search_batch(images, img_hw, scales, self.kernels,
                                        self.outputs), entries)
      if inflight is not None:
        out = jax.device_get(inflight[0])
        now = time.perf_counter()
        dt = (now - last) / len(inflight[1])
        last = now
        for i, s, pos, scale in inflight[1]:
          self._collect(s, pos, {n: v[i, 0] for n, v in out.items()}, scale,
                        dt)
      elif new is not None:
        last = time.perf_counter()
      inflight = new
      if inflight is None and not queue and all(
          s is None for s in self.lanes):
        return


def canvas_of(engine: SearchEngine, rec: SequenceRecord) -> tuple[int, int]:
  """The canvas of a sequence's first frame (read from the file header)."""
  w, h = image_size(rec.frame_paths[0])
  return engine.canvas_hw((h, w))


def track_sequences(
    engine: SearchEngine, records: Sequence[SequenceRecord], *,
    batch_size: int = 1,
    frame_ids: Callable[[SequenceRecord], Sequence[int]] | None = None,
    on_sequence: Callable[[SequenceRecord, SequenceResult], None]
    | None = None,
    on_frame: FrameHook | None = None,
    on_error: ErrorHook | None = None,
    num_workers: int = 4, prefetch: int = 4,
    progress: bool = True, desc: str | None = None) -> TrackSummary:
  """Tracks every record (one target each, from its frame-0 box).

  Args:
    engine: the weights and compiled steps (reuse it to reuse compiles).
    records: the sequences.
    batch_size: B sequences per device step.
    frame_ids: which frames to track per record (default: all); must start
      with 0 (the query frame) and increase. GlobalTrack keeps no state
      between frames, so a subset gives the same per-frame results.
    on_sequence: called with each finished sequence's `SequenceResult`.
    on_frame: called for every tracked frame t >= 1 with the full outputs
      (`search.search_step` with `candidates`); None runs the lean top-1
      step.
    on_error: called when a frame of a sequence is missing or cannot be
      decoded; that sequence is dropped and the others are tracked. None:
      the error is raised.
    num_workers: frame-decoding threads (0: decode in the main thread).
    prefetch: frames decoded ahead per slot.
    progress: show a tqdm bar (frames/s, ETA).
    desc: the bar's label.

  Raises:
    ValueError: bad arguments, an invalid init box (naming the sequence).
    DatasetLayoutError: a frame file that is missing or cannot be decoded
      (only without `on_error`).
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  groups: dict[tuple[int, int], collections.deque] = {}
  for rec in records:
    if not rec.valid[0]:
      raise ValueError(f"{rec.name}: the first-frame box "
                       f"{rec.boxes[0].tolist()} is not a valid init box")
    ids = (np.arange(len(rec)) if frame_ids is None else
           np.asarray(frame_ids(rec), np.int64))
    if (len(ids) == 0 or ids[0] != 0 or np.any(np.diff(ids) <= 0) or
        ids[-1] >= len(rec)):
      raise ValueError(f"{rec.name}: frame_ids must start at 0 and increase "
                       f"within the {len(rec)} frames; got {ids[:8]}...")
    try:
      canvas = canvas_of(engine, rec)
    except DatasetLayoutError as e:
      if on_error is None:
        raise
      on_error(rec, e)
      continue
    groups.setdefault(canvas, collections.deque()).append(
        _Seq.start(rec, ids))
  summary = TrackSummary()

  def finish(s: _Seq) -> None:
    summary.sequences += 1
    summary.frames += len(s.frame_ids)
    if on_sequence is not None:
      on_sequence(s.rec, s.result())

  total = sum(len(s.frame_ids) for q in groups.values() for s in q)
  t0 = time.perf_counter()
  with tqdm.tqdm(total=total, unit="frame", dynamic_ncols=True, desc=desc,
                 disable=not progress) as pbar, \
      FramePrefetcher(engine.load, num_workers, prefetch) as loader:
    for canvas, queue in groups.items():
      pbar.set_postfix_str(f"canvas {canvas[0]}x{canvas[1]}, B={batch_size}")
      _GroupRunner(engine, canvas, batch_size, loader, finish, on_frame,
                   pbar, on_error).run(queue)
  summary.seconds = time.perf_counter() - t0
  return summary
