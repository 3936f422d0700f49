"""Sprites: the objects of the synthetic videos, and their look-alikes.

A sprite is a cut-out: an RGB patch plus a soft-edged alpha mask, stored at
a small native resolution and resized per frame. Its silhouette comes from
an object kind (shapes.py) and its pixels from a texture source
(textures.py), both drawn from one domain (domains.py). Look-alike
distractors share exactly one of the two with the target: the silhouette
(other texture) or the texture (other kind of silhouette), never both.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from gt_jax.data.synthetic import domains
from gt_jax.data.synthetic import shapes
from gt_jax.data.synthetic import textures
from gt_jax.data.synthetic.images import SyntheticAssetError  # re-export

# Sprites are stored with this longest side and resized per frame.
NATIVE_SIZE = 64
# Softness of the mask edge (Gaussian sigma in native sprite pixels); the
# alpha = 0.5 level stays on the hard shape's boundary.
_EDGE_SIGMA = 1.2

__all__ = ["NATIVE_SIZE", "Sprite", "SyntheticAssetError", "make_sprite",
           "occluder_sprite", "shape_alike", "texture_alike"]


@dataclasses.dataclass(frozen=True)
class Sprite:
  """A cut-out object.

  Attributes:
    rgb: float32 (h, w, 3) colours in [0, 255].
    alpha: float32 (h, w) opacity in [0, 1]; the object is `alpha >= 0.5`.
    kind: the silhouette's kind (domains.KIND_CLASSES key).
    source: the texture source (an image or pattern name).
  """
  rgb: np.ndarray
  alpha: np.ndarray
  kind: str
  source: str

  @property
  def aspect(self) -> float:
    """Width / height of the native sprite."""
    return self.rgb.shape[1] / self.rgb.shape[0]


def _native_hw(aspect: float) -> tuple[int, int]:
  aspect = float(np.clip(aspect, 0.4, 2.5))
  if aspect <= 1:
    return NATIVE_SIZE, max(8, round(NATIVE_SIZE * aspect))
  return max(8, round(NATIVE_SIZE / aspect)), NATIVE_SIZE


def _soften(mask: np.ndarray) -> np.ndarray:
  alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), _EDGE_SIGMA)
  return np.clip(alpha, 0.0, 1.0).astype(np.float32)


def _mask(rng: np.random.Generator, kind: str, aspect: float | None,
          region: str) -> tuple[np.ndarray, np.ndarray | None, str]:
  """A (h, w) float32 hard mask of `kind` at native size, and own pixels."""
  if kind in shapes.NATURAL_ASPECT or kind == "face":
    mask, rgb, source = shapes.cutout(rng, kind, region)
    h, w = _native_hw(mask.shape[1] / mask.shape[0])
    m = cv2.resize(mask.astype(np.float32), (w, h),
                   interpolation=cv2.INTER_AREA)
    m = (m >= 0.5).astype(np.float32)
    if rgb is not None:
      rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    return m, rgb, source
  if aspect is None:
    aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
  h, w = _native_hw(aspect)
  return shapes.hard_mask(rng, kind, h, w), None, ""


def _rim(rgb: np.ndarray, mask: np.ndarray) -> None:
  """A contrasting rim (in place) keeps thin silhouettes readable at 20 px."""
  rim = (mask - cv2.erode(mask, np.ones((3, 3), np.uint8))) > 0
  rgb[rim] = 255.0 - rgb[rim].mean(-1, keepdims=True)


def make_sprite(rng: np.random.Generator, domain: domains.Domain,
                kind: str | None = None,
                aspect: float | None = None) -> Sprite:
  """A random object of `domain`: a kind's silhouette under a texture.

  Args:
    rng: the random generator.
    domain: where the kind and texture come from.
    kind: None draws one of domain.kinds.
    aspect: width / height; None draws one in [0.5, 2] (kinds with a
      natural aspect keep theirs).
  """
  if kind is None:
    kind = str(rng.choice(domain.kinds))
  mask, rgb, source = _mask(rng, kind, aspect, domain.region)
  h, w = mask.shape
  if rgb is None:
    source, rgb = textures.object_texture(rng, domain.textures, h, w,
                                          domain.region)
  rgb = np.array(rgb, np.float32)
  if kind in ("horse", "holed_blob", "ring"):
    _rim(rgb, mask)
  return Sprite(rgb=rgb, alpha=_soften(mask), kind=kind, source=source)


def shape_alike(rng: np.random.Generator, sprite: Sprite,
                domain: domains.Domain) -> Sprite:
  """The same silhouette as `sprite` with a texture of another source."""
  h, w = sprite.alpha.shape
  source, rgb = textures.object_texture(rng, domain.textures, h, w,
                                        domain.region, avoid=sprite.source)
  return dataclasses.replace(sprite, rgb=rgb.astype(np.float32),
                             source=source)


def texture_alike(rng: np.random.Generator, sprite: Sprite,
                  domain: domains.Domain) -> Sprite:
  """The texture of `sprite` under the silhouette of another kind."""
  others = [k for k in domain.kinds
            if k != sprite.kind and k not in shapes.CUTOUT_KINDS]
  kind = str(rng.choice(others))
  mask, _, _ = _mask(rng, kind, sprite.aspect, domain.region)
  h, w = mask.shape
  rgb = cv2.resize(sprite.rgb, (w, h), interpolation=cv2.INTER_LINEAR)
  return Sprite(rgb=rgb.astype(np.float32), alpha=_soften(mask), kind=kind,
                source=sprite.source)


def occluder_sprite(rng: np.random.Generator, domain: domains.Domain,
                    aspect: float) -> Sprite:
  """A boxy textured cut-out, big enough to hide a whole target."""
  h, w = _native_hw(aspect)
  mask = shapes.hard_mask(rng, "occluder", h, w)
  source, rgb = textures.object_texture(rng, domain.textures, h, w,
                                        domain.region)
  return Sprite(rgb=rgb, alpha=_soften(mask), kind="occluder", source=source)
