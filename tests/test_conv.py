"""gt_jax.ops.conv: the matmul filter gradient against lax and numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from gt_jax.ops import conv as conv_lib

DN = ("NHWC", "HWIO", "NHWC")

CASES = [  # (H, W, Ci, Co, k, stride, padding)
    (9, 11, 3, 4, 3, 1, ((1, 1), (1, 1))),
    (10, 12, 3, 5, 3, 2, ((1, 1), (1, 1))),
    (10, 12, 4, 6, 1, 2, "VALID"),
    (16, 18, 3, 4, 7, 2, ((3, 3), (3, 3))),
    (7, 7, 5, 5, 7, 1, "VALID"),
    (9, 10, 4, 3, 3, 1, "SAME"),
    (8, 9, 2, 3, 2, 1, ((0, 1), (1, 0))),
]


def _numpy_filter_grad(x, g, k, stride, pads):
  """dL/dW by the definition: a loop over taps and output pixels."""
  xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  n, ho, wo, co = g.shape
  dw = np.zeros((k, k, x.shape[-1], co), np.float64)
  for i in range(k):
    for j in range(k):
      for y in range(ho):
        for xx in range(wo):
          patch = xp[:, stride * y + i, stride * xx + j, :]  # (N, Ci)
          dw[i, j] += patch.T.astype(np.float64) @ g[:, y, xx, :]
  return dw


@pytest.mark.parametrize("case", CASES)
def test_conv_value_and_grads_equal_lax(case):
  h, w, ci, co, k, s, pad = case
  rs = np.random.RandomState(0)
  x = jnp.asarray(rs.randn(2, h, w, ci), jnp.float32)
  wt = jnp.asarray(rs.randn(k, k, ci, co), jnp.float32)
  ours = lambda x, wt: conv_lib.conv_general_dilated(
      x, wt, (s, s), pad, dimension_numbers=DN)
  ref = lambda x, wt: lax.conv_general_dilated(x, wt, (s, s), pad,
                                               dimension_numbers=DN)
  y = ours(x, wt)
  if k > 1 or pad != "VALID":  # lax's own forward: bit-identical
    np.testing.assert_array_equal(np.asarray(y), np.asarray(ref(x, wt)))
  else:  # 1x1 as a matmul: another summation order
    np.testing.assert_allclose(y, ref(x, wt), rtol=1e-6, atol=1e-6)
  ct = jnp.asarray(rs.randn(*y.shape), jnp.float32)
  got = jax.vjp(ours, x, wt)[1](ct)
  want = jax.vjp(ref, x, wt)[1](ct)
  np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-4)
  pads = (lax.padtype_to_pads((h, w), (k, k), (s, s), pad)
          if isinstance(pad, str) else pad)
  np.testing.assert_allclose(
      got[1], _numpy_filter_grad(np.asarray(x), np.asarray(ct), k, s, pads),
      rtol=1e-5, atol=1e-4)


def test_bf16_grads_keep_dtypes_and_track_f32():
  rs = np.random.RandomState(1)
  x = jnp.asarray(rs.randn(1, 12, 12, 8), jnp.bfloat16)
  wt = jnp.asarray(rs.randn(3, 3, 8, 8) * 0.1, jnp.bfloat16)
  f = lambda x, wt: conv_lib.conv_general_dilated(
      x, wt, (1, 1), ((1, 1), (1, 1)), dimension_numbers=DN).astype(
          jnp.float32).sum()
  dx, dw = jax.grad(f, argnums=(0, 1))(x, wt)
  assert dx.dtype == jnp.bfloat16 and dw.dtype == jnp.bfloat16
  f32 = lambda x, wt: lax.conv_general_dilated(
      x, wt, (1, 1), ((1, 1), (1, 1)), dimension_numbers=DN).sum()
  _, dw32 = jax.grad(f32, argnums=(0, 1))(x.astype(jnp.float32),
                                          wt.astype(jnp.float32))
  np.testing.assert_allclose(np.asarray(dw, np.float32), dw32, rtol=2e-2,
                             atol=0.5)


def test_unsupported_layouts_fall_back_to_lax():
  rs = np.random.RandomState(2)
  x = jnp.asarray(rs.randn(1, 4, 8, 8), jnp.float32)  # NCHW
  wt = jnp.asarray(rs.randn(4, 4, 3, 3), jnp.float32)  # OIHW
  dn = ("NCHW", "OIHW", "NCHW")
  got = conv_lib.conv_general_dilated(x, wt, (1, 1), "SAME",
                                      dimension_numbers=dn)
  want = lax.conv_general_dilated(x, wt, (1, 1), "SAME",
                                  dimension_numbers=dn)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  dil = conv_lib.conv_general_dilated(
      jnp.transpose(x, (0, 2, 3, 1)), jnp.transpose(wt, (2, 3, 1, 0)),
      (1, 1), "SAME", rhs_dilation=(2, 2), dimension_numbers=DN)
  assert dil.shape == (1, 8, 8, 4)
