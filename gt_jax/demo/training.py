"""Demo training: the synthetic pair stream, the untrained start, the run.

`train_demo(cfg, workdir)` trains (or resumes, or reuses) one demo model;
`untrained_variables(cfg)` is the weights it starts from (also the
"untrained" baseline of the report).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import jax
import numpy as np

from gt_jax import checkpoint
from gt_jax.data import pipeline
from gt_jax.model.build import build_model
from gt_jax.model.build import init_variables
from gt_jax.training import loop as train_loop


def log(msg: str) -> None:
  print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr,
        flush=True)


class _JsonStateIterator:
  """Gives the pipeline iterator a JSON (dict) state for the checkpoint.

  `TrainIterator.get_state()` returns bytes (grain's protocol), which
  train_loop stores with orbax's JsonSave when the iterator is not a grain
  one; bytes are not JSON, so the state is passed as the decoded dict.
  """

  def __init__(self, it: Any):
    self.it = it

  def __iter__(self) -> "_JsonStateIterator":
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    return next(self.it)

  def get_state(self) -> dict[str, Any]:
    state = self.it.get_state()
    return json.loads(state) if isinstance(state, (bytes, str)) else state

  def set_state(self, state: Any) -> None:
    self.it.set_state(json.dumps(state) if isinstance(state, dict) else state)


def _make_data(cfg: Any) -> tuple[Any, str]:
  it, fingerprint = pipeline.make_train_pipeline(cfg)
  return _JsonStateIterator(it), fingerprint


def untrained_variables(cfg: Any) -> dict[str, Any]:
  """The weights training starts from: the random init of `cfg.seed` (the
  same split as train_loop), with the demo's modulator re-draw (below).

  `cfg.demo_modulator_init = "fan_in"` re-draws the kernels of both query
  modulators from N(0, 1 / fan_in). The official N(0, 0.01) init (LS §6)
  assumes an ImageNet-pretrained backbone; from scratch, the RoI head's
  query signal is a product of two such convs, a near-flat start that a
  30-minute CPU schedule does not leave (measured: README / report).
  """
  init_rng, _ = jax.random.split(jax.random.PRNGKey(cfg.seed))
  model = build_model(cfg.model, cfg.compute_dtype)
  variables = jax.tree.map(np.array, init_variables(model, init_rng))
  mode = cfg.get("demo_modulator_init", "")
  if mode not in ("", "fan_in"):
    raise ValueError(f"config demo_modulator_init={mode!r}; expected '' or "
                     "'fan_in'")
  if mode:
    rs = np.random.RandomState(cfg.seed)
    for module in ("rpn_modulator", "rcnn_modulator"):
      for name in sorted(variables["params"][module]):
        k = variables["params"][module][name]["kernel"]
        std = np.sqrt(1.0 / np.prod(k.shape[:-1]))
        variables["params"][module][name]["kernel"] = (
            rs.standard_normal(k.shape) * std).astype(k.dtype)
  return variables


def train_demo(cfg: Any, workdir: str, progress: bool = True
               ) -> tuple[dict[str, Any], dict[str, Any]]:
  """Trains (or resumes) in WORKDIR; the weights are WORKDIR/model.

  `train_loop.train` writes WORKDIR/checkpoints, WORKDIR/metrics.jsonl and,
  once finished, exports WORKDIR/model (the one weight export of the run);
  WORKDIR/train_info.json keeps the demo's summary of the run.

  Returns:
    (variables, info): info has steps, seconds, final metrics.

  Raises:
    ValueError: WORKDIR/model holds weights of a run of another length.
    KeyboardInterrupt: training was stopped by a signal (rerun to resume).
  """
  model_dir = os.path.join(workdir, "model")
  info_path = os.path.join(workdir, "train_info.json")
  if os.path.isdir(model_dir):
    saved = checkpoint.restore_info(model_dir)
    if saved.get("step") != cfg.total_steps:
      raise ValueError(
          f"{model_dir} holds weights of a {saved.get('step')}-step run, "
          f"not total_steps={cfg.total_steps}; use another --workdir")
    log(f"trained weights found in {model_dir}; skipping training")
    info = dict(saved)
    if os.path.isfile(info_path):
      with open(info_path, encoding="utf-8") as f:
        info = json.load(f)
    return checkpoint.restore_variables(model_dir), info
  start = time.time()
  if cfg.get("demo_modulator_init", "") and not cfg.init_checkpoint:
    # Rule 2 of train_loop's init priority (a resume still wins).
    init_dir = os.path.join(workdir, "init")
    if not os.path.isdir(init_dir):
      checkpoint.save_variables(init_dir, untrained_variables(cfg),
                                dict(demo_modulator_init="fan_in"))
    cfg = cfg.copy_and_resolve_references()
    cfg.init_checkpoint = init_dir
  result = train_loop.train(cfg, workdir, make_data=_make_data,
                            progress=progress)
  if result.preempted:
    raise KeyboardInterrupt(f"training stopped at step {result.step}; rerun "
                            "the same command to resume")
  info = dict(total_steps=int(cfg.total_steps), step=int(result.step),
              seconds_last_session=round(time.time() - start, 1),
              final_metrics=result.last_metrics, variant=cfg.variant)
  tmp = f"{info_path}.tmp{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(info, f, indent=1)
  os.replace(tmp, info_path)
  return checkpoint.restore_variables(model_dir), info
