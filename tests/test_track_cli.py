"""track.py end to end on a frames folder, and `evaluate.py run`'s handler.

Both entry points restore the same orbax checkpoint; track.py goes through
`Tracker.init/track`, the runner through its own batched step, so equal
boxes check that the two paths agree frame by frame.
"""

from __future__ import annotations

import argparse
import os
import types

import cv2
import imageio.v3 as iio
import jax
import numpy as np
import pytest

from dataset_fixtures import make_sequences

import track
from gt_jax import checkpoint
from gt_jax.config import load_config
from gt_jax.evaluation import results_io
from gt_jax.evaluation import run_cli
from gt_jax.model.build import build_model, init_variables

CONFIG = "configs/globaltrack_r50_fpn.py:tiny"
BOX = (20, 18, 40, 35)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("bench"))
  rec, = make_sequences(root, (("clip", [(96, 128)] * 5, BOX),), seed=2)
  cfg = load_config(CONFIG)
  variables = init_variables(build_model(cfg.model), jax.random.PRNGKey(4))
  ckpt = str(tmp_path_factory.mktemp("ckpt") / "tiny")
  checkpoint.save_variables(ckpt, variables)
  return root, rec, ckpt


def test_track_frames_folder_end_to_end(setup, tmp_path):
  root, rec, ckpt = setup
  out = str(tmp_path / "out")
  rc = track.main(["--frames", os.path.dirname(rec.frame_paths[0]),
                   "--box", ",".join(str(v) for v in BOX),
                   "--config", CONFIG, "--checkpoint", ckpt, "--out", out,
                   "--gif-max-side", "64"])
  assert rc == 0
  boxes = results_io.read_boxes(os.path.join(out, "boxes.txt"),
                                comma_only=True)
  scores = results_io.read_values(os.path.join(out, "scores.txt"))
  assert boxes.shape == (5, 4) and scores.shape == (5,)
  np.testing.assert_array_equal(boxes[0], BOX)
  assert scores[0] == 1.0 and np.all((scores[1:] >= 0) & (scores[1:] <= 1))
  gif = iio.imread(os.path.join(out, "track.gif"))
  assert gif.shape[:3] == (5, 48, 64)

  # The same sequence through `evaluate.py run` (batched runner).
  parser = argparse.ArgumentParser()
  run_cli.add_run_parser(parser.add_subparsers(dest="command"))
  results = str(tmp_path / "results")
  args = parser.parse_args([
      "run", "--benchmark", "folder", "--root", root, "--config", CONFIG,
      "--checkpoint", ckpt, "--results", results, "--batch-size", "4",
      "--workers", "1", "--no-progress"])
  assert args.handler(args, []) == 0
  ran = results_io.read_boxes(os.path.join(results, "GlobalTrack",
                                           "clip.txt"), comma_only=True)
  np.testing.assert_allclose(ran, boxes, atol=1e-3)
  assert np.abs(ran[1:] - ran[0]).max() > 1.0  # the output is not constant.


def test_track_errors(setup, tmp_path, capsys):
  _, rec, ckpt = setup
  frames = os.path.dirname(rec.frame_paths[0])
  base = ["--config", CONFIG, "--checkpoint", ckpt, "--out", str(tmp_path)]
  assert track.main(["--frames", frames, "--box", "1,2,3"] + base) == 1
  assert "--box '1,2,3'" in capsys.readouterr().err
  assert track.main(["--frames", frames, "--box", "1,2,0,4"] + base) == 1
  assert "w, h > 0" in capsys.readouterr().err
  assert track.main(["--frames", str(tmp_path / "nope"), "--box",
                     "1,2,3,4"] + base) == 1
  assert "no such folder" in capsys.readouterr().err
  assert track.main(["--video", str(tmp_path / "nope.mp4"), "--box",
                     "1,2,3,4"] + base) == 1
  assert "nope.mp4" in capsys.readouterr().err


def test_list_frames_natural_order(tmp_path):
  for n in ("10.jpg", "2.jpg", "1.png", "notes.txt"):
    (tmp_path / n).write_bytes(b"")
  names = [os.path.basename(p) for p in track.list_frames(str(tmp_path))]
  assert names == ["1.png", "2.jpg", "10.jpg"]


def test_video_frames_are_rgb(tmp_path):
  path = str(tmp_path / "v.avi")
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10,
                           (64, 48))
  assert writer.isOpened()
  for _ in range(3):
    bgr = np.zeros((48, 64, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's BGR order
    writer.write(bgr)
  writer.release()
  info = track.VideoInfo()
  got = list(track.iter_frames(types.SimpleNamespace(frames=None, video=path),
                               info))
  assert [t for t, _ in got] == [0, 1, 2] and info.container_frames == 3
  frames = [f for _, f in got]
  assert len(frames) == 3 and frames[0].shape == (48, 64, 3)
  r, g, b = frames[0].reshape(-1, 3).mean(0)
  assert r > 150 and g < 50 and b < 50
