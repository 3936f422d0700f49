"""A generic sequence: a folder of numbered frames plus `groundtruth.txt`.

Layout: `<seq>/groundtruth.txt` (x,y,w,h; comma, tab or space separated) and
frames either in `<seq>/img/` or directly in `<seq>/`, named by number (any
padding, any first number) with extension .jpg, .jpeg or .png. The ground
truth holds one row per frame, or a single row (first frame only: a sequence
to track without ground truth). For your own videos.
"""

from __future__ import annotations

import os
from typing import Sequence

from gt_jax.data.errors import DatasetLayoutError
from gt_jax.data.records import SequenceRecord, box_validity
from gt_jax.data.sources.frames import (list_numbered_frames,
                                        numbered_frame_paths)
from gt_jax.data.sources.textfile import read_boxes

GT_FILE = "groundtruth.txt"
EXTS = (".jpg", ".jpeg", ".png")


def read_folder_sequence(seq_dir: str, name: str | None = None,
                         frames: bool = True) -> SequenceRecord:
  """Reads one generic sequence folder.

  With `frames=False` (scoring) missing or partly deleted frames are no
  error: one path per row is then assumed (`%04d.jpg`, unchecked); a
  complete run of frames must still match the ground truth.

  Raises:
    DatasetLayoutError: no ground truth, no frames, a frame gap, or a row
      count that is neither 1 nor the frame count.
  """
  name = name or os.path.basename(os.path.normpath(seq_dir))
  path = os.path.join(seq_dir, GT_FILE)
  boxes = read_boxes(path)
  img_dir = os.path.join(seq_dir, "img")
  frame_dir = img_dir if os.path.isdir(img_dir) else seq_dir
  try:
    paths = list_numbered_frames(frame_dir, EXTS, first=None)
  except DatasetLayoutError:
    if frames:
      raise
    paths = None  # scoring: missing or partly deleted frames are fine
  if paths is not None and boxes.shape[0] not in (1, len(paths)):
    raise DatasetLayoutError(path, f"{boxes.shape[0]} rows for "
                             f"{len(paths)} frames (expected 1 or "
                             f"{len(paths)})")
  if paths is None:
    paths = numbered_frame_paths(frame_dir, "%04d.jpg", 1, boxes.shape[0],
                                 check=False)
  first_only = boxes.shape[0] == 1 and len(paths) > 1
  valid = box_validity(boxes)
  return SequenceRecord(name, paths, boxes, valid, valid.copy(),
                        {"first_frame_only": first_only})


def read_folder(root: str, names: Sequence[str] | None = None,
                frames: bool = True) -> list[SequenceRecord]:
  """Reads `root` as one sequence (it holds groundtruth.txt) or as a folder
  of sequences (every sub-folder holding groundtruth.txt, sorted by name).

  Raises:
    DatasetLayoutError: no sequence found, a named one is missing or bad.
  """
  if names is None:
    if os.path.exists(os.path.join(root, GT_FILE)):
      return [read_folder_sequence(root, frames=frames)]
    try:
      names = sorted(d for d in os.listdir(root)
                     if os.path.isfile(os.path.join(root, d, GT_FILE)))
    except FileNotFoundError:
      raise DatasetLayoutError(root, "folder not found") from None
    if not names:
      raise DatasetLayoutError(root, f"no {GT_FILE} here or in any "
                               "sub-folder")
  for n in names:
    if not os.path.isdir(os.path.join(root, n)):
      raise DatasetLayoutError(os.path.join(root, n),
                               f"sequence {n!r} is missing")
  return [read_folder_sequence(os.path.join(root, n), frames=frames)
          for n in names]
