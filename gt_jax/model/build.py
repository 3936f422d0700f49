"""Config -> model: the only place that reads `cfg.model` for the network."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from gt_jax.model.qg_rcnn import QGRCNN

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def build_model(model_cfg: ml_collections.ConfigDict,
                compute_dtype: str = "float32") -> QGRCNN:
  """Builds the QG-RCNN from `cfg.model` (and the top-level compute dtype).

  Args:
    model_cfg: the `model` section of the config.
    compute_dtype: "float32" or "bfloat16" (parameters stay float32).

  Returns:
    An unbound `QGRCNN`.

  Raises:
    ValueError: unsupported depth / dtype, or inconsistent anchor settings.
  """
  if compute_dtype not in _DTYPES:
    raise ValueError(f"compute_dtype={compute_dtype!r}; expected one of "
                     f"{sorted(_DTYPES)}")
  if len(model_cfg.anchor_strides) != model_cfg.num_fpn_outs:
    raise ValueError(
        f"model.anchor_strides has {len(model_cfg.anchor_strides)} entries "
        f"but model.num_fpn_outs={model_cfg.num_fpn_outs}")
  stage_sizes = model_cfg.get("stage_sizes", None)
  return QGRCNN(
      depth=model_cfg.depth,
      stage_sizes=tuple(stage_sizes) if stage_sizes else None,
      base_width=model_cfg.base_width,
      fpn_channels=model_cfg.fpn_channels,
      num_fpn_outs=model_cfg.num_fpn_outs,
      num_anchors=len(model_cfg.anchor_scales) * len(model_cfg.anchor_ratios),
      roi_out_size=model_cfg.roi_out_size,
      roi_sample_num=model_cfg.roi_sample_num,
      roi_strides=tuple(model_cfg.roi_strides),
      roi_finest_scale=model_cfg.roi_finest_scale,
      fc_dim=model_cfg.fc_dim,
      num_classes=model_cfg.num_classes,
      rpn_modulator_fx=model_cfg.rpn_modulator_fx,
      rpn_query_guided=model_cfg.rpn_query_guided,
      remat_backbone=bool(model_cfg.get("remat_backbone", False)),
      dtype=_DTYPES[compute_dtype],
  )


def init_variables(model: QGRCNN, rng: jax.Array,
                   canvas_hw: tuple[int, int] = (128, 128)) -> dict[str, Any]:
  """Random (training-from-scratch) `params` and `batch_stats`.

  BN statistics start at mean 0 / var 1 (flax defaults), as PyTorch's.
  Variables do not depend on the canvas size; a small canvas is enough.
  """
  images = jnp.zeros((1, *canvas_hw, 3), jnp.float32)
  box = jnp.array([[8.0, 8.0, 40.0, 40.0]], jnp.float32)
  return _jitted_init(model)(rng, images, box)


@functools.lru_cache(maxsize=16)
def _jitted_init(model: QGRCNN):
  """`model.init` compiled once per (hashable) model."""
  return jax.jit(model.init)
