"""Track one object through a video or a folder of frames.

  python track.py --video clip.mp4 --box 120,80,60,90 \
      --checkpoint ckpt/globaltrack --out out/clip
  python track.py --frames seq/img --box 120,80,60,90 \
      --config configs/globaltrack_r50_fpn.py:tiny --random-init 0 --out /tmp/t

Writes OUT/boxes.txt (x,y,w,h per frame, comma, %.3f; frame 0 = the given
box, LS §1), OUT/scores.txt (top-1 score per frame, frame 0 = 1),
OUT/times.txt (seconds per frame) and OUT/track.gif (frames with the box
drawn: green when present, score >= cfg.test.presence_threshold, else red).
Frames are RGB; the box is in pixels of the original frames.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from typing import Iterator, Sequence

import numpy as np

from gt_jax.evaluation.run_cli import add_model_args

_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


def parse_box(text: str) -> tuple[float, float, float, float]:
  """'x,y,w,h' -> 4 floats (w, h > 0)."""
  try:
    box = tuple(float(v) for v in text.split(","))
  except ValueError:
    box = ()
  if len(box) != 4 or not all(np.isfinite(box)) or min(box[2:]) <= 0:
    raise ValueError(f"--box {text!r}: expected x,y,w,h with w, h > 0")
  return box


def list_frames(directory: str) -> list[str]:
  """Image files of `directory` in natural order (2.jpg before 10.jpg)."""
  if not os.path.isdir(directory):
    raise ValueError(f"--frames {directory!r}: no such folder")
  names = [n for n in os.listdir(directory)
           if os.path.splitext(n)[1].lower() in _IMAGE_EXTS]
  if not names:
    raise ValueError(f"--frames {directory!r}: no {'/'.join(_IMAGE_EXTS)} "
                     "images")
  key = lambda n: [int(t) if t.isdigit() else t
                   for t in re.split(r"(\d+)", n)]
  return [os.path.join(directory, n) for n in sorted(names, key=key)]


def iter_frames(args) -> Iterator[np.ndarray]:
  """(H, W, 3) uint8 RGB frames of --video or --frames."""
  if args.frames:
    from gt_jax.data.sources.frames import read_rgb
    for p in list_frames(args.frames):
      yield read_rgb(p)
    return
  import cv2
  if not os.path.isfile(args.video):
    raise ValueError(f"--video {args.video!r}: no such file")
  cap = cv2.VideoCapture(args.video)
  if not cap.isOpened():
    raise ValueError(f"--video {args.video!r}: cannot open (not a video?)")
  try:
    while True:
      ok, bgr = cap.read()
      if not ok:
        return
      yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
  finally:
    cap.release()


def draw(frame: np.ndarray, box: Sequence[float], score: float,
         present: bool, max_side: int) -> np.ndarray:
  """The frame downscaled to `max_side` with the box and score drawn."""
  import cv2
  s = min(1.0, max_side / max(frame.shape[:2]))
  img = cv2.resize(frame, (max(1, round(frame.shape[1] * s)),
                           max(1, round(frame.shape[0] * s))),
                   interpolation=cv2.INTER_AREA)
  x, y, w, h = (float(v) * s for v in box)
  color = (0, 220, 0) if present else (230, 30, 30)
  cv2.rectangle(img, (round(x), round(y)), (round(x + w - 1), round(y + h - 1)),
                color, 2)
  cv2.putText(img, f"{score:.2f}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
              color, 1, cv2.LINE_AA)
  return img


def _same_size(images: Sequence[np.ndarray]) -> np.ndarray:
  """Stacks (H_i, W_i, 3) images, zero-padding to the largest size."""
  h = max(im.shape[0] for im in images)
  w = max(im.shape[1] for im in images)
  out = np.zeros((len(images), h, w, 3), np.uint8)
  for i, im in enumerate(images):
    out[i, :im.shape[0], :im.shape[1]] = im
  return out


def main(argv: Sequence[str] | None = None) -> int:
  from gt_jax.config import split_config_args
  overrides, rest = split_config_args(
      sys.argv[1:] if argv is None else list(argv))
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  src = parser.add_mutually_exclusive_group(required=True)
  src.add_argument("--video", help="a video file (read with OpenCV)")
  src.add_argument("--frames", help="a folder of image files")
  parser.add_argument("--box", required=True, help="x,y,w,h in frame 0")
  add_model_args(parser)
  parser.add_argument("--out", required=True, help="output folder")
  parser.add_argument("--max-frames", type=int, default=None)
  parser.add_argument("--gif-max-side", type=int, default=320)
  parser.add_argument("--gif-every", type=int, default=1,
                      help="draw every k-th frame into the GIF")
  parser.add_argument("--no-gif", action="store_true")
  args = parser.parse_args(rest)
  try:
    box = parse_box(args.box)
    from gt_jax.evaluation.run_cli import load_engine
    from gt_jax.tracking.tracker import Tracker
    cfg, engine = load_engine(args.config, overrides, args.checkpoint,
                              args.random_init)
    tracker = Tracker(cfg, engine.variables, engine.model)
    boxes, scores, times, gif = [], [], [], []
    for t, frame in enumerate(iter_frames(args)):
      if args.max_frames is not None and t >= args.max_frames:
        break
      t0 = time.perf_counter()
      if t == 0:
        tracker.init(frame, box)
        b, s, present = np.asarray(box), 1.0, True
      else:
        r = tracker.track(frame)
        b, s, present = r.box, r.score, r.present
      times.append(time.perf_counter() - t0)
      boxes.append(b)
      scores.append(s)
      if not args.no_gif and t % args.gif_every == 0:
        gif.append(draw(frame, b, s, present, args.gif_max_side))
    if not boxes:
      raise ValueError("no frames were read")
  except (ValueError, OSError, KeyError) as e:
    print(f"track.py: error: {e}", file=sys.stderr)
    return 1
  from gt_jax.evaluation import results_io
  os.makedirs(args.out, exist_ok=True)
  results_io.write_boxes(os.path.join(args.out, "boxes.txt"), np.stack(boxes))
  results_io.write_values(os.path.join(args.out, "scores.txt"), scores)
  results_io.write_values(os.path.join(args.out, "times.txt"), times)
  if gif:
    import imageio.v3 as iio
    iio.imwrite(os.path.join(args.out, "track.gif"), _same_size(gif),
                duration=100, loop=0)
  fps = (len(times) - 1) / max(sum(times[1:]), 1e-9)
  print(f"{len(boxes)} frames ({fps:.2f} frames/s after init) -> {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
