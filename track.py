"""Track one object through a video or a folder of frames.

  python track.py --video clip.mp4 --box 120,80,60,90 \
      --checkpoint ckpt/globaltrack --out out/clip
  python track.py --frames seq/img --box 120,80,60,90 \
      --config configs/globaltrack_r50_fpn.py:tiny --random-init 0 --out /tmp/t

Writes, as frames are tracked (each row flushed: a kill or a bad frame
keeps every row computed so far):
  OUT/boxes.txt   x,y,w,h per frame (comma, %.3f; frame 0 = the given box,
                  LS §1); row k is always frame k;
  OUT/scores.txt  top-1 score per frame (frame 0 = 1);
  OUT/times.txt   seconds per frame;
  OUT/track.mp4   the frames with the box drawn (green when present, score
                  >= cfg.test.presence_threshold, else red), written frame
                  by frame (OpenCV mp4v; --no-video to skip);
and at the end OUT/track.gif (at most 2 x --gif-max-frames frames held in
memory, sampled over the whole clip; --no-gif) and OUT/track.json (frames,
skipped frames, the container's frame count, whether the run completed).
Frames are RGB; the box is in pixels of the original frames.

A frame that cannot be decoded stops the run with its index (exit 1, rows
so far kept); with --skip-bad-frames its row is `nan` and tracking goes on.
For a video, the frames read are checked against the container's count; a
mismatch is an error (exit 1) unless --ignore-frame-count. Without
--config, the config the checkpoint records is used. Errors are one line;
--debug (or GT_JAX_DEBUG=1) shows the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import time
from typing import Iterator, Sequence

import numpy as np

from gt_jax.errors import GtJaxError
from gt_jax.errors import run_main
from gt_jax.evaluation.run_cli import add_model_args

_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
# A truncated video whose container claims more frames: stop seeking after
# this many unreadable frames in a row (the count mismatch is reported).
_MAX_FAILURES_IN_A_ROW = 25


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


class FrameReadError(GtJaxError, ValueError):
  """A frame that cannot be read; `index` is its 0-based position."""

  def __init__(self, index: int, message: str):
    self.index = index
    super().__init__(f"frame {index}: {message}")


@dataclasses.dataclass
class VideoInfo:
  """What the container says and what reading found (for the summary)."""
  container_frames: int | None = None  # None: unknown or not a video.
  read_failures: int = 0
  first_failure: int | None = None  # index of the first unreadable frame.
  read_after_failure: bool = False  # a frame was decoded after it.
  ended_with_failure: bool = False  # the last frames were unreadable.

  @property
  def maybe_shifted(self) -> bool:
    """Frames decoded after a failure may be misplaced: a damaged packet
    that took the next one with it (OpenCV's position then lies) shows as
    a stream that runs out before the container's count."""
    return self.read_after_failure and self.ended_with_failure


def iter_frames(args, info: VideoInfo | None = None
                ) -> Iterator[tuple[int, np.ndarray | FrameReadError]]:
  """(index, (H, W, 3) uint8 RGB frame) of --video or --frames, in order.

  A frame that cannot be decoded is yielded as a `FrameReadError` at its
  own index (never silently dropped, so later indices do not shift). For a
  video, reading goes on after a failed frame; `info` records what is
  needed to tell whether later frames may be misplaced (`maybe_shifted`).
  """
  info = info if info is not None else VideoInfo()
  if args.frames:
    from gt_jax.data.sources.frames import read_rgb
    for t, p in enumerate(list_frames(args.frames)):
      try:
        yield t, read_rgb(p)
      except ValueError as e:  # DatasetLayoutError: names the file.
        yield t, FrameReadError(t, str(e))
    return
  import cv2
  if not os.path.isfile(args.video):
    raise ValueError(f"--video {args.video!r}: no such file")
  cap = cv2.VideoCapture(args.video)
  if not cap.isOpened():
    raise ValueError(f"--video {args.video!r}: cannot open (not a video?)")
  count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
  info.container_frames = count if count > 0 else None
  try:
    t, failures_in_a_row = 0, 0
    while True:
      ok, bgr = cap.read()
      if not ok:
        if (info.container_frames is None or t >= info.container_frames or
            failures_in_a_row >= _MAX_FAILURES_IN_A_ROW):
          return  # the end (a short read is reported by the caller).
        info.read_failures += 1
        failures_in_a_row += 1
        if info.first_failure is None:
          info.first_failure = t
        info.ended_with_failure = True
        yield t, FrameReadError(t, f"{args.video}: cannot decode (the "
                                f"container has {info.container_frames} "
                                "frames)")
        t += 1
        continue
      failures_in_a_row = 0
      if info.first_failure is not None:
        info.read_after_failure = True
      info.ended_with_failure = False
      yield t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
      t += 1
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


class BoundedGif:
  """GIF frames with bounded memory: at most `2 * max_frames` are held;
  when full, every other one is dropped and the sampling stride doubles,
  so the GIF always spans the whole clip."""

  def __init__(self, path: str, every: int = 1, max_frames: int = 200):
    if every < 1 or max_frames < 1:
      raise ValueError("--gif-every and --gif-max-frames must be >= 1")
    self.path, self.stride, self.max_frames = path, every, max_frames
    self.frames: list[np.ndarray] = []

  def wants(self, t: int) -> bool:
    return t % self.stride == 0

  def add(self, image: np.ndarray) -> None:
    self.frames.append(image)
    if len(self.frames) >= 2 * self.max_frames:
      self.frames = self.frames[::2]
      self.stride *= 2

  def close(self) -> str | None:
    if not self.frames:
      return None
    import imageio.v3 as iio
    tmp = self.path + ".tmp.gif"
    iio.imwrite(tmp, _same_size(self.frames), duration=100, loop=0)
    os.replace(tmp, self.path)
    return self.path


class VideoOut:
  """An annotated mp4 written frame by frame (OpenCV, mp4v); every frame is
  fitted into the first frame's size."""

  def __init__(self, path: str, fps: float):
    self.path, self.fps = path, fps
    self.writer = None
    self.size: tuple[int, int] | None = None  # (W, H)

  def add(self, image: np.ndarray) -> None:
    import cv2
    if self.writer is None:
      h, w = image.shape[:2]
      self.size = (w - w % 2, h - h % 2)  # even sizes for the codec.
      self.writer = cv2.VideoWriter(self.path,
                                    cv2.VideoWriter_fourcc(*"mp4v"),
                                    self.fps, self.size)
      if not self.writer.isOpened():
        raise OSError(f"{self.path}: OpenCV cannot write mp4 here "
                      "(pass --no-video)")
    if image.shape[1::-1] != self.size:
      canvas = np.zeros((self.size[1], self.size[0], 3), np.uint8)
      s = min(self.size[0] / image.shape[1], self.size[1] / image.shape[0])
      small = cv2.resize(image, (max(1, int(image.shape[1] * s)),
                                 max(1, int(image.shape[0] * s))))
      canvas[:small.shape[0], :small.shape[1]] = small
      image = canvas
    self.writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))

  def blank(self, text: str) -> None:
    """A black frame (a frame that could not be read), keeping the timing."""
    if self.size is None:
      return
    import cv2
    img = np.zeros((self.size[1], self.size[0], 3), np.uint8)
    cv2.putText(img, text, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (230, 30, 30), 1, cv2.LINE_AA)
    self.add(img)

  def close(self) -> str | None:
    if self.writer is None:
      return None
    self.writer.release()
    return self.path


