"""Result files: read and write every benchmark's exchange format.

Layouts (metrics.md §8.1):
  * got10k / OTB-style: `<tracker>/<seq>.txt`, one `x,y,w,h` row per frame
    (frame 1 included), comma separated, `%.3f`; optional
    `times/<seq>_time.txt`.
  * pytracking: `<tracker>/<param>/<seq>.txt`, tab separated, integers;
    `<seq>_time.txt`, `<seq>_object_presence_scores.txt`.
  * GOT-10k: `<tracker>/<seq>/<seq>_001.txt` (`_002`, ... for repetitions)
    and `<seq>_time.txt` with one comma-separated column per repetition.
  * TrackingNet: a zip of flat `<seq>.txt` files (`%.2f`).
  * OxUvA: one CSV per track `<video>_<object>.csv`, rows
    `video,object,frame_num,present,score,xmin,xmax,ymin,ymax`, no header,
    `present` written as true/false.

Reading is lenient about delimiters (comma, tab, spaces, mixed), CRLF and
blank trailing lines, accepts NaN tokens, and raises `ResultFileError` naming
the file and 1-based line for anything else.
"""

from __future__ import annotations

import csv
import glob
import math
import os
import re
import zipfile
from typing import Iterable, Mapping, Sequence

import numpy as np

_SPLIT = re.compile(r"[,\s]+")


class ResultFileError(ValueError):
  """A result file is missing or malformed; names the file (and line)."""

  def __init__(self, path: str, reason: str, line: int | None = None):
    self.path, self.reason, self.line = path, reason, line
    where = f"{path}:{line}" if line is not None else path
    super().__init__(f"{where}: {reason}")


# ---------------------------------------------------------------------------
# Plain numeric text files.


def parse_rows(text: str, path: str, columns: int | None = 4,
               comma_only: bool = False) -> np.ndarray:
  """Parses numeric rows separated by commas, tabs or spaces.

  Args:
    text: file contents.
    path: file name for error messages.
    columns: required fields per row (None: any, but all rows equal).
    comma_only: require commas between fields (got10k's `np.loadtxt(...,
      delimiter=',')`, which fails on tab-separated files).

  Returns:
    `(N, columns)` float64 (`(0, columns)` for an empty file).

  Raises:
    ResultFileError: wrong field count, a non-numeric or infinite token, or
      (with `columns=None`) an empty file.
  """
  rows = []
  lines = text.splitlines()
  while lines and not lines[-1].strip():
    lines.pop()
  for i, line in enumerate(lines, start=1):
    s = line.strip()
    if not s:
      raise ResultFileError(path, "blank line inside the file", i)
    if comma_only and len(s.split(",")) == 1 and len(_SPLIT.split(s)) > 1:
      raise ResultFileError(path, "fields are not comma separated", i)
    tokens = [t for t in (s.split(",") if comma_only else _SPLIT.split(s))]
    tokens = [t.strip() for t in tokens]
    if columns is not None and len(tokens) != columns:
      raise ResultFileError(
          path, f"expected {columns} fields, got {len(tokens)}: {s!r}", i)
    try:
      values = [float(t) for t in tokens]
    except ValueError:
      raise ResultFileError(path, f"non-numeric value in {s!r}", i) from None
    if any(math.isinf(v) for v in values):
      # NaN is a token the toolkits handle (metrics.md §2); inf is not.
      raise ResultFileError(path, f"infinite value in {s!r}", i)
    rows.append(values)
  if rows and columns is None and len({len(r) for r in rows}) != 1:
    raise ResultFileError(path, "rows have different numbers of fields")
  if not rows and columns is None:
    raise ResultFileError(path, "empty file")
  ncol = columns if columns is not None else (len(rows[0]) if rows else 0)
  return np.asarray(rows, np.float64).reshape(-1, ncol)


