"""OTB-2015 / OTB-2013 reader (datasets.md §4).

`<root>/<Dir>/img/0001.jpg...` (Board: 5 digits) with one non-empty
`groundtruth_rect.txt` or, for two targets sharing `img/`,
`groundtruth_rect.1.txt` and `groundtruth_rect.2.txt`. Frame k pairs with row
k - first + 1; the few sequences whose frames do not run 1..N come from a
range table that tests can replace.
"""

from __future__ import annotations

import os
import re
from typing import Mapping, Sequence

from gt_jax.data.errors import DatasetLayoutError
from gt_jax.data.records import SequenceRecord, box_validity
from gt_jax.data.sources.frames import (check_rows, frames_on_disk,
                                        list_numbered_frames,
                                        numbered_frame_paths)
from gt_jax.data.sources.textfile import read_boxes
from gt_jax.evaluation.datasets import otb_tables

_GT_FILE = re.compile(r"groundtruth_rect(?:\.(\d+))?\.txt")


def targets(seq_dir: str) -> list[tuple[str, str]]:
  """Returns [(sequence name, ground-truth path)] of one OTB directory.

  Empty ground-truth files (Human4's `.1`) are dropped; with one target left
  the name is the directory name, with several it is `<Dir>.<k>`.

  Raises:
    DatasetLayoutError: the directory has no non-empty `groundtruth_rect*.txt`.
  """
  dirname = os.path.basename(os.path.normpath(seq_dir))
  try:
    entries = os.listdir(seq_dir)
  except (FileNotFoundError, NotADirectoryError):
    raise DatasetLayoutError(seq_dir, "sequence folder not found") from None
  found = []
  for f in entries:
    m = _GT_FILE.fullmatch(f)
    if m:
      path = os.path.join(seq_dir, f)
      with open(path, "rb") as fh:
        empty = not fh.read().strip()
      if not empty:
        found.append((int(m.group(1) or 0), path))
  if not found:
    raise DatasetLayoutError(seq_dir,
                             "no non-empty groundtruth_rect*.txt file")
  found.sort()
  if len(found) == 1:
    return [(dirname, found[0][1])]
  return [(f"{dirname}.{k}", p) for k, p in found]


def read_target(seq_dir: str, name: str, gt_path: str,
                frame_range: tuple[int, int] | None = None,
                digits: int = 4, frames: bool = True) -> SequenceRecord:
  """Reads one OTB target.

  Args:
    seq_dir: the OTB directory (holding `img/`).
    name: the sequence name.
    gt_path: its ground-truth file.
    frame_range: (first, last) inclusive frame window, or None for frames
      1..N where `img/` must hold exactly N frames.
    digits: frame-name zero padding (used with `frame_range`, and for the
      frame paths when `frames` is False).
    frames: False (scoring) does not need `img/`: one frame per row is
      assumed and the paths are built from the naming rule, unchecked (a
      complete `img/` of another length is still an error).

  Raises:
    DatasetLayoutError: row/frame mismatch, missing frames, bad rows.
  """
  boxes = read_boxes(gt_path)
  img_dir = os.path.join(seq_dir, "img")
  n = boxes.shape[0]
  if frame_range is None and frames:
    paths = list_numbered_frames(img_dir, (".jpg", ".png"), first=1)
    if len(paths) != n:
      raise DatasetLayoutError(gt_path, f"{n} rows for {len(paths)} frames"
                               f" in {img_dir}")
    first = 1
  else:
    if frame_range is None:
      check_rows(gt_path, n, frames_on_disk(img_dir, (".jpg", ".png")))
    first, last = frame_range or (1, n)
    if last - first + 1 != n:
      raise DatasetLayoutError(
          gt_path, f"{n} rows, but frames {first}..{last} need "
          f"{last - first + 1}")
    paths = numbered_frame_paths(img_dir, f"%0{digits}d.jpg", first, last,
                                 check=frames)
  valid = box_validity(boxes)
  meta = {"directory": os.path.basename(os.path.normpath(seq_dir)),
          "first_frame": first, "groundtruth_file": os.path.basename(gt_path)}
  return SequenceRecord(name, paths, boxes, valid, valid.copy(), meta)


def read_otb(root: str, dirs: Sequence[str],
             names: Sequence[str] | None = None,
             frame_ranges: Mapping[str, tuple[int, int]] | None = None,
             name_digits: Mapping[str, int] | None = None,
             frames: bool = True) -> list[SequenceRecord]:
  """Reads the targets of the OTB directories `dirs` under `root`.

  Args:
    root: the folder holding the OTB directories.
    dirs: directory names to read (all must exist).
    names: keep only these sequence names (e.g. `Jogging.1`); each must be
      found.
    frame_ranges: dir -> (first, last); default `otb_tables.FRAME_RANGES`.
    name_digits: dir -> frame-name digits; default `otb_tables.NAME_DIGITS`.
    frames: False reads the ground truth only (see `read_target`).

  Raises:
    DatasetLayoutError: a directory or requested name is missing, or any
      target is malformed.
  """
  ranges = otb_tables.FRAME_RANGES if frame_ranges is None else frame_ranges
  digits = otb_tables.NAME_DIGITS if name_digits is None else name_digits
  wanted = None if names is None else set(names)
  records = []
  for d in dirs:
    seq_dir = os.path.join(root, d)
    if not os.path.isdir(seq_dir):
      raise DatasetLayoutError(seq_dir, f"OTB directory {d!r} is missing")
    for name, gt_path in targets(seq_dir):
      if wanted is None or name in wanted:
        records.append(read_target(seq_dir, name, gt_path, ranges.get(d),
                                   digits.get(d, 4), frames))
  if wanted is not None:
    missing = wanted - {r.name for r in records}
    if missing:
      raise DatasetLayoutError(root, f"sequences not found: "
                               f"{sorted(missing)}")
  return records


def directory_of(name: str) -> str:
  """`Jogging.1` -> `Jogging`; `Human4` -> `Human4`."""
  head, dot, tail = name.rpartition(".")
  return head if dot and tail.isdigit() else name
