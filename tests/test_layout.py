"""The package layout's import rules (docs/internals.md, "What may import what").

Packages are stages of the data flow; each imports only packages listed
before it in `LAYERS`. `data` (host-only) must never reach jax, not even
through another gt_jax module. Checked statically on every module's
imports (function-level imports included) and, for `data`, by importing it.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "gt_jax")

# Data-flow order: a package may import itself and the packages before it.
LAYERS = ("errors", "config", "boxes", "ops", "model", "checkpoint", "data",
          "training", "tracking", "evaluation", "demo")
# Thin re-exports kept for the public contract (`gt_jax.tracker.Tracker`,
# `python -m gt_jax.convert`, `python -m gt_jax.ablations`).
FACADES = {"tracker": "tracking", "convert": "checkpoint",
           "ablations": "demo"}
ACCELERATOR_LIBS = {"jax", "jaxlib", "flax", "optax", "orbax", "chex"}


def _module_name(path: str) -> str:
  rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
  return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _all_modules() -> dict[str, str]:
  out = {}
  for d, _, files in os.walk(PKG):
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(d, f)
        out[_module_name(path)] = path
  return out


MODULES = _all_modules()


def _resolve(name: str) -> str:
  """The gt_jax module a dotted import name executes last."""
  while name not in MODULES and "." in name:
    name = name.rsplit(".", 1)[0]
  return name


def _imports(path: str) -> tuple[set[str], set[str]]:
  """(gt_jax modules, third-party top-level names) imported by `path`."""
  tree = ast.parse(open(path, encoding="utf-8").read(), path)
  ours, theirs = set(), set()
  for node in ast.walk(tree):
    names = []
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    for n in names:
      if n.split(".")[0] == "gt_jax":
        m = _resolve(n)
        if m != "gt_jax":
          ours.add(m)
      else:
        theirs.add(n.split(".")[0])
  return ours, theirs


GRAPH = {m: _imports(p) for m, p in MODULES.items()}


def _package(module: str) -> str:
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else ""


def _closure(module: str) -> set[str]:
  """`module` and every gt_jax module (and parent package) it executes."""
  seen, todo = set(), [module]
  while todo:
    m = todo.pop()
    if m in seen:
      continue
    seen.add(m)
    parts = m.split(".")
    todo += [".".join(parts[:i]) for i in range(2, len(parts))]
    todo += GRAPH.get(m, (set(), set()))[0]
  return seen


def test_every_module_belongs_to_a_layer():
  unknown = sorted(m for m in MODULES if m != "gt_jax" and
                   _package(m) not in LAYERS and _package(m) not in FACADES)
  assert not unknown, f"modules outside the layered packages: {unknown}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "gt_jax"))
def test_imports_follow_the_data_flow(module):
  pkg = _package(module)
  if pkg in FACADES:
    allowed = set(LAYERS[:LAYERS.index(FACADES[pkg]) + 1])
  else:
    allowed = set(LAYERS[:LAYERS.index(pkg) + 1])
  bad = sorted(m for m in GRAPH[module][0] if _package(m) not in allowed)
  assert not bad, (f"{module} ({pkg}) imports {bad}; allowed packages: "
                   f"{sorted(allowed)}")


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if _package(m) == "data"))
def test_data_never_reaches_jax(module):
  reached = {m: GRAPH[m][1] & ACCELERATOR_LIBS for m in _closure(module)
             if m in GRAPH}
  bad = {m: sorted(v) for m, v in reached.items() if v}
  assert not bad, f"{module} reaches accelerator libraries through {bad}"


def test_model_and_ops_do_not_import_training_or_evaluation():
  for m, (ours, _) in GRAPH.items():
    if _package(m) in ("model", "ops", "boxes"):
      assert not {_package(o) for o in ours} & {
          "training", "evaluation", "tracking", "demo"}, m


def test_importing_data_loads_no_jax():
  mods = sorted(m for m in MODULES if _package(m) == "data" and
                not m.endswith("__main__"))
  code = ("import sys\n" + "".join(f"import {m}\n" for m in mods) +
          "bad = sorted(k for k in sys.modules if k.split('.')[0] in "
          f"{sorted(ACCELERATOR_LIBS)!r})\n"
          "assert not bad, bad\n")
  subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_rule_checker_catches_a_violation(tmp_path):
  # The static check must see function-level imports of a later layer.
  p = tmp_path / "bad.py"
  p.write_text("def f():\n  from gt_jax.training import losses\n"
               "  import jax.numpy\n")
  ours, theirs = _imports(str(p))
  assert "gt_jax.training.losses" in ours and "jax" in theirs
  assert not {_package(o) for o in ours} <= set(LAYERS[:LAYERS.index("data") + 1])


def test_public_entry_points_still_work():
  # The public contract (DESIGN.md) survives the move to subpackages.
  from gt_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from gt_jax import config  # pylint: disable=g-import-not-at-top
  from gt_jax import tracker  # pylint: disable=g-import-not-at-top
  from gt_jax.tracking import tracker as tracking_tracker  # pylint: disable=g-import-not-at-top
  assert tracker.Tracker is tracking_tracker.Tracker
  assert callable(checkpoint.load_mmdet_weights)
  assert callable(config.load_config)
  for module in ("gt_jax.convert", "gt_jax.ablations", "gt_jax.demo"):
    out = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (module, out.stderr[-2000:])
    assert "usage: python -m " + module in out.stdout, (module, out.stdout)
