"""Tiny on-disk dataset fixtures in the real layouts (datasets.md recipes).

Shared by the reader, benchmark, runner, recall and CLI tests. Every builder
writes under a given root and returns that root; images are tiny JPEGs.
"""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from gt_jax.data.records import SequenceRecord
from gt_jax.data.synthetic.layouts import COCO_IDS, COCO_NAMES


def write_text(path: str, text: str) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", newline="") as f:  # Keep "\r\n" as written.
    f.write(text)
  return path


def write_jpeg(path: str, width: int = 32, height: int = 24,
               seed: int = 0) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  rng = np.random.default_rng(seed)
  pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
  Image.fromarray(pixels).save(path, quality=90)
  return path


def write_frames(folder: str, names, width: int = 32, height: int = 24):
  for k, name in enumerate(names):
    write_jpeg(os.path.join(folder, name), width, height, seed=k)


# --------------------------------------------------------------------- COCO
# The 80 real COCO categories with their sparse ids (tfds insists on 80).
COCO_CATEGORIES = [{"id": i, "name": n.replace("_", " "),
                    "supercategory": "x"}
                   for i, n in zip(COCO_IDS, COCO_NAMES)]

# (image id, width, height) per split; annotations below.
COCO_IMAGES = {"train": [(1, 48, 40), (2, 48, 40), (3, 64, 48), (4, 40, 24)],
               "val": [(5, 48, 40), (6, 48, 40)]}
COCO_ANNOTATIONS = {
    "train": [
        # (ann id, image id, category id, bbox, iscrowd)
        (10, 2, 1, [2.5, 3.0, 20.25, 10.5], 0),   # fractional, kept
        (11, 2, 90, [1.0, 1.0, 10.0, 10.0], 1),   # crowd, dropped
        (12, 3, 3, [5.0, 5.0, 10.0, 12.0], 0),    # kept
        (13, 3, 18, [0.0, 0.0, 0.5, 10.0], 0),    # w < 1, dropped
        (14, 3, 90, [30.0, 20.0, 20.0, 16.0], 0), # kept, label 80
        (15, 4, 5, [1.0, 1.0, 10.0, 10.0], 0),    # image side 24 < 32
    ],
    "val": [(20, 5, 5, [4.0, 4.0, 8.0, 8.0], 0),
            (21, 6, 2, [10.0, 10.0, 20.0, 20.0], 0)],
}


def coco_instances(split: str) -> dict:
  images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": w, "height": h,
             "license": 1, "coco_url": "", "flickr_url": "",
             "date_captured": ""} for i, w, h in COCO_IMAGES[split]]
  anns = [{"id": a, "image_id": im, "category_id": c, "bbox": b,
           "area": float(b[2] * b[3]), "iscrowd": crowd,
           "segmentation": ({"counts": [1], "size": [1, 1]} if crowd
                            else [[0.0, 0.0, 1.0, 0.0, 1.0, 1.0]])}
          for a, im, c, b, crowd in COCO_ANNOTATIONS[split]]
  return {"info": {}, "licenses": [], "images": images, "annotations": anns,
          "categories": COCO_CATEGORIES}


def make_coco(root: str) -> str:
  for split in ("train", "val"):
    write_text(os.path.join(root, "annotations", f"instances_{split}2017.json"),
               json.dumps(coco_instances(split)))
    for i, w, h in COCO_IMAGES[split]:
      write_jpeg(os.path.join(root, f"{split}2017", f"{i:012d}.jpg"), w, h, i)
  return root


# ------------------------------------------------------------------ GOT-10k
GOT_META = ("[METAINFO]\nurl: x\nbegin: 00:00:01\nend: 00:00:02\n"
            "anno_fps: 10Hz\nobject_class: dog\nmotion_class: running\n"
            "major_class: animal\nroot_class: animal\nmotion_adverb: slowly\n"
            "resolution: (32, 24)\n")


def _got_seq(d: str, n: int) -> None:
  write_frames(d, [f"{k:08d}.jpg" for k in range(1, n + 1)])
  gt = ["2,3,10,8", "3,3,10,8", "-1,-1,-1,-1"][:n]
  write_text(os.path.join(d, "groundtruth.txt"), "\n".join(gt) + "\n")
  write_text(os.path.join(d, "absence.label"), "\n".join("001"[:n]) + "\n")
  write_text(os.path.join(d, "cover.label"), "\n".join("870"[:n]) + "\n")
  write_text(os.path.join(d, "cut_by_image.label"), "0\n" * n)
  write_text(os.path.join(d, "meta_info.ini"), GOT_META)


