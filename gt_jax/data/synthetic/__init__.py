"""The embedded default dataset: synthetic videos built from real photos.

`generate(out_dir, ...)` (or `python -m gt_jax.data.synthetic --out DIR`)
writes GOT-10k-layout train/val videos, LaSOT-layout long-term test videos
and COCO-style still images, all cut from the photographs that scikit-image
ships offline. See scenario.py for what the videos contain and layouts.py for
the file conventions. Host-only code: this package never imports jax.
"""

from gt_jax.data.synthetic.assets import Sprite
from gt_jax.data.synthetic.assets import SyntheticAssetError
from gt_jax.data.synthetic.generate import dataset_paths
from gt_jax.data.synthetic.generate import generate
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
    "LayerTruth", "Profile", "Sprite", "SyntheticAssetError", "TEST_PROFILE",
    "TRAIN_PROFILE", "VideoPlan", "cover_level", "dataset_paths", "generate",
    "got10k_labels", "lasot_labels", "plan_still", "plan_video",
    "render_frame",
]
