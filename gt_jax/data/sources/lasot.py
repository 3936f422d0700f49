"""LaSOT reader (datasets.md §3): Protocol II train (1,120) / test (280).

Layout: `<root>/<category>/<category>-<k>/` with `img/00000001.jpg...`,
`groundtruth.txt` (x,y,w,h), `full_occlusion.txt` and `out_of_view.txt` (one
comma-separated line of 0/1 per frame) and `nlp.txt`.
"""

from __future__ import annotations

import os
from typing import Sequence

from gt_jax.data.errors import DatasetLayoutError
from gt_jax.data.records import SequenceRecord, box_validity
from gt_jax.data.sources import manifest
from gt_jax.data.sources.frames import (check_rows, frames_on_disk,
                                        list_numbered_frames,
                                        numbered_frame_paths)
from gt_jax.data.sources.lasot_split import (TEST_NAMES, TRAIN_NAMES,
                                             category_of)
from gt_jax.data.sources.textfile import read_boxes, read_flags, read_lines

SPLITS = ("train", "test", "all")
_FLAG_FILES = ("full_occlusion", "out_of_view")


def split_names(split: str) -> list[str]:
  """The official Protocol II names of `split` ("train", "test" or "all")."""
  if split == "train":
    return list(TRAIN_NAMES)
  if split == "test":
    return list(TEST_NAMES)
  if split == "all":
    return sorted(TRAIN_NAMES + TEST_NAMES,
                  key=lambda n: (category_of(n).lower(), int(n.rpartition(
                      "-")[2])))
  raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def sequence_dir(root: str, name: str) -> str:
  """`<root>/<category>/<name>`; the category is the text before the last -."""
  return os.path.join(root, category_of(name), name)


def read_sequence(seq_dir: str, frames: bool = True) -> SequenceRecord:
  """Reads one LaSOT sequence folder.

  Args:
    seq_dir: `<root>/<category>/<name>`.
    frames: False (scoring) does not need `img/`: one frame per ground-truth
      row, paths `img/%08d.jpg` unchecked (a complete `img/` of another
      length is still an error).

  Returns:
    A SequenceRecord; `visible = valid & no full occlusion & not out of view`
    (pytracking's rule, §3.3). meta: `category`, `full_occlusion`,
    `out_of_view` (int64 (N,)), `nlp` (str, "" if absent).

  Raises:
    DatasetLayoutError: missing files or frames, row/frame/flag count
      mismatch, unparsable rows.
  """
  name = os.path.basename(os.path.normpath(seq_dir))
  if not os.path.isdir(seq_dir):
    raise DatasetLayoutError(seq_dir, "sequence folder not found")
  gt_path = os.path.join(seq_dir, "groundtruth.txt")
  boxes = read_boxes(gt_path)
  img_dir = os.path.join(seq_dir, "img")
  if frames:
    paths = list_numbered_frames(img_dir, (".jpg",), 1)
  else:
    check_rows(gt_path, boxes.shape[0], frames_on_disk(img_dir))
    paths = numbered_frame_paths(img_dir, "%08d.jpg", 1, boxes.shape[0],
                                 check=False)
  n = len(paths)
  if boxes.shape[0] != n:
    # A mismatch means a damaged copy (maintainer, datasets.md §3.4).
    raise DatasetLayoutError(gt_path,
                             f"{boxes.shape[0]} rows for {n} frames")
  valid = box_validity(boxes)
  meta = {"category": category_of(name)}
  visible = valid.copy()
  for flag in _FLAG_FILES:
    path = os.path.join(seq_dir, f"{flag}.txt")
    values = read_flags(path, (0, 1), single_line=True)
    if values.shape[0] != n:
      raise DatasetLayoutError(path, f"{values.shape[0]} values for {n} "
                               "frames", 1)
    meta[flag] = values
    visible &= values == 0
  nlp_path = os.path.join(seq_dir, "nlp.txt")
  meta["nlp"] = (" ".join(read_lines(nlp_path)).strip()
                 if os.path.exists(nlp_path) else "")
  return SequenceRecord(name, paths, boxes, valid, visible, meta)


def _index_files(root: str, names: Sequence[str]) -> list[str]:
  files = []
  for n in names:
    d = sequence_dir(root, n)
    files += [d, os.path.join(d, "img"), os.path.join(d, "groundtruth.txt"),
              os.path.join(d, "nlp.txt")]
    files += [os.path.join(d, f"{f}.txt") for f in _FLAG_FILES]
  return files


def read_lasot(root: str, split: str = "train",
               names: Sequence[str] | None = None,
               cache_dir: str | None = None,
               frames: bool = True) -> list[SequenceRecord]:
  """Reads LaSOT sequences.

  Args:
    root: the folder holding the 70 category folders.
    split: "train", "test" or "all" (ignored when `names` is given).
    names: explicit sequence names, e.g. `["airplane-1", "bear-2"]`.
    cache_dir: manifest cache (see `manifest.resolve_cache_dir`).
    frames: False: annotations only, frames never listed (scoring).

  Raises:
    DatasetLayoutError: a requested sequence has no folder, or any sequence
      is malformed.
  """
  names = split_names(split) if names is None else list(names)

  def build() -> list[SequenceRecord]:
    for n in names:
      d = sequence_dir(root, n)
      if not os.path.isdir(d):
        raise DatasetLayoutError(d, f"sequence {n!r} is missing")
    return [read_sequence(sequence_dir(root, n), frames) for n in names]

  kind = "lasot" if frames else "lasot-annotations"
  return manifest.load_or_build(kind, root, _index_files(root, names),
                                build, cache_dir, options="\n".join(names))
