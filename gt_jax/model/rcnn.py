"""Shared-FC box head, mmdet-v1 `SharedFCBBoxHead` num_fcs=2 (LS §10.3).

RoI features are flattened in NHWC order `(h * 7 + w) * C + c`; the checkpoint
importer permutes `shared_fcs.0.weight` (torch flattens NCHW, `c * 49 + h * 7
+ w`) into `fc6/kernel` accordingly. Class index 0 is background, 1 the
target; `fc_reg` is class-specific, columns 4..7 are the target's deltas.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gt_jax.model import layers

# official: shared fcs xavier_init(uniform); fc_cls N(0, 0.01);
# fc_reg N(0, 0.001) (BBoxHead.init_weights).
_xavier = nn.initializers.xavier_uniform()
_cls_init = nn.initializers.normal(0.01)
_reg_init = nn.initializers.normal(0.001)


class BBoxHead(nn.Module):
  """fc6 -> ReLU -> fc7 -> ReLU -> (fc_cls, fc_reg)."""
  fc_dim: int = 1024
  num_classes: int = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """RoI features (R, 7, 7, C) -> (cls_logits (R, K), deltas (R, 4K))."""
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(layers.Dense(self.fc_dim, kernel_init=_xavier,
                             dtype=self.dtype, name="fc6")(x))
    x = nn.relu(layers.Dense(self.fc_dim, kernel_init=_xavier,
                             dtype=self.dtype, name="fc7")(x))
    cls = layers.Dense(self.num_classes, kernel_init=_cls_init,
                       dtype=self.dtype, name="fc_cls")(x)
    reg = layers.Dense(4 * self.num_classes, kernel_init=_reg_init,
                       dtype=self.dtype, name="fc_reg")(x)
    return cls, reg
