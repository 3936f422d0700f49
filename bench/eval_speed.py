"""Benchmark-runner throughput: frames/s for B sequences per device step.

Tracks 4 synthetic JPEG sequences with `runner.run_benchmark` (random
weights; speed does not depend on them) after a warm-up run that compiles
the query and batched search steps, and prints per (config, B):
  end-to-end   all frames / wall time (queries, JPEG decoding in background
               threads, result files included),
  search       search frames / their amortised step times (the runner's
               per-frame times of frames 1..N-1).

  python bench/eval_speed.py                       # tiny and official, B=1,4
  python bench/eval_speed.py --configs official --frames 3

Defaults: tiny 96x128 frames (canvas 128x160), 20 frames per sequence;
official 480x640 frames (canvas 800x1088), 3 frames per sequence (on CPU an
official step takes seconds).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import jax
import numpy as np
from PIL import Image

# Run from anywhere: the repository root holds the gt_jax package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position

from gt_jax.config import load_config
from gt_jax.data.records import SequenceRecord
from gt_jax.evaluation import results_io
from gt_jax.evaluation import runner
from gt_jax.tracking.engine import SearchEngine
from gt_jax.model.build import build_model, init_variables

CONFIGS = {
    # name: (config spec, frame (H, W), default frames per sequence)
    "tiny": ("configs/globaltrack_r50_fpn.py:tiny", (96, 128), 20),
    "official": ("configs/globaltrack_r50_fpn.py", (480, 640), 3),
}
NUM_SEQUENCES = 4


def make_sequences(root: str, hw: tuple[int, int], n: int, count: int,
                   tag: str) -> list[SequenceRecord]:
  rng = np.random.default_rng(0)
  out = []
  for s in range(count):
    paths = []
    for t in range(n):
      p = os.path.join(root, f"{tag}{s}_{t:04d}.jpg")
      img = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
      Image.fromarray(img).save(p, quality=85)
      paths.append(p)
    box = np.tile([hw[1] / 4, hw[0] / 4, hw[1] / 3, hw[0] / 3], (n, 1))
    out.append(SequenceRecord(f"{tag}{s}", paths, box, np.ones(n, bool),
                              np.ones(n, bool)))
  return out


def measure(name: str, batch_sizes, frames: int | None, workers: int):
  spec, hw, default_frames = CONFIGS[name]
  n = frames or default_frames
  cfg = load_config(spec)
  model = build_model(cfg.model)
  engine = SearchEngine(
      cfg, init_variables(model, jax.random.PRNGKey(0)), model)
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    seqs = make_sequences(tmp, hw, n, NUM_SEQUENCES, "s")
    for b in batch_sizes:
      warm = make_sequences(tmp, hw, 2, b, f"w{b}_")
      t0 = time.perf_counter()
      runner.run_benchmark(engine, warm, os.path.join(tmp, f"warm{b}"),
                           batch_size=b, num_workers=workers, progress=False)
      compile_s = time.perf_counter() - t0
      out = os.path.join(tmp, f"run{b}")
      s = runner.run_benchmark(engine, seqs, out, batch_size=b,
                               num_workers=workers, progress=False)
      times = np.concatenate([
          results_io.read_values(os.path.join(out, "times",
                                              f"{r.name}_time.txt"))[1:]
          for r in seqs])
      rows.append((name, b, NUM_SEQUENCES * n, compile_s, s.fps,
                   len(times) / times.sum()))
  return rows


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--configs", default="tiny,official")
  p.add_argument("--batch-sizes", default="1,4")
  p.add_argument("--frames", type=int, default=None,
                 help="frames per sequence (default: per config)")
  p.add_argument("--workers", type=int, default=4)
  a = p.parse_args()
  print(f"backend: {jax.default_backend()} ({jax.devices()[0].device_kind}),"
        f" {os.cpu_count()} CPUs")
  print("| config | B | frames | warm-up (compile) s | end-to-end fps | "
        "search fps |")
  print("|---|---|---|---|---|---|")
  for name in a.configs.split(","):
    for row in measure(name, [int(b) for b in a.batch_sizes.split(",")],
                       a.frames, a.workers):
      print("| %s | %d | %d | %.1f | %.2f | %.2f |" % row, flush=True)


if __name__ == "__main__":
  main()
