"""The schedule resolved from the config (gt_jax/training/schedule.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from gt_jax.config import load_config
from gt_jax.training import schedule
from gt_jax.training import step as train_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OFFICIAL = os.path.join(ROOT, "configs/globaltrack_r50_fpn.py")


@pytest.mark.parametrize("batch", [4, 8, 32])
def test_official_rule_twelve_epochs_decays_at_8_and_11(batch):
  cfg = load_config(OFFICIAL, [f"global_batch_size={batch}"])
  s = schedule.resolve_schedule(cfg)
  spe = 30000 // batch  # drop_remainder
  assert s.steps_per_epoch == spe and s.epochs == 12
  assert s.total_steps == 12 * spe
  assert s.decay_steps == (8 * spe, 11 * spe)
  np.testing.assert_allclose(s.peak_lr, 0.01 * batch / 8)
  # The optimizer's schedule is this one, at the decay boundaries.
  lr = train_lib.schedule_from_config(cfg)
  for b, f in ((8 * spe, 0.1), (11 * spe, 0.01)):
    np.testing.assert_allclose(float(lr(b - 1)), s.peak_lr * f * 10,
                               rtol=1e-6)
    np.testing.assert_allclose(float(lr(b)), s.peak_lr * f, rtol=1e-6)


def test_official_default_is_the_paper_schedule():
  s = schedule.resolve_schedule(load_config(OFFICIAL))
  assert (s.total_steps, s.decay_steps) == (90000, (60000, 82500))
  np.testing.assert_allclose(s.peak_lr, 0.005)


def test_explicit_total_steps_and_lr_win():
  cfg = load_config(OFFICIAL, ["total_steps=1200", "optim.lr=0.003",
                               "global_batch_size=16"])
  s = schedule.resolve_schedule(cfg)
  assert s.total_steps == 1200 and s.total_steps_explicit
  assert s.decay_steps == (800, 1100)  # epochs 8 and 11 of 12, scaled
  assert s.peak_lr == 0.003 and s.lr_explicit
  # Resolving the resolved config gives the same schedule.
  again = schedule.resolve_schedule(schedule.resolved_config(cfg))
  assert again.decay_steps == s.decay_steps and again.peak_lr == s.peak_lr
  derived = load_config(OFFICIAL, ["global_batch_size=32"])
  r = schedule.resolve_schedule(schedule.resolved_config(derived))
  assert r.decay_steps == schedule.resolve_schedule(derived).decay_steps


def test_bad_values_name_the_field():
  with pytest.raises(ValueError, match="global_batch_size=0"):
    schedule.resolve_schedule(load_config(OFFICIAL, ["global_batch_size=0"]))
  with pytest.raises(ValueError, match="optim.epochs"):
    schedule.resolve_schedule(load_config(OFFICIAL, ["optim.epochs=0"]))


def test_train_dry_run_prints_the_schedule(tmp_path):
  out = subprocess.run(
      [sys.executable, os.path.join(ROOT, "train.py"), "--config", OFFICIAL,
       "--workdir", str(tmp_path / "w"), "--config.global_batch_size=32",
       "--dry_run"], capture_output=True, text=True, timeout=120,
      env=dict(os.environ, PYTHONPATH=ROOT), check=False)
  assert out.returncode == 0, out.stderr
  assert ("11244 steps = 12 epochs x 937 steps of 32 pairs; lr 0.04"
          in out.stdout)
  assert "x0.1 at steps 7496, 10307 (epochs 8, 11)" in out.stdout
  assert not os.path.exists(tmp_path / "w")
  bad = subprocess.run(
      [sys.executable, os.path.join(ROOT, "train.py"), "--config", OFFICIAL,
       "--workdir", str(tmp_path / "w"), "--num_processes", "2"],
      capture_output=True, text=True, timeout=120,
      env=dict(os.environ, PYTHONPATH=ROOT), check=False)
  assert bad.returncode == 1 and "all three or none" in bad.stderr
