"""Training-pipeline throughput at the official size, by worker count.

Writes a small on-disk fixture of 640x480 JPEGs (COCO-like images with 8
instances and short GOT-like sequences) to a temp dir, then times the grain
pipeline of `gt_jax.data.pipeline` with the default (official) config:
(1333, 800) rescale, 800x1344 canvases, up to 8 instances, photometric on.

  python bench/data_speed.py [--workers 0,1,2] [--batches 8] [--batch 4]

Prints pairs/s after the first batch (start-up, incl. worker spawn, is
reported separately) and a per-stage profile of one pair in this process.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import types

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from gt_jax.config import load_config  # pylint: disable=g-import-not-at-top
from gt_jax.data import pairs  # pylint: disable=g-import-not-at-top
from gt_jax.data import pipeline  # pylint: disable=g-import-not-at-top
from gt_jax.data import transforms  # pylint: disable=g-import-not-at-top

_CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs",
                       "globaltrack_r50_fpn.py")
_H, _W = 480, 640


def _photo(rng: np.random.Generator) -> np.ndarray:
  # Smooth colour gradients plus noise: compresses like a photo, not a flat
  # colour, so decode time is realistic.
  y, x = np.mgrid[0:_H, 0:_W].astype(np.float32)
  base = np.stack([x / _W, y / _H, (x + y) / (_W + _H)], -1) * 255
  img = base * rng.uniform(0.5, 1.0, 3) + rng.normal(0, 20, (_H, _W, 3))
  return np.clip(img, 0, 255).astype(np.uint8)


def write_fixture(root: str, num_images: int = 16, num_seqs: int = 4,
                  frames: int = 6, seed: int = 0):
  """Writes JPEGs; returns (image records, sequence records)."""
  rng = np.random.default_rng(seed)
  images = []
  for i in range(num_images):
    path = os.path.join(root, f"img_{i:03d}.jpg")
    Image.fromarray(_photo(rng)).save(path, quality=90)
    xy = rng.uniform(0, 400, (10, 2))
    wh = rng.uniform(30, 200, (10, 2))
    images.append(types.SimpleNamespace(
        path=path, height=_H, width=_W, boxes=np.concatenate([xy, wh], 1),
        meta={}))
  seqs = []
  for s in range(num_seqs):
    paths = []
    for f in range(frames):
      path = os.path.join(root, f"seq_{s}_{f:03d}.jpg")
      Image.fromarray(_photo(rng)).save(path, quality=90)
      paths.append(path)
    boxes = np.tile([200.0, 150.0, 120.0, 90.0], (frames, 1))
    seqs.append(types.SimpleNamespace(
        name=f"seq_{s}", frame_paths=paths, boxes=boxes,
        valid=np.ones(frames, bool), meta={}))
  return images, seqs


def time_pipeline(cfg, images, seqs, workers: int,
                  batches: int) -> tuple[float, float]:
  """Returns (start-up seconds incl. the first batch, pairs per second)."""
  cfg.data.num_workers = workers
  srcs = {"coco": pipeline.build_pair_source("coco", images, "images", cfg),
          "got10k": pipeline.build_pair_source("got10k", seqs, "sequences",
                                               cfg)}
  t0 = time.perf_counter()
  it, _ = pipeline.make_pipeline(srcs, {"coco": 0.5, "got10k": 0.5}, cfg,
                                 process_index=0, process_count=1)
  next(it)
  t1 = time.perf_counter()
  for _ in range(batches):
    next(it)
  t2 = time.perf_counter()
  return t1 - t0, batches * cfg.global_batch_size / (t2 - t1)


def profile_stages(cfg, images, repeats: int = 5) -> dict[str, float]:
  """Milliseconds per image for each stage of the transform, in-process."""
  t = transforms.PairTransform.from_config(cfg)
  rng = np.random.default_rng(0)
  times = {k: 0.0 for k in ("decode", "photometric", "resize", "normalise",
                            "canvas")}
  for r in range(repeats):
    t0 = time.perf_counter()
    img = pairs.load_rgb(images[r % len(images)].path)
    t1 = time.perf_counter()
    x = transforms.photometric_distort(
        img.astype(np.float32), transforms.draw_photometric(rng))
    t2 = time.perf_counter()
    s = transforms.rescale_factor(_H, _W, t.scale)
    nh, nw = transforms.rescaled_size(_H, _W, s)
    import cv2  # pylint: disable=g-import-not-at-top
    x = cv2.resize(x, (nw, nh), interpolation=cv2.INTER_CUBIC)
    t3 = time.perf_counter()
    x -= t.mean
    x /= t.std
    t4 = time.perf_counter()
    out = np.zeros(t.canvas[True] + (3,), np.float32)
    out[:nh, :nw] = x
    t5 = time.perf_counter()
    for k, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
      times[k] += dt * 1000 / repeats
  return times


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--workers", default="0,1,2")
  ap.add_argument("--batches", type=int, default=8)
  ap.add_argument("--batch", type=int, default=4, help="global batch size")
  args = ap.parse_args()
  cfg = load_config(_CONFIG)  # official settings
  cfg.global_batch_size = args.batch
  cfg.data.prefetch = 2
  with tempfile.TemporaryDirectory() as root:
    images, seqs = write_fixture(root)
    print(f"fixture: {len(images)} images + {len(seqs)} sequences of "
          f"{_W}x{_H} JPEGs; scale {tuple(cfg.preprocess.scale)}, canvas "
          f"{tuple(cfg.data.canvas_landscape)}, max_instances "
          f"{cfg.data.max_instances}, batch {args.batch}, cpus "
          f"{os.cpu_count()}")
    print("stage ms/image (in-process): " + ", ".join(
        f"{k} {v:.1f}" for k, v in profile_stages(cfg, images).items()))
    print(f"{'workers':>7} | {'start-up s':>10} | {'pairs/s':>8}")
    for w in (int(v) for v in args.workers.split(",")):
      start, rate = time_pipeline(cfg, images, seqs, w, args.batches)
      print(f"{w:>7} | {start:>10.2f} | {rate:>8.2f}", flush=True)


if __name__ == "__main__":
  main()
