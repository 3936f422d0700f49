"""Fault suite, fast part: one-line CLI errors, config errors, convert's
--overwrite guard and results provenance (issue 10, items 3, 4, 7)."""

from __future__ import annotations

import json
import os

import ml_collections
import numpy as np
import pytest

from gt_jax import checkpoint
from gt_jax import errors
from gt_jax.checkpoint import convert
from gt_jax.config import load_config, split_config_args
from gt_jax.data.errors import DatasetLayoutError
from gt_jax.evaluation import provenance

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "globaltrack_r50_fpn.py")
TINY_LEGACY = os.path.join(ROOT, "tests", "fixtures", "tiny_qg_rcnn_legacy.pth")


# --------------------------------------------------------------- run_main


def _raiser(exc):
  def main(argv):
    del argv
    raise exc
  return main


def test_run_main_one_line_and_debug(capsys, monkeypatch):
  monkeypatch.delenv(errors.DEBUG_ENV, raising=False)
  cases = [
      (DatasetLayoutError("/d/seq/0003.jpg", "cannot decode image"),
       "/d/seq/0003.jpg: cannot decode image"),
      (FileNotFoundError(2, "No such file or directory", "/no/ckpt"),
       "/no/ckpt: No such file or directory"),
      (errors.ConfigFieldError("config has no field 'nope'"),
       "config has no field 'nope'"),  # no KeyError quotes.
      (ValueError("first line\nsecond\nthird"), "first line ... (rerun"),
  ]
  afile = os.path.join(os.path.dirname(__file__), "test_errors.py")
  cases.append((FileExistsError(17, "File exists", afile),
                f"{afile}: File exists (a file where a folder is expected)"))
  for exc, want in cases:
    assert errors.run_main("prog", _raiser(exc), []) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"prog: error: {want}"), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
  # --debug (removed from argv) or GT_JAX_DEBUG=1: the exception propagates.
  seen = []
  with pytest.raises(ValueError, match="boom"):
    errors.run_main("prog", lambda a: seen.append(a) or _raiser(
        ValueError("boom"))(a), ["--debug", "x"])
  assert seen == [["x"]]
  monkeypatch.setenv(errors.DEBUG_ENV, "1")
  with pytest.raises(ValueError, match="boom"):
    errors.run_main("prog", _raiser(ValueError("boom")), [])
  # A programming error is never dressed up as a user error.
  monkeypatch.delenv(errors.DEBUG_ENV)
  with pytest.raises(ZeroDivisionError):
    errors.run_main("prog", _raiser(ZeroDivisionError("x")), [])


# ---------------------------------------------------------------- config


def test_config_errors_name_the_field_file_or_variant(tmp_path):
  with pytest.raises(errors.ConfigFieldError, match="'model.no_such'"):
    load_config(CONFIG + ":tiny", ["--config.model.no_such=1"])
  with pytest.raises(errors.ConfigFieldError, match="'seed.x'.*not a section"):
    load_config(CONFIG + ":tiny", ["--config.seed.x=1"])
  with pytest.raises(errors.ConfigError, match="total_steps=abc.*wrong type"):
    load_config(CONFIG + ":tiny", ["--config.total_steps=abc"])
  with pytest.raises(errors.ConfigError, match="unknown variant 'nope'"):
    load_config(CONFIG + ":nope")
  with pytest.raises(FileNotFoundError, match="missing.py"):
    load_config(str(tmp_path / "missing.py"))
  with pytest.raises(errors.ConfigError, match=r"total_steps=VALUE"):
    split_config_args(["--config.total_steps", "2", "--workdir", "w"])
  broken = tmp_path / "broken.py"
  broken.write_text("def get_config(arg):\n  return undefined_name\n")
  with pytest.raises(errors.ConfigError, match="broken.py"):
    load_config(str(broken))
  syntax = tmp_path / "syntax.py"
  syntax.write_text("def get_config(arg)\n")
  with pytest.raises(errors.ConfigError, match="syntax.py.*fails to load"):
    load_config(str(syntax))
  # All are one-line user errors for run_main.
  for e in (errors.ConfigError("x"), errors.ConfigFieldError("y")):
    assert isinstance(e, errors.USER_ERRORS)


# --------------------------------------------------------------- convert


def test_convert_overwrite_never_deletes_what_is_not_a_checkpoint(
    tmp_path, monkeypatch, capsys):
  work = tmp_path / "work"
  work.mkdir()
  src = work / "model.pth"
  src.write_bytes(open(TINY_LEGACY, "rb").read())
  (work / "notes.txt").write_text("keep me")
  monkeypatch.chdir(work)
  tiny = ["--config", CONFIG + ":tiny"]
  # OUT = '.' (contains the input), OUT = the input itself.
  for out in (".", "model.pth"):
    assert convert.main(["model.pth", out, "--overwrite"] + tiny) == 1
    assert "contains the input" in capsys.readouterr().err
  # OUT = another folder, OUT = a plain file.
  other = work / "data"
  other.mkdir()
  (other / "precious.txt").write_text("x")
  assert convert.main(["model.pth", "data", "--overwrite"] + tiny) == 1
  assert "not a gt-jax checkpoint" in capsys.readouterr().err
  assert convert.main(["model.pth", "notes.txt", "--overwrite"] + tiny) == 1
  assert "is a file" in capsys.readouterr().err
  assert sorted(os.listdir(work)) == ["data", "model.pth", "notes.txt"]
  assert (other / "precious.txt").read_text() == "x"
  assert src.read_bytes() == open(TINY_LEGACY, "rb").read()
  # Without --overwrite an existing output is refused; a checkpoint it
  # wrote itself is replaced with --overwrite.
  assert convert.main(["model.pth", "ckpt"] + tiny) == 0
  assert convert.main(["model.pth", "ckpt"] + tiny) == 1
  assert "pass --overwrite" in capsys.readouterr().err
  assert checkpoint.is_variables_checkpoint("ckpt")
  assert convert.main(["model.pth", "ckpt", "--overwrite"] + tiny) == 0
  assert checkpoint.restore_info("ckpt")["variant"] == "tiny"
  assert convert.main(["missing.pth", "x"]) == 1
  assert "missing.pth" in capsys.readouterr().err


