"""`python -m gt_jax.convert IN OUT`: see `gt_jax.checkpoint.convert`."""

import sys

from gt_jax.checkpoint.convert import main

if __name__ == "__main__":
  sys.exit(main())
