"""The embedded default dataset: synthetic videos built from offline images.

`generate(out_dir, ...)` (or `python -m gt_jax.data.synthetic --out DIR`)
writes GOT-10k-layout train/val videos, LaSOT-layout long-term test videos
(in-distribution and held-out) and COCO-style still images. Objects are
procedural silhouettes and real cut-outs under photo or procedural textures;
the photos are those scikit-image ships offline, plus matplotlib's sample
images for the held-out set only. See domains.py for what each split may
use, scenario.py for what the videos contain and layouts.py for the file
conventions. Host-only code: this package never imports jax.
"""

from gt_jax.data.synthetic.assets import Sprite
from gt_jax.data.synthetic.domains import DOMAINS
from gt_jax.data.synthetic.domains import Domain
from gt_jax.data.synthetic.domains import HELDOUT
from gt_jax.data.synthetic.domains import KIND_CLASSES
from gt_jax.data.synthetic.domains import TEST
from gt_jax.data.synthetic.domains import TRAIN
from gt_jax.data.synthetic.generate import dataset_paths
from gt_jax.data.synthetic.generate import describe_plan
from gt_jax.data.synthetic.generate import generate
from gt_jax.data.synthetic.images import SyntheticAssetError
from gt_jax.data.synthetic.layouts import cover_level
from gt_jax.data.synthetic.layouts import got10k_labels
from gt_jax.data.synthetic.layouts import lasot_labels
from gt_jax.data.synthetic.render import LayerTruth
from gt_jax.data.synthetic.render import render_frame
from gt_jax.data.synthetic.scenario import Profile
from gt_jax.data.synthetic.scenario import TEST_PROFILE
from gt_jax.data.synthetic.scenario import TRAIN_PROFILE
from gt_jax.data.synthetic.scenario import VideoPlan
from gt_jax.data.synthetic.scenario import plan_still
from gt_jax.data.synthetic.scenario import plan_video

__all__ = [
    "DOMAINS", "Domain", "HELDOUT", "KIND_CLASSES", "LayerTruth", "Profile",
    "Sprite", "SyntheticAssetError", "TEST", "TEST_PROFILE", "TRAIN",
    "TRAIN_PROFILE", "VideoPlan", "cover_level", "dataset_paths",
    "describe_plan", "generate", "got10k_labels", "lasot_labels",
    "plan_still", "plan_video", "render_frame",
]