# ------------------------------------------------------------ provenance


def _cfg(threshold=0.5):
  c = ml_collections.ConfigDict()
  c.variant = "tiny"
  c.model = ml_collections.ConfigDict({"depth": 18, "ratios": (0.5, 1.0)})
  c.preprocess = ml_collections.ConfigDict({"scale": (64, 48)})
  c.test = ml_collections.ConfigDict({"presence_threshold": threshold})
  return c


def _record(weights=0.0, threshold=0.5, frame_stride=1):
  variables = {"params": {"w": np.full((2, 3), weights, np.float32)}}
  return provenance.make_provenance(
      _cfg(threshold), variables, checkpoint="/ck", config="c.py:tiny",
      benchmark="lasot", layout="otb", frame_stride=frame_stride)


def test_provenance_refuses_another_model_unless_retrack(tmp_path):
  d = str(tmp_path / "results" / "GlobalTrack")
  assert provenance.check_or_record(d, _record()) is None
  with open(os.path.join(d, "seq.txt"), "w") as f:
    f.write("1,2,3,4\n")
  assert provenance.check_or_record(d, _record()) is None  # same: resume.
  with pytest.raises(errors.ResultsProvenanceError,
                     match=r"another run: weights \(sha256"):
    provenance.check_or_record(d, _record(weights=1.0))
  with pytest.raises(errors.ResultsProvenanceError,
                     match=r"settings\.test\.presence_threshold \(0\.5 -> "
                     r"0\.3\).*--retrack"):
    provenance.check_or_record(d, _record(threshold=0.3))
  with pytest.raises(errors.ResultsProvenanceError, match="frame_stride"):
    provenance.check_or_record(d, _record(frame_stride=30))
  assert os.listdir(d) == ["provenance.json", "seq.txt"] or sorted(
      os.listdir(d)) == ["provenance.json", "seq.txt"]
  # --retrack: the old folder moves (nothing deleted), a fresh record.
  moved = provenance.check_or_record(d, _record(weights=1.0), retrack=True)
  assert os.path.dirname(moved) == str(tmp_path / "results" / ".replaced")
  with open(os.path.join(moved, "seq.txt")) as f:
    assert f.read() == "1,2,3,4\n"
  assert os.listdir(d) == ["provenance.json"]
  assert provenance.read(d)["weights_sha256"] == _record(1.0)[
      "weights_sha256"]


def test_provenance_unknown_or_damaged_origin(tmp_path):
  d = tmp_path / "T"
  d.mkdir()
  (d / "seq.txt").write_text("1,2,3,4\n")  # results of unknown origin.
  with pytest.raises(errors.ResultsProvenanceError, match="no provenance"):
    provenance.check_or_record(str(d), _record())
  (d / "provenance.json").write_text("{trunc")
  with pytest.raises(errors.ResultsProvenanceError,
                     match="provenance.json: unreadable"):
    provenance.check_or_record(str(d), _record())
  moved = provenance.check_or_record(str(d), _record(), retrack=True)
  assert sorted(os.listdir(moved)) == ["provenance.json", "seq.txt"]
  with open(d / "provenance.json") as f:
    assert json.load(f) == _record()
  # The fingerprint sees one changed value; the record is JSON-stable.
  a = {"params": {"w": np.zeros(3, np.float32)}}
  b = {"params": {"w": np.array([0, 0, 1e-7], np.float32)}}
  assert (provenance.weights_fingerprint(a) !=
          provenance.weights_fingerprint(b))


def test_run_main_on_crash_sees_bugs_not_user_errors(capsys):
  seen = []

  def fail(exc):
    def main(argv):
      raise exc
    return main

  missing = FileNotFoundError(2, "No such file", "x.txt")
  rc = errors.run_main("prog", fail(missing), [], on_crash=seen.append)
  assert rc == 1 and seen == []
  assert capsys.readouterr().err == "prog: error: x.txt: No such file\n"
  with pytest.raises(RuntimeError, match="bug"):
    errors.run_main("prog", fail(RuntimeError("bug")), [],
                    on_crash=seen.append)
  assert [str(e) for e in seen] == ["bug"]
  # --debug: user errors propagate with their traceback, on_crash not called.
  with pytest.raises(FileNotFoundError):
    errors.run_main("prog", fail(FileNotFoundError("x")), ["--debug"],
                    on_crash=seen.append)
  assert len(seen) == 1
