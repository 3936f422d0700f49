"""Real-photo assets of the synthetic dataset: photos, textures and sprites.

Everything comes from photographs that scikit-image ships inside its wheel
(`skimage.data`), so the dataset needs no network. Some `skimage.data` images
(brain, eagle, kidney, ...) are fetched with pooch on first use; they are not
used here. A sprite is a cut-out: an RGB patch of a photo plus a soft-edged
alpha mask, stored at a small native resolution and resized per frame.
"""

from __future__ import annotations

import dataclasses
import functools

import cv2
import numpy as np
import skimage.data

# Colour photographs bundled with scikit-image (no download needed).
COLOR_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
                "immunohistochemistry", "retina", "colorwheel")
# Grayscale photographs and textures, tinted with a random colour when used.
GRAY_PHOTOS = ("camera", "brick", "grass", "gravel", "moon", "coins", "clock",
               "page", "text", "cell")
# Mask shapes of sprites, with the class names written to the annotation
# files: (LaSOT category, COCO category name). The pairing is arbitrary but
# uses real names so that readers with official category tables accept them.
SHAPE_CLASSES = {
    "ellipse": ("volleyball", "sports ball"),
    "roundrect": ("book", "book"),
    "blob": ("turtle", "teddy bear"),
    "horse": ("horse", "horse"),
    "face": ("person", "person"),
}
TARGET_SHAPES = tuple(SHAPE_CLASSES)
# Sprites are stored with this longest side and resized per frame.
NATIVE_SIZE = 64
# Photos are downscaled to at most this side once, to keep crops cheap.
_MAX_PHOTO_SIDE = 640
# Softness of the mask edge (Gaussian sigma in native sprite pixels); the
# alpha = 0.5 level stays on the hard shape's boundary.
_EDGE_SIGMA = 1.2
# Minimum brightness mean / spread (0..255) of a sprite texture.
_MIN_TEXTURE_MEAN = 60.0
_MIN_TEXTURE_STD = 20.0


class SyntheticAssetError(RuntimeError):
  """A bundled scikit-image photo could not be loaded."""


@dataclasses.dataclass(frozen=True)
class Sprite:
  """A cut-out object.

  Attributes:
    rgb: float32 (h, w, 3) colours in [0, 255].
    alpha: float32 (h, w) opacity in [0, 1]; the object is `alpha >= 0.5`.
    shape: the mask shape, a key of SHAPE_CLASSES (or "occluder").
    source: the photo the texture was cut from.
  """
  rgb: np.ndarray
  alpha: np.ndarray
  shape: str
  source: str

  @property
  def aspect(self) -> float:
    """Width / height of the native sprite."""
    return self.rgb.shape[1] / self.rgb.shape[0]


@functools.lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
  """Returns the bundled photo `name` as uint8 (H, W, 3) RGB (read-only).

  Raises:
    SyntheticAssetError: `name` is not a bundled photo or cannot be loaded
      offline.
  """
  if name not in COLOR_PHOTOS + GRAY_PHOTOS:
    raise SyntheticAssetError(
        f"skimage.data.{name}: not one of the offline photos "
        f"{COLOR_PHOTOS + GRAY_PHOTOS}")
  try:
    img = np.asarray(getattr(skimage.data, name)())
  except Exception as e:  # pooch/network errors differ between versions.
    raise SyntheticAssetError(
        f"skimage.data.{name}: cannot be loaded offline ({e})") from e
  if img.ndim == 2:
    img = np.repeat(img[..., None], 3, axis=-1)
  img = np.ascontiguousarray(img[..., :3]).astype(np.uint8)
  scale = _MAX_PHOTO_SIDE / max(img.shape[:2])
  if scale < 1:
    size = (round(img.shape[1] * scale), round(img.shape[0] * scale))
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
  img.flags.writeable = False
  return img


