"""COCO 2017 through a prepared tensorflow-datasets directory, without TF.

Reading (toolchain-notes §1): `tfds.data_source('coco/2017:1.1.0', ...)`. The
pinned version makes tfds build a read-only builder from the prepared
metadata instead of the `Coco` class, whose `_info` needs TensorFlow.
Decoded examples hold Python lists per object field (stacked here); `bbox` is
`[ymin, xmin, ymax, xmax]` normalised by the image size; `label` is the
0-based index into the JSON categories (ascending id), so GlobalTrack's
contiguous label is `label + 1`. Crowd boxes and empty images are stored, so
the legacy filters (legacy-semantics §13.4) are applied here.

Preparing (toolchain-notes §2): `prepare_coco_tfds` runs the stock builder's
example generator through a subclass that declares `np.int64` instead of
`tf.int64` and reads a local raw COCO folder, giving the same files as a
TF-based preparation.
"""

from __future__ import annotations

import io
import logging
import os
from typing import Any, Sequence

import numpy as np
from PIL import Image

from gt_jax.data.errors import DatasetLayoutError
from gt_jax.data.records import ImageRecord
from gt_jax.data.sources import manifest
from gt_jax.data.sources.coco import MIN_BOX_SIDE, MIN_IMAGE_SIDE

_log = logging.getLogger(__name__)

DATASET = "coco/2017:1.1.0"  # Pinned: the unpinned name needs TensorFlow.
SPLITS = ("train", "validation")
_RAW_SPLITS = {"train": "train2017", "validation": "val2017"}


def _prepared_dir(data_dir: str) -> str:
  return os.path.join(data_dir, "coco", "2017", "1.1.0")


def open_source(data_dir: str, split: str = "train", decode_images=True):
  """Returns the tfds random-access source (`len`, `[i]`, picklable).

  Args:
    data_dir: the tfds data dir (holding `coco/2017/1.1.0/`).
    split: a tfds split, e.g. "train", "validation", "train[:10%]".
    decode_images: False returns the raw JPEG bytes in `image`.

  Raises:
    DatasetLayoutError: the prepared directory or the split is missing.
  """
  import tensorflow_datasets as tfds  # Heavy import; only when used.

  prepared = _prepared_dir(data_dir)
  if not os.path.isfile(os.path.join(prepared, "dataset_info.json")):
    raise DatasetLayoutError(
        prepared, "no prepared tfds coco/2017 1.1.0 here (dataset_info.json "
        "missing); see prepare_coco_tfds")
  decoders = None if decode_images else {"image": tfds.decode.SkipDecoding()}
  try:
    return tfds.data_source(DATASET, split=split, data_dir=data_dir,
                            decoders=decoders)
  except (ValueError, KeyError) as e:
    raise DatasetLayoutError(prepared, f"cannot open split {split!r}: {e}"
                             ) from None


def example_to_record(index: int, ex: dict[str, Any], height: int, width: int,
                      min_image_side: int = MIN_IMAGE_SIDE
                      ) -> ImageRecord | None:
  """Turns one decoded tfds example into a filtered ImageRecord (or None).

  Args:
    index: the example's index in its source (stored as `record.path`).
    ex: the decoded example (objects as Python lists).
    height: image height in pixels.
    width: image width in pixels.
    min_image_side: images with a shorter side below this are skipped.

  Returns:
    None when the image is too small or keeps no object; otherwise boxes
    (M, 4) xywh in pixels, meta `image_id`, `labels` (tfds label + 1),
    `annotation_ids`, `source` = "tfds".
  """
  if min(height, width) < min_image_side:
    return None
  objs = ex["objects"]
  bbox = np.asarray(objs["bbox"], np.float64).reshape(-1, 4)
  # [ymin, xmin, ymax, xmax] / (H, W) -> x, y, w, h in pixels.
  x = bbox[:, 1] * width
  y = bbox[:, 0] * height
  w = (bbox[:, 3] - bbox[:, 1]) * width
  h = (bbox[:, 2] - bbox[:, 0]) * height
  crowd = np.asarray(objs["is_crowd"], bool).reshape(-1)
  # float32 storage loses ~1e-7 relative; compare with a small tolerance so a
  # w == 1.0 box is not dropped by rounding.
  tol = 1e-4
  keep = (~crowd & (w >= MIN_BOX_SIDE - tol) & (h >= MIN_BOX_SIDE - tol))
  if not keep.any():
    return None
  labels = np.asarray(objs["label"], np.int64).reshape(-1) + 1
  ids = np.asarray(objs["id"], np.int64).reshape(-1)
  return ImageRecord(
      int(index), height, width, np.stack([x, y, w, h], axis=1)[keep],
      {"image_id": int(ex["image/id"]), "labels": labels[keep],
       "annotation_ids": ids[keep], "source": "tfds"})


