"""ResNet backbone, mmdet-v1 "pytorch" style, with frozen BatchNorm (LS §3).

The stride of a downsampling block sits on its 3x3 conv (torchvision v1.5).
Paddings are explicit and symmetric, as PyTorch pads: 'SAME' would pad
even-sized inputs asymmetrically for stride 2 and shift every output by half
a pixel. BatchNorm always uses the running statistics (official: norm_eval
True, also during training); eps 1e-5 is PyTorch's default.

Parameter names follow the checkpoint (LS §12): `conv1`, `bn1`,
`layer{L}_{B}/{conv1,bn1,conv2,bn2,conv3,bn3,downsample_conv,downsample_bn}`.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gt_jax.model import layers

# official: torchvision/mmdet ResNet arch_settings.
STAGE_SIZES = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
_BOTTLENECK_DEPTHS = (50, 101, 152)

# mmdet kaiming_init(mode='fan_out', nonlinearity='relu') for backbone convs.
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _pad(k: int) -> tuple[tuple[int, int], tuple[int, int]]:
  """Symmetric PyTorch-style padding `k // 2` for a k x k conv."""
  return ((k // 2, k // 2), (k // 2, k // 2))


def frozen_bn(name: str, dtype: Any) -> nn.BatchNorm:
  """BatchNorm that always normalises with its running mean/var (eps 1e-5)."""
  return nn.BatchNorm(
      use_running_average=True, momentum=0.9, epsilon=1e-5, dtype=dtype,
      name=name)


class BasicBlock(nn.Module):
  """ResNet-18/34 block: 3x3 (stride) -> 3x3, expansion 1."""
  width: int
  stride: int = 1
  downsample: bool = False
  dtype: Any = jnp.float32
  expansion = 1

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """(B, H, W, Cin) -> (B, H / stride, W / stride, width)."""
    conv = functools.partial(
        layers.Conv, use_bias=False, kernel_init=_conv_init, dtype=self.dtype)
    y = conv(self.width, (3, 3), (self.stride, self.stride), _pad(3),
             name="conv1")(x)
    y = nn.relu(frozen_bn("bn1", self.dtype)(y))
    y = conv(self.width, (3, 3), (1, 1), _pad(3), name="conv2")(y)
    y = frozen_bn("bn2", self.dtype)(y)
    if self.downsample:
      x = conv(self.width, (1, 1), (self.stride, self.stride), "VALID",
               name="downsample_conv")(x)
      x = frozen_bn("downsample_bn", self.dtype)(x)
    return nn.relu(y + x)


class Bottleneck(nn.Module):
  """ResNet-50/101 block: 1x1 -> 3x3 (stride) -> 1x1 (x4 channels)."""
  width: int
  stride: int = 1
  downsample: bool = False
  dtype: Any = jnp.float32
  expansion = 4

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """(B, H, W, Cin) -> (B, H / stride, W / stride, 4 * width)."""
    conv = functools.partial(
        layers.Conv, use_bias=False, kernel_init=_conv_init, dtype=self.dtype)
    y = conv(self.width, (1, 1), (1, 1), "VALID", name="conv1")(x)
    y = nn.relu(frozen_bn("bn1", self.dtype)(y))
    # "pytorch" style: the stride is on the 3x3 conv (LS §3).
    y = conv(self.width, (3, 3), (self.stride, self.stride), _pad(3),
             name="conv2")(y)
    y = nn.relu(frozen_bn("bn2", self.dtype)(y))
    y = conv(self.width * 4, (1, 1), (1, 1), "VALID", name="conv3")(y)
    y = frozen_bn("bn3", self.dtype)(y)
    if self.downsample:
      x = conv(self.width * 4, (1, 1), (self.stride, self.stride), "VALID",
               name="downsample_conv")(x)
      x = frozen_bn("downsample_bn", self.dtype)(x)
    return nn.relu(y + x)


def remat_block(block: nn.Module, x: jax.Array) -> jax.Array:
  """`block(x)`, keeping only `x` for the backward pass (rematerialisation).

  What `nn.remat(block)` means, done so that XLA's CPU compiler keeps it:
  there `jax.checkpoint`'s optimisation barriers are expanded away before
  common-subexpression elimination, which then merges the recomputed
  forward with the original one, and every activation stays alive anyway
  (a 16-layer probe: 640 MiB of temporaries with `jax.checkpoint`, 520
  without it, 160 with this function). Here the recomputation reads `x`
  plus a zero computed from the output's cotangent, so it cannot be merged
  with the forward pass nor run before that cotangent exists. The zero is
  `0 * g` for a finite element `g` of each image's cotangent, else `0`, so
  non-finite cotangents do not spread. Same parameters, same numbers
  (tests/test_train_equivalence.py).

  Args:
    block: a bound `BasicBlock` / `Bottleneck` (variables `params` and
      `batch_stats`; only `params` get gradients).
    x: `(B, H, W, Cin)` block input.

  Returns:
    the block's output.
  """

  def run(mdl, x):
    return mdl(x)

  def fwd(mdl, x):
    return mdl(x), (x, mdl.variables)

  def bwd(res, g):
    x, variables = res
    # One element per image (batch-sharded like x: no cross-device traffic).
    g0 = g[:, :1, :1, :1]
    zero = jnp.where(jnp.isfinite(g0), g0 * 0, 0).astype(x.dtype)
    unbound = block.clone(parent=None)
    apply = lambda p, x: unbound.apply(dict(variables, params=p), x)
    _, vjp = jax.vjp(apply, variables["params"], x + zero)
    d_params, d_x = vjp(g)
    return {"params": d_params}, d_x

  return nn.custom_vjp(run, forward_fn=fwd, backward_fn=bwd)(block, x)


class ResNet(nn.Module):
  """ResNet trunk returning C2..C5 (strides 4, 8, 16, 32).

  Attributes:
    depth: 18/34 (basic blocks) or 50/101/152 (bottlenecks).
    stage_sizes: blocks per stage; None -> the standard sizes of `depth`
      (the tiny config uses (1, 1, 1, 1)).
    base_width: stem and stage-1 width (official: 64); stage i has
      `base_width * 2**i` (x4 outputs for bottlenecks).
    remat: recompute each block's activations in the backward pass instead
      of keeping them (`remat_block`): less memory, one more backbone
      forward. Same parameters and the same numbers.
  """
  depth: int = 50
  stage_sizes: Sequence[int] | None = None
  base_width: int = 64
  dtype: Any = jnp.float32
  remat: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> list[jax.Array]:
    """(B, H, W, 3) -> [C2 (B, H/4, W/4, c2), ..., C5 (B, H/32, W/32, c5)].

    For even H, W (the canvas is a multiple of 32) the sizes are exact.
    """
    if self.depth not in STAGE_SIZES:
      raise ValueError(
          f"model.depth={self.depth} not supported; expected one of "
          f"{sorted(STAGE_SIZES)}")
    sizes = tuple(self.stage_sizes or STAGE_SIZES[self.depth])
    block_cls = Bottleneck if self.depth in _BOTTLENECK_DEPTHS else BasicBlock
    x = layers.Conv(self.base_width, (7, 7), (2, 2), _pad(7), use_bias=False,
                    kernel_init=_conv_init, dtype=self.dtype, name="conv1")(x)
    x = nn.relu(frozen_bn("bn1", self.dtype)(x))
    # Max-pool padding acts as -inf (flax pads with the reduction's init).
    x = nn.max_pool(x, (3, 3), (2, 2), _pad(3))
    in_ch = self.base_width
    outs = []
    for i, n in enumerate(sizes):
      width = self.base_width * 2**i
      out_ch = width * block_cls.expansion
      for b in range(n):
        stride = 2 if (i > 0 and b == 0) else 1
        block = block_cls(
            width=width, stride=stride,
            downsample=(b == 0 and (stride != 1 or in_ch != out_ch)),
            dtype=self.dtype, name=f"layer{i + 1}_{b}")
        x = remat_block(block, x) if self.remat else block(x)
        in_ch = out_ch
      outs.append(x)
    return outs