def make_got10k(root: str) -> str:
  tr = os.path.join(root, "train")
  write_text(os.path.join(tr, "list.txt"),
             "GOT-10k_Train_000001\nGOT-10k_Train_000002\n")
  _got_seq(os.path.join(tr, "GOT-10k_Train_000001"), 3)
  _got_seq(os.path.join(tr, "GOT-10k_Train_000002"), 2)
  va = os.path.join(root, "val")
  write_text(os.path.join(va, "list.txt"), "GOT-10k_Val_000001")
  _got_seq(os.path.join(va, "GOT-10k_Val_000001"), 3)
  te = os.path.join(root, "test", "GOT-10k_Test_000001")
  write_text(os.path.join(root, "test", "list.txt"), "GOT-10k_Test_000001\n")
  write_frames(te, [f"{k:08d}.jpg" for k in range(1, 5)])
  write_text(os.path.join(te, "groundtruth.txt"), "2,3,10,8\n")
  return root


# -------------------------------------------------------------------- LaSOT
def _lasot_seq(d: str, n: int) -> None:
  write_frames(os.path.join(d, "img"),
               [f"{k:08d}.jpg" for k in range(1, n + 1)])
  gt = ["4,4,10,8", "5,4,10,8", "0,0,0,0"][:n]
  write_text(os.path.join(d, "groundtruth.txt"), "\n".join(gt) + "\n")
  write_text(os.path.join(d, "full_occlusion.txt"), ",".join("001"[:n]))
  write_text(os.path.join(d, "out_of_view.txt"), ",".join("000"[:n]))
  write_text(os.path.join(d, "nlp.txt"), "white airplane on the ground")


def make_lasot(root: str) -> str:
  _lasot_seq(os.path.join(root, "airplane", "airplane-1"), 3)
  _lasot_seq(os.path.join(root, "bear", "bear-2"), 2)
  return root


# ---------------------------------------------------------------------- OTB
OTB_RANGES = {"David": (3, 5)}  # Injected in place of the official table.


def make_otb(root: str) -> str:
  def seq(d, n, files, digits=4):
    write_frames(os.path.join(root, d, "img"),
                 [f"{k:0{digits}d}.jpg" for k in range(1, n + 1)])
    for f, text in files.items():
      write_text(os.path.join(root, d, f), text)

  seq("Basketball", 3, {"groundtruth_rect.txt":
                        "1,2,10,8\n2,2,10,8\n3,2,10,8\n"})
  seq("Crossing", 2, {"groundtruth_rect.txt": "1\t2\t10\t8\n2\t2\t10\t8\n"})
  seq("Jogging", 2, {"groundtruth_rect.1.txt": "1,2,10,8\n1,2,10,8\n",
                     "groundtruth_rect.2.txt": "5 6 10 8\n5 6 10 8\n"})
  seq("Human4", 2, {"groundtruth_rect.1.txt": "",
                    "groundtruth_rect.2.txt": "1,1,5,5\n1,1,5,5\n"})
  seq("David", 5, {"groundtruth_rect.txt": "1,1,5,5\n1,1,5,5\n1,1,5,5\n"})
  seq("Board", 2, {"groundtruth_rect.txt": "1,1,5,5\n1,1,5,5\n"}, digits=5)
  return root


# --------------------------------------------------------------------- UAV
UAV_TABLE = {"bird1_1": ("bird1", 1, 2), "bird1_2": ("bird1", 4, 6),
             "bike1": ("bike1", 1, 3)}


def make_uav(root: str) -> str:
  seq = os.path.join(root, "data_seq", "UAV123")
  for folder, n in (("bird1", 6), ("bike1", 3)):
    write_frames(os.path.join(seq, folder),
                 [f"{k:06d}.jpg" for k in range(1, n + 1)])
  anno = os.path.join(root, "anno", "UAV123")
  write_text(os.path.join(anno, "bird1_1.txt"), "1,1,5,5\n1,1,5,5\n")
  write_text(os.path.join(anno, "bird1_2.txt"),
             "2,2,5,5\nNaN,NaN,NaN,NaN\n3,3,5,5\n")
  write_text(os.path.join(anno, "bike1.txt"), "1,1,5,5\n1,1,5,5\n1,1,5,5\n")
  return root


