"""GlobalTrack tracker: `init(frame, box)` / `track(frame) -> TrackResult`.

```
tracker = Tracker(cfg, variables)
tracker.init(frame0, (x, y, w, h))   # HxWx3 uint8 RGB; box in pixels
result = tracker.track(frame)        # .box (x, y, w, h), .score, .present
```

Boxes at this API are `(x, y, w, h)` in original pixels with the legacy
rule `x2 = x + w - 1` (LS §1). Several targets: `init(frame, [box, ...])`
and `track` returns a list of `TrackResult`, one per target (they share the
per-frame backbone pass; results equal separate single-target runs).

The only state is the query (LS §1): `init` runs the jitted query step once
and keeps the per-target RPN vectors and proj_z(z); `track` runs one jitted
search step per frame. Each distinct canvas size compiles once (frames of a
video share one); `trace_counts` counts traces per function for tests.

Batched evaluation (B sequences in lock-step, one target each, sharing one
canvas): `init_batch(frames, boxes)` then `track_batch(frames)` per time step
-> list of B `TrackResult`. The canvas is the largest padded size of the
init frames (or `canvas_hw`); later frames must fit it. A runner with
sequences of unequal length keeps feeding the last frame of finished
sequences and ignores those results (B stays static: no recompile).
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np

from gt_jax import inference
from gt_jax import preprocess as pp
from gt_jax.model.build import build_model
from gt_jax.model.qg_rcnn import QGRCNN


@dataclasses.dataclass(frozen=True)
class TrackResult:
  """One target in one frame.

  Attributes:
    box: float64 (4,) (x, y, w, h) in original-frame pixels.
    score: the top-1 class-1 probability.
    present: score >= cfg.test.presence_threshold.
  """
  box: np.ndarray
  score: float
  present: bool


@dataclasses.dataclass
class _Query:
  kernels: Any  # {"rpn": ([B,] T, 5, C), "rcnn": ([B,] T, 7, 7, C)}
  num_targets: int
  multi: bool  # init got a list of boxes -> track returns a list.
  canvas_hw: tuple[int, int] | None = None  # batched mode only.


class Tracker:
  """Query-guided global-search tracker (no motion model, no update)."""

  def __init__(self, cfg: ml_collections.ConfigDict, variables: Any,
               model: QGRCNN | None = None):
    """Args: cfg: full config; variables: {"params", "batch_stats"}."""
    self.cfg = cfg
    self.model = model or build_model(cfg.model,
                                      cfg.get("compute_dtype", "float32"))
    self.variables = jax.device_put(variables)
    self.search_cfg = inference.search_config(cfg)
    self.presence_threshold = float(cfg.test.presence_threshold)
    self.trace_counts: collections.Counter[str] = collections.Counter()
    self._query_jit = jax.jit(self._query_impl)
    self._search_jit = jax.jit(self._search_impl)
    self._query_batch_jit = jax.jit(self._query_batch_impl)
    self._search_batch_jit = jax.jit(self._search_batch_impl)
    self._single: _Query | None = None
    self._batch: _Query | None = None
    self.last_output: dict[str, jax.Array] | None = None

  # Jitted bodies; the counter runs only while tracing.
  def _query_impl(self, variables, image, boxes):
    self.trace_counts["query"] += 1
    return inference.query_step(self.model, variables, image, boxes)

  def _search_impl(self, variables, image, img_hw, kernels):
    self.trace_counts["search"] += 1
    return inference.search_step(self.model, variables, image, img_hw,
                                 kernels, self.search_cfg)

  def _query_batch_impl(self, variables, images, boxes):
    self.trace_counts["query_batch"] += 1
    return inference.batched_query_step(self.model, variables, images, boxes)

  def _search_batch_impl(self, variables, images, img_hw, kernels):
    self.trace_counts["search_batch"] += 1
    return inference.batched_search_step(self.model, variables, images,
                                         img_hw, kernels, self.search_cfg)

  def _prep(self, frame: np.ndarray, name: str,
            canvas_hw: tuple[int, int] | None = None) -> pp.Preprocessed:
    p = self.cfg.preprocess
    return pp.preprocess_frame(
        frame, scale=p.scale, mean=p.mean, std=p.std,
        size_divisor=p.size_divisor,
        canvas_multiple=self.cfg.test.canvas_multiple, canvas_hw=canvas_hw,
        name=name)

  def _query_boxes(self, boxes: np.ndarray, pre: pp.Preprocessed,
                   name: str) -> np.ndarray:
    out = []
    for i, b in enumerate(boxes):
      b = pp.check_box_xywh(b, pre.orig_hw, f"{name}[{i}]")
      out.append(pp.query_box(b, pre.scale, pre.pad_hw))
    return np.stack(out).astype(np.float32)

  def _results(self, box, score, pre_scale) -> list[TrackResult]:
    xywh = pp.box_to_original_xywh(np.asarray(box), pre_scale)
    score = np.asarray(score, np.float64)
    return [
        TrackResult(box=xywh[i], score=float(score[i]),
                    present=bool(score[i] >= self.presence_threshold))
        for i in range(len(score))
    ]

  def init(self, frame: np.ndarray,
           box: Sequence[float] | Sequence[Sequence[float]]) -> None:
    """Sets the query: one box (x, y, w, h) or a list of boxes.

    Raises:
      ValueError: bad frame (dtype/shape), or a box that is NaN/inf, has
        non-positive size or lies entirely outside the frame. A box partly
        outside is bounded to the canvas as officially (LS §2.6).
    """
    arr = np.asarray(box, np.float64)
    multi = arr.ndim == 2
    if arr.ndim == 1:
      arr = arr[None]
    if arr.ndim != 2 or arr.shape[-1] != 4 or arr.shape[0] < 1:
      raise ValueError(f"init box must be (x, y, w, h) or a list of them; "
                       f"got shape {np.shape(box)}")
    pre = self._prep(frame, "init frame")
    qboxes = self._query_boxes(arr, pre, "init box")
    kernels = self._query_jit(self.variables, pre.image, qboxes)
    self._single = _Query(kernels, len(qboxes), multi)

  def track(self, frame: np.ndarray) -> TrackResult | list[TrackResult]:
    """Searches the whole frame; see the class docstring for the output."""
    if self._single is None:
      raise RuntimeError("Tracker.track called before Tracker.init")
    pre = self._prep(frame, "frame")
    out = self._search_jit(self.variables, pre.image,
                           np.asarray(pre.img_hw, np.int32),
                           self._single.kernels)
    self.last_output = out
    res = self._results(out["box"], out["score"], pre.scale)
    return res if self._single.multi else res[0]

  def lower_search(self, frame: np.ndarray) -> jax.stages.Lowered:
    """The search step lowered for `frame`'s canvas and the current query.

    For ahead-of-time compilation and cost analysis (bench/track_speed.py):
    `tracker.lower_search(frame).compile().cost_analysis()`.
    """
    if self._single is None:
      raise RuntimeError("Tracker.lower_search called before Tracker.init")
    pre = self._prep(frame, "frame")
    return self._search_jit.lower(self.variables, pre.image,
                                  np.asarray(pre.img_hw, np.int32),
                                  self._single.kernels)

  def init_batch(self, frames: Sequence[np.ndarray],
                 boxes: Sequence[Sequence[float]],
                 canvas_hw: tuple[int, int] | None = None) -> None:
    """Sets B queries (one target per sequence) on a shared canvas."""
    if len(frames) != len(boxes) or not frames:
      raise ValueError(f"init_batch needs one box per frame; got "
                       f"{len(frames)} frames and {len(boxes)} boxes")
    if canvas_hw is None:
      hws = []
      for i, f in enumerate(frames):
        rgb = pp.to_rgb_uint8(f, f"init frame[{i}]")
        _, hw = pp.rescale_size(rgb.shape[:2], self.cfg.preprocess.scale)
        hws.append(pp.padded_size(hw, self.cfg.test.canvas_multiple))
      canvas_hw = tuple(int(v) for v in np.max(np.asarray(hws), axis=0))
    pres = [self._prep(f, f"init frame[{i}]", canvas_hw)
            for i, f in enumerate(frames)]
    qboxes = np.stack([
        self._query_boxes(np.asarray([b], np.float64), p, f"init box[{i}]")
        for i, (b, p) in enumerate(zip(boxes, pres))
    ])
    images = np.stack([p.image for p in pres])
    kernels = self._query_batch_jit(self.variables, images, qboxes)
    self._batch = _Query(kernels, 1, False, canvas_hw)

  def track_batch(self, frames: Sequence[np.ndarray]) -> list[TrackResult]:
    """One time step of the B sequences of `init_batch`."""
    if self._batch is None:
      raise RuntimeError("Tracker.track_batch called before init_batch")
    b = jax.tree_util.tree_leaves(self._batch.kernels)[0].shape[0]
    if len(frames) != b:
      raise ValueError(f"track_batch expects {b} frames; got {len(frames)}")
    pres = [self._prep(f, f"frame[{i}]", self._batch.canvas_hw)
            for i, f in enumerate(frames)]
    out = self._search_batch_jit(
        self.variables, np.stack([p.image for p in pres]),
        np.asarray([p.img_hw for p in pres], np.int32), self._batch.kernels)
    self.last_output = out
    box, score = np.asarray(out["box"]), np.asarray(out["score"])
    return [self._results(box[i], score[i], p.scale)[0]
            for i, p in enumerate(pres)]
