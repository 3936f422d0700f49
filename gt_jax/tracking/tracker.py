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

Many sequences at once (B per device step): `gt_jax.tracking.engine`
(`track_sequences`, or `evaluation.runner.run_benchmark` for result files);
`SearchEngine.from_tracker(tracker)` reuses this tracker's weights and
compiled steps.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np

from gt_jax.model.qg_rcnn import QGRCNN
from gt_jax.tracking import preprocess as pp
from gt_jax.tracking.engine import SearchEngine


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
  kernels: Any  # {"rpn": (T, 5, C), "rcnn": (T, 7, 7, C)}
  multi: bool  # init got a list of boxes -> track returns a list.


class Tracker:
  """Query-guided global-search tracker (no motion model, no update)."""

  def __init__(self, cfg: ml_collections.ConfigDict, variables: Any,
               model: QGRCNN | None = None):
    """Args: cfg: full config; variables: {"params", "batch_stats"}."""
    self.engine = SearchEngine(cfg, variables, model)
    self.presence_threshold = self.engine.presence_threshold
    self._query: _Query | None = None
    self.last_output: dict[str, jax.Array] | None = None

  @property
  def cfg(self) -> ml_collections.ConfigDict:
    return self.engine.cfg

  @property
  def model(self) -> QGRCNN:
    return self.engine.model

  @property
  def variables(self) -> Any:
    return self.engine.variables

  @property
  def trace_counts(self):
    """Traces per compiled step, shared by trackers of equal settings."""
    return self.engine.steps.trace_counts

  def init(self, frame: np.ndarray,
           box: Sequence[float] | Sequence[Sequence[float]]) -> None:
    """Sets the query: one box (x, y, w, h) or a list of boxes.

    Raises:
      ValueError: bad frame (dtype/shape), or a box that is NaN/inf, has
        non-positive size or lies entirely outside the frame. A box partly
        outside is bounded to the canvas as officially (LS §2.6).
    """
    arr = np.asarray(box, np.float64)
    if arr.ndim not in (1, 2) or arr.shape[-1] != 4 or arr.size < 4:
      raise ValueError(f"init box must be (x, y, w, h) or a list of them; "
                       f"got shape {np.shape(box)}")
    pre = self.engine.preprocess(frame, "init frame")
    kernels = self.engine.query(pre, arr, "init box")
    self._query = _Query(kernels, arr.ndim == 2)

  def _results(self, out: dict[str, Any], scale: float) -> list[TrackResult]:
    xywh = pp.box_to_original_xywh(np.asarray(out["box"]), scale)
    score = np.asarray(out["score"], np.float64)
    return [
        TrackResult(box=xywh[i], score=float(score[i]),
                    present=bool(score[i] >= self.presence_threshold))
        for i in range(len(score))
    ]

  def track(self, frame: np.ndarray) -> TrackResult | list[TrackResult]:
    """Searches the whole frame; see the module docstring for the output.

    `last_output` keeps the search step's whole dict (proposals, scores;
    `gt_jax.tracking.search.search_step`).
    """
    if self._query is None:
      raise RuntimeError("Tracker.track called before Tracker.init")
    pre = self.engine.preprocess(frame, "frame")
    out = self.engine.search(pre, self._query.kernels, "search")
    self.last_output = out
    res = self._results(out, pre.scale)
    return res if self._query.multi else res[0]

  def lower_search(self, frame: np.ndarray) -> jax.stages.Lowered:
    """The search step lowered for `frame`'s canvas and the current query.

    For ahead-of-time compilation and cost analysis (bench/track_speed.py):
    `tracker.lower_search(frame).compile().cost_analysis()`.
    """
    if self._query is None:
      raise RuntimeError("Tracker.lower_search called before Tracker.init")
    pre = self.engine.preprocess(frame, "frame")
    return self.engine.steps.search("search").lower(
        self.variables, pre.image, np.asarray(pre.img_hw, np.int32),
        np.float32(pre.scale), self._query.kernels)
