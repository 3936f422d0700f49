"""Per-video plans: where every object of a synthetic video is, frame by frame.

A plan is pure geometry (no pixels): the background photo and its per-frame
camera warp, and a stack of sprite layers (bottom first) with one integer
rectangle per frame. The renderer turns it into frames and measures the
ground truth from the pixels it draws, so labels cannot drift from content.

What makes a video hard for trivial baselines yet learnable by a small
query-guided detector:
  * the target moves smoothly, then jumps and changes scale abruptly;
  * look-alike distractors (the target's own cut-out, hue-shifted and
    slightly rescaled) move around it all the time, also while it is gone;
  * other cut-outs clutter the scene; boxy occluders pass over the target,
    some hiding it completely for a while;
  * the target leaves the view through a border and stays out for a stretch,
    then reappears somewhere else.
The target's own appearance never changes (besides scale), so a tracker that
compares with the first-frame cut-out can always find it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gt_jax.data.synthetic import assets

ROLES = ("clutter", "distractor", "target", "occluder", "instance")


@dataclasses.dataclass(frozen=True)
class Profile:
  """Event statistics of a kind of video. Ranges are inclusive (lo, hi).

  Attributes:
    num_absences: out-of-view stretches per video.
    absence_frac: length of one stretch as a fraction of the video.
    num_occlusions: occluder passes per video.
    full_occlusion_prob: chance that a pass hides the target completely.
    num_distractors: look-alikes per video.
    num_clutter: unrelated cut-outs per video.
    jump_prob: per-frame chance of an abrupt jump of the target.
    scale_jump_prob: per-frame chance of an abrupt scale change.
  """
  num_absences: tuple[int, int] = (0, 1)
  absence_frac: tuple[float, float] = (0.05, 0.15)
  num_occlusions: tuple[int, int] = (1, 2)
  full_occlusion_prob: float = 0.5
  num_distractors: tuple[int, int] = (1, 2)
  num_clutter: tuple[int, int] = (1, 3)
  jump_prob: float = 0.03
  scale_jump_prob: float = 0.03


# Training/validation videos: mostly visible target, short absences.
TRAIN_PROFILE = Profile()
# Long-term test videos (LaSOT-style): long out-of-view stretches.
TEST_PROFILE = Profile(num_absences=(1, 2), absence_frac=(0.12, 0.25),
                       num_distractors=(1, 3))
# The target's shorter side never drops below this (GOT-10k sampler filter:
# both sides >= 10 px, datasets.md §2.2).
MIN_SIDE = 10
# Frames of the slide out through a border before an absence.
_EXIT_FRAMES = (2, 5)
# Frames at the start that stay free of events: the first frame is the
# tracker's initialisation and must show the whole target.
_CLEAR_START = 3


@dataclasses.dataclass
class Layer:
  """One sprite and its rectangle in every frame.

  Attributes:
    sprite: the cut-out.
    role: one of ROLES.
    rects: int64 (T, 4) x0, y0, w, h of the sprite rectangle, 0-based frame
      pixels (may lie partly or wholly outside the frame).
    present: bool (T,) whether the layer is drawn in frame t.
  """
  sprite: assets.Sprite
  role: str
  rects: np.ndarray
  present: np.ndarray


@dataclasses.dataclass
class VideoPlan:
  """Everything needed to render a video (or, with T = 1, a still image).

  Attributes:
    height, width: frame size in pixels.
    background_name: the skimage photo under everything.
    background: float32 (Hp, Wp, 3) that photo (tinted if gray).
    camera: float32 (T, 2, 3) affine maps frame (x, y, 1) -> photo (x, y).
    layers: the sprites, bottom first.
    target_index: index of the target layer in `layers` (-1 for stills).
    absences: (start, end) frame ranges where the target is out of view.
    occlusions: (start, end, full) occluder passes.
  """
  height: int
  width: int
  background_name: str
  background: np.ndarray
  camera: np.ndarray
  layers: list[Layer]
  target_index: int = -1
  absences: list[tuple[int, int]] = dataclasses.field(default_factory=list)
  occlusions: list[tuple[int, int, bool]] = dataclasses.field(
      default_factory=list)

  @property
  def num_frames(self) -> int:
    return self.camera.shape[0]

  @property
  def target(self) -> Layer:
    return self.layers[self.target_index]


def _smooth_walk(rng: np.random.Generator, n: int, sigma: float,
                 inertia: float = 0.9) -> np.ndarray:
  """(n,) positions of a damped random walk on the velocity, starting at 0."""
  vel = np.zeros(n)
  v = rng.normal(0.0, sigma * 3)
  for t in range(n):
    v = inertia * v + rng.normal(0.0, sigma)
    vel[t] = v
  return np.cumsum(vel)


def plan_camera(rng: np.random.Generator, photo: np.ndarray, num_frames: int,
                height: int, width: int) -> np.ndarray:
  """Per-frame affine (frame -> photo) of a slowly scrolling, zooming crop.

  Returns:
    float32 (T, 2, 3) maps for cv2.warpAffine(..., WARP_INVERSE_MAP).
  """
  ph, pw = photo.shape[:2]
  # The crop spans 30-80% of the photo's width (never more than fits).
  max_crop_w = min(pw, ph * width / height) * 0.95
  crop_w = min(max_crop_w, rng.uniform(0.3, 0.8) * pw)
  zoom = crop_w / width * np.exp(
      0.08 * np.sin(np.linspace(0, rng.uniform(1, 4), num_frames) +
                    rng.uniform(0, 6.3)))
  zoom = np.minimum(zoom, max_crop_w / width)  # photo pixels per frame pixel
  cam = np.zeros((num_frames, 2, 3), np.float32)
  pos = []
  for axis_len, frame_len in ((pw, width), (ph, height)):
    walk = _smooth_walk(rng, num_frames, 0.004 * axis_len)
    free = axis_len - frame_len * zoom  # room left for the crop origin
    start = rng.uniform(0, 1) * free[0]
    # Fold the walk into [0, free] (a mirror bounce at the photo edges).
    p = np.abs(start + walk)
    p = np.where(p // free % 2 == 0, p % free, free - p % free)
    pos.append(p)
  cam[:, 0, 0] = zoom
  cam[:, 1, 1] = zoom
  cam[:, 0, 2] = pos[0]
  cam[:, 1, 2] = pos[1]
  return cam


def _base_size(rng: np.random.Generator, sprite: assets.Sprite, height: int,
               width: int, lo: float = 0.14, hi: float = 0.24) -> np.ndarray:
  """(w, h) at scale 1: shorter side a fraction lo..hi of the frame's."""
  short = max(MIN_SIDE / 0.65, rng.uniform(lo, hi) * min(height, width))
  a = sprite.aspect
  return np.array([short * max(a, 1), short / min(a, 1)])


