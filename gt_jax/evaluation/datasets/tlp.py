"""TLP reader (datasets.md §8).

`<root>/<Seq>/img/00001.jpg...` and `groundtruth_rect.txt` with 6
comma-separated columns: frame number (1..N, no gaps), x, y, w, h, isLost.
Visibility comes from isLost, not from the box.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from gt_jax.data.errors import DatasetLayoutError
from gt_jax.data.records import SequenceRecord, box_validity
from gt_jax.data.sources.frames import (check_rows, frames_on_disk,
                                        list_numbered_frames,
                                        numbered_frame_paths)
from gt_jax.data.sources.textfile import read_table

GT_FILE = "groundtruth_rect.txt"


def read_sequence(seq_dir: str, frames: bool = True) -> SequenceRecord:
  """Reads one TLP sequence; meta["lost"] is the int64 (N,) isLost column.

  `frames=False` (scoring) does not need `img/`: the paths follow the naming
  rule (`%05d.jpg`, one per row), unchecked (a complete `img/` of another
  length is still an error).

  Raises:
    DatasetLayoutError: missing ground truth or frames, a frame-number gap,
      an isLost value other than 0/1, rows != frames, bad rows.
  """
  name = os.path.basename(os.path.normpath(seq_dir))
  path = os.path.join(seq_dir, GT_FILE)
  table = read_table(path, 6, allow_nan=False)
  n = table.shape[0]
  for i in range(n):
    if table[i, 0] != i + 1:
      raise DatasetLayoutError(
          path, f"frame number {table[i, 0]:g}, expected {i + 1}", i + 1)
    if table[i, 5] not in (0, 1):
      raise DatasetLayoutError(path, f"isLost {table[i, 5]:g} not 0 or 1",
                               i + 1)
  img_dir = os.path.join(seq_dir, "img")
  if frames:
    paths = list_numbered_frames(img_dir, (".jpg",), 1)
    if len(paths) != n:
      raise DatasetLayoutError(path, f"{n} rows for {len(paths)} frames")
  else:
    check_rows(path, n, frames_on_disk(img_dir))
    paths = numbered_frame_paths(img_dir, "%05d.jpg", 1, n, check=False)
  boxes = table[:, 1:5]
  lost = table[:, 5].astype(np.int64)
  return SequenceRecord(name, paths, boxes, box_validity(boxes), lost == 0,
                        {"lost": lost})


def read_tlp(root: str, names: Sequence[str] | None = None,
             skip: Sequence[str] = (),
             frames: bool = True) -> list[SequenceRecord]:
  """Reads TLP sequences.

  Args:
    root: the folder holding one folder per sequence.
    names: sequences to read; None -> every sub-folder, sorted.
    skip: folders to leave out on purpose (e.g. a copy missing `CarChase4`'s
      ground truth); any other folder without `groundtruth_rect.txt` raises.
    frames: False: ground truth only (see `read_sequence`).

  Raises:
    DatasetLayoutError: a sequence folder or its files are missing/bad.
  """
  if names is None:
    try:
      names = sorted(d for d in os.listdir(root)
                     if os.path.isdir(os.path.join(root, d)))
    except FileNotFoundError:
      raise DatasetLayoutError(root, "TLP folder not found") from None
  records = []
  for n in names:
    if n in skip:
      continue
    seq_dir = os.path.join(root, n)
    if not os.path.isdir(seq_dir):
      raise DatasetLayoutError(seq_dir, f"sequence {n!r} is missing")
    records.append(read_sequence(seq_dir, frames))
  return records
