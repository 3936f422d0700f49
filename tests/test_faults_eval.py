"""Fault suite: `evaluate.py run` reruns, damaged frames, wrong flags.

Issue 10 items 4 and 7: results never reused across models; a sequence
whose frame cannot be decoded fails alone (finished ones kept, exit 1);
zero sequences is an error; a checkpoint's recorded config is used without
--config, and weights that do not fit are one line naming a parameter.
In-process through `evaluate.main` (jax starts once; the compiled tiny
steps are shared).
"""

from __future__ import annotations

import os
import shutil

import jax
import pytest

import evaluate
from dataset_fixtures import make_got10k, make_sequences
from gt_jax import checkpoint
from gt_jax.config import load_config
from gt_jax.evaluation import results_io
from gt_jax.model.build import build_model, init_variables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "configs", "globaltrack_r50_fpn.py:tiny")
SEQS = (("a", [(96, 128)] * 4, (20, 18, 40, 35)),
        ("b", [(96, 128)] * 3, (30, 20, 30, 30)))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("bench"))
  recs = make_sequences(root, SEQS, seed=5)
  model = build_model(load_config(TINY).model)
  ck = {}
  for name, seed, info in (("A", 1, {"variant": "tiny"}),
                           ("B", 2, {"variant": "tiny"}), ("bare", 1, None)):
    ck[name] = str(tmp_path_factory.mktemp("ck") / name)
    checkpoint.save_variables(
        ck[name], init_variables(model, jax.random.PRNGKey(seed)), info)
  return root, recs, ck


def _run(root, results, ckpt, *extra, benchmark="folder"):
  return evaluate.main(["run", "--benchmark", benchmark, "--root", root,
                        "--checkpoint", ckpt, "--results", results,
                        "--workers", "1", "--no-progress", "--no-report",
                        *extra])


def _read(path):
  with open(path, encoding="utf-8") as f:
    return f.read()


def test_rerun_with_another_model_is_refused_then_retracked(
    setup, tmp_path, capsys):
  root, _, ck = setup
  res = str(tmp_path / "results")
  seq_a = os.path.join(res, "GlobalTrack", "a.txt")
  # No --config: the checkpoint records variant "tiny".
  assert _run(root, res, ck["A"]) == 0
  first = _read(seq_a)
  assert "tracked 2 sequences" in capsys.readouterr().out
  assert _run(root, res, ck["A"]) == 0  # same model: resume.
  assert "2 already done" in capsys.readouterr().out
  # Another model into the same folder: refused, one line, nothing changed.
  assert _run(root, res, ck["B"]) == 1
  err = capsys.readouterr().err
  assert "holds results of another run: weights (sha256" in err
  assert "--retrack" in err and len(err.strip().splitlines()) == 1
  assert _read(seq_a) == first
  # Other test settings: refused too, naming the field.
  assert _run(root, res, ck["A"],
              "--config.test.presence_threshold=0.9") == 1
  assert "settings.test.presence_threshold" in capsys.readouterr().err
  # --retrack: the old results are moved (kept), the new model tracks.
  assert _run(root, res, ck["B"], "--retrack") == 0
  cap = capsys.readouterr()
  assert "tracked 2 sequences" in cap.out and ".replaced" in cap.err
  replaced = os.path.join(res, ".replaced")
  old, = os.listdir(replaced)
  assert _read(os.path.join(replaced, old, "a.txt")) == first
  assert _read(seq_a) != first
  # The report ignores .replaced/ (one tracker).
  assert list(results_io.list_trackers(res)) == ["GlobalTrack"]


def test_checkpoint_that_does_not_fit_is_one_line(setup, tmp_path, capsys):
  root, _, ck = setup
  # No --config and no recorded variant: the default (ResNet-50) config.
  assert _run(root, str(tmp_path / "r"), ck["bare"]) == 1
  err = capsys.readouterr().err
  assert len(err.strip().splitlines()) == 1, err
  assert "checkpoint does not fit the model" in err
  assert "backbone/" in err and "(model: (64,))" in err and "--config" in err
  # With the right --config it tracks.
  assert _run(root, str(tmp_path / "r"), ck["bare"], "--config", TINY) == 0


def test_undecodable_frame_fails_its_sequence_only(setup, tmp_path, capsys):
  _, recs, ck = setup
  root = str(tmp_path / "bench")
  shutil.copytree(os.path.dirname(os.path.dirname(recs[0].frame_paths[0])),
                  root)
  bad = os.path.join(root, "a", "0003.jpg")
  good = _read_bytes(bad)
  with open(bad, "wb") as f:
    f.write(good[:40])  # truncated JPEG.
  res = str(tmp_path / "results")
  assert _run(root, res, ck["A"]) == 1
  cap = capsys.readouterr()
  assert "tracked 1 sequences" in cap.out
  assert "sequence a failed" in cap.err and "a/0003.jpg" in cap.err
  assert "1 sequence(s) failed" in cap.err
  assert os.path.isfile(os.path.join(res, "GlobalTrack", "b.txt"))
  assert not os.path.exists(os.path.join(res, "GlobalTrack", "a.txt"))
  with open(bad, "wb") as f:
    f.write(good)
  assert _run(root, res, ck["A"]) == 0  # only the failed one is tracked.
  assert "tracked 1 sequences" in capsys.readouterr().out


def _read_bytes(path):
  with open(path, "rb") as f:
    return f.read()


def test_zero_sequences_is_an_error(setup, tmp_path, capsys):
  _, _, ck = setup
  got = make_got10k(str(tmp_path / "GOT10k"))
  res = str(tmp_path / "results")
  # LaSOT pointed at a GOT-10k folder.
  assert _run(got, res, ck["A"], "--subset", "available",
              benchmark="lasot") == 1
  err = capsys.readouterr().err
  assert "no lasot sequences selected" in err and "GOT10k" in err
  # An empty list.txt.
  with open(os.path.join(got, "val", "list.txt"), "w") as f:
    f.write("")
  assert _run(got, res, ck["A"], "--subset", "val", benchmark="got10k") == 1
  err = capsys.readouterr().err
  assert "got10k" in err and len(err.strip().splitlines()) == 1, err
  assert not os.path.exists(os.path.join(res, "GlobalTrack"))
