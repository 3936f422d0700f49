"""Annotation files in the GOT-10k, LaSOT and COCO layouts.

Conventions (shared/reference/datasets.md):
  * GOT-10k (§2) and LaSOT (§3) boxes are x, y, w, h with a 1-based origin,
    like the real data: the leftmost pixel column is x = 1, so a box whose
    inclusive 0-based pixel box is (x1, y1, x2, y2) is written as
    (x1 + 1, y1 + 1, x2 - x1 + 1, y2 - y1 + 1). Readers take the numbers as
    they are (§0.2), exactly as on the real datasets.
  * GOT-10k out-of-view rows are -1,-1,-1,-1 (§2.3), with absence = 1 and
    cover = 0. A fully occluded target keeps its box, absence = 0, cover = 0.
  * LaSOT rows are 0,0,0,0 whenever the target is fully occluded or out of
    view (§3.5, metrics.md §6.2); the flags are single comma-separated lines.
  * COCO boxes use continuous coordinates from the top-left corner (§1): a
    box covering pixel columns x1..x2 has x = x1 and w = x2 - x1 + 1.
"""

from __future__ import annotations

import json
import math
import os
from typing import Sequence

import cv2
import numpy as np

from gt_jax.data.synthetic import render

# GOT-10k cover.label: 0 = fully occluded/out of view; 1..8 = visible ratio
# in (0, 1/8], ..., (7/8, 1] (pytracking reads it as ratio = cover / 8).
COVER_LEVELS = 8


def cover_level(visible_ratio: float) -> int:
  """GOT-10k cover level 0..8 of a visible ratio in [0, 1]."""
  if visible_ratio <= 0:
    return 0
  return int(min(COVER_LEVELS, max(1, math.ceil(visible_ratio * COVER_LEVELS
                                                - 1e-9))))


def xywh_one_based(box: np.ndarray) -> np.ndarray:
  """Inclusive 0-based (..., 4) pixel boxes -> 1-based x, y, w, h floats."""
  box = np.asarray(box, np.float64)
  return np.stack([box[..., 0] + 1, box[..., 1] + 1,
                   box[..., 2] - box[..., 0] + 1,
                   box[..., 3] - box[..., 1] + 1], axis=-1)


def got10k_labels(truths: Sequence[render.LayerTruth]) -> dict[str, np.ndarray]:
  """Per-frame GOT-10k annotations of the target.

  Args:
    truths: the target's LayerTruth in each of the T frames.

  Returns:
    dict(groundtruth=float64 (T, 4) x, y, w, h (1-based; -1s when absent),
    absence=int (T,), cover=int (T,), cut_by_image=int (T,)).
  """
  n = len(truths)
  gt = np.full((n, 4), -1.0)
  absence = np.zeros(n, np.int64)
  cover = np.zeros(n, np.int64)
  cut = np.zeros(n, np.int64)
  for t, tr in enumerate(truths):
    if not tr.in_view:
      absence[t] = 1
      continue
    gt[t] = xywh_one_based(tr.box)
    cover[t] = cover_level(tr.visible_ratio)
    cut[t] = int(tr.cut_by_image)
  return dict(groundtruth=gt, absence=absence, cover=cover, cut_by_image=cut)


def lasot_labels(truths: Sequence[render.LayerTruth]) -> dict[str, np.ndarray]:
  """Per-frame LaSOT annotations of the target.

  Returns:
    dict(groundtruth=int64 (T, 4) x, y, w, h (1-based; 0s when fully
    occluded or out of view), full_occlusion=int (T,), out_of_view=int (T,)).
  """
  n = len(truths)
  gt = np.zeros((n, 4), np.int64)
  occluded = np.zeros(n, np.int64)
  out = np.zeros(n, np.int64)
  for t, tr in enumerate(truths):
    if not tr.in_view:
      out[t] = 1
    elif tr.visible_area == 0:
      occluded[t] = 1
    else:
      gt[t] = xywh_one_based(tr.box).astype(np.int64)
  return dict(groundtruth=gt, full_occlusion=occluded, out_of_view=out)


def _write(path: str, text: str) -> None:
  with open(path, "w", encoding="utf-8", newline="\n") as f:
    f.write(text)


def write_got10k_sequence(seq_dir: str, labels: dict[str, np.ndarray],
                          meta: dict[str, str]) -> None:
  """Writes the GOT-10k annotation files of one sequence (frames apart).

  Args:
    seq_dir: the sequence folder (it holds 00000001.jpg, ...).
    labels: output of got10k_labels.
    meta: meta_info.ini values by key (url, begin, ..., resolution).
  """
  # GOT-10k writes 4 decimals, e.g. "347.0000,443.0000,429.0000,272.0000".
  _write(os.path.join(seq_dir, "groundtruth.txt"),
         "".join(",".join(f"{v:.4f}" for v in row) + "\n"
                 for row in labels["groundtruth"]))
  for key in ("absence", "cover", "cut_by_image"):
    _write(os.path.join(seq_dir, f"{key}.label"),
           "".join(f"{int(v)}\n" for v in labels[key]))
  _write(os.path.join(seq_dir, "meta_info.ini"),
         "[METAINFO]\n" + "".join(f"{k}: {v}\n" for k, v in meta.items()))


