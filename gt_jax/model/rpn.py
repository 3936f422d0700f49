"""RPN head shared across the pyramid levels (LS §7).

`t = ReLU(rpn_conv(x))`, `cls = rpn_cls(t)` (one sigmoid logit per anchor,
official: 2 classes with use_sigmoid -> A channels), `reg = rpn_reg(t)`
(4A channels: anchor a owns channels 4a..4a+3 = dx, dy, dw, dh). In NHWC a
plain reshape gives the official (y, x, a) anchor order.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gt_jax.model import layers

# official: RPNHead.init_weights normal_init(std=0.01).
_init = nn.initializers.normal(0.01)


class RPNHead(nn.Module):
  """3x3 conv + ReLU, then 1x1 objectness and box-delta convs."""
  channels: int = 256
  num_anchors: int = 3
  dtype: Any = jnp.float32

  def setup(self):
    self.rpn_conv = layers.Conv(self.channels, (3, 3), padding=((1, 1), (1, 1)),
                            kernel_init=_init, dtype=self.dtype)
    self.rpn_cls = layers.Conv(self.num_anchors, (1, 1), padding="VALID",
                           kernel_init=_init, dtype=self.dtype)
    self.rpn_reg = layers.Conv(4 * self.num_anchors, (1, 1), padding="VALID",
                           kernel_init=_init, dtype=self.dtype)

  def __call__(
      self, feats: Sequence[jax.Array]
  ) -> tuple[list[jax.Array], list[jax.Array]]:
    """Runs the head on every level.

    Args:
      feats: L maps (..., H_k, W_k, C).

    Returns:
      cls: L arrays (..., H_k * W_k * A) of logits, (y, x, a) order.
      deltas: L arrays (..., H_k * W_k * A, 4).
    """
    cls, deltas = [], []
    for f in feats:
      t = nn.relu(self.rpn_conv(f))
      lead = f.shape[:-3]
      cls.append(self.rpn_cls(t).reshape(*lead, -1))
      deltas.append(self.rpn_reg(t).reshape(*lead, -1, 4))
    return cls, deltas
