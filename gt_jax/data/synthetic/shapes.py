"""Object kinds: the silhouettes (and own textures) of synthetic objects.

A kind is either a procedural outline (`hard_mask`) filled later with any
texture, or a cut-out that brings its own pixels (coins and faces from
scikit-image, the gift box of matplotlib's sample data). Every mask is a
binary float32 (h, w) array touching all four borders; thin parts are kept
thick enough (>= ~1/8 of the short side) to survive downscaling to 10 px.
Which kinds belong to training and which to the held-out set: domains.py.
"""

from __future__ import annotations

import functools
import os

import cv2
import numpy as np
import skimage.data
import skimage.filters
import skimage.measure

from gt_jax.data.synthetic import images
from gt_jax.data.synthetic import textures

# Kinds that bring their own texture (a real cut-out's pixels).
CUTOUT_KINDS = ("coin", "face", "present")
# Kinds with a natural aspect ratio (the caller's aspect is ignored).
NATURAL_ASPECT = ("horse", "glyph", "ttf_glyph", "coin", "present")
# Characters of the two glyph kinds: letters are drawn with OpenCV's Hershey
# vector fonts (training); digits and symbols with matplotlib's TrueType
# fonts (held-out), so no held-out glyph is a training character.
HERSHEY_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZabdefghkmnpqrty"
TTF_CHARS = "0123456789&#@%?$§ΩΨλΣπ"
_HERSHEY_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX,
                  cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
                  cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
                  cv2.FONT_HERSHEY_SCRIPT_COMPLEX)
_TTF_FONTS = ("DejaVuSans-Bold.ttf", "DejaVuSerif-Bold.ttf",
              "DejaVuSansMono-Bold.ttf", "STIXGeneralBol.ttf",
              "DejaVuSans-BoldOblique.ttf")


def _fit(points: np.ndarray, h: int, w: int) -> np.ndarray:
  """Scales (N, 2) x, y points to span [0, w - 1] x [0, h - 1]."""
  p = points - points.min(0)
  p = p / np.maximum(np.ptp(points, 0), 1e-6) * np.array([w - 1, h - 1])
  return p.round().astype(np.int32)


def _poly_mask(points: np.ndarray, h: int, w: int) -> np.ndarray:
  mask = np.zeros((h, w), np.uint8)
  cv2.fillPoly(mask, [_fit(points, h, w)], 1)
  return mask


def _radial(theta: np.ndarray, radius: np.ndarray) -> np.ndarray:
  return np.stack([radius * np.cos(theta), radius * np.sin(theta)], -1)


def _ellipse(h: int, w: int, cx: float = 0.5, cy: float = 0.5,
             rx: float = 0.5, ry: float = 0.5) -> np.ndarray:
  yy, xx = np.mgrid[:h, :w]
  return ((((xx + 0.5) / w - cx) / rx)**2 +
          (((yy + 0.5) / h - cy) / ry)**2) <= 1.0