def random_tint(rng: np.random.Generator) -> np.ndarray:
  """A saturated RGB colour, float32 (3,), used to tint gray photos."""
  hsv = np.array([[[rng.integers(0, 180), rng.integers(140, 256), 255]]],
                 np.uint8)
  return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def photo_for_background(rng: np.random.Generator) -> tuple[str, np.ndarray]:
  """Picks a photo (colour or tinted gray) for a video background.

  Returns:
    (name, float32 (H, W, 3) image in [0, 255]).
  """
  name = str(rng.choice(COLOR_PHOTOS + GRAY_PHOTOS))
  img = load_photo(name).astype(np.float32)
  if name in GRAY_PHOTOS:
    # Blend towards a tint so that gray backgrounds still carry colour.
    tint = random_tint(rng)
    img = img * (0.55 + 0.45 * tint / 255.0)
  return name, img


def _texture(rng: np.random.Generator, h: int, w: int) -> tuple[str,
                                                                 np.ndarray]:
  """A random (h, w, 3) float32 crop of a photo, resized; gray ones tinted.

  Dark or flat crops (e.g. empty sky of the Hubble field) are redrawn: a
  target must carry enough colour and texture to differ from its recoloured
  look-alikes.
  """
  for _ in range(20):
    name = str(rng.choice(COLOR_PHOTOS + GRAY_PHOTOS))
    photo = load_photo(name)
    ph, pw = photo.shape[:2]
    # Crop 1/6 .. 1/2 of the photo's short side so textures keep structure.
    side = rng.uniform(1 / 6, 1 / 2) * min(ph, pw)
    ch = int(min(ph, side * np.sqrt(h / w)))
    cw = int(min(pw, side * np.sqrt(w / h)))
    y0 = int(rng.integers(0, ph - ch + 1))
    x0 = int(rng.integers(0, pw - cw + 1))
    crop = photo[y0:y0 + ch, x0:x0 + cw]
    tex = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)
    tex = tex.astype(np.float32)
    if name in GRAY_PHOTOS:
      tex = tex * (0.35 + 0.65 * random_tint(rng) / 255.0)
    if tex.mean() >= _MIN_TEXTURE_MEAN and tex.std() >= _MIN_TEXTURE_STD:
      break
  return name, tex


def _hard_mask(rng: np.random.Generator, shape: str, h: int,
               w: int) -> np.ndarray:
  """A binary (h, w) float32 mask of `shape` touching all four borders."""
  mask = np.zeros((h, w), np.uint8)
  yy, xx = np.mgrid[:h, :w]
  inside_ellipse = (((xx - (w - 1) / 2) / (w / 2))**2 +
                    ((yy - (h - 1) / 2) / (h / 2))**2) <= 1.0
  if shape == "ellipse":
    mask[inside_ellipse] = 1
  elif shape == "roundrect":
    r = int(rng.uniform(0.1, 0.35) * min(h, w))
    cv2.rectangle(mask, (r, 0), (w - 1 - r, h - 1), 1, -1)
    cv2.rectangle(mask, (0, r), (w - 1, h - 1 - r), 1, -1)
    for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r),
                   (w - 1 - r, h - 1 - r)):
      cv2.circle(mask, (cx, cy), r, 1, -1)
  elif shape == "blob":
    # A star-convex outline with a few random low-frequency harmonics.
    theta = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    radius = np.ones_like(theta)
    for k in (2, 3, 5):
      radius += rng.uniform(0, 0.25) * np.cos(k * theta + rng.uniform(0, 6.3))
    px, py = radius * np.cos(theta), radius * np.sin(theta)
    px = (px - px.min()) / np.ptp(px) * (w - 1)
    py = (py - py.min()) / np.ptp(py) * (h - 1)
    pts = np.stack([px, py], -1).round().astype(np.int32)
    cv2.fillPoly(mask, [pts], 1)
  elif shape == "face":
    mask[inside_ellipse] = 1
  elif shape == "occluder":  # Boxy, so that it can hide a whole target.
    mask[:] = 1
  else:
    raise ValueError(f"unknown sprite shape {shape!r}")
  return mask.astype(np.float32)


