"""The project's user-facing errors and the one-line error wrapper of its CLIs.

Every command line (`train.py`, `evaluate.py`, `track.py`,
`python -m gt_jax.convert`, `python -m gt_jax.demo`) runs its `main` through
`run_main`:

```
if __name__ == "__main__":
  sys.exit(run_main("track.py", main))
```

An error a user can fix (a `GtJaxError`: bad config field, dataset layout,
checkpoint mismatch, results provenance; or a missing/unwritable path, or a
bad value) becomes one line on stderr, `PROG: error: MESSAGE`, and exit
status 1. The full traceback is printed only with `--debug` on the command
line (removed before `main` sees the arguments) or `GT_JAX_DEBUG=1`.

This module imports nothing of gt_jax and no accelerator library, so every
layer (including the host-only `data`) may raise its errors.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

DEBUG_FLAG = "--debug"
DEBUG_ENV = "GT_JAX_DEBUG"


class GtJaxError(Exception):
  """An error the user can fix; its message is one line naming the culprit."""

  def __str__(self) -> str:  # KeyError subclasses would quote the message.
    return str(self.args[0]) if self.args else self.__class__.__name__


class ConfigError(GtJaxError, ValueError):
  """A config file, variant, field or override is wrong."""


class ConfigFieldError(ConfigError, KeyError):
  """An override names a field the config does not have."""


class CheckpointMismatchError(GtJaxError, ValueError):
  """A checkpoint's variables do not fit the model being built."""


class ResultsProvenanceError(GtJaxError, ValueError):
  """A results folder was produced by another model or other settings."""


def debug_requested(argv: Sequence[str] = ()) -> bool:
  """True with `--debug` in `argv` or GT_JAX_DEBUG set to a non-empty,
  non-'0' value."""
  return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def one_line(e: BaseException) -> str:
  """The message of `e` as one line (a multi-line message keeps its first
  line and says how to see the rest)."""
  if isinstance(e, OSError) and e.filename is not None and e.strerror:
    msg = f"{e.filename}: {e.strerror}"
    if (isinstance(e, (FileExistsError, NotADirectoryError)) and
        os.path.isfile(e.filename)):
      msg += " (a file where a folder is expected)"
  else:
    msg = str(e) or type(e).__name__
  lines = [l for l in msg.splitlines() if l.strip()]
  if not lines:
    return type(e).__name__
  if len(lines) > 1:
    return f"{lines[0].strip()} ... (rerun with {DEBUG_FLAG} for details)"
  return lines[0].strip()


# What a CLI reports in one line. ValueError covers DatasetLayoutError,
# PthFormatError and the argument checks of the library; OSError covers
# missing files, a file where a folder is expected and permissions.
USER_ERRORS = (GtJaxError, ValueError, OSError, KeyError)


def run_main(prog: str, main: Callable[[list[str]], int],
             argv: Sequence[str] | None = None,
             on_crash: Callable[[BaseException], None] | None = None) -> int:
  """Runs `main(argv)`; user errors -> one stderr line and exit status 1.

  Args:
    prog: the command's name, printed first (`track.py: error: ...`).
    main: takes the argument list (without the program name and without
      `--debug`) and returns an exit status.
    argv: the arguments (default: sys.argv[1:]).
    on_crash: called with any other exception (a bug, not a user error)
      before it propagates with its traceback; train.py exits a
      multi-process run at once from here.

  Returns:
    `main`'s exit status, 1 on a user error, 130 on Ctrl-C.
  """
  argv = list(sys.argv[1:] if argv is None else argv)
  debug = debug_requested(argv)
  argv = [a for a in argv if a != DEBUG_FLAG]
  try:
    return main(argv)
  except USER_ERRORS as e:
    if debug:
      raise
    print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    if debug:
      raise
    print(f"{prog}: interrupted", file=sys.stderr)
    return 130
  except Exception as e:  # pylint: disable=broad-except
    if on_crash is not None:
      on_crash(e)
    raise
