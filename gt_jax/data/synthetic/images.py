"""The photographs the synthetic dataset is cut from, all available offline.

Two families, kept apart by the dataset's domains (domains.py):
  * scikit-image's bundled photos (`skimage.data`, inside its wheel); some
    `skimage.data` images (brain, eagle, kidney, ...) are fetched with pooch
    on first use and are never used here;
  * the sample data that matplotlib ships in `mpl-data/sample_data` (two
    photos, a logo, two elevation maps and an MRI slice), used only by the
    held-out generalisation set, never in training.
Every image is returned as read-only uint8 (H, W, 3) RGB, downscaled to at
most `_MAX_PHOTO_SIDE`.
"""

from __future__ import annotations

import functools
import gzip
import os

import cv2
import numpy as np
import skimage.data

# Colour photographs bundled with scikit-image (no download needed).
SKIMAGE_COLOR = ("astronaut", "chelsea", "coffee", "rocket",
                 "hubble_deep_field", "immunohistochemistry", "retina",
                 "colorwheel", "stereo_motorcycle", "logo")
# Grayscale photographs and textures, tinted when used.
SKIMAGE_GRAY = ("camera", "brick", "grass", "gravel", "moon", "coins",
                "clock", "page", "text", "cell", "microaneurysms",
                "checkerboard", "shepp_logan_phantom")
# matplotlib's sample data: name -> (file, kind). Held-out only.
MPL_IMAGES = {
    "grace_hopper": ("grace_hopper.jpg", "photo"),
    "present": ("Minduka_Present_Blue_Pack.png", "rgba"),
    "mpl_logo": ("logo2.png", "rgba"),
    "jacksboro_dem": ("jacksboro_fault_dem.npz", "elevation"),
    "topobathy": ("topobathy.npz", "elevation"),
    "mri_slice": ("s1045.ima.gz", "mri"),
}
GRAY_IMAGES = SKIMAGE_GRAY + ("mri_slice",)
ALL_IMAGES = SKIMAGE_COLOR + SKIMAGE_GRAY + tuple(MPL_IMAGES)
# Images are downscaled to at most this side once, to keep crops cheap.
_MAX_PHOTO_SIDE = 640


class SyntheticAssetError(RuntimeError):
  """A bundled photo could not be loaded."""


def mpl_sample_dir() -> str:
  import matplotlib  # pylint: disable=g-import-not-at-top
  return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data",
                      "sample_data")


def _flatten_rgba(rgba: np.ndarray, grey: float = 128.0) -> np.ndarray:
  a = rgba[..., 3:4].astype(np.float32) / 255.0
  rgb = rgba[..., :3].astype(np.float32) * a + grey * (1 - a)
  return rgb.round().astype(np.uint8)


def _colour_map(values: np.ndarray, colormap: int) -> np.ndarray:
  v = values.astype(np.float64)
  v = (v - np.nanmin(v)) / max(float(np.nanmax(v) - np.nanmin(v)), 1e-9)
  gray = np.nan_to_num(v * 255).round().astype(np.uint8)
  return cv2.cvtColor(cv2.applyColorMap(gray, colormap), cv2.COLOR_BGR2RGB)


def _load_mpl(name: str) -> np.ndarray:
  fname, kind = MPL_IMAGES[name]
  path = os.path.join(mpl_sample_dir(), fname)
  if kind in ("photo", "rgba"):
    with open(path, "rb") as f:
      from PIL import Image  # pylint: disable=g-import-not-at-top
      im = np.asarray(Image.open(f).convert("RGBA"))
    return _flatten_rgba(im) if kind == "rgba" else im[..., :3]
  if kind == "elevation":
    with np.load(path) as d:
      key = "elevation" if "elevation" in d else "topo"
      values = np.asarray(d[key], np.float64)
    # Upsample: these maps are small (91x120, 344x403).
    values = cv2.resize(values, (values.shape[1] * 3, values.shape[0] * 3),
                        interpolation=cv2.INTER_CUBIC)
    cmap = cv2.COLORMAP_OCEAN if name == "topobathy" else cv2.COLORMAP_TURBO
    return _colour_map(values, cmap)
  # The MRI slice: 256x256 big-endian uint16 (matplotlib's image demo).
  with gzip.open(path, "rb") as f:
    values = np.frombuffer(f.read(), ">u2").reshape(256, 256)
  v = values.astype(np.float64)
  v = v / max(float(np.percentile(v, 99.5)), 1.0)
  return np.clip(v * 255, 0, 255).astype(np.uint8)