def read_boxes(path: str, comma_only: bool = False,
               box_format: str = "xywh") -> np.ndarray:
  """Reads a per-frame box file.

  Args:
    path: the `.txt` file.
    comma_only: see `parse_rows`.
    box_format: `xywh`, or `xyxy` for neuron's corner files
      (`x2 = x + w - 1`), converted to xywh.

  Returns:
    `(N, 4)` float64 xywh.
  """
  if not os.path.isfile(path):
    raise ResultFileError(path, "result file not found")
  with open(path, "r", encoding="utf-8") as f:
    boxes = parse_rows(f.read(), path, 4, comma_only)
  return convert_box_format(boxes, box_format)


def convert_box_format(boxes: np.ndarray, box_format: str) -> np.ndarray:
  """Converts `(N, 4)` boxes in `box_format` (xywh | xyxy) to xywh."""
  if box_format == "xywh":
    return boxes
  if box_format == "xyxy":
    out = boxes.copy()
    out[:, 2:] = boxes[:, 2:] - boxes[:, :2] + 1.0
    return out
  raise ValueError(f"box_format must be 'xywh' or 'xyxy', got {box_format!r}")


def read_values(path: str) -> np.ndarray:
  """Reads a column file (times, scores): `(N,)` or `(N, R)` float64."""
  if not os.path.isfile(path):
    raise ResultFileError(path, "file not found")
  with open(path, "r", encoding="utf-8") as f:
    v = parse_rows(f.read(), path, None)
  return v[:, 0] if v.shape[1] == 1 else v


def write_boxes(path: str, boxes: np.ndarray, fmt: str = "%.3f",
                delimiter: str = ",") -> None:
  """Writes `(N, 4)` xywh boxes, one frame per line (got10k layout)."""
  boxes = np.asarray(boxes, np.float64)
  if boxes.ndim != 2 or boxes.shape[1] != 4:
    raise ValueError(f"boxes must have shape (N, 4), got {boxes.shape}")
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    for b in boxes:
      f.write(delimiter.join(fmt % v for v in b) + "\n")


def write_values(path: str, values: np.ndarray, fmt: str = "%.8f") -> None:
  """Writes `(N,)` or `(N, R)` values, comma separated columns."""
  v = np.asarray(values, np.float64)
  v = v[:, None] if v.ndim == 1 else v
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    for row in v:
      f.write(",".join(fmt % x for x in row) + "\n")


def write_otb_result(tracker_dir: str, seq: str, boxes: np.ndarray,
                     times: np.ndarray | None = None) -> str:
  """got10k OTB-style layout: `<seq>.txt` and `times/<seq>_time.txt`."""
  path = os.path.join(tracker_dir, f"{seq}.txt")
  write_boxes(path, boxes)
  if times is not None:
    write_values(os.path.join(tracker_dir, "times", f"{seq}_time.txt"), times)
  return path


# ---------------------------------------------------------------------------
# Locating a tracker's files.


def name_aliases(seq: str) -> list[str]:
  """Other spellings of a sequence name used by other toolkits (§10.12)."""
  out = [seq]
  if "." in seq:
    out.append(seq.replace(".", "_"))  # Jogging.1 -> Jogging_1 (pytracking)
  if seq == "Human4":
    out.append("Human4_2")
  for prefix in ("uav_", "nfs_", "tpl_"):
    out.append(prefix + seq)
  return out


def find_result_file(tracker_dir: str, seq: str,
                     suffix: str = ".txt") -> str | None:
  """The file holding `seq`'s results in `tracker_dir`, or None."""
  for name in name_aliases(seq):
    p = os.path.join(tracker_dir, name + suffix)
    if os.path.isfile(p):
      return p
  return None


def find_scores_file(tracker_dir: str, seq: str) -> str | None:
  """Per-frame confidence file (pytracking, VOT or ours), or None."""
  for suffix in ("_object_presence_scores.txt", "_001_confidence.value",
                 "_confidence.value", "_scores.txt"):
    p = find_result_file(tracker_dir, seq, suffix)
    if p is not None:
      return p
  return None