def _motion(rng: np.random.Generator, num_frames: int, height: int, width: int,
            base_wh: np.ndarray, jump_prob: float, scale_jump_prob: float,
            still: bool = False) -> np.ndarray:
  """Free motion of one object: float (T, 4) centre x, y and size w, h."""
  log_s = np.zeros(num_frames)
  s = 0.0
  for t in range(1, num_frames):
    s = 0.95 * s + rng.normal(0, 0.03)  # mean-reverting zoom in/out
    if t >= _CLEAR_START and rng.random() < scale_jump_prob:
      s += rng.choice([-1, 1]) * rng.uniform(np.log(1.25), np.log(1.6))
    s = float(np.clip(s, np.log(0.65), np.log(1.5)))
    log_s[t] = s
  wh = base_wh[None] * np.exp(log_s)[:, None]
  wh = np.maximum(wh, MIN_SIDE)
  lo = 0.5 * wh[0]
  hi = np.array([width, height]) - 0.5 * wh[0]
  c = rng.uniform(lo, np.maximum(lo, hi))
  v = rng.normal(0, 0.012 * width, 2) * (0 if still else 1)
  centres = np.zeros((num_frames, 2))
  for t in range(num_frames):
    if not still:
      v = 0.9 * v + rng.normal(0, 0.006 * width, 2)
      v = np.clip(v, -0.05 * width, 0.05 * width)
      if t >= _CLEAR_START and rng.random() < jump_prob:
        c = rng.uniform(0, 1, 2) * np.array([width, height])
      c = c + v
      # Bounce so that at most ~20% of the object leaves the frame; the
      # first frames keep it whole (the first one initialises trackers).
      keep = 0.5 * wh[t] + 1 if t < _CLEAR_START else 0.3 * wh[t]
      lo = keep
      hi = np.array([width, height]) - keep
      v = np.where((c < lo) | (c > hi), -v, v)
      c = np.clip(c, lo, np.maximum(lo, hi))
    centres[t] = c
  return np.concatenate([centres, wh], axis=1)


