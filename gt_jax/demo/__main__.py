"""`python -m gt_jax.demo`: see `gt_jax/demo/run.py`."""

import sys

from gt_jax.demo import run

if __name__ == "__main__":
  sys.exit(run.main())
