"""UAV123 / UAV20L reader (datasets.md §5).

`<root>/anno/<UAV123|UAV20L>/<name>.txt` (x,y,w,h, NaN rows when the target
is out of view) and frames `<root>/data_seq/UAV123/<folder>/%06d.jpg` for the
inclusive range of the sequence table (`uav_tables`), which tests can
replace.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

from gt_jax.data.errors import DatasetLayoutError
from gt_jax.data.records import SequenceRecord, box_validity
from gt_jax.data.sources.frames import numbered_frame_paths
from gt_jax.data.sources.textfile import read_boxes

Table = Mapping[str, tuple[str, int, int]]


def anno_dir(root: str, anno_set: str) -> str:
  return os.path.join(root, "anno", anno_set)


def annotated_names(root: str, table: Table, anno_set: str) -> list[str]:
  """Names with an annotation file, in table order.

  Raises:
    DatasetLayoutError: the anno folder is missing, or it holds a file whose
      name is not in the table (its frame range would be unknown).
  """
  d = anno_dir(root, anno_set)
  try:
    files = sorted(f for f in os.listdir(d) if f.endswith(".txt"))
  except (FileNotFoundError, NotADirectoryError):
    raise DatasetLayoutError(d, "annotation folder not found") from None
  stems = {f[:-4] for f in files}
  for f in files:
    if f[:-4] not in table:
      raise DatasetLayoutError(os.path.join(d, f),
                               f"{f[:-4]!r} is not in the {anno_set} table")
  return [n for n in table if n in stems]


def read_sequence(root: str, name: str, folder: str, first: int, last: int,
                  anno_set: str = "UAV123",
                  frames: bool = True) -> SequenceRecord:
  """Reads one UAV sequence: rows = frames first..last of `folder`.

  `frames=False` (scoring) does not check that the frames exist.

  Raises:
    DatasetLayoutError: missing annotation or frame, row count != range
      length, bad rows.
  """
  path = os.path.join(anno_dir(root, anno_set), f"{name}.txt")
  boxes = read_boxes(path)
  if boxes.shape[0] != last - first + 1:
    raise DatasetLayoutError(
        path, f"{boxes.shape[0]} rows, but frames {first}..{last} of "
        f"{folder!r} need {last - first + 1}")
  frames = numbered_frame_paths(
      os.path.join(root, "data_seq", "UAV123", folder), "%06d.jpg", first,
      last, check=frames)
  valid = box_validity(boxes)  # NaN rows (out of view) are invalid.
  meta = {"folder": folder, "first_frame": first, "anno_set": anno_set}
  return SequenceRecord(name, frames, boxes, valid, valid.copy(), meta)


def read_uav(root: str, table: Table, anno_set: str = "UAV123",
             names: Sequence[str] | None = None,
             frames: bool = True) -> list[SequenceRecord]:
  """Reads UAV sequences.

  Args:
    root: the UAV123 folder (holding `anno/` and `data_seq/`).
    table: name -> (folder, first, last), e.g. `uav_tables.UAV123`.
    anno_set: "UAV123" or "UAV20L".
    names: sequences to read; None -> every table entry (all must exist).
    frames: False: annotations only, frames not checked (scoring).

  Raises:
    DatasetLayoutError: a name is not in the table or has no annotation
      file, or any sequence is malformed.
  """
  annotated = set(annotated_names(root, table, anno_set))
  names = list(table) if names is None else list(names)
  records = []
  for n in names:
    if n not in table:
      raise DatasetLayoutError(anno_dir(root, anno_set),
                               f"{n!r} is not in the {anno_set} table")
    if n not in annotated:
      raise DatasetLayoutError(
          os.path.join(anno_dir(root, anno_set), f"{n}.txt"),
          f"annotation of sequence {n!r} is missing")
    folder, first, last = table[n]
    records.append(read_sequence(root, n, folder, first, last, anno_set,
                                 frames))
  return records