# -------------------------------------------------------------- TrackingNet
TN_TRAIN = "-abcDEF_123_0"


def make_trackingnet(root: str) -> str:
  tr = os.path.join(root, "TRAIN_0")
  rows = "".join(f"{k + 1},1,5,5\r\n" for k in range(12))
  write_text(os.path.join(tr, "anno", f"{TN_TRAIN}.txt"), rows)
  write_frames(os.path.join(tr, "frames", TN_TRAIN),
               [f"{k}.jpg" for k in range(12)])
  te = os.path.join(root, "TEST")
  write_text(os.path.join(te, "anno", "xyz_0.txt"), "4,4,10,8")
  write_frames(os.path.join(te, "frames", "xyz_0"),
               [f"{k}.jpg" for k in range(3)])
  return root


# -------------------------------------------------------------------- OxUvA
def make_oxuva(root: str) -> str:
  write_frames(os.path.join(root, "images", "dev", "vid0000"),
               [f"{k:06d}.jpeg" for k in range(31)])
  write_text(os.path.join(root, "tasks", "dev.csv"),
             "vid0000,obj0000,0,30,0.1,0.5,0.2,0.6\n")
  write_text(os.path.join(root, "annotations", "dev.csv"),
             "vid0000,obj0000,20,elephant,unknown,unknown,0,present,"
             "0.1,0.5,0.2,0.6\n"
             "vid0000,obj0000,20,elephant,unknown,unknown,30,absent,"
             "0.0,0.0,0.0,0.0\n")
  return root


# ---------------------------------------------------------------------- TLP
def make_tlp(root: str) -> str:
  d = os.path.join(root, "Alladin")
  write_frames(os.path.join(d, "img"), [f"{k:05d}.jpg" for k in range(1, 5)])
  write_text(os.path.join(d, "groundtruth_rect.txt"),
             "1,4,4,10,8,0\n2,5,4,10,8,0\n3,0,0,0,0,1\n4,6,4,10,8,0\n")
  return root


# ------------------------------------------------ tracking sequences (frames)
# (name, frame sizes (H, W), init box x,y,w,h). Tiny scale (160, 128):
# 96x128 -> 120x160 and 100x128 -> 125x160 share the canvas 128x160;
# 100x100 -> 128x128 is another canvas (a second group, and in "mid" a
# single frame of another size inside a 128x160 sequence).
SEQS = (
    ("a", [(96, 128)] * 4, (20, 18, 30, 25)),
    ("b", [(100, 128)] * 6, (50, 40, 22, 30)),
    ("c", [(96, 128)] * 1, (10, 10, 40, 40)),
    ("mid", [(96, 128)] * 2 + [(100, 100)] + [(96, 128)] * 2, (60, 30, 25, 20)),
    ("e", [(100, 100)] * 3, (30, 30, 35, 35)),
    ("f", [(96, 128)] * 7, (5, 50, 50, 30)),
)


def _frame(rng, hw):
  h, w = hw
  yy, xx = np.mgrid[:h, :w]
  img = np.stack([xx * 2, yy * 2, (xx + yy)], -1).astype(np.float64)
  cy, cx = rng.uniform(20, h - 20), rng.uniform(20, w - 20)
  img += 120 * np.exp(-((yy - cy)**2 + (xx - cx)**2) / 200.0)[..., None]
  img += rng.normal(0, 8, img.shape)
  return np.clip(img, 0, 255).astype(np.uint8)


def make_sequences(root, seqs=SEQS, seed=0):
  rng = np.random.default_rng(seed)
  out = []
  for name, sizes, box in seqs:
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    paths = []
    for t, hw in enumerate(sizes):
      p = os.path.join(d, f"{t + 1:04d}.jpg")
      Image.fromarray(_frame(rng, hw)).save(p, quality=90)
      paths.append(p)
    n = len(sizes)
    boxes = np.tile(np.asarray(box, np.float64), (n, 1))
    # The generic "folder" benchmark layout, for the command-line tests.
    np.savetxt(os.path.join(d, "groundtruth.txt"), boxes, fmt="%g",
               delimiter=",")
    out.append(SequenceRecord(name, paths, boxes, np.ones(n, bool),
                              np.ones(n, bool)))
  return out
