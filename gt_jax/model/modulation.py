"""Query-guided modulators: QG-RPN (LS §6) and QG-RCNN (LS §10.2).

Both take the query RoI feature `z` (7, 7, C), RoIAligned from the query
frame's P2..P5. Code version of the official implementation (required by the
checkpoint):

* RPN, per level k: `v_k = proj_modulator_k(z)` (7x7 VALID conv -> a C-vector),
  `r_k = proj_out_k(v_k * P_k)` (channel-wise multiply = depthwise 1x1
  correlation, then 1x1 conv). No activation, no residual.
* RCNN: `proj_out(proj_x(x_i) * proj_z(z))`, 3x3 convs with zero padding
  inside the 7x7 map, Hadamard product broadcast over the RoIs, 1x1 conv.

The paper's Eq. (1) also has a 3x3 conv `f_x` on the search features before
the product; the official code and checkpoint have none. `use_fx=True` adds
it (params `proj_x_k`) for experiments; it is off by default.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gt_jax.model import layers

# official: GlobalTrack modulators normal_init(std=0.01), bias 0 (LS §6).
_mod_init = nn.initializers.normal(0.01)
_PAD1 = ((1, 1), (1, 1))


class RPNModulator(nn.Module):
  """Per-level query modulation of the search pyramid."""
  channels: int = 256
  num_levels: int = 5
  roi_size: int = 7
  use_fx: bool = False
  dtype: Any = jnp.float32

  def setup(self):
    conv = lambda k, pad, name: layers.Conv(
        self.channels, (k, k), padding=pad, kernel_init=_mod_init,
        dtype=self.dtype, name=name)
    self.proj_modulator = [
        conv(self.roi_size, "VALID", f"proj_modulator_{k}")
        for k in range(self.num_levels)
    ]
    self.proj_out = [
        conv(1, "VALID", f"proj_out_{k}") for k in range(self.num_levels)
    ]
    if self.use_fx:
      self.proj_x = [
          conv(3, _PAD1, f"proj_x_{k}") for k in range(self.num_levels)
      ]

  def kernels(self, z: jax.Array) -> jax.Array:
    """Query feature (7, 7, C) -> per-level modulation vectors (L, C)."""
    if z.shape[-3:-1] != (self.roi_size, self.roi_size):
      raise ValueError(f"query feature must be ({self.roi_size}, "
                       f"{self.roi_size}, C); got {z.shape}")
    return jnp.stack(
        [m(z[None])[0, 0, 0] for m in self.proj_modulator], axis=0)

  def __call__(self, feats: Sequence[jax.Array],
               vectors: jax.Array) -> list[jax.Array]:
    """Modulates the search levels.

    Args:
      feats: L maps (..., H_k, W_k, C) (P2..P6 of the search frame).
      vectors: (L, C) from `kernels`.

    Returns:
      L maps (..., H_k, W_k, C).
    """
    outs = []
    for k, f in enumerate(feats):
      if self.use_fx:
        f = self.proj_x[k](f)
      outs.append(self.proj_out[k](layers.mul(f, vectors[k])))
    return outs


class RCNNModulator(nn.Module):
  """Hadamard modulation of the search RoI features by the query RoI."""
  channels: int = 256
  dtype: Any = jnp.float32

  def setup(self):
    conv = lambda k, pad, name: layers.Conv(
        self.channels, (k, k), padding=pad, kernel_init=_mod_init,
        dtype=self.dtype, name=name)
    self.proj_z = conv(3, _PAD1, "proj_z")
    self.proj_x = conv(3, _PAD1, "proj_x")
    self.proj_out = conv(1, "VALID", "proj_out")

  def query_kernel(self, z: jax.Array) -> jax.Array:
    """Query RoI feature (7, 7, C) -> proj_z(z) (7, 7, C)."""
    return self.proj_z(z[None])[0]

  def __call__(self, x: jax.Array, zk: jax.Array) -> jax.Array:
    """Search RoIs (R, 7, 7, C) and proj_z(z) (7, 7, C) -> (R, 7, 7, C)."""
    return self.proj_out(layers.mul(self.proj_x(x), zk[None]))
