"""GOT-10k reader (datasets.md §2): `train`, `val` and `test` splits.

Layout: `<root>/<split>/list.txt` and one folder per sequence with frames
`00000001.jpg...`, `groundtruth.txt` (x,y,w,h) and, in train/val,
`absence.label`, `cover.label` (0..8), `cut_by_image.label`,
`meta_info.ini`. The test split's ground truth holds the first frame only.
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
from gt_jax.data.sources.textfile import read_boxes, read_flags, read_lines

SPLITS = ("train", "val", "test")
_FLAG_FILES = {"absence": (0, 1), "cover": tuple(range(9)),
               "cut_by_image": (0, 1)}


def read_list(split_dir: str) -> list[str]:
  """Returns the sequence names of `<split_dir>/list.txt`, in file order."""
  path = os.path.join(split_dir, "list.txt")
  names = []
  for i, line in enumerate(read_lines(path), start=1):
    name = line.strip()
    if not name or os.sep in name or name in (".", ".."):
      raise DatasetLayoutError(path, f"bad sequence name {line!r}", i)
    names.append(name)
  return names


def parse_meta_info(path: str) -> dict[str, str]:
  """Parses `meta_info.ini` by key (`key: value` lines after `[METAINFO]`)."""
  info = {}
  for i, line in enumerate(read_lines(path), start=1):
    line = line.strip()
    if not line or (i == 1 and line.startswith("[")):
      continue
    key, sep, value = line.partition(":")
    if not sep:
      raise DatasetLayoutError(path, f"expected 'key: value', got {line!r}",
                               i)
    info[key.strip()] = value.strip()
  return info


def _resolution(info: dict[str, str], path: str) -> tuple[int, int] | None:
  text = info.get("resolution")
  if text is None:
    return None
  try:
    w, h = (int(v) for v in text.strip("() ").split(","))
  except ValueError:
    raise DatasetLayoutError(path, f"bad resolution {text!r}") from None
  return w, h


def read_sequence(seq_dir: str, split: str,
                  frames: bool = True) -> SequenceRecord:
  """Reads one GOT-10k sequence folder.

  Args:
    seq_dir: e.g. `<root>/train/GOT-10k_Train_000001`.
    split: "train", "val" or "test"; test keeps its single first-frame row.
    frames: False (scoring) does not need the frames: one frame per
      ground-truth row (test: the first frame), paths `%08d.jpg` unchecked
      (a complete run of frames of another length is still an error).

  Returns:
    A SequenceRecord with boxes (N, 4) ((1, 4) for test). meta holds
    `split`, `first_frame_only`, and where the files exist `absence`, `cover`,
    `cut_by_image` (int64 (N,)), `visible_ratio` (cover / 8), `meta_info`
    (dict) and `resolution` (W, H).

  Raises:
    DatasetLayoutError: missing ground truth or frames, row/frame count
      mismatch, bad rows or flag files.
  """
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  name = os.path.basename(os.path.normpath(seq_dir))
  if not os.path.isdir(seq_dir):
    raise DatasetLayoutError(seq_dir, "sequence folder not found")
  gt_path = os.path.join(seq_dir, "groundtruth.txt")
  boxes = read_boxes(gt_path)
  first_only = split == "test"
  if frames:
    paths = list_numbered_frames(seq_dir, (".jpg",), first=1)
  else:
    check_rows(gt_path, boxes.shape[0], frames_on_disk(seq_dir), first_only)
    paths = numbered_frame_paths(seq_dir, "%08d.jpg", 1,
                                 max(boxes.shape[0], 1), check=False)
  want = 1 if first_only else len(paths)
  if boxes.shape[0] != want:
    raise DatasetLayoutError(
        gt_path, f"{boxes.shape[0]} rows, expected {want} "
        f"({'first frame only' if first_only else 'one per frame'}; "
        f"{len(paths)} frames)")
  valid = box_validity(boxes)
  meta = {"split": split, "first_frame_only": first_only}
  visible = valid.copy()
  if not first_only:
    flags = {}
    for flag, allowed in _FLAG_FILES.items():
      path = os.path.join(seq_dir, f"{flag}.label")
      if not os.path.exists(path):
        continue
      flags[flag] = read_flags(path, allowed)
      if flags[flag].shape[0] != len(paths):
        raise DatasetLayoutError(
            path, f"{flags[flag].shape[0]} values for {len(paths)} frames")
    meta.update(flags)
    if "cover" in flags:
      meta["visible_ratio"] = flags["cover"] / 8.0
    # pytracking's rule (datasets.md §2.2): present and not fully covered.
    if "absence" in flags and "cover" in flags:
      visible = (flags["absence"] == 0) & (flags["cover"] > 0)
    elif "absence" in flags:
      visible = flags["absence"] == 0
  info_path = os.path.join(seq_dir, "meta_info.ini")
  if os.path.exists(info_path):
    info = parse_meta_info(info_path)
    meta["meta_info"] = info
    res = _resolution(info, info_path)
    if res is not None:
      meta["resolution"] = res
  return SequenceRecord(name, paths, boxes, valid, visible, meta)


def _index_files(split_dir: str, names: Sequence[str]) -> list[str]:
  files = [os.path.join(split_dir, "list.txt")]
  for n in names:
    d = os.path.join(split_dir, n)
    files += [d, os.path.join(d, "groundtruth.txt"),
              os.path.join(d, "meta_info.ini")]
    files += [os.path.join(d, f"{f}.label") for f in _FLAG_FILES]
  return files


def read_split_dir(split_dir: str, split: str,
                   names: Sequence[str] | None = None,
                   cache_dir: str | None = None,
                   frames: bool = True) -> list[SequenceRecord]:
  """Reads the sequences of one split folder (the one holding `list.txt`).

  Args:
    split_dir: e.g. `<root>/val`.
    split: "train", "val" or "test".
    names: explicit sequence names; None -> `list.txt`.
    cache_dir: manifest cache (see `manifest.resolve_cache_dir`).
    frames: False: annotations only, frames never listed (scoring).

  Raises:
    DatasetLayoutError: a listed sequence is missing, or any sequence is bad.
  """
  if names is None:
    names = read_list(split_dir)
  names = list(names)

  def build() -> list[SequenceRecord]:
    for n in names:
      if not os.path.isdir(os.path.join(split_dir, n)):
        listing = os.path.join(split_dir, "list.txt")
        raise DatasetLayoutError(
            os.path.join(split_dir, n),
            f"sequence listed in {listing} (or requested) is missing")
    return [read_sequence(os.path.join(split_dir, n), split, frames)
            for n in names]

  kind = f"got10k-{split}" + ("" if frames else "-annotations")
  return manifest.load_or_build(kind, split_dir,
                                _index_files(split_dir, names), build,
                                cache_dir, options="\n".join(names))


def read_got10k(root: str, split: str = "train",
                names: Sequence[str] | None = None,
                cache_dir: str | None = None) -> list[SequenceRecord]:
  """Reads split `split` of the GOT-10k folder `root` (train/ val/ test/).

  See `read_split_dir` for the arguments and errors.
  """
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  return read_split_dir(os.path.join(root, split), split, names, cache_dir)