def hard_mask(rng: np.random.Generator, kind: str, h: int,
              w: int) -> np.ndarray:
  """A binary (h, w) float32 mask of a procedural `kind`."""
  theta = np.linspace(0, 2 * np.pi, 96, endpoint=False)
  if kind == "ellipse":
    mask = _ellipse(h, w).astype(np.uint8)
  elif kind in ("roundrect", "occluder"):
    mask = np.zeros((h, w), np.uint8)
    r = int(rng.uniform(0.1, 0.35) * min(h, w)) if kind == "roundrect" else 0
    cv2.rectangle(mask, (r, 0), (w - 1 - r, h - 1), 1, -1)
    cv2.rectangle(mask, (0, r), (w - 1, h - 1 - r), 1, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r),
                   (w - 1 - r, h - 1 - r)):
      cv2.circle(mask, (cx, cy), r, 1, -1)
  elif kind == "polygon":
    n = int(rng.integers(3, 9))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    mask = _poly_mask(_radial(ang, rng.uniform(0.55, 1.0, n)), h, w)
  elif kind == "star":
    n = int(rng.integers(4, 9))
    ang = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False) + rng.uniform(0, 6.3)
    rad = np.where(np.arange(2 * n) % 2 == 0, 1.0, rng.uniform(0.4, 0.6))
    mask = _poly_mask(_radial(ang, rad), h, w)
  elif kind == "ring":
    inner = rng.uniform(0.3, 0.6)
    mask = (_ellipse(h, w) & ~_ellipse(h, w, rx=0.5 * inner,
                                       ry=0.5 * inner)).astype(np.uint8)
  elif kind == "holed_blob":
    radius = np.ones_like(theta)
    for k in (2, 3, 5):
      radius += rng.uniform(0, 0.2) * np.cos(k * theta + rng.uniform(0, 6.3))
    mask = _poly_mask(_radial(theta, radius), h, w)
    for _ in range(int(rng.integers(1, 4))):
      r = rng.uniform(0.08, 0.15)
      cx, cy = rng.uniform(0.32, 0.68, 2)
      mask[_ellipse(h, w, cx, cy, r, r)] = 0
  elif kind == "cross":
    arm = rng.uniform(0.3, 0.45)
    lo, hi = 0.5 - arm / 2, 0.5 + arm / 2
    pts = np.array([[lo, 0], [hi, 0], [hi, lo], [1, lo], [1, hi], [hi, hi],
                    [hi, 1], [lo, 1], [lo, hi], [0, hi], [0, lo], [lo, lo]])
    if rng.random() < 0.5:  # an X instead of a +
      c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
      pts = (pts - 0.5) @ np.array([[c, -s], [s, c]])
    mask = _poly_mask(pts, h, w)
  elif kind == "crescent":
    shift = rng.uniform(0.25, 0.45)
    mask = (_ellipse(h, w) & ~_ellipse(h, w, 0.5 + shift, 0.5, 0.45,
                                       0.45)).astype(np.uint8)
    if rng.random() < 0.5:
      mask = mask[:, ::-1].copy()
    ys, xs = np.nonzero(mask)
    mask = cv2.resize(mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1],
                      (w, h), interpolation=cv2.INTER_NEAREST)
  elif kind == "gear":
    teeth = int(rng.integers(6, 11))
    fine = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    rad = np.where(np.cos(teeth * fine) > 0, 1.0, 0.78)
    mask = _poly_mask(_radial(fine, rad), h, w)
    mask[_ellipse(h, w, rx=0.14, ry=0.14)] = 0
  elif kind == "heart":
    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    pts = np.stack([16 * np.sin(t)**3,
                    -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t)
                      - np.cos(4 * t))], -1)
    mask = _poly_mask(pts, h, w)
  else:
    raise ValueError(f"unknown object kind {kind!r}")
  return mask.astype(np.float32)


@functools.lru_cache(maxsize=1)
def horse_mask() -> np.ndarray:
  """The skimage horse silhouette (True = horse), cropped to the animal."""
  horse = ~np.asarray(skimage.data.horse(), bool)
  return _crop_to(horse)


def _crop_to(mask: np.ndarray) -> np.ndarray:
  ys, xs = np.nonzero(mask)
  return mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _glyph_hershey(rng: np.random.Generator) -> np.ndarray:
  char = str(rng.choice(list(HERSHEY_CHARS)))
  font = int(rng.choice(_HERSHEY_FONTS))
  canvas = np.zeros((160, 160), np.uint8)
  thick = int(rng.integers(8, 12))
  cv2.putText(canvas, char, (30, 120), font, 3.0, 1, thick, cv2.LINE_AA)
  return _crop_to(canvas > 0)


@functools.lru_cache(maxsize=None)
def _ttf_font(name: str, size: int):
  from PIL import ImageFont  # pylint: disable=g-import-not-at-top
  import matplotlib  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data",
                      "fonts", "ttf", name)
  return ImageFont.truetype(path, size)


