"""OxUvA reader (datasets.md §7).

`<root>/tasks/<split>.csv` rows `video,object,init_frame,last_frame,xmin,xmax,
ymin,ymax` (note the order: x range, then y range; normalised to [0, 1]),
`<root>/annotations/<split>.csv` (dev only) rows `video,object,class_id,
class_name,contains_cuts,always_visible,frame_num,present|absent,xmin,xmax,
ymin,ymax`, labelled at 1 Hz (every 30 frames), and frames
`<root>/images/<split>/<video>/%06d.jpeg` (all frames, from 0).

A track becomes one SequenceRecord named `<video>_<object>` over frames
init..last. Boxes are converted to pixel `x, y, w, h` with the init frame's
size (as GlobalTrack and pytracking do): row 0 is the task's init box, rows
of labelled frames hold the annotation, all other rows are NaN (invalid). The
file's normalised values are kept in meta["normalized_boxes"].
"""

from __future__ import annotations

import collections
import os
from typing import Sequence

import numpy as np

from gt_jax.data.errors import DatasetLayoutError
from gt_jax.data.records import SequenceRecord, box_validity
from gt_jax.data.sources.frames import image_size, numbered_frame_paths
from gt_jax.data.sources.textfile import parse_number, read_lines

FRAME_STRIDE = 30  # official: labels at 1 Hz of 30 fps video; neuron stride.
_PRESENCE = {"present": True, "absent": False}


def _csv_rows(path: str, num_fields: int) -> list[tuple[int, list[str]]]:
  rows = []
  for i, line in enumerate(read_lines(path), start=1):
    fields = [f.strip() for f in line.split(",")]
    if len(fields) != num_fields:
      raise DatasetLayoutError(
          path, f"expected {num_fields} fields, got {len(fields)}", i)
    rows.append((i, fields))
  return rows


def _int(token: str, path: str, line: int) -> int:
  if not token.isdigit():
    raise DatasetLayoutError(path, f"not a frame number: {token!r}", line)
  return int(token)


def _box(tokens: list[str], path: str, line: int) -> np.ndarray:
  """xmin, xmax, ymin, ymax as float64 (4,)."""
  return np.asarray([parse_number(t, path, line) for t in tokens])


def _to_xywh(norm: np.ndarray, width: int, height: int) -> np.ndarray:
  """(K, 4) normalised xmin,xmax,ymin,ymax -> pixel x,y,w,h."""
  x0, x1, y0, y1 = (norm[:, k] for k in range(4))
  return np.stack([x0 * width, y0 * height, (x1 - x0) * width,
                   (y1 - y0) * height], axis=1)


def read_oxuva(root: str, split: str = "dev",
               names: Sequence[str] | None = None,
               skip_missing_videos: bool = False,
               frames: bool = True) -> list[SequenceRecord]:
  """Reads the OxUvA tracks of `split` ("dev" or "test").

  Args:
    root: the folder holding `tasks/`, `annotations/`, `images/`.
    split: "dev" (annotations public) or "test" (init box only).
    names: keep only these `<video>_<object>` tracks (each must exist).
    skip_missing_videos: leave out tasks whose video folder is absent (a
      partial copy) instead of raising.
    frames: False reads the CSVs only (scoring needs no frames, as in the
      OxUvA toolkit): no frame is checked or opened, `image_size` is None
      and `boxes` are in normalised units (x / W, y / H). With
      `skip_missing_videos`, tasks are skipped only if `images/<split>/`
      exists (a partial copy); without any images every task is read.

  Returns:
    One record per task, in task-file order. meta: `video`, `object`,
    `init_frame`, `last_frame`, `image_size` (W, H), `frame_stride` (30), and
    for dev: `labelled`, `present` (bool (N,)), `normalized_boxes` (N, 4),
    `class_name`. Test records have boxes (1, 4) (`first_frame_only`).

  Raises:
    DatasetLayoutError: a bad task/annotation row (field count, number,
      presence word), a video folder or frame that is missing, or an
      annotation outside its task's frame range.
  """
  tasks_path = os.path.join(root, "tasks", f"{split}.csv")
  anno_path = os.path.join(root, "annotations", f"{split}.csv")
  labels = collections.defaultdict(list)
  has_labels = os.path.exists(anno_path)
  if has_labels:
    for i, f in _csv_rows(anno_path, 12):
      present = _PRESENCE.get(f[7])
      if present is None:
        raise DatasetLayoutError(
            anno_path, f"object_presence must be 'present' or 'absent', got "
            f"{f[7]!r}", i)
      labels[(f[0], f[1])].append(
          (i, _int(f[6], anno_path, i), present, _box(f[8:12], anno_path, i),
           f[3]))
  wanted = None if names is None else set(names)
  records = []
  for i, f in _csv_rows(tasks_path, 8):
    video, obj = f[0], f[1]
    name = f"{video}_{obj}"
    if wanted is not None and name not in wanted:
      continue
    init, last = _int(f[2], tasks_path, i), _int(f[3], tasks_path, i)
    if last < init:
      raise DatasetLayoutError(tasks_path, f"last_frame {last} < init_frame"
                               f" {init}", i)
    init_box = _box(f[4:8], tasks_path, i)
    img_dir = os.path.join(root, "images", split, video)
    if not os.path.isdir(img_dir):
      if skip_missing_videos and (frames or os.path.isdir(
          os.path.dirname(img_dir))):
        continue
      if frames:
        raise DatasetLayoutError(img_dir, f"video of task {name} (line {i} "
                                 f"of {tasks_path}) is missing")
    if frames:
      paths = numbered_frame_paths(img_dir, "%06d.jpeg", init, last)
      width, height = image_size(paths[0])
      size = (width, height)
    else:  # annotations only: normalised units, nothing read from images/.
      paths = numbered_frame_paths(img_dir, "%06d.jpeg", init, last,
                                   check=False)
      width, height, size = 1, 1, None
    meta = {"video": video, "object": obj, "init_frame": init,
            "last_frame": last, "image_size": size,
            "frame_stride": FRAME_STRIDE}
    if not has_labels:
      boxes = _to_xywh(init_box[None], width, height)
      valid = box_validity(boxes)
      meta["first_frame_only"] = True
      records.append(SequenceRecord(name, paths, boxes, valid, valid.copy(),
                                    meta))
      continue
    n = last - init + 1
    norm = np.full((n, 4), np.nan)
    labelled = np.zeros(n, bool)
    present = np.zeros(n, bool)
    class_name = ""
    for line, frame, is_present, box, cls in labels.get((video, obj), []):
      if not init <= frame <= last:
        raise DatasetLayoutError(
            anno_path, f"frame {frame} is outside task {name}'s frames "
            f"{init}..{last}", line)
      labelled[frame - init] = True
      present[frame - init] = is_present
      if is_present:
        norm[frame - init] = box
      class_name = cls
    # Row 0 is what the tracker is initialised with: the task's box.
    norm[0], labelled[0], present[0] = init_box, True, True
    boxes = _to_xywh(norm, width, height)
    valid = box_validity(boxes)
    meta.update(labelled=labelled, present=present, normalized_boxes=norm,
                class_name=class_name)
    records.append(SequenceRecord(name, paths, boxes, valid, present & valid,
                                  meta))
  if wanted is not None:
    missing = wanted - {r.name for r in records}
    if missing:
      raise DatasetLayoutError(tasks_path,
                               f"tracks not found: {sorted(missing)}")
  return records
