"""The model's conv layer: flax `nn.Conv` with a matmul filter gradient.

Same parameters (`kernel`, `bias`), same forward and input gradient as
`nn.Conv`; the filter gradient comes from `gt_jax.ops.conv` (one matmul per
kernel tap instead of XLA's filter-gradient convolution, which is several
times slower than the forward on CPU).
"""

from __future__ import annotations

import functools

import flax.linen as nn

from gt_jax.ops import conv as conv_lib

Conv = functools.partial(nn.Conv,
                         conv_general_dilated=conv_lib.conv_general_dilated)
