"""`python -m gt_jax.ablations`: see `gt_jax.demo.ablations`."""

import sys

from gt_jax.demo.ablations import main

if __name__ == "__main__":
  sys.exit(main())
