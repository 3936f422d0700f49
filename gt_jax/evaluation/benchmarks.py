"""Benchmark readers behind one call: `load_benchmark(name, root, subset)`.

Each benchmark is read in its own on-disk layout (datasets.md, metrics.md
§8.2) into `SequenceRecord`s (boxes `x, y, w, h` as stored; OxUvA converted
to pixels). `subset` selects sequences:

* None: the benchmark's official split; every sequence must be on disk
  (TLP, TrackingNet and "folder" have no fixed list: everything on disk);
* "available": the official sequences that are on disk (a partial copy; the
  caller reports it as a subset, compare with `OFFICIAL_SIZES`);
* a named split or list: "otb2015", "otb2013", "tb50"; LaSOT "test",
  "train", "all"; GOT-10k "val", "test", "train"; OxUvA "dev", "test";
  TrackingNet "TEST", "TRAIN_<k>"; TLP "tiny" (TinyTLP: first 600 frames);
* a list of sequence names (or TrackingNet chunk names): exactly those.

A requested sequence that is missing raises DatasetLayoutError.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Callable, Sequence

from gt_jax.data.errors import DatasetLayoutError
from gt_jax.data.records import SequenceRecord
from gt_jax.data.sources import got10k, lasot
from gt_jax.evaluation.datasets import (folder, otb, otb_tables, oxuva, tlp,
                                        trackingnet, uav, uav_tables)

Subset = str | Sequence[str] | None
# loader(root, subset, frames): frames=False reads annotations only.
Loader = Callable[[str, Subset, bool], list[SequenceRecord]]

AVAILABLE = "available"
TINY_TLP_FRAMES = 600  # official: TinyTLP is the first 600 frames (20 s).

# Sequence counts of the official splits, for "is this a subset?" checks.
OFFICIAL_SIZES = {
    "otb": 100, "otb2015": 100, "otb2013": 51, "tb50": 50, "uav123": 123,
    "uav20l": 20, "lasot": 280, "tlp": 50, "oxuva": 200, "trackingnet": 511,
    "got10k": 180,
}


def _unknown(name: str, subset: str, choices: Sequence[str]) -> ValueError:
  return ValueError(f"{name}: unknown subset {subset!r}; expected None, "
                    f"{AVAILABLE!r}, a list of names or one of "
                    f"{sorted(choices)}")


def _otb_loader(default: str) -> Loader:
  def load(root: str, subset: Subset,
           frames: bool = True) -> list[SequenceRecord]:
    dirs = otb_tables.SUBSETS[default]
    if subset == AVAILABLE:
      dirs = [d for d in dirs if os.path.isdir(os.path.join(root, d))]
    elif isinstance(subset, str):
      if subset not in otb_tables.SUBSETS:
        raise _unknown(default, subset, otb_tables.SUBSETS)
      dirs = otb_tables.SUBSETS[subset]
    elif subset is not None:
      names = list(subset)
      dirs = list(dict.fromkeys(otb.directory_of(n) for n in names))
      return otb.read_otb(root, dirs, names, frames=frames)
    return otb.read_otb(root, dirs, frames=frames)
  return load


def _uav_loader(table: uav_tables.Table, anno_set: str) -> Loader:
  def load(root: str, subset: Subset,
           frames: bool = True) -> list[SequenceRecord]:
    if subset == AVAILABLE:
      names = uav.annotated_names(root, table, anno_set)
    elif isinstance(subset, str):
      raise _unknown(anno_set, subset, [])
    else:
      names = None if subset is None else list(subset)
    return uav.read_uav(root, table, anno_set, names, frames)
  return load


def _load_lasot(root: str, subset: Subset,
                frames: bool = True) -> list[SequenceRecord]:
  if subset is None:
    subset = "test"
  if subset == AVAILABLE:
    names = [n for n in lasot.split_names("test")
             if os.path.isdir(lasot.sequence_dir(root, n))]
    return lasot.read_lasot(root, names=names, frames=frames)
  if isinstance(subset, str):
    if subset not in lasot.SPLITS:
      raise _unknown("lasot", subset, lasot.SPLITS)
    return lasot.read_lasot(root, subset, frames=frames)
  return lasot.read_lasot(root, names=list(subset), frames=frames)


def _got10k_split_dir(root: str, split: str | None) -> tuple[str, str]:
  """Finds the split folder: `root` itself (holding list.txt) or root/split."""
  if split is not None and os.path.isdir(os.path.join(root, split)):
    return os.path.join(root, split), split
  if os.path.exists(os.path.join(root, "list.txt")):
    base = os.path.basename(os.path.normpath(root)).lower()
    if split is None:
      if base in got10k.SPLITS:
        split = base
      else:
        names = got10k.read_list(root)
        split = "test" if names and "_Test_" in names[0] else "val"
    return root, split
  split = split or "test"
  return os.path.join(root, split), split


def _load_got10k(root: str, subset: Subset,
                 frames: bool = True) -> list[SequenceRecord]:
  split, names = None, None
  if isinstance(subset, str) and subset != AVAILABLE:
    if subset not in got10k.SPLITS:
      raise _unknown("got10k", subset, got10k.SPLITS)
    split = subset
  elif subset is not None and subset != AVAILABLE:
    names = list(subset)
  split_dir, split = _got10k_split_dir(root, split)
  if subset == AVAILABLE:
    names = [n for n in got10k.read_list(split_dir)
             if os.path.isdir(os.path.join(split_dir, n))]
  return got10k.read_split_dir(split_dir, split, names, frames=frames)


_CHUNK = re.compile(r"TEST|TRAIN_\d+")


def _load_trackingnet(root: str, subset: Subset,
                      frames: bool = True) -> list[SequenceRecord]:
  if subset is None or subset == AVAILABLE:
    return trackingnet.read_trackingnet(root, frames=frames)
  if isinstance(subset, str):
    if not _CHUNK.fullmatch(subset):
      raise _unknown("trackingnet", subset, ["TEST", "TRAIN_<k>"])
    return trackingnet.read_trackingnet(root, [subset], frames=frames)
  subset = list(subset)
  if subset and all(_CHUNK.fullmatch(s) for s in subset):
    return trackingnet.read_trackingnet(root, subset, frames=frames)
  return trackingnet.read_trackingnet(root, names=subset, frames=frames)


def _load_oxuva(root: str, subset: Subset,
                frames: bool = True) -> list[SequenceRecord]:
  if subset is None:
    return oxuva.read_oxuva(root, "dev", frames=frames)
  if subset == AVAILABLE:
    return oxuva.read_oxuva(root, "dev", skip_missing_videos=True,
                            frames=frames)
  if isinstance(subset, str):
    if subset not in ("dev", "test"):
      raise _unknown("oxuva", subset, ("dev", "test"))
    return oxuva.read_oxuva(root, subset, frames=frames)
  return oxuva.read_oxuva(root, "dev", list(subset), frames=frames)


def _first_frames(r: SequenceRecord, n: int) -> SequenceRecord:
  """The record cut to its first `n` frames (TinyTLP)."""
  meta = {k: (v[:n] if hasattr(v, "__len__") and len(v) == len(r) else v)
          for k, v in r.meta.items()}
  return dataclasses.replace(r, frame_paths=r.frame_paths[:n],
                             boxes=r.boxes[:n], valid=r.valid[:n],
                             visible=r.visible[:n], meta=meta)


def _load_tlp(root: str, subset: Subset,
              frames: bool = True) -> list[SequenceRecord]:
  if subset is None or subset == AVAILABLE:
    return tlp.read_tlp(root, frames=frames)
  if subset == "tiny":
    return [_first_frames(r, TINY_TLP_FRAMES)
            for r in tlp.read_tlp(root, frames=frames)]
  if isinstance(subset, str):
    raise _unknown("tlp", subset, ["tiny"])
  return tlp.read_tlp(root, list(subset), frames=frames)


def _load_folder(root: str, subset: Subset,
                 frames: bool = True) -> list[SequenceRecord]:
  if subset is None or subset == AVAILABLE:
    return folder.read_folder(root, frames=frames)
  if isinstance(subset, str):
    return folder.read_folder(root, [subset], frames=frames)
  return folder.read_folder(root, list(subset), frames=frames)


BENCHMARKS: dict[str, Loader] = {
    "otb": _otb_loader("otb2015"),
    "otb2015": _otb_loader("otb2015"),
    "otb2013": _otb_loader("otb2013"),
    "tb50": _otb_loader("tb50"),
    "uav123": _uav_loader(uav_tables.UAV123, "UAV123"),
    "uav20l": _uav_loader(uav_tables.UAV20L, "UAV20L"),
    "lasot": _load_lasot,
    "got10k": _load_got10k,
    "trackingnet": _load_trackingnet,
    "oxuva": _load_oxuva,
    "tlp": _load_tlp,
    "folder": _load_folder,
}



def load_benchmark(name: str, root: str, subset: Subset = None,
                   frames: bool = True) -> list[SequenceRecord]:
  """Reads benchmark `name` (a key of BENCHMARKS) from `root`.

  Args:
    name: e.g. "otb", "lasot", "got10k" (case-insensitive, '-'/'_' ignored).
    root: the benchmark's folder in its own layout.
    subset: see the module docstring.
    frames: False for scoring: every reader then reads annotations only,
      without listing, checking or opening any frame (the frame count is
      the ground truth's row count; frame paths follow the benchmark's
      naming rule, unchecked; see each reader). Scores never depend on
      frames (VOT-LT's image bounds come from the first frame's header
      when it is there: see `report`).

  Returns:
    The sequences, in the benchmark's order.

  Raises:
    ValueError: unknown benchmark or subset.
    DatasetLayoutError: `root` or a requested sequence is missing, or a file
      is malformed (the message names the file and line).
  """
  key = name.lower().replace("-", "").replace("_", "")
  if key not in BENCHMARKS:
    raise ValueError(f"unknown benchmark {name!r}; expected one of "
                     f"{sorted(BENCHMARKS)}")
  if os.path.isfile(root):
    raise DatasetLayoutError(root, f"a file, not the {name} folder")
  if not os.path.isdir(root):
    raise DatasetLayoutError(root, f"{name} folder not found")
  return BENCHMARKS[key](root, subset, frames)