class RowWriter:
  """boxes.txt / scores.txt / times.txt, one row per frame, flushed as each
  frame is tracked (a kill keeps every finished row). A skipped frame's row
  is `nan`."""

  def __init__(self, out: str):
    os.makedirs(out, exist_ok=True)
    self.files = {n: open(os.path.join(out, f"{n}.txt"), "w",
                          encoding="utf-8")
                  for n in ("boxes", "scores", "times")}
    self.rows = 0

  def write(self, box: Sequence[float], score: float, seconds: float) -> None:
    self.files["boxes"].write(",".join(f"{float(v):.3f}" for v in box) + "\n")
    self.files["scores"].write(f"{float(score):.8f}\n")
    self.files["times"].write(f"{float(seconds):.8f}\n")
    for f in self.files.values():
      f.flush()
    self.rows += 1

  def close(self) -> None:
    for f in self.files.values():
      f.close()


def _write_summary(path: str, summary: dict) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=1)
  os.replace(tmp, path)


def _parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
  from gt_jax.config import split_config_args
  overrides, rest = split_config_args(list(argv))
  parser = argparse.ArgumentParser(
      prog="track.py", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  src = parser.add_mutually_exclusive_group(required=True)
  src.add_argument("--video", help="a video file (read with OpenCV)")
  src.add_argument("--frames", help="a folder of image files")
  parser.add_argument("--box", required=True, help="x,y,w,h in frame 0")
  add_model_args(parser)
  parser.add_argument("--out", required=True, help="output folder")
  parser.add_argument("--max-frames", type=int, default=None)
  parser.add_argument("--skip-bad-frames", action="store_true",
                      help="a frame that cannot be decoded gets a nan row "
                      "(listed in track.json) instead of stopping the run")
  parser.add_argument("--ignore-frame-count", action="store_true",
                      help="do not fail when the frames read differ from the "
                      "video container's frame count")
  parser.add_argument("--gif-max-side", type=int, default=320)
  parser.add_argument("--gif-every", type=int, default=1,
                      help="draw every k-th frame into the GIF")
  parser.add_argument("--gif-max-frames", type=int, default=200,
                      help="GIF frames kept at most (the sampling stride "
                      "doubles when exceeded: bounded memory)")
  parser.add_argument("--no-gif", action="store_true")
  parser.add_argument("--video-max-side", type=int, default=640,
                      help="longest side of the annotated track.mp4")
  parser.add_argument("--fps", type=float, default=0.0,
                      help="frame rate of track.mp4 (default: the input "
                      "video's, else 25)")
  parser.add_argument("--no-video", action="store_true",
                      help="do not write the annotated track.mp4")
  parser.add_argument("--debug", action="store_true",
                      help="full traceback on error (also GT_JAX_DEBUG=1)")
  return parser.parse_args(rest), overrides


def _input_fps(args) -> float:
  if args.fps > 0:
    return args.fps
  if args.video:
    import cv2
    cap = cv2.VideoCapture(args.video)
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    cap.release()
    if 0 < fps < 1000:
      return float(fps)
  return 25.0


def _main(argv: Sequence[str]) -> int:
  args, overrides = _parse(argv)
  box = parse_box(args.box)
  if args.max_frames is not None and args.max_frames < 1:
    raise ValueError(f"--max-frames {args.max_frames}: must be >= 1")
  # Checked before the model loads; a 0 or negative size or stride would
  # otherwise give 1-pixel drawings or a late error.
  for flag in ("gif_every", "gif_max_frames", "gif_max_side",
               "video_max_side"):
    if getattr(args, flag) < 1:
      raise ValueError(f"--{flag.replace('_', '-')} {getattr(args, flag)}: "
                       "must be >= 1")
  if not args.fps >= 0:  # 0: the input video's rate
    raise ValueError(f"--fps {args.fps}: must be > 0 (or 0: the input's)")
  if os.path.exists(args.out) and not os.path.isdir(args.out):
    raise ValueError(f"--out {args.out!r} is a file, not a folder")
  if args.frames:
    list_frames(args.frames)  # fail before loading the model.
  elif not os.path.isfile(args.video):
    raise ValueError(f"--video {args.video!r}: no such file")
  from gt_jax.evaluation.run_cli import load_engine
  from gt_jax.tracking.tracker import Tracker
  cfg, engine = load_engine(args.config, overrides, args.checkpoint,
                            args.random_init)
  tracker = Tracker(cfg, engine.variables, engine.model)
  info = VideoInfo()
  rows = RowWriter(args.out)
  gif = None if args.no_gif else BoundedGif(
      os.path.join(args.out, "track.gif"), args.gif_every,
      args.gif_max_frames)
  video = None if args.no_video else VideoOut(
      os.path.join(args.out, "track.mp4"), _input_fps(args))
  summary = {"input": args.video or args.frames, "box": list(box),
             "complete": False, "frames": 0, "skipped_frames": [],
             "container_frames": None, "rows_may_be_shifted_after": None,
             "error": None}
  summary_path = os.path.join(args.out, "track.json")
  track_seconds = 0.0
  try:
    for t, frame in iter_frames(args, info):
      if args.max_frames is not None and t >= args.max_frames:
        break
      if isinstance(frame, FrameReadError):
        if t == 0 or not args.skip_bad_frames:
          hint = ("" if t == 0 else "; rerun with --skip-bad-frames to "
                  "give it a nan row and go on")
          kept = (f"rows 0..{t - 1} are in {args.out}" if t else
                  "the first frame holds the init box: nothing tracked")
          raise FrameReadError(t, f"{str(frame).split(': ', 1)[1]}{hint} "
                               f"({kept})")
        nan = float("nan")
        rows.write((nan,) * 4, nan, nan)
        summary["skipped_frames"].append(t)
        if video is not None:
          video.blank(f"frame {t}: unreadable")
        continue
      t0 = time.perf_counter()
      if t == 0:
        tracker.init(frame, box)
        b, s, present = np.asarray(box), 1.0, True
      else:
        r = tracker.track(frame)
        b, s, present = r.box, r.score, r.present
      dt = time.perf_counter() - t0
      if t > 0:
        track_seconds += dt
      rows.write(b, s, dt)
      if gif is not None and gif.wants(t):
        gif.add(draw(frame, b, s, present, args.gif_max_side))
      if video is not None:
        video.add(draw(frame, b, s, present, args.video_max_side))
    if rows.rows == 0:
      raise ValueError("no frames were read")
    summary["complete"] = True
  except (Exception, KeyboardInterrupt) as e:
    summary["error"] = f"{type(e).__name__}: {e}"
    raise
  finally:
    rows.close()
    summary["frames"] = rows.rows
    summary["container_frames"] = info.container_frames
    summary["rows_may_be_shifted_after"] = (info.first_failure
                                            if info.maybe_shifted else None)
    written = [p for p in (video.close() if video else None,
                           gif.close() if gif else None) if p]
    summary["outputs"] = [os.path.basename(p) for p in written]
    _write_summary(summary_path, summary)
  n = rows.rows
  fps = (n - 1 - len(summary["skipped_frames"])) / max(track_seconds, 1e-9)
  print(f"{n} frames ({fps:.2f} frames/s after init) -> {args.out}")
  if summary["skipped_frames"]:
    print(f"track.py: {len(summary['skipped_frames'])} unreadable frame(s) "
          f"have nan rows: {summary['skipped_frames'][:10]}", file=sys.stderr)
  if info.maybe_shifted:
    print(f"track.py: error: {args.video} lost data at frame "
          f"{info.first_failure} (and its last frames could not be read), so "
          f"rows after {info.first_failure} may belong to later frames; rows "
          f"0..{info.first_failure - 1} are exact", file=sys.stderr)
    return 1
  c = info.container_frames
  if (c is not None and args.max_frames is None and n != c and
      not args.ignore_frame_count):
    print(f"track.py: error: read {n} frames but {args.video} says it has "
          f"{c}; rows may not match frames after the damage (check the "
          "video; --ignore-frame-count accepts it)", file=sys.stderr)
    return 1
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  """Tracks; errors are one stderr line and status 1 (`--debug` or
  GT_JAX_DEBUG=1: the traceback)."""
  return run_main("track.py", _main, argv)


if __name__ == "__main__":
  sys.exit(main())
