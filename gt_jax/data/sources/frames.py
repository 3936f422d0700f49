"""Frame folders: listing, contiguity checks and image decoding (§0.4)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from gt_jax.data.errors import DatasetLayoutError


def list_numbered_frames(directory: str | os.PathLike[str],
                         exts: tuple[str, ...] = (".jpg",),
                         first: int | None = 1) -> list[str]:
  """Lists `directory`'s frames, sorted by the numeric value of their stems.

  The numbers must form one contiguous range starting at `first` (None: at
  the smallest number found), so a
  missing frame is caught here and not as a silent shift of every later box.
  Numeric sorting also handles unpadded names (TrackingNet `10.jpg` after
  `2.jpg`). Files with other extensions are ignored.

  Returns:
    The N frame paths, ordered.

  Raises:
    DatasetLayoutError: the directory is missing or empty, a stem is not an
      integer, or a frame number is missing or duplicated.
  """
  directory = os.fspath(directory)
  try:
    names = os.listdir(directory)
  except (FileNotFoundError, NotADirectoryError):
    raise DatasetLayoutError(directory, "frame folder not found") from None
  numbered = []
  for name in names:
    stem, ext = os.path.splitext(name)
    if ext.lower() not in exts:
      continue
    if not stem.isdigit():
      raise DatasetLayoutError(os.path.join(directory, name),
                               "frame name is not a number")
    numbered.append((int(stem), name))
  if not numbered:
    raise DatasetLayoutError(directory, f"no {'/'.join(exts)} frames")
  numbered.sort()
  if first is None:
    first = numbered[0][0]
  for k, (number, name) in enumerate(numbered):
    if number != first + k:
      expected = first + k
      what = "duplicated" if number < expected else "missing"
      raise DatasetLayoutError(
          directory, f"frame {expected} is {what} (found {name!r}); frames "
          f"must run {first}..{first + len(numbered) - 1} without gaps")
  return [os.path.join(directory, name) for _, name in numbered]


def frames_on_disk(directory: str | os.PathLike[str],
                   exts: tuple[str, ...] = (".jpg",),
                   first: int | None = 1) -> int | None:
  """How many frames `directory` holds, for scoring without frames.

  Returns:
    The frame count when the folder holds one complete numbered run (see
    `list_numbered_frames`), so a ground truth of another length can still
    be caught; None when the frames are missing, or partly deleted (scoring
    does not need them).
  """
  try:
    return len(list_numbered_frames(directory, exts, first))
  except DatasetLayoutError:
    return None


def check_rows(gt_path: str, rows: int, frames: int | None,
               first_frame_only: bool = False) -> None:
  """Raises DatasetLayoutError when `frames` (a count, or None: unknown)
  contradicts the ground truth's `rows` (1 for a first-frame-only file)."""
  want = 1 if first_frame_only else frames
  if frames is not None and rows != want:
    raise DatasetLayoutError(gt_path, f"{rows} rows for {frames} frames")


def numbered_frame_paths(directory: str | os.PathLike[str], template: str,
                         start: int, end: int,
                         check: bool = True) -> list[str]:
  """Returns `directory/template % f` for f in start..end (inclusive).

  Args:
    directory: the frame folder.
    template: e.g. `"%04d.jpg"`.
    start: first frame number.
    end: last frame number (inclusive).
    check: verify that every file exists (one `listdir`, not N `stat`s).

  Raises:
    DatasetLayoutError: naming the first missing frame file.
  """
  directory = os.fspath(directory)
  names = [template % f for f in range(start, end + 1)]
  if check:
    try:
      present = set(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
      raise DatasetLayoutError(directory, "frame folder not found") from None
    for name in names:
      if name not in present:
        raise DatasetLayoutError(
            os.path.join(directory, name),
            f"frame missing (needed for frames {start}..{end})")
  return [os.path.join(directory, name) for name in names]


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
  """Decodes an image file as uint8 (H, W, 3) RGB (grayscale is expanded)."""
  try:
    with Image.open(path) as img:
      return np.asarray(img.convert("RGB"))
  except FileNotFoundError:
    raise DatasetLayoutError(path, "image file not found") from None
  except OSError as e:
    raise DatasetLayoutError(path, f"cannot decode image ({e})") from None


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
  """Returns (width, height) from the image header, without decoding."""
  try:
    with Image.open(path) as img:
      return img.size
  except FileNotFoundError:
    raise DatasetLayoutError(path, "image file not found") from None
  except OSError as e:
    raise DatasetLayoutError(path, f"cannot read image ({e})") from None
