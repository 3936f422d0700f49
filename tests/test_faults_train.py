"""Fault suite, training inputs (issue 10, item 7).

A damaged JPEG in the training data stops the pipeline with one
`DatasetLayoutError` naming the file, from the main process and from grain
worker processes alike (the documented choice: never a silent skip, which
would change the data stream the checkpoints describe). A missing data root
or `init_checkpoint` fails in train.py before anything is built: one line,
no workdir created.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest

import dataset_fixtures as F
from gt_jax.config import load_config
from gt_jax.data import pipeline
from gt_jax.data.errors import DatasetLayoutError
from gt_jax.errors import one_line

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "configs", "globaltrack_r50_fpn.py:tiny")
NAMES = ("GOT-10k_Train_000001", "GOT-10k_Train_000002")


def _got10k(root: str) -> str:
  """Two 4-frame sequences whose boxes pass the official pair filters."""
  tr = os.path.join(root, "train")
  F.write_text(os.path.join(tr, "list.txt"), "\n".join(NAMES) + "\n")
  for n in NAMES:
    d = os.path.join(tr, n)
    F.write_frames(d, [f"{k:08d}.jpg" for k in range(1, 5)], 128, 96)
    F.write_text(os.path.join(d, "groundtruth.txt"), "20,18,40,35\n" * 4)
  return root


def _damage(path: str, how: str) -> None:
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(b"not a jpeg" if how == "garbage" else data[:len(data) // 2])


@pytest.mark.parametrize("workers,how", [(0, "truncated"), (0, "garbage"),
                                         (2, "truncated")])
def test_damaged_training_jpeg_names_the_file(tmp_path, workers, how):
  root = _got10k(str(tmp_path / "GOT-10k"))
  bad = sorted(glob.glob(os.path.join(root, "train", "*", "00000003.jpg")))
  for p in bad:  # every sequence: the first batches must meet one
    _damage(p, how)
  cfg = load_config(TINY, [
      f"data.sources=(('got10k', {root!r}, 1.0),)",
      f"data.num_workers={workers}", f"data.cache_dir={tmp_path / 'cache'}"])
  it, _ = pipeline.make_train_pipeline(cfg, process_index=0, process_count=1)
  try:
    with pytest.raises(DatasetLayoutError) as e:
      for _ in range(8):
        next(it)
  finally:
    it.close()
  msg = one_line(e.value)
  assert e.value.path in bad and msg.startswith(e.value.path), msg
  assert "cannot decode training image" in msg
  assert ("truncated" if how == "truncated" else "not an image") in msg


def _train(tmp_path, *extra):
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu",
             TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("GT_JAX_DEBUG", None)
  return subprocess.run(
      [sys.executable, os.path.join(ROOT, "train.py"), "--config", TINY,
       "--workdir", "w", *extra], capture_output=True, text=True,
      timeout=300, cwd=str(tmp_path), env=env)


@pytest.mark.parametrize("override,needles", [
    ("--config.data.sources=(('got10k', 'data/nowhere', 1.0),)",
     ["data.sources[0]", "'data/nowhere'", "does not exist"]),
    ("--config.init_checkpoint=ckpt/missing",
     ["init_checkpoint='ckpt/missing'", "not found"]),
    ("--config.init_checkpoint=weights.pth",
     ["init_checkpoint='weights.pth'", "converted first"]),
])
def test_train_missing_inputs_fail_before_any_work(tmp_path, override,
                                                   needles):
  (tmp_path / "weights.pth").write_bytes(b"PK\x03\x04")
  r = _train(tmp_path, override)
  lines = [l for l in r.stderr.splitlines() if l.strip()]
  assert r.returncode == 1 and len(lines) == 1, r.stderr
  assert lines[0].startswith("train.py: error: "), lines[0]
  for n in needles:
    assert n in lines[0], lines[0]
  # Checked before the workdir, the model or the compile.
  assert not os.path.exists(tmp_path / "w")
  assert "schedule:" not in r.stdout + r.stderr


def test_train_debug_shows_the_traceback(tmp_path):
  r = _train(tmp_path, "--config.init_checkpoint=nowhere", "--debug")
  assert r.returncode != 0
  assert "Traceback" in r.stderr and "FileNotFoundError" in r.stderr
  assert "check_inputs" in r.stderr