def list_trackers(results_dir: str,
                  allow_zip: bool = False) -> dict[str, str]:
  """Trackers under `results_dir`: name -> folder (or zip).

  A folder that holds no files but sub-folders with result files is a
  pytracking `<tracker>/<param>` tree; each sub-folder becomes a tracker
  `<tracker>/<param>`. Hidden entries (`.replaced/`) are not trackers.
  """
  if not os.path.isdir(results_dir):
    raise ResultFileError(results_dir, "results folder not found")
  out = {}
  for name in sorted(os.listdir(results_dir)):
    if name.startswith("."):  # e.g. .replaced/ (evaluate.py run --retrack).
      continue
    p = os.path.join(results_dir, name)
    if os.path.isdir(p):
      entries = os.listdir(p)
      has_files = any(os.path.isfile(os.path.join(p, e)) for e in entries)
      subdirs = sorted(e for e in entries if os.path.isdir(os.path.join(p, e))
                       and e != "times")
      nested = [d for d in subdirs if glob.glob(os.path.join(p, d, "*.txt"))
                and not glob.glob(os.path.join(p, d, d + "_*.txt"))]
      if not has_files and nested and len(nested) == len(subdirs):
        for d in nested:
          out[f"{name}/{d}"] = os.path.join(p, d)
      else:
        out[name] = p
    elif allow_zip and name.endswith(".zip"):
      out.setdefault(name[:-4], p)
  if not out and glob.glob(os.path.join(results_dir, "*.txt")) + glob.glob(
      os.path.join(results_dir, "*.csv")):
    # `results_dir` is itself one tracker's folder.
    out[os.path.basename(os.path.normpath(results_dir))] = results_dir
  if not out:
    raise ResultFileError(results_dir, "no tracker folders found")
  return out


# ---------------------------------------------------------------------------
# GOT-10k.


def write_got10k_result(tracker_dir: str, seq: str,
                        runs: Sequence[np.ndarray],
                        times: Sequence[np.ndarray] | None = None) -> None:
  """Writes `<seq>/<seq>_%03d.txt` per run and `<seq>_time.txt` (one column
  per run). Submit a zip of `tracker_dir`'s contents."""
  d = os.path.join(tracker_dir, seq)
  for k, boxes in enumerate(runs, start=1):
    write_boxes(os.path.join(d, f"{seq}_{k:03d}.txt"), boxes)
  if times is not None:
    write_values(os.path.join(d, f"{seq}_time.txt"),
                 np.stack([np.asarray(t, float) for t in times], axis=1))


def read_got10k_result(tracker_dir: str, seq: str) -> list[np.ndarray]:
  """All repetitions `<seq>/<seq>_NNN.txt`, in file-name order."""
  d = os.path.join(tracker_dir, seq)
  files = sorted(f for f in glob.glob(os.path.join(d, f"{glob.escape(seq)}_*"))
                 if re.fullmatch(re.escape(seq) + r"_[0-9]+\.txt",
                                 os.path.basename(f)))
  if not files:
    raise ResultFileError(os.path.join(d, f"{seq}_001.txt"),
                          "results for this sequence not found")
  return [read_boxes(f) for f in files]


# ---------------------------------------------------------------------------
# TrackingNet.


def write_trackingnet_zip(zip_path: str,
                          results: Mapping[str, np.ndarray]) -> None:
  """Submission zip of flat `<seq>.txt` files, `%.2f` comma separated."""
  os.makedirs(os.path.dirname(zip_path) or ".", exist_ok=True)
  with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
    for seq, boxes in results.items():
      b = np.asarray(boxes, np.float64).reshape(-1, 4)
      z.writestr(f"{seq}.txt",
                 "".join(",".join("%.2f" % v for v in r) + "\n" for r in b))


