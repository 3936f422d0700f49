"""Fault suite: the real entry points print one-line errors (issue 10, 7).

Each command is run as a user would (a subprocess from another folder);
each fails before any heavy work, so this file stays short. `--debug`
brings the traceback back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "configs", "globaltrack_r50_fpn.py:tiny")


def _run(args, cwd):
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu",
             TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("GT_JAX_DEBUG", None)
  return subprocess.run([sys.executable, *args], capture_output=True,
                        text=True, timeout=300, cwd=cwd, env=env)


def _one_line(r, prog, *needles):
  # Progress logs (the demo's "[demo ...]" lines) may precede it.
  err = [l for l in r.stderr.splitlines()
         if l.strip() and not l.startswith("[demo ")]
  assert r.returncode == 1, (r.returncode, r.stderr)
  assert len(err) == 1 and "Traceback" not in r.stderr, r.stderr
  assert err[0].startswith(f"{prog}: error: "), err[0]
  for n in needles:
    assert n in err[0], err[0]


@pytest.mark.parametrize("args,prog,needles", [
    (["train.py", "--config", TINY, "--workdir", "w",
      "--config.total_steps", "2"], "train.py", ["--config.total_steps=VALUE"]),
    (["train.py", "--config", TINY.replace(":tiny", ":nope"), "--workdir",
      "w"], "train.py", ["unknown variant 'nope'"]),
    (["evaluate.py", "run", "--benchmark", "lasot", "--root", "nowhere",
      "--random-init", "0", "--results", "r", "--config", TINY],
     "evaluate.py", ["nowhere", "folder not found"]),
    (["evaluate.py", "recall", "--benchmark", "folder", "--root", ".",
      "--random-init", "0", "--out", "r", "--config", TINY,
      "--config.model.nope=1"], "evaluate.py", ["'model.nope'"]),
    (["track.py", "--frames", "seq", "--box", "1,2,3,4", "--random-init", "0",
      "--config", "missing.py", "--out", "o"], "track.py",
     ["missing.py"]),
    (["-m", "gt_jax.demo", "--workdir", "w", "--config.nope=1"],
     "python -m gt_jax.demo", ["'nope'"]),
    # Were accepted: 1-pixel drawings, a late error, a silently ignored rate.
    (["track.py", "--frames", "seq", "--box", "1,2,30,30", "--random-init",
      "0", "--config", TINY, "--out", "o", "--gif-every", "0"], "track.py",
     ["--gif-every 0: must be >= 1"]),
    (["track.py", "--frames", "seq", "--box", "1,2,30,30", "--random-init",
      "0", "--config", TINY, "--out", "o", "--video-max-side", "-5"],
     "track.py", ["--video-max-side -5: must be >= 1"]),
    (["track.py", "--frames", "seq", "--box", "1,2,30,30", "--random-init",
      "0", "--config", TINY, "--out", "o", "--fps", "-1"], "track.py",
     ["--fps -1.0"]),
    # A file given as the model folder (was "directory not found"), and a
    # damaged one (was orbax's "Metadata file ... does not exist").
    (["track.py", "--frames", "seq", "--box", "1,2,30,30", "--checkpoint",
      "weights.pth", "--out", "o"], "track.py",
     ["weights.pth: a file, not a checkpoint folder"]),
    (["track.py", "--frames", "seq", "--box", "1,2,30,30", "--checkpoint",
      "damaged", "--out", "o"], "track.py",
     ["damaged: damaged or incomplete checkpoint"]),
    (["evaluate.py", "run", "--benchmark", "folder", "--root", ".",
      "--subset", "seq", "--random-init", "0", "--results", "r", "--config",
      TINY, "--workers", "-1"], "evaluate.py", ["--workers -1: must be >= 0"]),
    (["evaluate.py", "report", "--benchmark", "lasot", "--root",
      "weights.pth", "--results", "r", "--out", "o"], "evaluate.py",
     ["weights.pth: a file, not the lasot folder"]),
    # Would silently train a fresh "cross" arm into the missing folder.
    (["-m", "gt_jax.ablations", "--workdir", "w", "--demo_workdir",
      "runs/nodemo"], "python -m gt_jax.ablations", ["runs/nodemo"]),
])
def test_entry_points_print_one_line(tmp_path, args, prog, needles):
  if args[0].endswith(".py"):
    args = [os.path.join(ROOT, args[0])] + args[1:]
  # A real sequence, so that commands reach their config.
  from dataset_fixtures import write_frames, write_text
  write_frames(str(tmp_path / "seq"), ["0001.jpg", "0002.jpg"])
  write_text(str(tmp_path / "seq" / "groundtruth.txt"), "2,2,10,10\n" * 2)
  (tmp_path / "weights.pth").write_bytes(b"PK\x03\x04")
  for item in ("variables", "info"):  # the folders, without orbax's files
    os.makedirs(tmp_path / "damaged" / item)
  _one_line(_run(args, str(tmp_path)), prog, *needles)


def test_convert_dot_overwrite_and_debug(tmp_path):
  shutil.copy(os.path.join(ROOT, "tests", "fixtures",
                           "tiny_qg_rcnn_legacy.pth"), tmp_path / "in.pth")
  (tmp_path / "notes.txt").write_text("keep")
  r = _run(["-m", "gt_jax.convert", "in.pth", ".", "--overwrite",
            "--config", TINY], str(tmp_path))
  _one_line(r, "python -m gt_jax.convert", "contains the input")
  assert sorted(os.listdir(tmp_path)) == ["in.pth", "notes.txt"]
  r = _run(["-m", "gt_jax.convert", "in.pth", ".", "--overwrite", "--debug"],
           str(tmp_path))
  assert r.returncode != 0 and "Traceback" in r.stderr
  assert "OverwriteRefusedError" in r.stderr
