"""Tracks whole benchmarks into result files: resumable, process-sharded.

```
engine = SearchEngine(cfg, variables)             # or a Tracker
run_benchmark(engine, records, "results/lasot/GlobalTrack", batch_size=4)
```

The tracking itself is `gt_jax.tracking.engine.track_sequences` (B
sequences per device step, grouped by canvas, threaded decoding). This
module adds what a benchmark run needs around it:

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

import dataclasses
import os
from typing import Any, Callable, Sequence

import jax
import numpy as np

from gt_jax.data.records import SequenceRecord
from gt_jax.evaluation import results_io
from gt_jax.tracking.engine import SequenceResult
from gt_jax.tracking.engine import as_engine
from gt_jax.tracking.engine import track_sequences

LAYOUTS = ("otb", "got10k", "trackingnet", "oxuva")


def default_layout(benchmark: str) -> str:
  """The result layout a benchmark's toolkit reads."""
  b = benchmark.lower().replace("-", "").replace("_", "")
  return b if b in ("got10k", "trackingnet", "oxuva") else "otb"


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


@dataclasses.dataclass
class RunSummary:
  """What `run_benchmark` did (this process only)."""
  sequences: int = 0  # tracked now.
  skipped: int = 0  # already done (resume).
  frames: int = 0
  seconds: float = 0.0
  # (sequence name, one-line reason) of sequences whose frames could not
  # be read; they have no result file, the others were tracked.
  failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)

  @property
  def fps(self) -> float:
    return self.frames / self.seconds if self.seconds > 0 else 0.0


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
    A `RunSummary` of this process's work. A sequence with a frame that is
    missing or cannot be decoded is listed in `failed` (no result file) and
    the others are tracked; finished sequences are written as they finish.

  Raises:
    ValueError: bad arguments, no sequences, an invalid init box (naming
      the sequence).
  """
  engine = as_engine(tracker)
  if not sequences:
    raise ValueError("no sequences to track")
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
    todo.append(rec)

  def finish(rec: SequenceRecord, res: SequenceResult) -> None:
    write_result(layout, results_dir, rec, res, engine.presence_threshold)
    if on_sequence_done is not None:
      on_sequence_done(rec.name)

  def fail(rec: SequenceRecord, error: Exception) -> None:
    summary.failed.append((rec.name, str(error)))

  done = track_sequences(
      engine, todo, batch_size=batch_size,
      frame_ids=lambda rec: np.arange(0, len(rec), frame_stride),
      on_sequence=finish, on_error=fail, num_workers=num_workers,
      prefetch=prefetch,
      progress=progress and process_index == 0)
  summary.sequences, summary.frames = done.sequences, done.frames
  summary.seconds = done.seconds
  if layout == "trackingnet" and process_index == 0 and not summary.failed:
    write_trackingnet_zip(results_dir, sequences)
  return summary
