"""The official test/train rescale rule (mmcv `imrescale`, keep-ratio), host-only.

`s = min(long / max(H, W), short / min(H, W))` with `(long, short) =
(1333, 800)` officially (LS §2); the new size is `int(x * s + 0.5)` (round
half up). Numpy / python only: `gt_jax/data` (no jax) and the tracker's
preprocessing share it.
"""

from __future__ import annotations

import math
from typing import Sequence

# official: img_scale=(1333, 800) of the GlobalTrack test/train pipelines.
OFFICIAL_SCALE = (1333, 800)



def rescale_factor(h: int, w: int,
                   scale: Sequence[int] = OFFICIAL_SCALE) -> float:
  """mmcv `imrescale` factor: `min(long / max(h, w), short / min(h, w))`.

  Args:
    h: image height.
    w: image width.
    scale: `(long, short)` edge limits (official: (1333, 800)); order free.

  Returns:
    the python float (float64) factor `s`, one for both axes.

  Raises:
    ValueError: non-positive image size or a bad `scale`.
  """
  if h <= 0 or w <= 0:
    raise ValueError(f"rescale_factor: image size must be positive, got "
                     f"h={h!r}, w={w!r}")
  if len(scale) != 2 or min(scale) <= 0:
    raise ValueError(f"rescale_factor: scale must be 2 positive edges, got "
                     f"{scale!r}")
  long_edge, short_edge = max(scale), min(scale)
  return min(long_edge / max(h, w), short_edge / min(h, w))


def scaled_size(h: int, w: int, s: float) -> tuple[int, int]:
  """`(int(h * s + 0.5), int(w * s + 0.5))`: the official rounding.

  Args:
    h: image height.
    w: image width.
    s: the rescale factor (e.g. from `rescale_factor`).

  Returns:
    `(h', w')` python ints.
  """
  return int(h * s + 0.5), int(w * s + 0.5)


def rescaled_size(h: int, w: int,
                  scale: Sequence[int] = OFFICIAL_SCALE) -> tuple[int, int]:
  """Resized size under the official rule, `scaled_size(rescale_factor)`.

  Args:
    h: image height.
    w: image width.
    scale: `(long, short)` edge limits.

  Returns:
    `(h', w')` python ints, e.g. 480x640 -> (800, 1067).
  """
  return scaled_size(h, w, rescale_factor(h, w, scale))


def padded_size(hw: Sequence[int], multiple: int) -> tuple[int, int]:
  """`(H, W)` rounded up to multiples of `multiple` (mmdet `size_divisor`).

  Args:
    hw: `(H, W)`.
    multiple: the padding multiple (official: 32).

  Returns:
    `(Hp, Wp)` python ints.
  """
  return (int(math.ceil(hw[0] / multiple)) * multiple,
          int(math.ceil(hw[1] / multiple)) * multiple)
