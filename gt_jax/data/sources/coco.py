"""COCO 2017 reader for the raw layout (datasets.md §1.1).

`<root>/annotations/instances_<split>2017.json` + `<root>/<split>2017/*.jpg`.
Filtering follows GlobalTrack's `Image2Pair` (legacy-semantics §13.4):
annotations that are crowd, carry a truthy `ignore`, or have w < 1 or h < 1
are dropped; images whose shorter side is < 32 px or that keep no annotation
are skipped (the counts are logged).
"""

from __future__ import annotations

import json
import logging
import numbers
import os

import numpy as np

from gt_jax.data.errors import DatasetLayoutError
from gt_jax.data.records import ImageRecord
from gt_jax.data.sources import manifest

_log = logging.getLogger(__name__)

MIN_IMAGE_SIDE = 32  # official: Image2Pair skips images with min side < 32.
MIN_BOX_SIDE = 1  # official: boxes with w < 1 or h < 1 are dropped.
SPLITS = ("train", "val")


def annotation_path(root: str, split: str) -> str:
  return os.path.join(root, "annotations", f"instances_{split}2017.json")


def _is_number(x) -> bool:
  return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _check_box(bbox, json_path: str, ann_id) -> None:
  if (not isinstance(bbox, list) or len(bbox) != 4
      or not all(_is_number(v) for v in bbox)):
    raise DatasetLayoutError(
        json_path, f"annotation id {ann_id}: bbox must be 4 numbers, got "
        f"{bbox!r}")


def parse_instances(json_path: str, image_dir: str,
                    min_image_side: int = MIN_IMAGE_SIDE,
                    check_files: bool = True) -> list[ImageRecord]:
  """Parses one `instances_*.json` into filtered ImageRecords.

  Args:
    json_path: the annotation file.
    image_dir: the folder holding the images' `file_name`s.
    min_image_side: images with a shorter side below this are skipped.
    check_files: raise if an image listed in the json has no file.

  Returns:
    One ImageRecord per kept image, in ascending image id, with boxes
    (M, 4) xywh in pixels and meta `image_id`, `labels` (1..80, contiguous in
    ascending category id), `annotation_ids`, `source` = "raw".

  Raises:
    DatasetLayoutError: missing json or images, an annotation that names an
      unknown image or category, or a bbox that is not 4 numbers.
  """
  try:
    with open(json_path, encoding="utf-8") as f:
      data = json.load(f)
  except FileNotFoundError:
    raise DatasetLayoutError(json_path, "annotation file not found") from None
  except ValueError as e:
    raise DatasetLayoutError(json_path, f"not valid JSON ({e})") from None
  for key in ("images", "annotations", "categories"):
    if not isinstance(data.get(key), list):
      raise DatasetLayoutError(json_path, f"missing list {key!r}")
  cat_ids = sorted(c["id"] for c in data["categories"])
  label_of = {cid: i + 1 for i, cid in enumerate(cat_ids)}
  images = {}
  present = set(os.listdir(image_dir)) if os.path.isdir(image_dir) else None
  if check_files and present is None:
    raise DatasetLayoutError(image_dir, "image folder not found")
  for img in data["images"]:
    images[img["id"]] = img
    if check_files and img["file_name"] not in present:
      raise DatasetLayoutError(
          os.path.join(image_dir, img["file_name"]),
          f"image id {img['id']} listed in {json_path} has no file")
  per_image: dict[int, list[dict]] = {i: [] for i in images}
  for ann in data["annotations"]:
    if ann.get("image_id") not in images:
      raise DatasetLayoutError(
          json_path, f"annotation id {ann.get('id')} names image_id "
          f"{ann.get('image_id')!r}, which is not in 'images'")
    _check_box(ann.get("bbox"), json_path, ann.get("id"))
    if ann.get("category_id") not in label_of:
      raise DatasetLayoutError(
          json_path, f"annotation id {ann.get('id')} has unknown "
          f"category_id {ann.get('category_id')!r}")
    per_image[ann["image_id"]].append(ann)

  records, small, empty = [], 0, 0
  for image_id in sorted(images):
    img = images[image_id]
    if min(img["width"], img["height"]) < min_image_side:
      small += 1
      continue
    kept = [a for a in sorted(per_image[image_id], key=lambda a: a["id"])
            if not a.get("iscrowd", 0) and not a.get("ignore", False)
            and a["bbox"][2] >= MIN_BOX_SIDE and a["bbox"][3] >= MIN_BOX_SIDE]
    if not kept:
      empty += 1
      continue
    records.append(ImageRecord(
        os.path.join(image_dir, img["file_name"]), img["height"],
        img["width"], np.asarray([a["bbox"] for a in kept], np.float64),
        {"image_id": int(image_id), "source": "raw",
         "labels": np.asarray([label_of[a["category_id"]] for a in kept],
                              np.int64),
         "annotation_ids": np.asarray([a["id"] for a in kept], np.int64)}))
  _log.info("%s: kept %d images; skipped %d with a side < %d px and %d "
            "without a valid object", json_path, len(records), small,
            min_image_side, empty)
  return records


def read_coco(root: str, split: str = "train",
              min_image_side: int = MIN_IMAGE_SIDE,
              cache_dir: str | None = None) -> list[ImageRecord]:
  """Reads raw COCO 2017 `split` ("train" or "val") under `root`.

  See `parse_instances` for the result and errors; the index is cached in a
  manifest keyed on the json file and the image folder.
  """
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  json_path = annotation_path(root, split)
  image_dir = os.path.join(root, f"{split}2017")
  if not os.path.exists(json_path):
    raise DatasetLayoutError(json_path, "annotation file not found")
  return manifest.load_or_build(
      f"coco-{split}", root, [json_path, image_dir],
      lambda: parse_instances(json_path, image_dir, min_image_side),
      cache_dir, options=f"min_side={min_image_side}")
