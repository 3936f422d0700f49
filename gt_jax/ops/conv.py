"""2-D convolution computed as matmuls where XLA's convolution is slow.

`conv_general_dilated` is a drop-in for `lax.conv_general_dilated` (flax's
`nn.Conv(..., conv_general_dilated=...)` hook):

* the *filter* gradient is one matmul per kernel tap,
    dW[i, j] = sum_{n, y, x} X_pad[n, s*y + i, s*x + j, :]^T dY[n, y, x, :].
  XLA's CPU backend lowers a filter-gradient convolution of a large map to
  a slow generic loop (measured 4-25x the forward's time for ResNet-50
  shapes at 800x1344, bench/profile_train.py); as matmuls it runs at matmul
  speed on every backend;
* an unpadded 1x1 convolution is a (strided) slice and a matmul, forward
  and input gradient (XLA's CPU convolution runs 1x1 kernels at a third of
  its matmul speed); larger kernels keep lax's forward and input gradient.

Only summation orders change: float32 outputs and gradients agree with
`lax.conv_general_dilated` to ~1e-6 relative (tests/test_conv.py,
tests/test_train_equivalence.py).

Handled: NHWC inputs, HWIO kernels, any window stride, explicit or
'VALID'/'SAME' padding, no dilation, one feature group. Anything else falls
back to `lax.conv_general_dilated` unchanged.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")


def _pads(padding: Any, in_hw: Sequence[int], k_hw: Sequence[int],
          strides: Sequence[int]) -> tuple[tuple[int, int], ...] | None:
  """Explicit (lo, hi) pairs for lax's padding argument, or None."""
  if isinstance(padding, str):
    try:
      return tuple(lax.padtype_to_pads(in_hw, k_hw, strides, padding))
    except Exception:  # pylint: disable=broad-except
      return None
  pads = tuple(tuple(int(v) for v in p) for p in padding)
  return pads if len(pads) == 2 else None


def _pointwise(k_hw: Sequence[int], pads) -> bool:
  """An unpadded 1x1 kernel: a (strided) slice and a matmul."""
  return tuple(k_hw) == (1, 1) and all(tuple(p) == (0, 0) for p in pads)


def _subsample(x: jax.Array, strides: Sequence[int]) -> jax.Array:
  """Every `strides`-th row and column of an NHWC array."""
  if tuple(strides) == (1, 1):
    return x
  return lax.slice(x, (0, 0, 0, 0), x.shape, (1, *strides, 1))


def _lax_conv(x, w, strides, pads):
  return lax.conv_general_dilated(x, w, strides, pads,
                                  dimension_numbers=_NHWC)


def filter_grad(x: jax.Array, g: jax.Array, k_hw: tuple[int, int],
                strides: tuple[int, int],
                pads: tuple[tuple[int, int], ...]) -> jax.Array:
  """dL/dW of `y = conv(x, W)`: x (N, H, W, Ci), g = dL/dy (N, Ho, Wo, Co).

  One matmul per kernel tap, accumulated in float32, returned in `x.dtype`.
  The taps run one after another (`lax.map`), so only one shifted window
  of the input is alive at a time (all k*k of them at once would cost k*k
  copies of the input in temporary memory).

  Returns:
    `(kh, kw, Ci, Co)`.
  """
  (sy, sx), (ho, wo) = strides, g.shape[1:3]
  if _pointwise(k_hw, pads):
    dw = jnp.einsum("nhwi,nhwo->io", _subsample(x, strides), g,
                    preferred_element_type=jnp.float32)
    return dw[None, None].astype(x.dtype)
  xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  extent = (xp.shape[0], sy * (ho - 1) + 1, sx * (wo - 1) + 1, xp.shape[3])
  taps = jnp.asarray([(i, j) for i in range(k_hw[0]) for j in range(k_hw[1])],
                     jnp.int32)

  def one_tap(ij):
    window = _subsample(lax.dynamic_slice(xp, (0, ij[0], ij[1], 0), extent),
                        strides)
    return jnp.einsum("nhwi,nhwo->io", window, g,
                      preferred_element_type=jnp.float32)

  dw = lax.map(one_tap, taps)
  return dw.reshape(*k_hw, *dw.shape[1:]).astype(x.dtype)


def _forward(x, w, strides, pads):
  """The convolution: a slice + matmul for unpadded 1x1 kernels, else lax."""
  if _pointwise(w.shape[:2], pads):
    return jnp.einsum("nhwi,io->nhwo", _subsample(x, strides), w[0, 0])
  return _lax_conv(x, w, strides, pads)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv(x, w, strides, pads):
  return _forward(x, w, strides, pads)


def _conv_fwd(x, w, strides, pads):
  return _forward(x, w, strides, pads), (x, w)


def _conv_bwd(strides, pads, res, g):
  x, w = res
  g = g.astype(x.dtype)
  (dx,) = jax.linear_transpose(
      lambda v: _forward(v, w, strides, pads),
      jax.ShapeDtypeStruct(x.shape, x.dtype))(g)
  dw = filter_grad(x, g, w.shape[:2], strides, pads).astype(w.dtype)
  return dx, dw


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv_general_dilated(lhs, rhs, window_strides, padding,
                         lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1,
                         batch_group_count=1, precision=None,
                         preferred_element_type=None):
  """`lax.conv_general_dilated` with a matmul filter gradient (see module)."""
  plain = functools.partial(
      lax.conv_general_dilated, lhs, rhs, window_strides, padding,
      lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
      dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count,
      batch_group_count=batch_group_count, precision=precision,
      preferred_element_type=preferred_element_type)
  nhwc = _is_nhwc(dimension_numbers)
  trivial = lambda d: d is None or all(int(v) == 1 for v in d)
  if (lhs.ndim != 4 or rhs.ndim != 4 or not nhwc or
      feature_group_count != 1 or batch_group_count != 1 or
      not trivial(lhs_dilation) or not trivial(rhs_dilation) or
      precision is not None or preferred_element_type is not None or
      lhs.dtype != rhs.dtype):
    return plain()
  strides = tuple(int(s) for s in window_strides)
  pads = _pads(padding, lhs.shape[1:3], rhs.shape[:2], strides)
  if pads is None:
    return plain()
  return _conv(lhs, rhs, strides, pads)


def _is_nhwc(dims: Any) -> bool:
  """Whether dimension numbers mean NHWC x HWIO -> NHWC."""
  if dims is None:
    return False
  if isinstance(dims, tuple) and all(isinstance(d, str) for d in dims):
    return tuple(dims) == _NHWC
  want = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), _NHWC)
  return dims == want
