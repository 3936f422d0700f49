"""What produced a results folder: recorded, checked on every rerun.

`evaluate.py run` writes `RESULTS/<tracker>/provenance.json` (atomically,
before tracking) with the weights' fingerprint and every setting that
changes the result files:

```
{"format": 1, "weights_sha256": "...", "checkpoint": "/abs/ckpt",
 "config": "configs/...py:tiny", "variant": "tiny",
 "settings": {"model": {...}, "preprocess": {...}, "test": {...},
              "compute_dtype": "float32"},
 "benchmark": "lasot", "layout": "otb", "frame_stride": 1}
```

A rerun into the same folder compares the `COMPARED` keys: equal -> resume
(finished sequences are skipped); different -> `ResultsProvenanceError`
naming what differs, unless `retrack=True`, which moves the folder's files
to `RESULTS/.replaced/<tracker>-<time>/` (nothing is deleted) and starts
afresh. A folder with result files but no provenance.json (an older
version, another tool) is treated as different: its origin is unknown.
The checkpoint path and the config spec are informative only: moving a
checkpoint does not invalidate results, changing its weights does.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any, Mapping

import numpy as np

from gt_jax.checkpoint import flatten_variables
from gt_jax.checkpoint import path_str
from gt_jax.errors import ResultsProvenanceError

FILENAME = "provenance.json"
FORMAT = 1
COMPARED = ("weights_sha256", "settings", "benchmark", "layout",
            "frame_stride")
REPLACED_DIR = ".replaced"


def weights_fingerprint(variables: Mapping[str, Any]) -> str:
  """sha256 over every variable's path, dtype, shape and bytes (host)."""
  h = hashlib.sha256()
  for path, leaf in sorted(flatten_variables(variables).items()):
    a = np.ascontiguousarray(np.asarray(leaf))
    h.update(f"{path_str(path)}|{a.dtype.str}|{a.shape}\n".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def _plain(x: Any) -> Any:
  """JSON round trip (tuples -> lists), so that records compare equal."""
  return json.loads(json.dumps(x))


def make_provenance(cfg: Any, variables: Mapping[str, Any], *,
                    checkpoint: str | None, config: str | None,
                    benchmark: str, layout: str,
                    frame_stride: int) -> dict[str, Any]:
  """The record of one `evaluate.py run` (see the module docstring)."""
  settings = {k: cfg[k].to_dict() for k in ("model", "preprocess", "test")}
  settings["compute_dtype"] = cfg.get("compute_dtype", "float32")
  return _plain({
      "format": FORMAT,
      "weights_sha256": weights_fingerprint(variables),
      "checkpoint": os.path.abspath(checkpoint) if checkpoint else "",
      "config": config or "", "variant": cfg.get("variant", ""),
      "settings": settings, "benchmark": benchmark, "layout": layout,
      "frame_stride": int(frame_stride),
  })


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
  """The compared keys that differ, as 'key (old -> new)' (nested settings
  by dotted name; weights abbreviated)."""
  out = []

  def walk(a: Any, b: Any, name: str) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
      for k in sorted(set(a) | set(b)):
        walk(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{name}.{k}")
    elif a != b and name == "weights_sha256":
      out.append(f"weights (sha256 {str(a)[:12]} -> {str(b)[:12]})")
    elif a != b:
      out.append(f"{name} ({a} -> {b})")

  for k in COMPARED:
    walk(old.get(k, "<absent>"), new.get(k, "<absent>"), k)
  return out


def _result_entries(tracker_dir: str) -> list[str]:
  if not os.path.isdir(tracker_dir):
    return []
  return [e for e in os.listdir(tracker_dir) if e != FILENAME]


def _move_away(tracker_dir: str) -> str:
  """Moves the tracker folder (and its TrackingNet zip) under
  `<results>/.replaced/`; returns the new place."""
  parent, name = os.path.split(os.path.normpath(tracker_dir))
  stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
  dest = os.path.join(parent, REPLACED_DIR, f"{name}-{stamp}")
  k = 1
  while os.path.exists(dest):
    dest = os.path.join(parent, REPLACED_DIR, f"{name}-{stamp}-{k}")
    k += 1
  os.makedirs(os.path.dirname(dest), exist_ok=True)
  os.replace(tracker_dir, dest)
  zip_path = os.path.normpath(tracker_dir) + ".zip"
  if os.path.isfile(zip_path):
    os.replace(zip_path, dest + ".zip")
  return dest


def write(tracker_dir: str, record: Mapping[str, Any]) -> str:
  """Writes `tracker_dir/provenance.json` atomically; returns its path."""
  os.makedirs(tracker_dir, exist_ok=True)
  path = os.path.join(tracker_dir, FILENAME)
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(record, f, indent=1, sort_keys=True)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)
  return path


def read(tracker_dir: str) -> dict[str, Any] | None:
  """The recorded provenance, or None when the file is absent.

  Raises:
    ResultsProvenanceError: the file exists but is not a JSON object.
  """
  path = os.path.join(tracker_dir, FILENAME)
  if not os.path.isfile(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      rec = json.load(f)
  except (OSError, ValueError) as e:
    raise ResultsProvenanceError(f"{path}: unreadable ({e}); pass --retrack "
                                 "to move these results away") from None
  if not isinstance(rec, dict):
    raise ResultsProvenanceError(f"{path}: not a JSON object; pass "
                                 "--retrack to move these results away")
  return rec


def check_or_record(tracker_dir: str, record: Mapping[str, Any],
                    retrack: bool = False) -> str | None:
  """Makes `tracker_dir` safe to resume into with `record`'s model/settings.

  Args:
    tracker_dir: `RESULTS/<tracker>`.
    record: `make_provenance(...)` of this run.
    retrack: on a mismatch, move the old results away instead of refusing.

  Returns:
    Where old results were moved (retrack), else None.

  Raises:
    ResultsProvenanceError: the folder holds results of another model or
      other settings (naming what differs), or results of unknown origin.
  """
  moved = None
  try:
    old = read(tracker_dir)
  except ResultsProvenanceError:
    if not retrack:
      raise
    old = {}
  if old is not None:
    diffs = differences(old, record)
    if diffs:
      if not retrack:
        raise ResultsProvenanceError(
            f"{tracker_dir} holds results of another run: "
            f"{'; '.join(diffs[:4])}"
            f"{f'; ... {len(diffs) - 4} more' if len(diffs) > 4 else ''}. "
            "Pass --retrack to move them to "
            f"{REPLACED_DIR}/ and track again, or use another --results / "
            "--tracker-name")
      moved = _move_away(tracker_dir)
  elif _result_entries(tracker_dir):
    if not retrack:
      raise ResultsProvenanceError(
          f"{tracker_dir} holds result files but no {FILENAME}, so the model "
          "that produced them is unknown. Pass --retrack to move them to "
          f"{REPLACED_DIR}/ and track again, or use another --results / "
          "--tracker-name")
    moved = _move_away(tracker_dir)
  if old is None or moved is not None:
    write(tracker_dir, record)
  return moved
