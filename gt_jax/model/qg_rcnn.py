"""QG-RCNN wiring: backbone -> FPN -> query modulation -> RPN / RoI head.

Wiring only (like detectron2's `GeneralizedRCNN`); the stages live in their
own files and the parameter-free ops (RoIAlign) in `gt_jax/ops`. Submodule
names follow the checkpoint (LS §12). Methods (use
`model.apply(variables, ..., method=QGRCNN.<name>)`):

  features(images (B, H, W, 3)) -> [P2..P6] each (B, H_k, W_k, C)
  query_embedding(feats, box (4,)) -> z (7, 7, C)
  query_kernels(z) -> {"rpn": (5, C), "rcnn": (7, 7, C)}
  rpn_outputs(feats, rpn_vectors (5, C)) -> (cls [N_k], deltas [(N_k, 4)])
  rcnn_outputs(feats, rois (R, 4), rcnn_kernel) -> ((R, 2), (R, 8))

`feats` of the per-image methods are the 5 maps of ONE image (H_k, W_k, C);
vmap over images / targets at the call site. Boxes are legacy xyxy in canvas
pixels.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gt_jax.model.fpn import FPN
from gt_jax.model.modulation import RCNNModulator, RPNModulator
from gt_jax.model.rcnn import BBoxHead
from gt_jax.model.resnet import ResNet
from gt_jax.model.rpn import RPNHead
from gt_jax.ops.roi_align import multilevel_roi_align


class QGRCNN(nn.Module):
  """GlobalTrack's query-guided RCNN (ResNet-FPN)."""
  depth: int = 50
  stage_sizes: Sequence[int] | None = None
  base_width: int = 64
  fpn_channels: int = 256
  num_fpn_outs: int = 5
  num_anchors: int = 3
  roi_out_size: int = 7
  roi_sample_num: int = 2
  roi_strides: Sequence[int] = (4, 8, 16, 32)
  roi_finest_scale: int = 56
  fc_dim: int = 1024
  num_classes: int = 2
  rpn_modulator_fx: bool = False
  rpn_query_guided: bool = True
  remat_backbone: bool = False
  dtype: Any = jnp.float32

  def setup(self):
    self.backbone = ResNet(self.depth, self.stage_sizes, self.base_width,
                           dtype=self.dtype, remat=self.remat_backbone)
    self.neck = FPN(self.fpn_channels, self.num_fpn_outs, dtype=self.dtype)
    self.rpn_head = RPNHead(self.fpn_channels, self.num_anchors,
                            dtype=self.dtype)
    self.rpn_modulator = RPNModulator(
        self.fpn_channels, self.num_fpn_outs, self.roi_out_size,
        use_fx=self.rpn_modulator_fx, dtype=self.dtype)
    self.rcnn_modulator = RCNNModulator(self.fpn_channels, dtype=self.dtype)
    self.bbox_head = BBoxHead(self.fc_dim, self.num_classes, dtype=self.dtype)

  def features(self, images: jax.Array) -> list[jax.Array]:
    """Normalised canvases (B, H, W, 3) -> [P2..P6] each (B, H_k, W_k, C)."""
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"images must be (B, H, W, 3); got {images.shape}")
    return self.neck(self.backbone(images.astype(self.dtype)))

  def _roi_features(self, feats: Sequence[jax.Array],
                    rois: jax.Array) -> jax.Array:
    """RoIAlign from one image's P2..P5: rois (R, 4) -> (R, 7, 7, C)."""
    n = len(self.roi_strides)
    return multilevel_roi_align(
        list(feats[:n]), rois, strides=tuple(self.roi_strides),
        out_size=self.roi_out_size, sample_num=self.roi_sample_num,
        finest_scale=self.roi_finest_scale)

  def query_embedding(self, feats: Sequence[jax.Array],
                      box: jax.Array) -> jax.Array:
    """One image's [P2..P6] (H_k, W_k, C) and box (4,) -> z (7, 7, C)."""
    return self._roi_features(feats, box.reshape(1, 4))[0]

  def query_kernels(self, z: jax.Array) -> dict[str, jax.Array]:
    """z (7, 7, C) -> {"rpn": (L, C) level vectors, "rcnn": proj_z(z)}."""
    return {
        "rpn": self.rpn_modulator.kernels(z),
        "rcnn": self.rcnn_modulator.query_kernel(z),
    }

  def rpn_outputs(
      self, feats: Sequence[jax.Array], rpn_vectors: jax.Array
  ) -> tuple[list[jax.Array], list[jax.Array]]:
    """Query-guided RPN on one image.

    Args:
      feats: [P2..P6] each (H_k, W_k, C).
      rpn_vectors: (L, C) from `query_kernels`.

    Returns:
      cls: L logit arrays (N_k,), N_k = H_k * W_k * A in (y, x, a) order.
      deltas: L arrays (N_k, 4).
    """
    if self.rpn_query_guided:
      feats = self.rpn_modulator(feats, rpn_vectors)
    return self.rpn_head(feats)

  def rcnn_outputs(self, feats: Sequence[jax.Array], rois: jax.Array,
                   rcnn_kernel: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Query-guided RoI head on one image.

    Args:
      feats: [P2..P6] each (H_k, W_k, C), UNmodulated (LS §10.1).
      rois: (R, 4) xyxy canvas pixels.
      rcnn_kernel: proj_z(z) (7, 7, C).

    Returns:
      cls_logits (R, 2) (column 1 = target), deltas (R, 8) (4..7 = target).
    """
    x = self.rcnn_modulator(self._roi_features(feats, rois), rcnn_kernel)
    return self.bbox_head(x)

  def __call__(self, images: jax.Array,
               boxes: jax.Array) -> dict[str, jax.Array]:
    """Runs every stage once (used to initialise all variables).

    Args:
      images: (B, H, W, 3).
      boxes: (B, 4) one box per image, used both as query and as RoI.

    Returns:
      dict of the first image's outputs: rpn_cls, rpn_deltas (lists),
      cls_logits (1, 2), deltas (1, 8).
    """
    feats = self.features(images)
    one = [f[0] for f in feats]
    kernels = self.query_kernels(self.query_embedding(one, boxes[0]))
    rpn_cls, rpn_deltas = self.rpn_outputs(one, kernels["rpn"])
    cls, deltas = self.rcnn_outputs(one, boxes[:1], kernels["rcnn"])
    return dict(rpn_cls=rpn_cls, rpn_deltas=rpn_deltas, cls_logits=cls,
                deltas=deltas)