def _load_skimage(name: str) -> np.ndarray:
  img = getattr(skimage.data, name)()
  if isinstance(img, tuple):  # stereo_motorcycle: (left, right, disparity)
    img = img[0]
  img = np.asarray(img)
  if img.dtype != np.uint8:  # shepp_logan_phantom is float in [0, 1]
    img = np.clip(img * 255, 0, 255).round().astype(np.uint8)
  if img.ndim == 3 and img.shape[2] == 4:
    img = _flatten_rgba(img)
  if img.ndim == 2 and img.std() < 25:  # low-contrast scans (microaneurysms)
    lo, hi = np.percentile(img, (1, 99))
    img = np.clip((img - lo) / max(hi - lo, 1) * 255, 0, 255).astype(np.uint8)
  return img


@functools.lru_cache(maxsize=None)
def load_image(name: str) -> np.ndarray:
  """Returns the offline image `name` as uint8 (H, W, 3) RGB (read-only).

  Raises:
    SyntheticAssetError: `name` is not one of ALL_IMAGES or cannot be loaded
      offline.
  """
  if name not in ALL_IMAGES:
    raise SyntheticAssetError(
        f"image {name!r}: not one of the offline images {ALL_IMAGES} "
        f"(e.g. skimage.data.{name} would need a download)")
  try:
    img = _load_mpl(name) if name in MPL_IMAGES else _load_skimage(name)
  except Exception as e:  # pooch/network/IO errors differ between versions.
    where = "matplotlib sample_data" if name in MPL_IMAGES else "skimage.data"
    raise SyntheticAssetError(
        f"{where} {name}: cannot be loaded offline ({e})") from e
  if img.ndim == 2:
    img = np.repeat(img[..., None], 3, axis=-1)
  img = np.ascontiguousarray(img[..., :3]).astype(np.uint8)
  scale = _MAX_PHOTO_SIDE / max(img.shape[:2])
  if scale < 1:
    size = (round(img.shape[1] * scale), round(img.shape[0] * scale))
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
  img.flags.writeable = False
  return img


# Texture crops of the same photo never overlap between training and the
# in-distribution test: training cuts from the left part, the test from the
# right part (held-out images are cut anywhere).
REGIONS = {"train": (0.0, 0.65), "test": (0.65, 1.0), "all": (0.0, 1.0)}


def region_columns(width: int, region: str) -> tuple[int, int]:
  """[x0, x1) pixel columns of `region` (a key of REGIONS) in a photo."""
  lo, hi = REGIONS[region]
  return int(round(lo * width)), int(round(hi * width))


def crop(rng: np.random.Generator, name: str, h: int, w: int,
         region: str) -> tuple[np.ndarray, tuple[int, int, int, int]]:
  """A random crop of image `name` inside `region`, resized to (h, w).

  Returns:
    (float32 (h, w, 3) in [0, 255], (x0, y0, cw, ch) of the crop in the
    downscaled image).
  """
  img = load_image(name)
  ph = img.shape[0]
  c0, c1 = region_columns(img.shape[1], region)
  pw = c1 - c0
  # Crop 1/5 .. 3/5 of the region's short side so textures keep structure.
  side = rng.uniform(0.2, 0.6) * min(ph, pw)
  ch = max(4, int(min(ph, side * np.sqrt(h / w))))
  cw = max(4, int(min(pw, side * np.sqrt(w / h))))
  y0 = int(rng.integers(0, ph - ch + 1))
  x0 = c0 + int(rng.integers(0, pw - cw + 1))
  patch = img[y0:y0 + ch, x0:x0 + cw]
  out = cv2.resize(patch, (w, h), interpolation=cv2.INTER_AREA)
  return out.astype(np.float32), (x0, y0, cw, ch)
