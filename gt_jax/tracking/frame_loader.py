"""Background frame decoding for the evaluation runner.

JPEG decoding and the host preprocessing (resize, normalise, pad) of one
frame take about as long as a search step on an accelerator, so they run in
a thread pool ahead of the device: PIL's decoder and OpenCV's resize release
the GIL. Each slot of the batched runner (one sequence at a time) keeps a
window of `depth` frames in flight, in order:

```
loader = FramePrefetcher(prep_fn, num_workers=4, depth=4)
loader.start(slot, paths)        # begin decoding paths[0], paths[1], ...
item = loader.next(slot)         # the next frame of that slot (blocks)
```

`prep_fn(path) -> T` is any host function (here: read + preprocess); an
exception it raises is re-raised by `next` for the frame that failed.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
from typing import Callable, Generic, Hashable, Sequence, TypeVar

T = TypeVar("T")


class FramePrefetcher(Generic[T]):
  """Ordered, bounded read-ahead of frame files, one window per slot."""

  def __init__(self, prep_fn: Callable[[str], T], num_workers: int = 4,
               depth: int = 4):
    """Args: prep_fn: path -> decoded item; num_workers: decoding threads
    (0 decodes synchronously in `next`); depth: frames in flight per slot."""
    if depth < 1:
      raise ValueError(f"prefetch depth must be >= 1, got {depth}")
    self._prep = prep_fn
    self._depth = depth
    self._pool = (cf.ThreadPoolExecutor(num_workers, "gt_jax_frames")
                  if num_workers > 0 else None)
    self._paths: dict[Hashable, Sequence[str]] = {}
    self._next_submit: dict[Hashable, int] = {}
    self._window: dict[Hashable, collections.deque] = {}

  def _submit(self, slot: Hashable) -> None:
    paths, i = self._paths[slot], self._next_submit[slot]
    while i < len(paths) and len(self._window[slot]) < self._depth:
      if self._pool is None:
        self._window[slot].append(paths[i])
      else:
        self._window[slot].append(self._pool.submit(self._prep, paths[i]))
      i += 1
    self._next_submit[slot] = i

  def start(self, slot: Hashable, paths: Sequence[str]) -> None:
    """(Re)assigns `slot` to `paths`, dropping frames still queued for it."""
    self.stop(slot)
    self._paths[slot] = list(paths)
    self._next_submit[slot] = 0
    self._window[slot] = collections.deque()
    self._submit(slot)

  def stop(self, slot: Hashable) -> None:
    """Forgets `slot` (its queued decodes are cancelled where possible)."""
    for f in self._window.pop(slot, ()):
      if isinstance(f, cf.Future):
        f.cancel()
    self._paths.pop(slot, None)
    self._next_submit.pop(slot, None)

  def next(self, slot: Hashable) -> T:
    """The next frame of `slot`, in path order.

    Raises:
      IndexError: the slot's frames are exhausted (or it was never started).
      Whatever `prep_fn` raised for this frame.
    """
    window = self._window.get(slot)
    if not window:
      raise IndexError(f"frame loader slot {slot!r} has no frames left")
    head = window.popleft()
    self._submit(slot)
    if isinstance(head, cf.Future):
      return head.result()
    return self._prep(head)

  def close(self) -> None:
    """Cancels pending work and stops the threads."""
    for slot in list(self._window):
      self.stop(slot)
    if self._pool is not None:
      self._pool.shutdown(wait=True, cancel_futures=True)
      self._pool = None

  def __enter__(self) -> "FramePrefetcher[T]":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
