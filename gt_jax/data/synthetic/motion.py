"""Motion models: how objects move and how the camera moves over the photo.

Object models return float (T, 4) centre x, y and size w, h per frame:
  smooth       damped random walk of the velocity, bouncing at the borders;
  jumps        smooth plus abrupt jumps of position and scale;
  oscillation  a sinusoid per axis (Lissajous paths), mild zoom;
  zoom         slow drift with strong periodic approach / recede;
  billiard     (held-out) constant speed along straight lines, mirror
               reflections at the borders, a steady size ramp;
  dash         (held-out) still for a while, then a fast straight dash to a
               new place with a size change, again and again.
Camera models return float32 (T, 2, 3) affine maps frame -> photo:
  pan          a slowly scrolling, zooming crop of the background;
  shake        (held-out) the same with hand-held jitter.
The first CLEAR_START frames keep the object whole inside the frame (frame 1
initialises trackers); later at most ~30% of it leaves the frame (absences
are planned separately, scenario.py).
"""

from __future__ import annotations

import numpy as np

OBJECT_MODELS = ("smooth", "jumps", "oscillation", "zoom", "billiard",
                 "dash")
CAMERA_MODELS = ("pan", "shake")
# The target's shorter side never drops below this (GOT-10k sampler filter:
# both sides >= 10 px, datasets.md §2.2).
MIN_SIDE = 10
CLEAR_START = 3


def smooth_walk(rng: np.random.Generator, n: int, sigma: float,
                inertia: float = 0.9) -> np.ndarray:
  """(n,) positions of a damped random walk on the velocity, starting at 0."""
  vel = np.zeros(n)
  v = rng.normal(0.0, sigma * 3)
  for t in range(n):
    v = inertia * v + rng.normal(0.0, sigma)
    vel[t] = v
  return np.cumsum(vel)


def _log_scale(rng: np.random.Generator, model: str, n: int) -> np.ndarray:
  log_s = np.zeros(n)
  if model == "zoom":
    amp = rng.uniform(0.3, 0.5)
    period = rng.uniform(20, 60)
    log_s = amp * np.sin(2 * np.pi * np.arange(n) / period +
                         rng.uniform(0, 6.3))
  elif model == "billiard":
    log_s = np.linspace(0, rng.uniform(-0.4, 0.4), n)
  elif model != "dash":
    s = 0.0
    jump_p = 0.04 if model == "jumps" else 0.0
    for t in range(1, n):
      s = 0.95 * s + rng.normal(0, 0.03)  # mean-reverting zoom in / out
      if t >= CLEAR_START and rng.random() < jump_p:
        s += rng.choice([-1, 1]) * rng.uniform(np.log(1.25), np.log(1.6))
      s = float(np.clip(s, np.log(0.65), np.log(1.5)))
      log_s[t] = s
  return np.clip(log_s, np.log(0.6), np.log(1.7))


def _bounds(wh: np.ndarray, width: int, height: int,
            whole: bool) -> tuple[np.ndarray, np.ndarray]:
  keep = 0.5 * wh + 1 if whole else 0.3 * wh
  lo = keep
  hi = np.maximum(lo, np.array([width, height]) - keep)
  return lo, hi


