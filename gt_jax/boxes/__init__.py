"""Box geometry in ONE place, the legacy "+1" convention (LS §11).

```
np_boxes.py   host side (numpy, no jax): xywh_to_xyxy, xyxy_to_xywh,
              box_area, pairwise_iou, clip_boxes
jnp_boxes.py  jitted side (jnp), same names: xywh_to_xyxy, xyxy_to_xywh,
              box_area, pairwise_iou, encode, decode
anchors.py    RPN anchors (numpy, static per canvas)
rescale.py    the official rescale rule and canvas padding (numpy)
```
Inside the package boxes are `xyxy` absolute pixels with an inclusive
right/bottom edge (width = x2 - x1 + 1); `(x, y, w, h)` only at the edges.
This `__init__` imports nothing so that `gt_jax/data` (no jax) can use the
host modules.
"""
