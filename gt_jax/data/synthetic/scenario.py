"""Per-video plans: where every object of a synthetic video is, frame by frame.

A plan is pure geometry and colour (no pixels): the background and its
per-frame camera warp, and a stack of sprite layers (bottom first) with one
integer rectangle and one colour gain per frame. The renderer turns it into
frames and measures the ground truth from the pixels it draws, so labels
cannot drift from content. Everything is drawn from one domain
(domains.py): its object kinds, textures, backgrounds and motion models.

What makes a video hard for trivial baselines yet learnable by a small
query-guided detector:
  * the target follows one of the domain's motion models (smooth drift,
    jumps, oscillation, zoom; held-out: billiard, dashes) over a moving
    background, and its colour and brightness drift over time;
  * look-alike distractors share the target's silhouette (with another
    texture) or its texture (under another silhouette), never both, and stay
    around while the target is gone;
  * other objects clutter the scene; boxy occluders pass over the target,
    some hiding it completely for a while;
  * the target leaves the view through a border and stays out for a stretch,
    then reappears somewhere else.
The target's silhouette and texture never change (besides scale and the
colour gain), so a tracker that compares with the first-frame cut-out can
always find it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gt_jax.data.synthetic import assets
from gt_jax.data.synthetic import domains
from gt_jax.data.synthetic import motion
from gt_jax.data.synthetic import textures

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
    num_clutter: unrelated objects per video.
    colour_change: largest drift of an object's log brightness over a video
      (per-channel drifts are half of it).
  """
  num_absences: tuple[int, int] = (0, 1)
  absence_frac: tuple[float, float] = (0.05, 0.15)
  num_occlusions: tuple[int, int] = (1, 2)
  full_occlusion_prob: float = 0.5
  num_distractors: tuple[int, int] = (1, 3)
  num_clutter: tuple[int, int] = (1, 3)
  colour_change: float = 0.35


# Training/validation videos: mostly visible target, short absences.
TRAIN_PROFILE = Profile()
# Long-term test videos (LaSOT-style): long out-of-view stretches. The
# in-distribution and the held-out test sets share it, so that they differ
# only in their domain.
TEST_PROFILE = Profile(num_absences=(1, 2), absence_frac=(0.15, 0.3),
                       num_distractors=(1, 3))
MIN_SIDE = motion.MIN_SIDE
# Frames of the slide out through a border before an absence.
_EXIT_FRAMES = (2, 5)
# Frames at the start that stay free of events: the first frame is the
# tracker's initialisation and must show the whole target.
_CLEAR_START = motion.CLEAR_START


@dataclasses.dataclass
class Layer:
  """One sprite, its rectangle and its colour gain in every frame.

  Attributes:
    sprite: the cut-out.
    role: one of ROLES.
    rects: int64 (T, 4) x0, y0, w, h of the sprite rectangle, 0-based frame
      pixels (may lie partly or wholly outside the frame).
    present: bool (T,) whether the layer is drawn in frame t.
    gains: float32 (T, 3) per-channel colour gain in frame t, or None (1).
    motion: the motion model of the layer ("" for stills / occluders).
  """
  sprite: assets.Sprite
  role: str
  rects: np.ndarray
  present: np.ndarray
  gains: np.ndarray | None = None
  motion: str = ""


@dataclasses.dataclass
class VideoPlan:
  """Everything needed to render a video (or, with T = 1, a still image).

  Attributes:
    height, width: frame size in pixels.
    background_name: the image or pattern under everything.
    background: float32 (Hp, Wp, 3) that background (tinted if gray).
    camera: float32 (T, 2, 3) affine maps frame (x, y, 1) -> photo (x, y).
    layers: the sprites, bottom first.
    target_index: index of the target layer in `layers` (-1 for stills).
    absences: (start, end) frame ranges where the target is out of view.
    occlusions: (start, end, full) occluder passes.
    domain: the domain name the plan was drawn from.
    camera_motion: the camera model.
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
  domain: str = "train"
  camera_motion: str = "pan"

  @property
  def num_frames(self) -> int:
    return self.camera.shape[0]

  @property
  def target(self) -> Layer:
    return self.layers[self.target_index]


def colour_gains(rng: np.random.Generator, num_frames: int,
                 amount: float) -> np.ndarray:
  """float32 (T, 3) per-channel gains: brightness and hue drifting slowly,
  sometimes with one abrupt step (a light switched); 1 in frame 0."""
  def drift(a: float) -> np.ndarray:
    w = motion.smooth_walk(rng, num_frames, 1.0)
    w = w - w[0]
    return w / max(float(np.abs(w).max()), 1e-6) * rng.uniform(0.3, 1) * a
  log_b = drift(amount)
  if num_frames > _CLEAR_START + 1 and rng.random() < 0.3:
    t = int(rng.integers(_CLEAR_START, num_frames))
    log_b[t:] += rng.choice([-1, 1]) * rng.uniform(0.15, 0.3)
  log_b = np.clip(log_b, -1.5 * amount, 1.5 * amount)
  log_c = np.stack([drift(amount / 2) for _ in range(3)], -1)
  return np.exp(log_b[:, None] + log_c).astype(np.float32)


def _base_size(rng: np.random.Generator, sprite: assets.Sprite, height: int,
               width: int, lo: float = 0.14, hi: float = 0.24) -> np.ndarray:
  """(w, h) at scale 1: shorter side a fraction lo..hi of the frame's."""
  short = max(MIN_SIDE / 0.6, rng.uniform(lo, hi) * min(height, width))
  a = sprite.aspect
  return np.array([short * max(a, 1), short / min(a, 1)])


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


