"""Weights: official `.pth` import without torch, the name layout, orbax I/O.

```
pth_reader.py  whitelisting unpickler for legacy and zip `.pth` files
layout.py      the official key <-> Flax path map with shapes (LS §12)
weights.py     load_mmdet_weights / load_mmdet_faster_rcnn /
               load_torchvision_resnet50 / load_weights -> Flax variables
orbax_io.py    save_variables / restore_variables / restore_info
convert.py     `python -m gt_jax.convert IN OUT`: a .pth -> an orbax dir
```
The public names are re-exported here (`gt_jax.checkpoint.load_mmdet_weights`).
"""

from gt_jax.checkpoint.layout import LayoutEntry
from gt_jax.checkpoint.layout import checkpoint_layout
from gt_jax.checkpoint.layout import expected_variable_shapes
from gt_jax.checkpoint.orbax_io import is_variables_checkpoint
from gt_jax.checkpoint.orbax_io import restore_info
from gt_jax.checkpoint.orbax_io import restore_variables
from gt_jax.checkpoint.orbax_io import save_variables
from gt_jax.checkpoint.weights import FORMATS
from gt_jax.checkpoint.weights import CheckpointMismatchError
from gt_jax.checkpoint.weights import check_variables_fit
from gt_jax.checkpoint.weights import flatten_variables
from gt_jax.checkpoint.weights import load_mmdet_faster_rcnn
from gt_jax.checkpoint.weights import load_mmdet_weights
from gt_jax.checkpoint.weights import load_torchvision_resnet50
from gt_jax.checkpoint.weights import load_weights
from gt_jax.checkpoint.weights import merge_variables
from gt_jax.checkpoint.weights import parameter_counts
from gt_jax.checkpoint.weights import path_str

__all__ = [
    "CheckpointMismatchError", "FORMATS", "LayoutEntry", "check_variables_fit",
    "checkpoint_layout", "expected_variable_shapes",
    "is_variables_checkpoint", "flatten_variables", "load_mmdet_faster_rcnn",
    "load_mmdet_weights", "load_torchvision_resnet50", "load_weights",
    "merge_variables", "parameter_counts", "path_str", "restore_info",
    "restore_variables", "save_variables",
]
