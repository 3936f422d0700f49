"""Re-export of the public tracker API (`gt_jax.tracking.tracker`)."""

from gt_jax.tracking.tracker import Tracker
from gt_jax.tracking.tracker import TrackResult

__all__ = ["Tracker", "TrackResult"]
