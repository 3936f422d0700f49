"""TrackingNet reader (datasets.md §6).

`<root>/TEST/` and `<root>/TRAIN_<k>/`, each with `anno/<video>.txt` (x,y,w,h,
CRLF in the official files) and `frames/<video>/0.jpg 1.jpg ...` without zero
padding, so frames are sorted by numeric value. TEST annotations hold the
first frame only. Video names may start with '-' or '_'; the object index is
the text after the last '_'.
"""

from __future__ import annotations

import os
import re
from typing import Sequence

from gt_jax.data.errors import DatasetLayoutError
from gt_jax.data.records import SequenceRecord, box_validity
from gt_jax.data.sources.frames import (check_rows, frames_on_disk,
                                        list_numbered_frames,
                                        numbered_frame_paths)
from gt_jax.data.sources.textfile import read_boxes

_CHUNK = re.compile(r"TEST|TRAIN_(\d+)")


def chunk_names(root: str) -> list[str]:
  """The chunk folders present under `root`: TEST first, then TRAIN_k by k."""
  try:
    found = [d for d in os.listdir(root) if _CHUNK.fullmatch(d)
             and os.path.isdir(os.path.join(root, d))]
  except FileNotFoundError:
    raise DatasetLayoutError(root, "TrackingNet folder not found") from None
  if not found:
    raise DatasetLayoutError(root, "no TEST or TRAIN_<k> chunk folders")
  return sorted(found, key=lambda d: -1 if d == "TEST" else int(d[6:]))


def read_sequence(chunk_dir: str, video: str,
                  frames: bool = True) -> SequenceRecord:
  """Reads `<chunk_dir>/anno/<video>.txt` and `<chunk_dir>/frames/<video>/`.

  `frames=False` (scoring) does not need the frames: a train sequence has
  one frame per row, TEST one known frame; paths `%d.jpg`, unchecked (a
  complete frames folder of another length is still an error).

  Raises:
    DatasetLayoutError: missing frames folder or a frame gap, TEST anno with
      other than one row, train rows != frames, bad rows.
  """
  chunk = os.path.basename(os.path.normpath(chunk_dir))
  path = os.path.join(chunk_dir, "anno", f"{video}.txt")
  boxes = read_boxes(path)
  frame_dir = os.path.join(chunk_dir, "frames", video)
  first_only = chunk == "TEST"
  if frames:
    paths = list_numbered_frames(frame_dir, (".jpg",), first=0)
  else:
    check_rows(path, boxes.shape[0], frames_on_disk(frame_dir, first=0),
               first_only)
    paths = numbered_frame_paths(frame_dir, "%d.jpg", 0,
                                 max(boxes.shape[0], 1) - 1, check=False)
  want = 1 if first_only else len(paths)
  if boxes.shape[0] != want:
    raise DatasetLayoutError(
        path, f"{boxes.shape[0]} rows, expected {want} "
        f"({'first frame only' if first_only else 'one per frame'}; "
        f"{len(paths)} frames)")
  video_id, _, obj = video.rpartition("_")
  valid = box_validity(boxes)  # No absence flags: visible = valid [P].
  meta = {"chunk": chunk, "video_id": video_id,
          "object_index": int(obj) if obj.isdigit() else -1,
          "first_frame_only": first_only}
  return SequenceRecord(video, paths, boxes, valid, valid.copy(), meta)


def read_chunk(chunk_dir: str, names: Sequence[str] | None = None,
               frames: bool = True) -> list[SequenceRecord]:
  """Reads the sequences of one chunk (every `anno/*.txt`, sorted by name)."""
  anno = os.path.join(chunk_dir, "anno")
  if names is None:
    try:
      names = sorted(f[:-4] for f in os.listdir(anno) if f.endswith(".txt"))
    except FileNotFoundError:
      raise DatasetLayoutError(anno, "annotation folder not found") from None
  return [read_sequence(chunk_dir, v, frames) for v in names]


def read_trackingnet(root: str, chunks: Sequence[str] | None = None,
                     names: Sequence[str] | None = None,
                     frames: bool = True) -> list[SequenceRecord]:
  """Reads TrackingNet chunks.

  Args:
    root: the folder holding `TEST/`, `TRAIN_0/`, ...
    chunks: chunk folder names; None -> every chunk present.
    names: keep only these videos (each must be found).
    frames: False: annotations only (see `read_sequence`).

  Raises:
    DatasetLayoutError: a chunk or requested video is missing, or any
      sequence is malformed.
  """
  chunks = chunk_names(root) if chunks is None else list(chunks)
  records = []
  for c in chunks:
    d = os.path.join(root, c)
    if not os.path.isdir(d):
      raise DatasetLayoutError(d, f"chunk {c!r} is missing")
    if names is None:
      records += read_chunk(d, frames=frames)
    else:
      present = [n for n in names
                 if os.path.exists(os.path.join(d, "anno", f"{n}.txt"))]
      records += read_chunk(d, present, frames)
  if names is not None:
    missing = set(names) - {r.name for r in records}
    if missing:
      raise DatasetLayoutError(root, f"videos not found: {sorted(missing)}")
  return records