def object_motion(rng: np.random.Generator, model: str, num_frames: int,
                  height: int, width: int, base_wh: np.ndarray,
                  still: bool = False) -> np.ndarray:
  """Motion of one object: float (T, 4) centre x, y and size w, h.

  Args:
    model: one of OBJECT_MODELS.
    base_wh: (w, h) at scale 1.
    still: no translation (a parked object); the model's zoom stays.
  """
  if model not in OBJECT_MODELS:
    raise ValueError(f"unknown motion model {model!r}; expected one of "
                     f"{OBJECT_MODELS}")
  n = num_frames
  size = np.array([width, height], np.float64)
  wh = np.maximum(base_wh[None] * np.exp(_log_scale(rng, model, n))[:, None],
                  MIN_SIDE)
  lo, hi = _bounds(wh[0], width, height, whole=True)
  c = rng.uniform(lo, hi)
  centres = np.zeros((n, 2))
  if still:
    centres[:] = c
  elif model in ("smooth", "jumps"):
    v = rng.normal(0, 0.012 * width, 2)
    jump_p = 0.05 if model == "jumps" else 0.0
    for t in range(n):
      v = 0.9 * v + rng.normal(0, 0.006 * width, 2)
      v = np.clip(v, -0.05 * width, 0.05 * width)
      if t >= CLEAR_START and rng.random() < jump_p:
        c = rng.uniform(0, 1, 2) * size
      c = c + v
      lo, hi = _bounds(wh[t], width, height, t < CLEAR_START)
      v = np.where((c < lo) | (c > hi), -v, v)  # bounce
      c = np.clip(c, lo, hi)
      centres[t] = c
  elif model in ("oscillation", "zoom"):
    amp = rng.uniform(0.05, 0.3, 2) * size
    period = rng.uniform(12, 40, 2)
    phase = rng.uniform(0, 6.3, 2)
    drift = smooth_walk(rng, n, 0.002 * width)[:, None] * np.ones(2)
    if model == "zoom":
      amp = amp * 0.3
    t = np.arange(n)[:, None]
    centres = c + amp * (np.sin(2 * np.pi * t / period + phase) -
                         np.sin(phase)) + drift
  elif model == "billiard":
    speed = rng.uniform(0.015, 0.035) * width
    ang = rng.uniform(0, 2 * np.pi)
    v = speed * np.array([np.cos(ang), np.sin(ang)])
    for t in range(n):
      lo, hi = _bounds(wh[t], width, height, t < CLEAR_START)
      c = c + v
      for a in range(2):  # mirror reflection at the walls
        if c[a] < lo[a]:
          c[a], v[a] = 2 * lo[a] - c[a], -v[a]
        elif c[a] > hi[a]:
          c[a], v[a] = 2 * hi[a] - c[a], -v[a]
      centres[t] = c
  else:  # dash
    t, s = 0, 0.0
    log_s = np.zeros(n)
    while t < n:
      hold = int(rng.integers(4, 13))
      centres[t:t + hold] = c
      log_s[t:t + hold] = s
      t += hold
      go = int(rng.integers(2, 5))
      new_c = rng.uniform(0.15, 0.85, 2) * size
      new_s = float(np.clip(s + rng.uniform(-0.35, 0.35), -0.5, 0.5))
      for i in range(go):
        if t + i < n:
          f = (i + 1) / go
          centres[t + i] = (1 - f) * c + f * new_c
          log_s[t + i] = (1 - f) * s + f * new_s
      c, s, t = new_c, new_s, t + go
    wh = np.maximum(base_wh[None] * np.exp(log_s)[:, None], MIN_SIDE)
  for t in range(n):
    lo, hi = _bounds(wh[t], width, height, t < CLEAR_START)
    centres[t] = np.clip(centres[t], lo, hi)
  return np.concatenate([centres, wh], axis=1)


def camera_motion(rng: np.random.Generator, model: str, photo: np.ndarray,
                  num_frames: int, height: int, width: int) -> np.ndarray:
  """Per-frame affine (frame -> photo) of a moving crop of `photo`.

  Returns:
    float32 (T, 2, 3) maps for cv2.warpAffine(..., WARP_INVERSE_MAP).
  """
  if model not in CAMERA_MODELS:
    raise ValueError(f"unknown camera model {model!r}; expected one of "
                     f"{CAMERA_MODELS}")
  ph, pw = photo.shape[:2]
  # The crop spans 30-80% of the photo's width (never more than fits).
  max_crop_w = min(pw, ph * width / height) * 0.95
  crop_w = min(max_crop_w, rng.uniform(0.3, 0.8) * pw)
  zoom = crop_w / width * np.exp(
      0.1 * np.sin(np.linspace(0, rng.uniform(1, 4), num_frames) +
                   rng.uniform(0, 6.3)))
  zoom = np.minimum(zoom, max_crop_w / width)  # photo pixels per frame pixel
  speed = rng.uniform(0.5, 2.0)  # some backgrounds scroll fast
  cam = np.zeros((num_frames, 2, 3), np.float32)
  pos = []
  for axis_len, frame_len in ((pw, width), (ph, height)):
    walk = smooth_walk(rng, num_frames, 0.004 * speed * axis_len)
    free = np.maximum(axis_len - frame_len * zoom, 1e-3)
    start = rng.uniform(0, 1) * free[0]
    # Fold the walk into [0, free] (a mirror bounce at the photo edges).
    p = np.abs(start + walk)
    p = np.where(p // free % 2 == 0, p % free, free - p % free)
    if model == "shake":  # hand-held jitter of a few frame pixels
      p = p + rng.normal(0, rng.uniform(1.5, 3.5), num_frames) * zoom
    pos.append(p)
  cam[:, 0, 0] = zoom
  cam[:, 1, 1] = zoom
  cam[:, 0, 2] = pos[0]
  cam[:, 1, 2] = pos[1]
  return cam
