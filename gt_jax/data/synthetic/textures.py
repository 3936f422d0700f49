"""Object and background textures: photo crops and procedural patterns.

A texture source is either an image name of images.py (cropped, gray ones
tinted) or the name of a procedural pattern below. Procedural patterns are
pure functions of the random stream: two-colour noise, stripes and gradients
(training domain), checkers, dots and waves (held-out domain only).
"""

from __future__ import annotations

import cv2
import numpy as np

from gt_jax.data.synthetic import images

PROCEDURAL = ("noise", "stripes", "gradient", "checker", "dots", "waves")
# Minimum brightness mean / spread (0..255) of an object texture: a target
# must carry enough colour and structure to be told from look-alikes.
_MIN_MEAN = 55.0
_MIN_STD = 18.0


def random_colour(rng: np.random.Generator, sat: tuple[int, int] = (120, 256),
                  val: tuple[int, int] = (150, 256)) -> np.ndarray:
  """An RGB colour, float32 (3,), from a random hue."""
  hsv = np.array([[[rng.integers(0, 180), rng.integers(*sat),
                    rng.integers(*val)]]], np.uint8)
  return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def random_tint(rng: np.random.Generator) -> np.ndarray:
  """A saturated RGB colour, float32 (3,), used to tint gray photos."""
  return random_colour(rng, (140, 256), (255, 256))


def _two_colours(rng: np.random.Generator, f: np.ndarray) -> np.ndarray:
  """Maps f in [0, 1] (h, w) to a blend of two random contrasting colours."""
  a = random_colour(rng)
  b = random_colour(rng, (0, 256), (20, 140))
  if rng.random() < 0.5:
    a, b = b, a
  return (a[None, None] * f[..., None] + b[None, None] * (1 - f[..., None]))


def _grid(h: int, w: int, rng: np.random.Generator,
          period: float) -> tuple[np.ndarray, np.ndarray]:
  """Rotated pixel coordinates (u, v) scaled to periods of `period` px."""
  yy, xx = np.mgrid[:h, :w].astype(np.float32)
  ang = rng.uniform(0, np.pi)
  u = (xx * np.cos(ang) + yy * np.sin(ang)) / period
  v = (-xx * np.sin(ang) + yy * np.cos(ang)) / period
  return u, v


def _value_noise(rng: np.random.Generator, h: int, w: int,
                 octaves: int = 4) -> np.ndarray:
  """Multi-octave value noise in [0, 1], float32 (h, w)."""
  out = np.zeros((h, w), np.float32)
  amp, total = 1.0, 0.0
  cells = int(rng.integers(2, 5))
  for _ in range(octaves):
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    total += amp
    amp *= 0.55
    cells *= 2
  out /= total
  return (out - out.min()) / max(float(np.ptp(out)), 1e-6)


def procedural(rng: np.random.Generator, name: str, h: int,
               w: int) -> np.ndarray:
  """A procedural texture, float32 (h, w, 3) in [0, 255]."""
  period = rng.uniform(0.12, 0.45) * max(h, w)
  if name == "noise":
    f = _value_noise(rng, h, w)
  elif name == "stripes":
    u, _ = _grid(h, w, rng, period)
    f = 0.5 + 0.5 * np.sin(2 * np.pi * u)
    if rng.random() < 0.5:  # hard-edged bands
      f = (f > 0.5).astype(np.float32)
  elif name == "gradient":
    if rng.random() < 0.5:
      u, _ = _grid(h, w, rng, max(h, w))
      f = (u - u.min()) / max(float(np.ptp(u)), 1e-6)
    else:
      yy, xx = np.mgrid[:h, :w].astype(np.float32)
      cy, cx = rng.uniform(0, h), rng.uniform(0, w)
      f = np.hypot(yy - cy, xx - cx)
      f = f / max(float(f.max()), 1e-6)
    f = np.clip(f + 0.15 * (_value_noise(rng, h, w, 2) - 0.5), 0, 1)
  elif name == "checker":
    u, v = _grid(h, w, rng, period / 2)
    f = ((np.floor(u) + np.floor(v)) % 2).astype(np.float32)
  elif name == "dots":
    u, v = _grid(h, w, rng, period / 2)
    d = np.hypot(u - np.round(u), v - np.round(v))
    f = (d < rng.uniform(0.2, 0.4)).astype(np.float32)
  elif name == "waves":
    u, v = _grid(h, w, rng, period)
    f = 0.5 + 0.5 * np.sin(2 * np.pi * (u + 0.3 * np.sin(2 * np.pi * v)))
  else:
    raise ValueError(f"unknown procedural texture {name!r}")
  return _two_colours(rng, f.astype(np.float32)).astype(np.float32)


def texture(rng: np.random.Generator, source: str, h: int, w: int,
            region: str = "all") -> np.ndarray:
  """One (h, w, 3) float32 texture of `source` (an image or a pattern).

  Args:
    rng: the random generator.
    source: an images.ALL_IMAGES name or a PROCEDURAL name.
    h, w: the size.
    region: photo region (images.REGIONS) crops are taken from.
  """
  if source in PROCEDURAL:
    return procedural(rng, source, h, w)
  tex, _ = images.crop(rng, source, h, w, region)
  if source in images.GRAY_IMAGES:
    tex = tex * (0.35 + 0.65 * random_tint(rng) / 255.0)
  return tex


def object_texture(rng: np.random.Generator, sources: tuple[str, ...],
                   h: int, w: int, region: str,
                   avoid: str | None = None) -> tuple[str, np.ndarray]:
  """A texture for an object, from a random source of `sources`.

  Dark or flat crops (e.g. the empty sky of the Hubble field) are redrawn.
  `avoid` (a source name) is not drawn while others exist.

  Returns:
    (source, float32 (h, w, 3)).
  """
  choices = [s for s in sources if s != avoid] or list(sources)
  for _ in range(20):
    source = str(rng.choice(choices))
    tex = texture(rng, source, h, w, region)
    if tex.mean() >= _MIN_MEAN and tex.std() >= _MIN_STD:
      break
  return source, tex


def background(rng: np.random.Generator, sources: tuple[str, ...],
               procedural_size: tuple[int, int] = (384, 480)
               ) -> tuple[str, np.ndarray]:
  """A background image (whole photo, or a large procedural pattern).

  Returns:
    (source, float32 (H, W, 3) in [0, 255]).
  """
  name = str(rng.choice(sources))
  if name in PROCEDURAL:
    img = procedural(rng, name, *procedural_size)
    # Muted, so that objects stand out as on the photos.
    return name, 0.6 * img + 0.4 * img.mean()
  img = images.load_image(name).astype(np.float32)
  if name in images.GRAY_IMAGES:
    # Blend towards a tint so that gray backgrounds still carry colour.
    img = img * (0.55 + 0.45 * random_tint(rng) / 255.0)
  return name, img
