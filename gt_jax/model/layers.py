"""The model's Conv / Dense / products: fast and accurate gradients.

Every model convolution computes through `gt_jax.ops.conv` (filter
gradients and unpadded 1x1 convolutions as matmuls; XLA's CPU convolution
gradients are several times slower than the forward; same numbers to
~1e-6, docs/performance.md).

Mixed precision here means: parameters float32, convolutions and matmuls in
the compute dtype. flax's `nn.Conv` / `nn.Dense` cast the bias to the compute
dtype before adding it, so the bias gradient is a `reduce_sum` of the bf16
output cotangent over every position (and every RoI, pair and query of the
vmapped loss). XLA keeps that sum in bf16 (on CPU every partial sum is
rounded to bf16), which loses the gradient. Measured on one demo batch
against the f32 gradient: the RPN modulator's level-0 output bias was off by
92 % (1.7 % with this module), FPN lateral_0's bias by 66 % (8.7 %), the
RCNN modulator's output bias pointed elsewhere (cosine 0.20; 0.99), and a
bf16-trained demo tracked no better than the first-box baseline (README,
bf16). The same holds for a broadcast product `f * v` (the gradient of `v`
sums over `f`'s positions).

`Conv` and `Dense` add the float32 bias to the bf16 conv / matmul output in
float32 and round the sum once to the compute dtype, so the bias gradient
is summed in float32. `mul` forms a broadcast product in float32 (rounded
once). For float32 compute all three are exactly flax's arithmetic, and the
parameters keep flax's names (`kernel`, `bias`).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype as _flax_promote

from gt_jax.ops import conv as conv_lib


def _promote_keep_bias(inputs: Any, kernel: Any, bias: Any, *,
                       dtype: Any = None, inexact: bool = True) -> tuple:
  """flax's `promote_dtype` hook: inputs and kernel to `dtype`, the bias left
  in its parameter dtype (float32), so `y += bias` runs in float32."""
  if dtype is None or bias is None:
    return _flax_promote(inputs, kernel, bias, dtype=dtype, inexact=inexact)
  inputs, kernel = _flax_promote(inputs, kernel, dtype=dtype, inexact=inexact)
  return inputs, kernel, bias


class Conv(nn.Conv):
  """`nn.Conv` with the bias added in float32, output in `dtype`, computed
  by `gt_jax.ops.conv.conv_general_dilated`."""
  promote_dtype: Any = _promote_keep_bias
  conv_general_dilated: Any = conv_lib.conv_general_dilated

  def __call__(self, inputs: jax.Array) -> jax.Array:
    y = super().__call__(inputs)
    return y if self.dtype is None else y.astype(self.dtype)


class Dense(nn.Dense):
  """`nn.Dense` with the bias added in float32; output in `dtype`."""
  promote_dtype: Any = _promote_keep_bias

  def __call__(self, inputs: jax.Array) -> jax.Array:
    y = super().__call__(inputs)
    return y if self.dtype is None else y.astype(self.dtype)


def mul(x: jax.Array, v: jax.Array) -> jax.Array:
  """`x * v` (broadcast) computed in float32, rounded once to `x.dtype`;
  the gradient of the broadcast operand is then summed in float32."""
  return (x.astype(jnp.float32) * v.astype(jnp.float32)).astype(x.dtype)