@functools.lru_cache(maxsize=1)
def _horse_mask() -> np.ndarray:
  """The skimage horse silhouette (True = horse), cropped to the animal."""
  horse = ~np.asarray(skimage.data.horse(), bool)
  ys, xs = np.nonzero(horse)
  return horse[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _soften(mask: np.ndarray) -> np.ndarray:
  alpha = cv2.GaussianBlur(mask, (0, 0), _EDGE_SIGMA)
  return np.clip(alpha, 0.0, 1.0).astype(np.float32)


def make_sprite(rng: np.random.Generator, shape: str | None = None,
                aspect: float | None = None) -> Sprite:
  """A random cut-out: a photo texture under a soft-edged mask.

  Args:
    rng: the random generator.
    shape: a key of SHAPE_CLASSES or "occluder"; None draws a target shape.
    aspect: width / height; None draws one in [0.5, 2] (the horse keeps its
      own).

  Returns:
    The sprite, longest side NATIVE_SIZE.
  """
  if shape is None:
    shape = str(rng.choice(TARGET_SHAPES))
  if aspect is None:
    aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
  if shape == "horse":
    horse = _horse_mask()
    aspect = horse.shape[1] / horse.shape[0]
  h, w = ((NATIVE_SIZE, round(NATIVE_SIZE * aspect)) if aspect <= 1 else
          (round(NATIVE_SIZE / aspect), NATIVE_SIZE))
  if shape == "horse":
    mask = cv2.resize(_horse_mask().astype(np.float32), (w, h),
                      interpolation=cv2.INTER_AREA)
    mask = (mask >= 0.5).astype(np.float32)
  else:
    mask = _hard_mask(rng, shape, h, w)
  if shape == "face":
    # A real face from the bundled LFW subset, tinted, as the texture.
    faces = skimage.data.lfw_subset()
    face = faces[int(rng.integers(0, len(faces)))].astype(np.float32)
    face = cv2.resize(face, (w, h), interpolation=cv2.INTER_CUBIC)
    # Stretch the contrast: many LFW crops are dark.
    face = (face - face.min()) / max(float(np.ptp(face)), 1e-6)
    rgb = (0.3 + 0.7 * face)[..., None] * random_tint(rng)[None, None]
    source = "lfw_subset"
  else:
    source, rgb = _texture(rng, h, w)
  if shape in ("horse", "blob"):
    # A contrasting rim makes thin silhouettes readable at 20 px.
    rim = (mask - cv2.erode(mask, np.ones((3, 3), np.uint8))) > 0
    rgb[rim] = 255.0 - rgb[rim].mean(-1, keepdims=True)
  return Sprite(rgb=rgb.astype(np.float32), alpha=_soften(mask), shape=shape,
                source=source)


def recolor(sprite: Sprite, hue_shift_deg: float, value_gain: float) -> Sprite:
  """A look-alike of `sprite`: hue rotated and brightness scaled.

  Args:
    sprite: the original.
    hue_shift_deg: rotation of the hue in degrees (OpenCV stores hue / 2).
    value_gain: multiplier of the HSV value channel.

  Returns:
    A sprite with the same mask and a changed colour.
  """
  rgb = np.clip(sprite.rgb, 0, 255).astype(np.uint8)
  hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.int32)
  hsv[..., 0] = (hsv[..., 0] + round(hue_shift_deg / 2)) % 180
  # Raise saturation so that the hue change also shows on dull textures.
  hsv[..., 1] = np.clip(hsv[..., 1] * 1.2 + 40, 0, 255)
  hsv[..., 2] = np.clip(hsv[..., 2] * value_gain, 0, 255)
  out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
  return dataclasses.replace(sprite, rgb=out.astype(np.float32))
