"""What readers return: one `SequenceRecord` per video, one `ImageRecord` per
still image (COCO).

Boxes are float64 `x, y, w, h` exactly as stored in the dataset's files (no
origin shift, no +1); the legacy corner conversion lives in `gt_jax/boxes.py`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


def box_validity(boxes: np.ndarray) -> np.ndarray:
  """Returns bool (N,): the row is finite and has w > 0 and h > 0.

  This is pytracking's rule (datasets.md §0.5); `-1,-1,-1,-1` and NaN rows are
  invalid.

  Args:
    boxes: float (N, 4) `x, y, w, h`.
  """
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  with np.errstate(invalid="ignore"):
    return (np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0)
            & (boxes[:, 3] > 0))


@dataclasses.dataclass
class SequenceRecord:
  """One annotated video (one target).

  Attributes:
    name: the benchmark's own sequence name (e.g. `Jogging.1`, `airplane-1`).
    frame_paths: N frame file paths, in temporal order.
    boxes: float64 (K, 4) `x, y, w, h` as stored. K == N, except for
      first-frame-only test splits (GOT-10k test, TrackingNet TEST, OxUvA
      test) where K == 1 and `meta["first_frame_only"]` is True.
    valid: bool (K,), the box is finite with w > 0 and h > 0.
    visible: bool (K,), from the dataset's absence/occlusion flags where they
      exist (else equal to `valid`).
    meta: dataset-specific extras (flags as arrays of length K, category,
      split, ...).
  """
  name: str
  frame_paths: list[str]
  boxes: np.ndarray
  valid: np.ndarray
  visible: np.ndarray
  meta: dict[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    self.frame_paths = list(self.frame_paths)
    self.boxes = np.asarray(self.boxes, np.float64)
    self.valid = np.asarray(self.valid, bool)
    self.visible = np.asarray(self.visible, bool)
    k = self.boxes.shape[0] if self.boxes.ndim == 2 else -1
    if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
      raise ValueError(f"{self.name}: boxes must be (K, 4), got "
                       f"{self.boxes.shape}")
    if self.valid.shape != (k,) or self.visible.shape != (k,):
      raise ValueError(
          f"{self.name}: valid {self.valid.shape} and visible "
          f"{self.visible.shape} must both be ({k},)")
    if k not in (len(self.frame_paths), 1):
      raise ValueError(f"{self.name}: {k} boxes for {len(self.frame_paths)}"
                       " frames")

  def __len__(self) -> int:
    return len(self.frame_paths)

  @property
  def first_frame_only(self) -> bool:
    """True when only the first frame's box is known (test splits)."""
    return bool(self.meta.get("first_frame_only", False))


@dataclasses.dataclass
class ImageRecord:
  """One still image with its object boxes (COCO).

  Attributes:
    path: the JPEG path (raw layout) or, for a tfds source, the int record
      index into that source.
    height: image height in pixels.
    width: image width in pixels.
    boxes: float64 (M, 4) `x, y, w, h` in pixels, M >= 1 after filtering.
    meta: `image_id`, `labels` int64 (M,) contiguous 1..80, `annotation_ids`
      int64 (M,), `source` ("raw" or "tfds").
  """
  path: str | int
  height: int
  width: int
  boxes: np.ndarray
  meta: dict[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    self.boxes = np.asarray(self.boxes, np.float64).reshape(-1, 4)
    self.height = int(self.height)
    self.width = int(self.width)