def write_lasot_sequence(seq_dir: str, labels: dict[str, np.ndarray],
                         sentence: str) -> None:
  """Writes groundtruth.txt, the two flag files and nlp.txt of a sequence."""
  _write(os.path.join(seq_dir, "groundtruth.txt"),
         "".join(",".join(str(int(v)) for v in row) + "\n"
                 for row in labels["groundtruth"]))
  for key in ("full_occlusion", "out_of_view"):
    # One line of comma-separated 0/1 values, no newline (as LaSOT ships).
    _write(os.path.join(seq_dir, f"{key}.txt"),
           ",".join(str(int(v)) for v in labels[key]))
  _write(os.path.join(seq_dir, "nlp.txt"), sentence + "\n")


def write_list(path: str, names: Sequence[str], final_newline: bool) -> None:
  """One name per line (LaSOT's testing_set.txt has no final newline)."""
  _write(path, "\n".join(names) + ("\n" if final_newline and names else ""))


# The 80 COCO 2017 categories with their official (sparse) ids, in id order
# (datasets.md §1.1). Supercategories by id range.
COCO_NAMES = (
    "person bicycle car motorcycle airplane bus train truck boat "
    "traffic_light fire_hydrant stop_sign parking_meter bench bird cat dog "
    "horse sheep cow elephant bear zebra giraffe backpack umbrella handbag "
    "tie suitcase frisbee skis snowboard sports_ball kite baseball_bat "
    "baseball_glove skateboard surfboard tennis_racket bottle wine_glass cup "
    "fork knife spoon bowl banana apple sandwich orange broccoli carrot "
    "hot_dog pizza donut cake chair couch potted_plant bed dining_table "
    "toilet tv laptop mouse remote keyboard cell_phone microwave oven "
    "toaster sink refrigerator book clock vase scissors teddy_bear "
    "hair_drier toothbrush").split()
COCO_MISSING_IDS = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)
COCO_IDS = tuple(i for i in range(1, 91) if i not in COCO_MISSING_IDS)
_COCO_SUPER = ((1, "person"), (2, "vehicle"), (10, "outdoor"), (16, "animal"),
               (27, "accessory"), (34, "sports"), (44, "kitchen"),
               (52, "food"), (62, "furniture"), (72, "electronic"),
               (78, "appliance"), (84, "indoor"))


def coco_categories() -> list[dict]:
  """The 80 official COCO categories: [{id, name, supercategory}]."""
  cats = []
  for cid, name in zip(COCO_IDS, COCO_NAMES, strict=True):
    sup = [s for start, s in _COCO_SUPER if cid >= start][-1]
    cats.append(dict(id=cid, name=name.replace("_", " "),
                     supercategory=sup))
  return cats


def coco_annotation(mask: np.ndarray, ann_id: int, image_id: int,
                    category_id: int) -> dict | None:
  """A COCO annotation for the visible bool (H, W) mask, or None if empty."""
  if not mask.any():
    return None
  box = render.tight_box(mask)
  contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                 cv2.CHAIN_APPROX_SIMPLE)
  polygons = [c.reshape(-1).astype(float).tolist() for c in contours
              if len(c) >= 3]
  if not polygons:  # slivers: fall back to the box outline
    x1, y1, x2, y2 = (float(v) for v in box)
    polygons = [[x1, y1, x2 + 1, y1, x2 + 1, y2 + 1, x1, y2 + 1]]
  x1, y1, x2, y2 = (float(v) for v in box)
  return dict(id=ann_id, image_id=image_id, category_id=category_id,
              bbox=[x1, y1, x2 - x1 + 1, y2 - y1 + 1],
              area=float(mask.sum()), iscrowd=0, segmentation=polygons)


def write_coco_json(path: str, images: list[dict],
                    annotations: list[dict], description: str) -> None:
  """Writes an instances_<split>2017.json with the official top-level keys."""
  doc = dict(
      info=dict(description=description, version="1.0", year=2017,
                contributor="gt_jax.data.synthetic", url="",
                date_created="2017/09/01"),
      licenses=[dict(id=1, name="BSD-3-Clause (scikit-image data)", url="")],
      images=images, annotations=annotations, categories=coco_categories())
  _write(path, json.dumps(doc))
