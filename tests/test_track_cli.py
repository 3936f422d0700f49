"""track.py end to end on a frames folder, and `evaluate.py run`'s handler.

Both entry points restore the same orbax checkpoint; track.py goes through
`Tracker.init/track`, the runner through its own batched step, so equal
boxes check that the two paths agree frame by frame.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


# ---------------------------------------------------------------------------
# Fault suite (issue 10, item 6): streaming outputs, damaged frames, counts.


def _rows(out):
  boxes = results_io.read_boxes(os.path.join(out, "boxes.txt"),
                                comma_only=True)
  scores = results_io.read_values(os.path.join(out, "scores.txt"))
  times = results_io.read_values(os.path.join(out, "times.txt"))
  assert len(boxes) == len(scores) == len(times)
  with open(os.path.join(out, "track.json")) as f:
    return boxes, scores, json.load(f)


def _mp4_frames(path):
  cap = cv2.VideoCapture(path)
  n = 0
  while cap.read()[0]:
    n += 1
  cap.release()
  return n


def _damage(path, keep=40):
  with open(path, "rb") as f:
    data = f.read()
  with open(path, "wb") as f:
    f.write(data[:keep])


def test_track_keeps_rows_and_never_shifts_them(setup, tmp_path, capsys):
  _, rec, ckpt = setup
  src = os.path.dirname(rec.frame_paths[0])
  base = ["--box", ",".join(str(v) for v in BOX), "--config", CONFIG,
          "--checkpoint", ckpt, "--gif-max-side", "64"]
  clean = str(tmp_path / "clean")
  assert track.main(["--frames", src, "--out", clean, "--gif-max-frames",
                     "2"] + base) == 0
  ref_boxes, ref_scores, summary = _rows(clean)
  assert summary["complete"] and summary["frames"] == 5
  assert _mp4_frames(os.path.join(clean, "track.mp4")) == 5
  # Bounded GIF: at most 2 x 2 frames held; the stride doubled once.
  assert iio.imread(os.path.join(clean, "track.gif")).shape[0] == 3

  # A corrupt last frame: stops naming it; the 4 computed rows are kept.
  last = str(tmp_path / "last")
  shutil.copytree(src, last)
  _damage(os.path.join(last, "0005.jpg"))
  out = str(tmp_path / "o_last")
  assert track.main(["--frames", last, "--out", out] + base) == 1
  err = capsys.readouterr().err
  assert "frame 4" in err and "0005.jpg" in err
  assert len(err.strip().splitlines()) == 1
  boxes, scores, summary = _rows(out)
  np.testing.assert_array_equal(boxes, ref_boxes[:4])
  np.testing.assert_array_equal(scores, ref_scores[:4])
  assert not summary["complete"] and summary["frames"] == 4
  assert _mp4_frames(os.path.join(out, "track.mp4")) == 4

  # A corrupt middle frame: stop at it, or (--skip-bad-frames) a nan row
  # and the later rows stay those of their own frames.
  mid = str(tmp_path / "mid")
  shutil.copytree(src, mid)
  _damage(os.path.join(mid, "0003.jpg"))
  out = str(tmp_path / "o_mid")
  assert track.main(["--frames", mid, "--out", out] + base) == 1
  assert "frame 2" in capsys.readouterr().err
  assert len(_rows(out)[0]) == 2
  assert track.main(["--frames", mid, "--out", out, "--skip-bad-frames"] +
                    base) == 0
  boxes, scores, summary = _rows(out)
  assert len(boxes) == 5 and np.isnan(boxes[2]).all() and np.isnan(scores[2])
  np.testing.assert_array_equal(np.delete(boxes, 2, 0),
                                np.delete(ref_boxes, 2, 0))
  assert summary["skipped_frames"] == [2] and summary["complete"]
  assert _mp4_frames(os.path.join(out, "track.mp4")) == 5
  assert "unreadable frame" in capsys.readouterr().err


def _write_avi(path, frames):
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10,
                           frames[0].shape[1::-1])
  for f in frames:
    writer.write(f)
  writer.release()


def test_track_video_damage_and_frame_count(setup, tmp_path, capsys,
                                            monkeypatch):
  _, rec, ckpt = setup
  frames = [cv2.imread(p) for p in rec.frame_paths] * 2  # 10 frames.
  clean = str(tmp_path / "clean.avi")
  _write_avi(clean, frames)
  with open(clean, "rb") as f:
    data = bytearray(f.read())
  starts = [i for i in range(len(data) - 2) if data[i:i + 3] == b"\xff\xd8\xff"]
  assert len(starts) == 10
  paths = {}
  for name, end in (("part", (starts[5] + starts[6]) // 2),
                    ("whole", starts[6])):
    bad = bytearray(data)  # frame 5's JPEG (half, or all with the next
    bad[starts[5]:end] = b"\0" * (end - starts[5])  # chunk's header).
    paths[name] = str(tmp_path / f"{name}.avi")
    with open(paths[name], "wb") as f:
      f.write(bytes(bad))
  trunc_path = str(tmp_path / "trunc.avi")  # cut inside frame 7.
  with open(trunc_path, "wb") as f:
    f.write(bytes(data[:starts[7] + 100]))
  base = ["--box", ",".join(str(v) for v in BOX), "--config", CONFIG,
          "--checkpoint", ckpt, "--no-gif", "--no-video"]

  out = str(tmp_path / "clean")
  assert track.main(["--video", clean, "--out", out] + base) == 0
  ref, _, summary = _rows(out)
  assert len(ref) == 10 and summary["container_frames"] == 10

  for name in ("part", "whole"):
    out = str(tmp_path / name)
    assert track.main(["--video", paths[name], "--out", out] + base) == 1
    assert "frame 5" in capsys.readouterr().err
    np.testing.assert_allclose(_rows(out)[0], ref[:5], atol=1e-3)
  # A damaged frame: skipped, frames 6..9 stay on rows 6..9.
  out = str(tmp_path / "part")
  assert track.main(["--video", paths["part"], "--out", out,
                     "--skip-bad-frames"] + base) == 0
  boxes, _, summary = _rows(out)
  assert summary["skipped_frames"] == [5] and np.isnan(boxes[5]).all()
  np.testing.assert_allclose(np.delete(boxes, 5, 0), np.delete(ref, 5, 0),
                             atol=1e-3)
  # The damage also took the next packet (OpenCV cannot tell where it
  # resumed): the later rows are not trusted, exit 1 saying so.
  out = str(tmp_path / "whole")
  assert track.main(["--video", paths["whole"], "--out", out,
                     "--skip-bad-frames"] + base) == 1
  assert "rows after 5 may belong to later frames" in capsys.readouterr().err
  assert _rows(out)[2]["rows_may_be_shifted_after"] == 5

  # A truncated file: stops at frame 7 with rows 0..6; skipping marks
  # 7..9. If fewer frames are read than the container says, exit 1.
  out = str(tmp_path / "trunc")
  assert track.main(["--video", trunc_path, "--out", out] + base) == 1
  assert "frame 7" in capsys.readouterr().err
  np.testing.assert_allclose(_rows(out)[0], ref[:7], atol=1e-3)
  monkeypatch.setattr(track, "_MAX_FAILURES_IN_A_ROW", 1)
  assert track.main(["--video", trunc_path, "--out", out,
                     "--skip-bad-frames"] + base) == 1
  err = capsys.readouterr().err
  assert "read 8 frames but" in err and "has 10" in err
  boxes, _, summary = _rows(out)
  assert len(boxes) == 8 and summary["container_frames"] == 10


def test_undecodable_first_frame_says_nothing_was_tracked(setup, tmp_path,
                                                          capsys):
  _, rec, ckpt = setup
  frames = str(tmp_path / "frames")
  shutil.copytree(os.path.dirname(rec.frame_paths[0]), frames)
  with open(os.path.join(frames, os.path.basename(rec.frame_paths[0])),
            "wb") as f:
    f.write(b"not a jpeg")
  rc = track.main(["--frames", frames, "--box", ",".join(map(str, BOX)),
                   "--config", CONFIG, "--checkpoint", ckpt,
                   "--out", str(tmp_path / "out"), "--skip-bad-frames"])
  err = capsys.readouterr().err.strip().splitlines()
  assert rc == 1 and len(err) == 1, err
  assert err[0].startswith("track.py: error: frame 0: "), err[0]
  assert "0001.jpg" in err[0] and "nothing tracked" in err[0], err[0]
  assert "0..-1" not in err[0]  # was "(rows 0..-1 are in OUT)"
