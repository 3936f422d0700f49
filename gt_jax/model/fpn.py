"""Feature pyramid network neck, mmdet-v1 `FPN` (LS §4).

Laterals are 1x1 convs with bias; the top-down path adds a nearest x2
upsample of the coarser (already updated) lateral; 3x3 convs with bias give
P2..P5 and P6 is P5 subsampled by 2 (official: max_pool kernel 1 stride 2).
Names follow the checkpoint: `lateral_{i}`, `fpn_{i}`.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gt_jax.model import layers

# mmdet FPN.init_weights: xavier_init(distribution='uniform'), bias 0.
_xavier = nn.initializers.xavier_uniform()


def upsample_nearest2(x: jax.Array, hw: tuple[int, int]) -> jax.Array:
  """Nearest x2 upsample `out[y, x] = in[y // 2, x // 2]`, cropped to `hw`.

  Args:
    x: (..., h, w, C).
    hw: target (H, W) with H <= 2h, W <= 2w (equal on a multiple-of-32
      canvas; the crop only matters for other canvases).

  Returns:
    (..., H, W, C).
  """
  y = jnp.repeat(jnp.repeat(x, 2, axis=-3), 2, axis=-2)
  return y[..., :hw[0], :hw[1], :]


class FPN(nn.Module):
  """C2..C5 -> P2..P6, all with `channels` channels."""
  channels: int = 256
  num_outs: int = 5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, feats: Sequence[jax.Array]) -> list[jax.Array]:
    """[C2..C5] each (B, H_k, W_k, c_k) -> [P2..P6] each (B, H_k, W_k, C)."""
    n = len(feats)
    if self.num_outs < n:
      raise ValueError(f"num_outs={self.num_outs} < {n} input levels")
    lat = [
        layers.Conv(self.channels, (1, 1), padding="VALID",
                    kernel_init=_xavier, dtype=self.dtype,
                    name=f"lateral_{i}")(f)
        for i, f in enumerate(feats)
    ]
    for i in range(n - 1, 0, -1):
      lat[i - 1] = lat[i - 1] + upsample_nearest2(lat[i],
                                                  lat[i - 1].shape[-3:-1])
    outs = [
        layers.Conv(self.channels, (3, 3), padding=((1, 1), (1, 1)),
                    kernel_init=_xavier, dtype=self.dtype,
                    name=f"fpn_{i}")(l)
        for i, l in enumerate(lat)
    ]
    # official: F.max_pool2d(P5, 1, stride=2) == P5[::2, ::2]; size ceil(h/2).
    while len(outs) < self.num_outs:
      outs.append(outs[-1][..., ::2, ::2, :])
    return outs
