"""The three domains of the synthetic dataset and what each may draw from.

  train     training/validation videos and the COCO-style stills;
  test      the in-distribution test: the training kinds, texture sources,
            motions and backgrounds, but new instances (photo crops from the
            other part of each photo, other coins and faces, fresh
            procedural draws);
  heldout   the generalisation test: object kinds, texture sources
            (matplotlib's sample images, held-out scikit-image photos,
            held-out patterns), object motions and a camera motion that no
            training video uses.
`tests/test_synthetic.py` checks that the partitions are disjoint.
"""

from __future__ import annotations

import dataclasses

from gt_jax.data.synthetic import images

TRAIN_KINDS = ("ellipse", "roundrect", "polygon", "star", "ring",
               "holed_blob", "glyph", "horse", "coin", "face")
HELDOUT_KINDS = ("cross", "crescent", "gear", "heart", "ttf_glyph",
                 "present")
# scikit-image photos kept for the held-out set alone.
HELDOUT_SKIMAGE = ("stereo_motorcycle", "microaneurysms")
TRAIN_PHOTOS = tuple(n for n in images.SKIMAGE_COLOR + images.SKIMAGE_GRAY
                     if n not in HELDOUT_SKIMAGE)
HELDOUT_PHOTOS = HELDOUT_SKIMAGE + tuple(images.MPL_IMAGES)
TRAIN_PATTERNS = ("noise", "stripes", "gradient")
HELDOUT_PATTERNS = ("checker", "dots", "waves")
TRAIN_MOTIONS = ("smooth", "jumps", "oscillation", "zoom")
HELDOUT_MOTIONS = ("billiard", "dash")
TRAIN_CAMERAS = ("pan",)
HELDOUT_CAMERAS = ("shake",)

# Class names written to the annotation files, per kind: (LaSOT category,
# COCO category name). The pairing is arbitrary but uses real names so that
# readers with official category tables accept them.
KIND_CLASSES = {
    "ellipse": ("volleyball", "sports ball"),
    "roundrect": ("book", "book"),
    "polygon": ("kite", "kite"),
    "star": ("yoyo", "frisbee"),
    "ring": ("pool", "donut"),
    "holed_blob": ("turtle", "teddy bear"),
    "glyph": ("licenseplate", "stop sign"),
    "horse": ("horse", "horse"),
    "coin": ("coin", "clock"),
    "face": ("person", "person"),
    "cross": ("drone", "airplane"),
    "crescent": ("umbrella", "umbrella"),
    "gear": ("electricfan", "cake"),
    "heart": ("flag", "pizza"),
    "ttf_glyph": ("gametarget", "tv"),
    "present": ("hat", "suitcase"),
    "occluder": ("truck", "truck"),
}


@dataclasses.dataclass(frozen=True)
class Domain:
  """What the objects, textures and motions of one domain come from.

  Attributes:
    name: train, test or heldout.
    kinds: object kinds (shapes.py).
    textures: texture sources for objects (images and patterns).
    backgrounds: background sources (images and patterns).
    motions: object motion models (motion.py).
    cameras: camera motion models (motion.py).
    region: photo region of object crops and cut-outs (images.REGIONS).
  """
  name: str
  kinds: tuple[str, ...]
  textures: tuple[str, ...]
  backgrounds: tuple[str, ...]
  motions: tuple[str, ...]
  cameras: tuple[str, ...]
  region: str


TRAIN = Domain("train", TRAIN_KINDS, TRAIN_PHOTOS + TRAIN_PATTERNS,
               TRAIN_PHOTOS + TRAIN_PATTERNS, TRAIN_MOTIONS, TRAIN_CAMERAS,
               "train")
TEST = dataclasses.replace(TRAIN, name="test", region="test")
HELDOUT = Domain("heldout", HELDOUT_KINDS, HELDOUT_PHOTOS + HELDOUT_PATTERNS,
                 HELDOUT_PHOTOS + HELDOUT_PATTERNS, HELDOUT_MOTIONS,
                 HELDOUT_CAMERAS, "all")
DOMAINS = {d.name: d for d in (TRAIN, TEST, HELDOUT)}
