"""Tests for gt_jax.config: variants, overrides and their errors."""

import os

import pytest

from gt_jax.config import apply_overrides, load_config, split_config_args

_CFG = os.path.join(os.path.dirname(__file__), "..", "configs",
                    "globaltrack_r50_fpn.py")


def test_default_is_official():
  c = load_config(_CFG)
  assert c.model.depth == 50 and c.model.fpn_channels == 256
  assert c.test.rpn_nms_pre == 1000 and c.test.rpn_nms_thr == 0.7
  assert c.train.rcnn_num_samples == 512 and c.train.rpn_num_samples == 256
  assert c.optim.grad_clip_norm == 35.0 and c.optim.warmup_steps == 500
  assert [w for _, _, w in c.data.sources] == [0.4, 0.4, 0.2]
  assert c.preprocess.scale == (1333, 800)


def test_variants_and_unknown_variant():
  assert load_config(_CFG + ":tiny").model.stage_sizes == (1, 1, 1, 1)
  assert [s for s, _, _ in load_config(_CFG + ":coco").data.sources] == [
      "coco"]
  with pytest.raises(ValueError, match="unknown variant"):
    load_config(_CFG + ":nope")


def test_overrides_types():
  c = load_config(_CFG + ":tiny", [
      "--config.total_steps=7", "--config.optim.base_lr=1",
      "--config.model.anchor_ratios=[1.0]", "--config.init_checkpoint=/a/b"
  ])
  assert c.total_steps == 7
  assert c.optim.base_lr == 1.0 and isinstance(c.optim.base_lr, float)
  assert c.model.anchor_ratios == (1.0,)
  assert c.init_checkpoint == "/a/b"


def test_override_errors():
  c = load_config(_CFG)
  with pytest.raises(KeyError, match="no_such"):
    apply_overrides(c, ["model.no_such=1"])
  with pytest.raises(ValueError, match="key=value"):
    apply_overrides(c, ["--config.total_steps"])
  with pytest.raises(ValueError, match="wrong type"):
    apply_overrides(c, ["total_steps=abc"])
  with pytest.raises(FileNotFoundError):
    load_config("configs/missing.py")


def test_split_config_args():
  ov, rest = split_config_args(["--workdir", "/w", "--config.seed=3"])
  assert ov == ["--config.seed=3"] and rest == ["--workdir", "/w"]
