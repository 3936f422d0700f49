"""Training run lifecycle under faults (issue 10, items 1-2).

Reruns of a finished run, an export interrupted at each moment, signals
during the export, damaged checkpoints, a torn metrics line, a changed model
shape, and divergence. All runs use the tiny config of test_train (the same
compiled step, shared through train_loop's cache) on in-memory data.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal

import jax
import numpy as np
import pytest

from gt_jax import checkpoint
from gt_jax.training import checkpoints as ckpt
from gt_jax.training import loop as train_loop
from test_train import FakeData, make_batch, tiny_cfg


class NanAfter(FakeData):
  """Finite batches up to step `n`, NaN images after (a diverging run)."""

  def __init__(self, n: int):
    super().__init__()
    self.n = n

  def __next__(self):
    self.i += 1
    return make_batch(100 + self.i, nan=self.i > self.n)


def run(workdir, cfg=None, data=None, **kw):
  cfg = cfg or tiny_cfg(log_every=1, checkpoint_every=2)
  return train_loop.train(cfg, str(workdir), progress=False,
                          make_data=lambda c: (data or FakeData(), "fake"),
                          **kw)


def steps_logged(workdir) -> list[int]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(l)["step"] for l in f if l.strip()]


def leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def same(a, b) -> bool:
  return all(x.tobytes() == y.tobytes() for x, y in zip(leaves(a), leaves(b)))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """A finished 6-step run (checkpoints 2, 4, 6; model exported)."""
  w = tmp_path_factory.mktemp("finished")
  res = run(w)
  assert res.step == 6 and os.path.isdir(w / "model")
  assert sorted(os.listdir(w / "checkpoints")) == ["2", "4", "6"]
  return w, res


def copy_of(finished, tmp_path):
  w = tmp_path / "w"
  shutil.copytree(finished[0], w)
  return w


def test_schedule_and_config_written(finished):
  w, _ = finished
  with open(w / "schedule.json") as f:
    plan = json.load(f)
  assert plan["total_steps"] == 6 and plan["decay_steps"] == [4, 6]
  with open(w / "config.json") as f:
    assert json.load(f)["total_steps"] == 6
  assert glob.glob(str(w / "tb" / "events.out.tfevents.*"))


def test_rerun_of_finished_run_is_noop(finished, tmp_path, capfd):
  w = copy_of(finished, tmp_path)
  before = steps_logged(w)
  res = run(w)
  assert res.step == 6 and not res.preempted
  assert "run already finished at step 6" in capfd.readouterr().err
  assert steps_logged(w) == before == [1, 2, 3, 4, 5, 6]
  assert sorted(os.listdir(w / "checkpoints")) == ["2", "4", "6"]
  # A missing model is written from the final checkpoint, bit for bit.
  shutil.rmtree(w / "model")
  run(w)
  assert "wrote the missing" in capfd.readouterr().err
  assert same(checkpoint.restore_variables(w / "model")["params"],
              finished[1].state.params)


def test_export_interrupted_at_each_moment_keeps_a_model(
    finished, tmp_path, monkeypatch):
  w = copy_of(finished, tmp_path)
  state = finished[1].state
  # 1. Killed while writing the new model: the old one is untouched.
  def crash(*a, **k):
    raise KeyboardInterrupt("killed while writing")
  monkeypatch.setattr(checkpoint, "save_variables", crash)
  with pytest.raises(KeyboardInterrupt):
    ckpt.export_model(str(w), state, {"step": 6})
  monkeypatch.undo()
  assert ckpt.model_is_complete(str(w))
  # 2. Killed between the two renames: model.old, no model; the rerun
  # puts it back (and a stale model.partial is cleaned up).
  os.replace(w / "model", w / "model.old")
  os.makedirs(w / "model.partial")
  res = run(w)
  assert res.step == 6 and ckpt.model_is_complete(str(w))
  assert not os.path.exists(w / "model.old")
  # 3. The normal path replaces the model and leaves nothing beside it.
  ckpt.export_model(str(w), state, {"step": 6})
  assert sorted(p for p in os.listdir(w) if p.startswith("model")) == [
      "model"]


def test_sigterm_during_export_is_handled(tmp_path, monkeypatch):
  real = ckpt.export_model

  def export_with_signal(*a, **k):
    os.kill(os.getpid(), signal.SIGTERM)  # arrives during the export
    return real(*a, **k)

  monkeypatch.setattr(ckpt, "export_model", export_with_signal)
  res = run(tmp_path)
  assert res.step == 6
  assert ckpt.model_is_complete(str(tmp_path))


@pytest.mark.parametrize("damage", ["data_file", "metadata", "iterator"])
def test_damaged_newest_checkpoint_falls_back(finished, tmp_path, capfd,
                                              damage):
  w = copy_of(finished, tmp_path)
  step6 = w / "checkpoints" / "6"
  if damage == "data_file":
    files = [p for p in glob.glob(str(step6 / "state" / "**" / "d" / "*"),
                                  recursive=True) if os.path.isfile(p)]
    big = max(files, key=os.path.getsize)
    with open(big, "r+b") as f:
      f.truncate(os.path.getsize(big) // 2)
    named = "6/state"
  elif damage == "metadata":
    path = step6 / "state" / "_METADATA"
    text = path.read_text()
    path.write_text(text[:len(text) // 2])
    named = "6/state/_METADATA"
  else:
    shutil.rmtree(step6 / "data")
    named = "6"
  res = run(w)
  err = capfd.readouterr().err
  line = [l for l in err.splitlines() if "is damaged" in l]
  assert line and named in line[0], err[-2000:]
  assert "resumed from" in err and "checkpoints/4" in err
  # Steps 5-6 were retrained from checkpoint 4: the same final state.
  assert res.step == 6 and same(res.state.params, finished[1].state.params)
  assert steps_logged(w) == [1, 2, 3, 4, 5, 6]
  assert os.listdir(w / "checkpoints_damaged") == ["6"]


def test_torn_metrics_line_and_no_duplicate_steps(tmp_path, capfd):
  res = run(tmp_path, on_step=lambda s: s == 3 and os.kill(os.getpid(),
                                                           signal.SIGTERM))
  assert res.preempted and res.step == 3
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 4, "loss": 1.2')  # killed mid-line
  res = run(tmp_path)
  assert res.step == 6
  assert "dropping an unreadable line" in capfd.readouterr().err
  assert steps_logged(tmp_path) == [1, 2, 3, 4, 5, 6]


def test_changed_model_shape_names_the_parameters(finished, tmp_path):
  w = copy_of(finished, tmp_path)
  state = finished[1].state
  params = jax.tree.map(lambda x: x, state.params)  # a copy of the dicts
  k = params["bbox_head"]["fc_cls"]["kernel"]
  params["bbox_head"]["fc_cls"]["kernel"] = jax.numpy.zeros(
      (k.shape[0] + 3, k.shape[1]), k.dtype)
  changed = state.replace(params=params)
  mngr = ckpt.manager(str(w), ckpt.FINITE_DIR, 3)
  try:
    with pytest.raises(ckpt.ShapeMismatchError,
                       match=r"params/bbox_head/fc_cls/kernel: checkpoint "
                       r"\(\d+, 2\) vs model"):
      ckpt.restore_latest(str(w), mngr, changed, jax.random.PRNGKey(0),
                          FakeData(), "fake")
  finally:
    mngr.close()
  assert sorted(os.listdir(w / "checkpoints")) == ["2", "4", "6"]


def test_divergence_never_replaces_finite_checkpoints(tmp_path, capfd):
  cfg = tiny_cfg(log_every=1, checkpoint_every=2, keep_checkpoints=2,
                 max_nonfinite_steps=2)
  for _ in range(2):  # two aborted retries rotate nothing out
    with pytest.raises(RuntimeError) as e:
      run(tmp_path, cfg, NanAfter(4))
    assert "first non-finite term loss_rpn_cls=nan" in str(e.value)
    assert "last finite checkpoint" in str(e.value)
    assert str(tmp_path / "checkpoints" / "4") in str(e.value)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2", "4"]
  assert len(os.listdir(tmp_path / "checkpoints_nonfinite")) == 1
  capfd.readouterr()
  res = run(tmp_path, cfg, FakeData())  # a sane rerun
  assert f"resumed from {tmp_path / 'checkpoints'}/4" in capfd.readouterr().err
  assert res.step == 6 and np.isfinite(res.last_metrics["loss"])
  assert steps_logged(tmp_path) == [1, 2, 3, 4, 5, 6]
