"""The one exception every dataset reader raises for a bad on-disk layout."""

from __future__ import annotations

import os

from gt_jax.errors import GtJaxError


class DatasetLayoutError(GtJaxError, ValueError):
  """A dataset file or folder is missing or malformed.

  The message names the file (and the 1-based line where one applies), so a
  user can open it and fix it: `path/groundtruth.txt, line 3: expected 4
  fields, got 3`.

  Attributes:
    path: the offending file or directory.
    reason: what is wrong with it.
    line: 1-based line number inside `path`, or None.
  """

  def __init__(self, path: str | os.PathLike[str], reason: str,
               line: int | None = None):
    self.path = os.fspath(path)
    self.reason = reason
    self.line = line
    where = self.path if line is None else f"{self.path}, line {line}"
    super().__init__(f"{where}: {reason}")

  def __reduce__(self):
    # Keeps the error picklable across grain worker processes.
    return (type(self), (self.path, self.reason, self.line))
