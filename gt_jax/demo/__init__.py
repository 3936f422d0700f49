"""The embedded-data demo and the paper's ablations in miniature.

Thin users of the library: `python -m gt_jax.demo` (the README's main
command, `run.py`) and `python -m gt_jax.ablations` (`ablations.py`).
"""