def _glyph_ttf(rng: np.random.Generator) -> np.ndarray:
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top
  char = str(rng.choice(list(TTF_CHARS)))
  font = _ttf_font(str(rng.choice(_TTF_FONTS)), 110)
  im = Image.new("L", (200, 200), 0)
  ImageDraw.Draw(im).text((40, 20), char, fill=255, font=font,
                          stroke_width=int(rng.integers(2, 5)),
                          stroke_fill=255)
  mask = np.asarray(im) >= 128
  if not mask.any():  # a font without the character: a sure fallback
    return _glyph_ttf(np.random.default_rng(rng.integers(1 << 30)))
  return _crop_to(mask)


@functools.lru_cache(maxsize=1)
def coin_cutouts() -> tuple[tuple[np.ndarray, np.ndarray, float], ...]:
  """The coins of skimage.data.coins: (mask, gray patch, centre x / W)."""
  coins = np.asarray(skimage.data.coins())
  fg = coins > skimage.filters.threshold_otsu(coins)
  fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN,
                        np.ones((5, 5), np.uint8))
  fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
  out = []
  for reg in skimage.measure.regionprops(skimage.measure.label(fg)):
    y0, x0, y1, x1 = reg.bbox
    if reg.area < 400 or min(y1 - y0, x1 - x0) < 20:
      continue
    mask = reg.image_filled
    patch = coins[y0:y1, x0:x1]
    out.append((mask, patch, (x0 + x1) / 2 / coins.shape[1]))
  return tuple(out)


def cutout(rng: np.random.Generator, kind: str, region: str
           ) -> tuple[np.ndarray, np.ndarray | None, str]:
  """A natural-aspect mask and, for cut-out kinds, its own pixels.

  Args:
    kind: one of NATURAL_ASPECT or "face".
    region: images.REGIONS key; coins and faces are split by it so that
      training and the in-distribution test never share an instance.

  Returns:
    (bool mask (h, w), float32 (h, w, 3) rgb or None, texture source name).
  """
  if kind == "horse":
    return horse_mask(), None, ""
  if kind == "glyph":
    return _glyph_hershey(rng), None, ""
  if kind == "ttf_glyph":
    return _glyph_ttf(rng), None, ""
  if kind == "coin":
    lo, hi = images.REGIONS[region]
    pool = [c for c in coin_cutouts() if lo <= c[2] < hi]
    mask, patch, _ = pool[int(rng.integers(0, len(pool)))]
    p = patch.astype(np.float32)
    p = (p - p.min()) / max(float(np.ptp(p)), 1e-6)
    rgb = (0.3 + 0.7 * p)[..., None] * textures.random_tint(rng)[None, None]
    return mask, rgb, "coins"
  if kind == "face":
    faces = skimage.data.lfw_subset()[:100]  # the first 100 are faces
    split = {"train": (0, 70), "test": (70, 100), "all": (0, 100)}[region]
    face = faces[int(rng.integers(*split))].astype(np.float32)
    face = (face - face.min()) / max(float(np.ptp(face)), 1e-6)
    rgb = (0.3 + 0.7 * face)[..., None] * textures.random_tint(rng)[None, None]
    return _ellipse(*face.shape, rx=0.42, ry=0.5), rgb, "lfw_subset"
  if kind == "present":
    rgba = _present_rgba()
    mask = rgba[..., 3] >= 128
    rgb = rgba[..., :3].astype(np.uint8)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.int32)
    hsv[..., 0] = (hsv[..., 0] + int(rng.integers(0, 180))) % 180
    rgb = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    ys, xs = np.nonzero(mask)
    sl = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    return mask[sl], rgb[sl].astype(np.float32), "present"
  raise ValueError(f"unknown cut-out kind {kind!r}")


@functools.lru_cache(maxsize=1)
def _present_rgba() -> np.ndarray:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  path = os.path.join(images.mpl_sample_dir(),
                      images.MPL_IMAGES["present"][0])
  with open(path, "rb") as f:
    return np.asarray(Image.open(f).convert("RGBA"))