class TrackingNetResults:
  """A tracker's TrackingNet results from a folder or a submission zip.

  `get(seq)` follows the devkit's matching rule: the submission file whose
  path contains `<seq>.txt`; when none or several match, the sequence is
  scored as a missing file (None).
  """

  def __init__(self, path: str):
    self.path = path
    self._zip = None
    if os.path.isfile(path) and path.endswith(".zip"):
      self._zip = zipfile.ZipFile(path)
      self._names = [n for n in self._zip.namelist()
                     if n.endswith(".txt") and "__MACOSX" not in n]
    elif os.path.isdir(path):
      self._names = sorted(
          os.path.relpath(p, path)
          for p in glob.glob(os.path.join(path, "**", "*.txt"), recursive=True))
    else:
      raise ResultFileError(path, "TrackingNet results not found")

  def get(self, seq: str) -> np.ndarray | None:
    hits = [n for n in self._names if f"{seq}.txt" in n]
    if len(hits) != 1:
      return None
    where = f"{self.path}:{hits[0]}"
    if self._zip is not None:
      text = self._zip.read(hits[0]).decode("utf-8")
    else:
      with open(os.path.join(self.path, hits[0]), encoding="utf-8") as f:
        text = f.read()
    return parse_rows(text, where, 4)


# ---------------------------------------------------------------------------
# OxUvA.

OXUVA_FIELDS = ("video", "object", "frame_num", "present", "score", "xmin",
                "xmax", "ymin", "ymax")
_TRUE = ("t", "true", "y", "yes", "1")
_FALSE = ("f", "false", "n", "no", "0")


def parse_bool(text: str, path: str, line: int) -> bool:
  """OxUvA's boolean rule; `present`/`absent` are rejected like the toolkit."""
  s = text.strip().lower()
  if s in _TRUE:
    return True
  if s in _FALSE:
    return False
  raise ResultFileError(path, f"'present' must be true/false, got {text!r}",
                        line)


def write_oxuva_csv(path: str, video: str, obj: str,
                    frames: Iterable[int], present: Iterable[bool],
                    scores: Iterable[float],
                    boxes: np.ndarray) -> None:
  """Writes one track's predictions (no header, `present` as true/false).

  Args:
    path: `<dir>/<video>_<object>.csv`.
    video, obj: ids, e.g. `vid0000`, `obj0000`.
    frames: absolute frame numbers.
    present: per-frame presence.
    scores: per-frame confidence.
    boxes: `(N, 4)` normalised `(xmin, xmax, ymin, ymax)`.
  """
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  with open(path, "w", encoding="utf-8", newline="") as f:
    w = csv.writer(f)
    for t, p, s, b in zip(frames, present, scores, boxes):
      w.writerow([video, obj, int(t), "true" if p else "false", repr(float(s)),
                  *(repr(float(v)) for v in b)])


def read_oxuva_csv(path: str) -> dict[int, tuple[bool, float, tuple]]:
  """Reads one track's predictions: frame -> (present, score, box).

  The header row is optional and recognised only if it names exactly the
  OxUvA fields (in any order). Box and score of absent rows are ignored.
  """
  if not os.path.isfile(path):
    raise ResultFileError(path, "OxUvA prediction file not found")
  with open(path, "r", encoding="utf-8", newline="") as f:
    rows = list(csv.reader(f))
  fields = list(OXUVA_FIELDS)
  start = 0
  if rows and set(c.strip() for c in rows[0]) == set(OXUVA_FIELDS):
    fields, start = [c.strip() for c in rows[0]], 1
  out = {}
  for i, row in enumerate(rows[start:], start=start + 1):
    if not row or not "".join(row).strip():
      continue
    if len(row) != len(fields):
      raise ResultFileError(path, f"expected {len(fields)} fields, got "
                            f"{len(row)}", i)
    r = dict(zip(fields, row))
    present = parse_bool(r["present"], path, i)
    try:
      t = int(r["frame_num"])
      score = float(r["score"])
      box = tuple(float(r[k]) for k in ("xmin", "xmax", "ymin", "ymax")
                  ) if present else None
    except ValueError:
      raise ResultFileError(path, f"non-numeric value in {row!r}", i) from None
    out[t] = (present, score, box)
  return out
