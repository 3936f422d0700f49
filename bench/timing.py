"""Timing helper shared by the bench scripts."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import jax


def median_time(fn: Callable[[], Any], runs: int, warmup: int = 1) -> float:
  """Median wall seconds of `fn()` (blocked on its result) after `warmup`."""
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times = []
  for _ in range(runs):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return statistics.median(times)