class CocoTfds:
  """COCO records from a prepared tfds directory.

  `records` holds the filtered ImageRecords (record.path = source index);
  `image(record)` decodes its uint8 (H, W, 3) image. The index is cached with
  the manifest (scanning 118k examples reads every JPEG header once).
  """

  def __init__(self, data_dir: str, split: str = "train",
               min_image_side: int = MIN_IMAGE_SIDE,
               cache_dir: str | None = None):
    self.data_dir = data_dir
    self.split = split
    self._source = None
    self._min_side = min_image_side
    prepared = _prepared_dir(data_dir)
    files = ([os.path.join(prepared, f) for f in sorted(os.listdir(prepared))]
             if os.path.isdir(prepared) else [prepared])
    self.records: list[ImageRecord] = manifest.load_or_build(
        "coco-tfds", data_dir, files, self._scan, cache_dir,
        options=f"{split}\0min_side={min_image_side}")

  @property
  def source(self):
    if self._source is None:
      self._source = open_source(self.data_dir, self.split)
    return self._source

  def _scan(self) -> list[ImageRecord]:
    raw = open_source(self.data_dir, self.split, decode_images=False)
    records, skipped = [], 0
    for i in range(len(raw)):
      ex = raw[i]
      with Image.open(io.BytesIO(ex["image"])) as img:
        width, height = img.size
      r = example_to_record(i, ex, height, width, self._min_side)
      if r is None:
        skipped += 1
      else:
        records.append(r)
    _log.info("tfds coco %s: kept %d images, skipped %d (small or no valid "
              "object)", self.split, len(records), skipped)
    return records

  def __len__(self) -> int:
    return len(self.records)

  def image(self, record: ImageRecord) -> np.ndarray:
    """Decodes `record`'s image: uint8 (H, W, 3)."""
    return np.asarray(self.source[int(record.path)]["image"])

  def __getstate__(self):
    state = dict(self.__dict__)
    state["_source"] = None  # Re-opened lazily in each worker.
    return state


def read_coco_tfds(data_dir: str, split: str = "train",
                   cache_dir: str | None = None) -> list[ImageRecord]:
  """The filtered ImageRecords of a prepared tfds COCO split."""
  return CocoTfds(data_dir, split, cache_dir=cache_dir).records


def prepare_coco_tfds(raw_root: str, data_dir: str,
                      splits: Sequence[str] = SPLITS) -> str:
  """Prepares `coco/2017` 1.1.0 (array_record) from raw COCO, without TF.

  Args:
    raw_root: raw layout (`annotations/instances_{train,val}2017.json`,
      `train2017/`, `val2017/`).
    data_dir: the tfds data dir to write.
    splits: tfds splits to write ("train", "validation").

  Returns:
    The prepared directory `<data_dir>/coco/2017/1.1.0`.

  Raises:
    DatasetLayoutError: a needed raw file is missing.
    ValueError: from tfds, e.g. when the json does not list 80 categories.
  """
  import tensorflow_datasets as tfds
  from tensorflow_datasets.core import registered
  from tensorflow_datasets.object_detection import coco as tfds_coco

  for split in splits:
    path = os.path.join(raw_root, "annotations",
                        f"instances_{_RAW_SPLITS[split]}.json")
    if not os.path.exists(path):
      raise DatasetLayoutError(path, "annotation file not found")

  with registered.skip_registration():

    class _TfFreeCoco(tfds_coco.Coco):
      """The stock builder with numpy dtypes and a local raw folder."""
      name = "coco"
      # tfds derives checksum files from the defining module's path, which
      # needs the optional `importlib_resources` package; there are no
      # downloads here, so there is no code path to look at.
      code_path = None

      def _info(self):
        objects = tfds.features.Sequence({
            "id": np.int64,
            "area": np.int64,
            "bbox": tfds.features.BBoxFeature(),
            "label": tfds.features.ClassLabel(num_classes=80),
            "is_crowd": np.bool_,
        })
        return tfds.core.DatasetInfo(
            builder=self, description=tfds_coco._DESCRIPTION,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(encoding_format="jpeg"),
                "image/filename": tfds.features.Text(),
                "image/id": np.int64,
                "objects": objects,
            }),
            homepage="http://cocodataset.org/#home",
            citation=tfds_coco._CITATION)

      def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        return [tfds.core.SplitGenerator(
            name=s, gen_kwargs=dict(
                image_dir=raw_root, annotation_dir=raw_root,
                split_name=_RAW_SPLITS[s],
                annotation_type=tfds_coco.AnnotationType.BBOXES,
                panoptic_dir=None)) for s in splits]

  builder = _TfFreeCoco(config="2017", data_dir=data_dir)
  builder.download_and_prepare(file_format="array_record")
  return _prepared_dir(data_dir)
