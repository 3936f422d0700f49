"""Index cache for dataset readers.

Parsing 9,335 GOT-10k or 118k COCO annotations takes minutes; the result (a
list of records) only changes when the dataset's files change. A reader names
the files that determine its output (annotation files, frame folders) and
`load_or_build` keys a JSON manifest on a hash of their relative names, sizes
and modification times:

  <cache_dir>/manifests/<kind>-<hash of root and options>.json
      {"version", "kind", "root", "fingerprint", "records": [...]}

The manifest is reused while the fingerprint matches and rebuilt (atomically
replaced) when it does not. Paths inside are stored relative to the dataset
root, so a moved dataset keeps its cache. A frame folder's mtime changes when
frames are added or removed, which is what the index depends on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from gt_jax.data.records import ImageRecord, SequenceRecord

_VERSION = 1
_log = logging.getLogger(__name__)

Record = SequenceRecord | ImageRecord


def resolve_cache_dir(cache_dir: str | None) -> str | None:
  """None -> no caching; "" -> `~/.cache/gt_jax` (config `data.cache_dir`)."""
  if cache_dir is None:
    return None
  return os.path.expanduser(cache_dir or "~/.cache/gt_jax")


def fingerprint(root: str, paths: Iterable[str]) -> str:
  """SHA-256 over (relative name, size, mtime_ns) of each path, sorted.

  A missing path is hashed as missing (the build then raises the proper
  `DatasetLayoutError`).
  """
  h = hashlib.sha256()
  entries = []
  for p in paths:
    rel = os.path.relpath(p, root)
    try:
      st = os.stat(p)
      entries.append(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}")
    except OSError:
      entries.append(f"{rel}\0missing")
  for e in sorted(entries):
    h.update(e.encode("utf-8", "surrogateescape"))
    h.update(b"\n")
  return h.hexdigest()


def _encode(x: Any) -> Any:
  if isinstance(x, np.ndarray):
    return {"__nd__": x.tolist(), "dtype": x.dtype.str, "shape": x.shape}
  if isinstance(x, np.generic):
    return x.item()
  if isinstance(x, tuple):
    return {"__tuple__": [_encode(v) for v in x]}
  if isinstance(x, list):
    return [_encode(v) for v in x]
  if isinstance(x, dict):
    return {str(k): _encode(v) for k, v in x.items()}
  return x


def _decode(x: Any) -> Any:
  if isinstance(x, dict):
    if "__nd__" in x:
      return np.asarray(x["__nd__"], np.dtype(x["dtype"])).reshape(x["shape"])
    if "__tuple__" in x:
      return tuple(_decode(v) for v in x["__tuple__"])
    return {k: _decode(v) for k, v in x.items()}
  if isinstance(x, list):
    return [_decode(v) for v in x]
  return x


def _record_to_json(r: Record, root: str) -> dict[str, Any]:
  if isinstance(r, SequenceRecord):
    return {"type": "sequence", "name": r.name,
            "frame_paths": [os.path.relpath(p, root) for p in r.frame_paths],
            "boxes": _encode(r.boxes), "valid": _encode(r.valid),
            "visible": _encode(r.visible), "meta": _encode(r.meta)}
  path = r.path if isinstance(r.path, int) else os.path.relpath(r.path, root)
  return {"type": "image", "path": path, "height": r.height, "width": r.width,
          "boxes": _encode(r.boxes), "meta": _encode(r.meta)}


def _record_from_json(d: dict[str, Any], root: str) -> Record:
  if d["type"] == "sequence":
    return SequenceRecord(
        d["name"], [os.path.join(root, p) for p in d["frame_paths"]],
        _decode(d["boxes"]), _decode(d["valid"]), _decode(d["visible"]),
        _decode(d["meta"]))
  path = d["path"] if isinstance(d["path"], int) else os.path.join(
      root, d["path"])
  return ImageRecord(path, d["height"], d["width"], _decode(d["boxes"]),
                     _decode(d["meta"]))


def manifest_path(cache_dir: str, kind: str, root: str,
                  options: str = "") -> str:
  """The manifest file of dataset `kind` at `root` read with `options`."""
  key = hashlib.sha1(
      f"{os.path.abspath(root)}\0{options}".encode()).hexdigest()[:16]
  return os.path.join(cache_dir, "manifests", f"{kind}-{key}.json")


def load_or_build(kind: str, root: str, files: Sequence[str],
                  build: Callable[[], list[Record]],
                  cache_dir: str | None, options: str = "") -> list[Record]:
  """Returns `build()`, served from the manifest while `files` are unchanged.

  Args:
    kind: dataset tag, e.g. "got10k-train".
    root: the dataset root; record paths are cached relative to it.
    files: the files and folders whose (name, size, mtime) determine the
      result of `build`.
    build: parses the dataset (raises DatasetLayoutError on bad layouts).
    cache_dir: see `resolve_cache_dir`; None disables caching.
    options: reader arguments that change the result (e.g. a name list).

  Returns:
    The records, in build order.
  """
  cache_dir = resolve_cache_dir(cache_dir)
  if cache_dir is None:
    return build()
  path = manifest_path(cache_dir, kind, root, options)
  key = fingerprint(root, files)
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
    if data.get("version") == _VERSION and data.get("fingerprint") == key:
      _log.info("%s: using cached index %s", kind, path)
      return [_record_from_json(d, root) for d in data["records"]]
    _log.info("%s: dataset changed, rebuilding %s", kind, path)
  except (OSError, ValueError, KeyError):
    _log.info("%s: building index %s", kind, path)
  records = build()
  data = {"version": _VERSION, "kind": kind, "root": os.path.abspath(root),
          "fingerprint": key,
          "records": [_record_to_json(r, root) for r in records]}
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      json.dump(data, f)
    os.replace(tmp, path)  # Atomic: readers never see a half-written file.
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  return records