def _rects(cxcywh: np.ndarray) -> np.ndarray:
  """float (T, 4) centre/size -> int64 (T, 4) x0, y0, w, h."""
  wh = np.maximum(np.round(cxcywh[:, 2:]), 1)
  xy = np.round(cxcywh[:, :2] - wh / 2)
  return np.concatenate([xy, wh], axis=1).astype(np.int64)


def _schedule(rng: np.random.Generator, num_frames: int,
              lengths: list[int]) -> list[tuple[int, int]] | None:
  """Places non-overlapping intervals of `lengths` after the clear start.

  Returns:
    spans[i] = (start, end) of lengths[i]; the intervals are laid out in a
    random order, >= 2 frames apart, with the spare frames spread at random.
    None if they cannot fit.
  """
  n = len(lengths)
  spare = num_frames - _CLEAR_START - sum(lengths) - 2 * max(n - 1, 0)
  if spare < 0:
    return None
  # Random gaps before each interval; what is left goes after the last.
  cuts = np.sort(rng.integers(0, spare + 1, n))
  gaps = np.diff(np.concatenate([[0], cuts]))
  order = rng.permutation(n)
  spans = [None] * n
  t = _CLEAR_START
  for k, i in enumerate(order):
    t += int(gaps[k]) + (2 if k else 0)
    spans[i] = (t, t + lengths[i])
    t += lengths[i]
  return spans


