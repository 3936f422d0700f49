"""Parsing of tracking datasets' text annotation files (datasets.md §0.3).

Rules shared by every reader:
* fields are separated by a comma (optionally padded with spaces), a tab or a
  run of spaces; a mix within one file is fine (OTB uses all three);
* `\\r\\n` line endings, a missing final newline and blank trailing lines are
  accepted; a blank line *inside* the data is an error (it would shift every
  later row against its frame);
* `NaN`/`nan` is a number (UAV123's "target out of view" rows); any other
  non-numeric token, a row with the wrong number of fields, or an empty field
  raises `DatasetLayoutError` with the file path and 1-based line number;
* a one-row file gives a (1, C) array, never a 1-D one.
"""

from __future__ import annotations

import os
import re

import numpy as np

from gt_jax.data.errors import DatasetLayoutError

# A comma with optional spaces around it, or a run of tabs/spaces.
_SPLIT = re.compile(r"\s*,\s*|[ \t]+")
# Plain decimal numbers (sign, fraction, exponent) and NaN; no inf, no "1_0".
_NUMBER = re.compile(
    r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?nan", re.IGNORECASE)


def read_lines(path: str | os.PathLike[str]) -> list[str]:
  """Returns the file's lines without line endings and blank trailing lines.

  Raises:
    DatasetLayoutError: the file is missing or is not UTF-8 text.
  """
  path = os.fspath(path)
  try:
    with open(path, "rb") as f:
      data = f.read()
  except FileNotFoundError:
    raise DatasetLayoutError(path, "file not found") from None
  except IsADirectoryError:
    raise DatasetLayoutError(path, "expected a file, found a directory"
                            ) from None
  try:
    text = data.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    raise DatasetLayoutError(path, f"not UTF-8 text ({e.reason})") from None
  lines = [line.rstrip("\r") for line in text.split("\n")]
  while lines and not lines[-1].strip():
    lines.pop()
  return lines


def split_fields(line: str) -> list[str]:
  """Splits one row on commas, tabs or spaces (`"1, 2\\t3  4"` -> 4 fields)."""
  return _SPLIT.split(line.strip())


def parse_number(token: str, path: str, line: int) -> float:
  """Parses one numeric token (NaN allowed) or raises naming path and line."""
  if not _NUMBER.fullmatch(token):
    raise DatasetLayoutError(path, f"not a number: {token!r}", line)
  return float(token)


def read_table(path: str | os.PathLike[str], num_cols: int | tuple[int, ...],
               allow_nan: bool = True) -> np.ndarray:
  """Reads a numeric text table.

  Args:
    path: the text file.
    num_cols: the required number of fields per row, or a tuple of accepted
      counts (then every row must have the same count).
    allow_nan: whether `NaN` tokens are accepted.

  Returns:
    float64 (R, C); (0, C) for an empty file, (1, C) for a one-row file.

  Raises:
    DatasetLayoutError: unparsable token, wrong field count or a blank line
      inside the data, naming the file and 1-based line.
  """
  path = os.fspath(path)
  accepted = (num_cols,) if isinstance(num_cols, int) else tuple(num_cols)
  rows: list[list[float]] = []
  width = None
  for i, line in enumerate(read_lines(path), start=1):
    if not line.strip():
      raise DatasetLayoutError(path, "blank line inside the data", i)
    fields = split_fields(line)
    n = len(fields)
    if n not in accepted or (width is not None and n != width):
      want = width if width is not None else " or ".join(map(str, accepted))
      raise DatasetLayoutError(path, f"expected {want} fields, got {n}", i)
    width = n
    values = [parse_number(t, path, i) for t in fields]
    if not allow_nan and any(v != v for v in values):
      raise DatasetLayoutError(path, "NaN is not allowed here", i)
    rows.append(values)
  if not rows:
    return np.zeros((0, accepted[0]), np.float64)
  return np.asarray(rows, np.float64).reshape(len(rows), width)


def read_boxes(path: str | os.PathLike[str]) -> np.ndarray:
  """Reads an `x, y, w, h` ground-truth file: float64 (N, 4), NaN allowed."""
  return read_table(path, 4)


def read_flags(path: str | os.PathLike[str], allowed: tuple[int, ...] = (0, 1),
               single_line: bool = False) -> np.ndarray:
  """Reads integer per-frame flags.

  Args:
    path: the flag file.
    allowed: the accepted values (e.g. 0..8 for GOT-10k `cover.label`).
    single_line: True for LaSOT's `full_occlusion.txt`/`out_of_view.txt` (one
      comma-separated line); False for one value per line (GOT-10k labels).

  Returns:
    int64 (N,).

  Raises:
    DatasetLayoutError: bad token, non-integer or out-of-range value, or a
      multi-line file where one line is expected.
  """
  path = os.fspath(path)
  lines = read_lines(path)
  if single_line:
    if len(lines) > 1:
      raise DatasetLayoutError(path, f"expected one line, got {len(lines)}",
                               2)
    cells = [(1, t) for t in split_fields(lines[0])] if lines else []
  else:
    cells = []
    for i, line in enumerate(lines, start=1):
      fields = split_fields(line)
      if len(fields) != 1 or not fields[0]:
        raise DatasetLayoutError(path, f"expected 1 value, got {line!r}", i)
      cells.append((i, fields[0]))
  out = np.empty(len(cells), np.int64)
  for k, (i, token) in enumerate(cells):
    value = parse_number(token, path, i)
    if value != value or value != int(value) or int(value) not in allowed:
      raise DatasetLayoutError(
          path, f"flag {token!r} not in {sorted(allowed)}", i)
    out[k] = int(value)
  return out
