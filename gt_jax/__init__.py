"""gt-jax: GlobalTrack (query-guided global-search tracking) in JAX/Flax."""

__version__ = "0.1.0"