def _exit_path(cxcywh: np.ndarray, start: int, end: int, width: int,
               height: int) -> None:
  """Slides the object out through its nearest border over [start, end)."""
  cx, cy, w, h = cxcywh[start]
  gaps = [cx, width - cx, cy, height - cy]
  side = int(np.argmin(gaps))
  target = np.array([cx, cy])
  # One pixel past the border: the object is fully out at `end`.
  outside = (-w / 2 - 1, width + w / 2 + 1, -h / 2 - 1, height + h / 2 + 1)
  target[side // 2] = outside[side]
  n = end - start
  for i in range(n):
    f = (i + 1) / n
    cxcywh[start + i, :2] = (1 - f) * np.array([cx, cy]) + f * target
    cxcywh[start + i, 2:] = (w, h)


def _occluder(rng: np.random.Generator, target_cxcywh: np.ndarray,
              start: int, end: int, full: bool,
              num_frames: int) -> Layer:
  """A boxy cut-out passing over the target during [start, end)."""
  n = end - start
  sprite = assets.make_sprite(rng, "occluder",
                              aspect=float(rng.uniform(0.6, 1.6)))
  # A full occluder exceeds the target by >= 30% + 4 px on each axis, so the
  # soft edge never lets a target pixel through while it is centred.
  factor = rng.uniform(1.3, 1.6, 2) if full else rng.uniform(0.5, 0.9, 2)
  axis = int(rng.integers(0, 2))
  sign = rng.choice([-1.0, 1.0])
  ramp = max(2, n // 3) if full else n
  cxcywh = np.zeros((num_frames, 4))
  for i in range(n):
    t = start + i
    tc = target_cxcywh[t]
    size = tc[2:] * factor + (4 if full else 0)
    reach = 0.5 * (tc[2 + axis] + size[axis]) * 1.05
    if i < ramp:  # moving in
      off = sign * reach * (1 - (i + 1) / (ramp + 1))
    elif i >= n - ramp:  # moving out the other side
      off = -sign * reach * (i - (n - ramp) + 1) / (ramp + 1)
    else:  # holding over the target
      off = 0.0
    centre = tc[:2].copy()
    centre[axis] += off
    cxcywh[t] = [*centre, *size]
  present = np.zeros(num_frames, bool)
  present[start:end] = True
  return Layer(sprite, "occluder", _rects(cxcywh), present)


def _int_range(rng: np.random.Generator, lo_hi: tuple[int, int]) -> int:
  return int(rng.integers(lo_hi[0], lo_hi[1] + 1))


def plan_video(rng: np.random.Generator, num_frames: int, height: int,
               width: int, profile: Profile = TRAIN_PROFILE) -> VideoPlan:
  """Draws a random video plan.

  Args:
    rng: the random generator (the plan is a pure function of its state).
    num_frames: T.
    height, width: frame size.
    profile: event statistics.

  Returns:
    The plan; layers are clutter, distractors, target, occluders (bottom
    first).
  """
  bg_name, photo = assets.photo_for_background(rng)
  camera = plan_camera(rng, photo, num_frames, height, width)

  target_sprite = assets.make_sprite(rng)
  base = _base_size(rng, target_sprite, height, width)
  motion = _motion(rng, num_frames, height, width, base, profile.jump_prob,
                   profile.scale_jump_prob)
  present = np.ones(num_frames, bool)

  # Events: absences (exit slide + out of view) and occluder passes.
  n_abs = _int_range(rng, profile.num_absences)
  n_occ = _int_range(rng, profile.num_occlusions)
  abs_len = [max(2, round(rng.uniform(*profile.absence_frac) * num_frames))
             for _ in range(n_abs)]
  exit_len = [_int_range(rng, _EXIT_FRAMES) for _ in range(n_abs)]
  occ_len = [_int_range(rng, (6, 12)) for _ in range(n_occ)]
  spans = _schedule(rng, num_frames,
                    [a + e for a, e in zip(abs_len, exit_len)] + occ_len)
  while spans is None:  # too short a video: drop occlusions, then absences
    if occ_len:
      occ_len.pop()
    else:
      abs_len.pop()
      exit_len.pop()
    n_abs = len(abs_len)
    spans = _schedule(rng, num_frames,
                      [a + e for a, e in zip(abs_len, exit_len)] + occ_len)
  absences, occlusions, occluders = [], [], []
  if spans:
    for (s, e), n_exit in zip(spans[:n_abs], exit_len):
      _exit_path(motion, s, s + n_exit, width, height)
      present[s + n_exit:e] = False
      absences.append((s + n_exit, e))
    for s, e in spans[n_abs:]:
      full = bool(rng.random() < profile.full_occlusion_prob)
      occluders.append(_occluder(rng, motion, s, e, full, num_frames))
      occlusions.append((s, e, full))
  target = Layer(target_sprite, "target", _rects(motion), present)

  distractors = []
  for _ in range(_int_range(rng, profile.num_distractors)):
    look_alike = assets.recolor(
        target_sprite,
        hue_shift_deg=rng.choice([-1, 1]) * rng.uniform(30, 90),
        value_gain=rng.uniform(0.8, 1.2))
    d_base = base * rng.uniform(0.85, 1.15)
    d_motion = _motion(rng, num_frames, height, width, d_base,
                       profile.jump_prob, profile.scale_jump_prob)
    distractors.append(Layer(look_alike, "distractor", _rects(d_motion),
                             np.ones(num_frames, bool)))
  clutter = []
  for _ in range(_int_range(rng, profile.num_clutter)):
    sprite = assets.make_sprite(rng)
    c_base = _base_size(rng, sprite, height, width, 0.12, 0.3)
    c_motion = _motion(rng, num_frames, height, width, c_base,
                       profile.jump_prob, 0.0, still=rng.random() < 0.3)
    clutter.append(Layer(sprite, "clutter", _rects(c_motion),
                         np.ones(num_frames, bool)))

  layers = clutter + distractors + [target] + occluders
  return VideoPlan(height=height, width=width, background_name=bg_name,
                   background=photo, camera=camera, layers=layers,
                   target_index=len(clutter) + len(distractors),
                   absences=absences, occlusions=occlusions)


def plan_still(rng: np.random.Generator, height: int, width: int,
               num_instances: tuple[int, int] = (2, 6)) -> VideoPlan:
  """A one-frame plan of several cut-outs (COCO-style image).

  A third of the images repeat one cut-out as a recoloured look-alike, so
  that instance-level discrimination is also learned from stills.
  """
  bg_name, photo = assets.photo_for_background(rng)
  camera = plan_camera(rng, photo, 1, height, width)
  layers = []
  for _ in range(_int_range(rng, num_instances)):
    if layers and rng.random() < 0.33:
      sprite = assets.recolor(layers[-1].sprite, rng.uniform(30, 90),
                              rng.uniform(0.8, 1.2))
    else:
      sprite = assets.make_sprite(rng)
    base = _base_size(rng, sprite, height, width, 0.14, 0.35)
    wh = np.maximum(base * rng.uniform(0.7, 1.3), MIN_SIDE)
    centre = rng.uniform(0.4 * wh, np.array([width, height]) - 0.4 * wh)
    rect = _rects(np.concatenate([centre, wh])[None])
    layers.append(Layer(sprite, "instance", rect, np.ones(1, bool)))
  return VideoPlan(height=height, width=width, background_name=bg_name,
                   background=photo, camera=camera, layers=layers)