def _occluder(rng: np.random.Generator, domain: domains.Domain,
              target_cxcywh: np.ndarray, start: int, end: int, full: bool,
              num_frames: int) -> Layer:
  """A boxy cut-out passing over the target during [start, end)."""
  n = end - start
  sprite = assets.occluder_sprite(rng, domain, float(rng.uniform(0.6, 1.6)))
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


def _background(rng: np.random.Generator, domain: domains.Domain,
                num_frames: int, height: int, width: int
                ) -> tuple[str, np.ndarray, str, np.ndarray]:
  name, photo = textures.background(rng, domain.backgrounds)
  cam_model = str(rng.choice(domain.cameras))
  camera = motion.camera_motion(rng, cam_model, photo, num_frames, height,
                                width)
  return name, photo, cam_model, camera


def plan_video(rng: np.random.Generator, num_frames: int, height: int,
               width: int, profile: Profile = TRAIN_PROFILE,
               domain: domains.Domain = domains.TRAIN) -> VideoPlan:
  """Draws a random video plan.

  Args:
    rng: the random generator (the plan is a pure function of its state).
    num_frames: T.
    height, width: frame size.
    profile: event statistics.
    domain: where kinds, textures, backgrounds and motions come from.

  Returns:
    The plan; layers are clutter, distractors, target, occluders (bottom
    first).
  """
  bg_name, photo, cam_model, camera = _background(rng, domain, num_frames,
                                                  height, width)
  target_sprite = assets.make_sprite(rng, domain)
  base = _base_size(rng, target_sprite, height, width)
  model = str(rng.choice(domain.motions))
  track = motion.object_motion(rng, model, num_frames, height, width, base)
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
      _exit_path(track, s, s + n_exit, width, height)
      present[s + n_exit:e] = False
      absences.append((s + n_exit, e))
    for s, e in spans[n_abs:]:
      full = bool(rng.random() < profile.full_occlusion_prob)
      occluders.append(_occluder(rng, domain, track, s, e, full,
                                 num_frames))
      occlusions.append((s, e, full))
  target = Layer(target_sprite, "target", _rects(track), present,
                 colour_gains(rng, num_frames, profile.colour_change), model)

  distractors = []
  for _ in range(_int_range(rng, profile.num_distractors)):
    if rng.random() < 0.5:
      look_alike = assets.shape_alike(rng, target_sprite, domain)
    else:
      look_alike = assets.texture_alike(rng, target_sprite, domain)
    # The target's size (short side), at the look-alike's own aspect.
    short = float(base.min()) * rng.uniform(0.85, 1.15)
    a = look_alike.aspect
    d_base = np.array([short * max(a, 1), short / min(a, 1)])
    d_model = str(rng.choice(domain.motions))
    d_track = motion.object_motion(rng, d_model, num_frames, height, width,
                                   d_base)
    distractors.append(Layer(
        look_alike, "distractor", _rects(d_track),
        np.ones(num_frames, bool),
        colour_gains(rng, num_frames, profile.colour_change), d_model))
  clutter = []
  for _ in range(_int_range(rng, profile.num_clutter)):
    sprite = assets.make_sprite(rng, domain)
    c_base = _base_size(rng, sprite, height, width, 0.12, 0.3)
    c_model = str(rng.choice(domain.motions))
    c_track = motion.object_motion(rng, c_model, num_frames, height, width,
                                   c_base, still=rng.random() < 0.3)
    clutter.append(Layer(sprite, "clutter", _rects(c_track),
                         np.ones(num_frames, bool),
                         colour_gains(rng, num_frames, profile.colour_change),
                         c_model))

  layers = clutter + distractors + [target] + occluders
  return VideoPlan(height=height, width=width, background_name=bg_name,
                   background=photo, camera=camera, layers=layers,
                   target_index=len(clutter) + len(distractors),
                   absences=absences, occlusions=occlusions,
                   domain=domain.name, camera_motion=cam_model)


def plan_still(rng: np.random.Generator, height: int, width: int,
               num_instances: tuple[int, int] = (2, 6),
               domain: domains.Domain = domains.TRAIN) -> VideoPlan:
  """A one-frame plan of several objects (COCO-style image).

  A third of the objects repeat the previous one as a look-alike (same
  silhouette or same texture), so that instance-level discrimination is
  also learned from stills.
  """
  bg_name, photo, cam_model, camera = _background(rng, domain, 1, height,
                                                  width)
  layers = []
  for _ in range(_int_range(rng, num_instances)):
    if layers and rng.random() < 0.33:
      alike = (assets.shape_alike if rng.random() < 0.5
               else assets.texture_alike)
      sprite = alike(rng, layers[-1].sprite, domain)
    else:
      sprite = assets.make_sprite(rng, domain)
    base = _base_size(rng, sprite, height, width, 0.14, 0.35)
    wh = np.maximum(base * rng.uniform(0.7, 1.3), MIN_SIDE)
    centre = rng.uniform(0.4 * wh, np.array([width, height]) - 0.4 * wh)
    rect = _rects(np.concatenate([centre, wh])[None])
    gain = colour_gains(rng, 2, 0.3)[1:]  # one random colour / brightness
    layers.append(Layer(sprite, "instance", rect, np.ones(1, bool), gain))
  return VideoPlan(height=height, width=width, background_name=bg_name,
                   background=photo, camera=camera, layers=layers,
                   domain=domain.name, camera_motion=cam_model)
