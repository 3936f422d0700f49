"""The main job: synthetic data -> train the demo config -> evaluate -> report.

  python -m gt_jax.demo --workdir runs/demo [--config.key=value ...]

Runs on 2 CPU cores in under 30 minutes (measured numbers: README):
  1. data      generates the embedded synthetic dataset (cached by its
               manifest: a second run reuses it);
  2. train     trains `configs/globaltrack_r50_fpn.py:demo` from scratch
               (train_loop: resumes from WORKDIR/train, progress bar); the
               final weights go to WORKDIR/model (an orbax dir that
               `Tracker`, `evaluate.py` and `--config.init_checkpoint` read);
  3. evaluate  tracks the held-out LaSOT-layout test videos with the trained
               model, the same model untrained (its random init) and the
               "stay at the first box" baseline; one result file per
               sequence under WORKDIR/results/<tracker>/ (finished sequences
               are skipped on a rerun);
  4. report    WORKDIR/report/: report.json, report.md, success / precision
               plots (official LaSOT protocol: absent frames count as
               failures) plus the GlobalTrack paper's evaluator (neuron:
               absent frames dropped) and an annotated GIF of one test video.
Interrupt at any time (Ctrl-C saves a checkpoint) and rerun the same command
to continue.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
from PIL import Image
from PIL import ImageDraw
import tqdm

from gt_jax import checkpoint
from gt_jax import config as config_lib
from gt_jax import train_loop
from gt_jax.config import load_config
from gt_jax.data import pipeline
from gt_jax.data import synthetic
from gt_jax.evaluation import benchmarks
from gt_jax.evaluation import protocols
from gt_jax.evaluation import report
from gt_jax.evaluation import results_io
from gt_jax.model.build import build_model
from gt_jax.model.build import init_variables
from gt_jax.tracker import Tracker

# The demo's dataset: more training videos and stills than the generator's
# defaults (generation takes ~10 s either way); the test split is identical
# for any num_train (every video has its own (seed, split, index) stream).
DEMO_DATA = dict(num_train=96, num_val=6, num_test=8, num_frames=60,
                 num_coco_images=200)
TRACKERS = ("globaltrack_demo", "globaltrack_untrained", "first_box")
TARGET_AUC = 0.5
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(_REPO, "configs", "globaltrack_r50_fpn.py:demo")


def log(msg: str) -> None:
  print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr,
        flush=True)


# ---------------------------------------------------------------------------
# 1. Data.


def prepare_data(data_dir: str, **overrides: Any) -> dict[str, str]:
  """Generates (or reuses) the synthetic dataset; returns its paths."""
  args = dict(DEMO_DATA, **overrides)
  return synthetic.generate(data_dir, verbose=True, **args)


def demo_config(spec: str, paths: Mapping[str, str],
                overrides: Sequence[str] = ()) -> Any:
  """Loads `spec` and points its synthetic/coco sources at `paths`.

  Raises:
    ValueError: a `data.sources` entry is not synthetic/coco.
  """
  cfg = load_config(spec, overrides)
  roots = {"synthetic": paths["got10k"], "coco": paths["coco"]}
  sources = []
  for name, root, weight in cfg.data.sources:
    if name not in roots:
      raise ValueError(f"{spec}: data.sources entry {name!r} is not part of "
                       f"the synthetic demo data ({sorted(roots)})")
    sources.append((name, root or roots[name], float(weight)))
  cfg.data.sources = tuple(sources)
  return cfg


# ---------------------------------------------------------------------------
# 2. Training.


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


_INITS: dict[str, Any] = {}


def untrained_variables(cfg: Any) -> dict[str, Any]:
  """The weights training starts from: the random init of `cfg.seed` (the
  same split as train_loop), with the demo's modulator re-draw (below).

  `cfg.demo_modulator_init = "fan_in"` re-draws the kernels of both query
  modulators from N(0, 1 / fan_in). The official N(0, 0.01) init (LS §6)
  assumes an ImageNet-pretrained backbone; from scratch, the RoI head's
  query signal is a product of two such convs, a near-flat start that a
  30-minute CPU schedule does not leave (measured: README / report).
  """
  key = json.dumps([cfg.model.to_dict(), cfg.compute_dtype, cfg.seed],
                   sort_keys=True, default=str)
  if key not in _INITS:  # init_variables compiles anew on every call
    init_rng, _ = jax.random.split(jax.random.PRNGKey(cfg.seed))
    model = build_model(cfg.model, cfg.compute_dtype)
    _INITS[key] = jax.device_get(init_variables(model, init_rng))
  variables = jax.tree.map(np.array, _INITS[key])  # a fresh copy
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
  """Trains (or resumes) in WORKDIR/train; caches weights in WORKDIR/model.

  Returns:
    (variables, info): info has steps, seconds, final metrics.
  """
  model_dir = os.path.join(workdir, "model")
  if os.path.isdir(model_dir):
    info = checkpoint.restore_info(model_dir)
    if info.get("total_steps") == cfg.total_steps:
      log(f"trained weights found in {model_dir}; skipping training")
      return checkpoint.restore_variables(model_dir), info
    raise ValueError(
        f"{model_dir} holds weights of a {info.get('total_steps')}-step run, "
        f"not total_steps={cfg.total_steps}; use another --workdir")
  start = time.time()
  if cfg.get("demo_modulator_init", "") and not cfg.init_checkpoint:
    # Rule 2 of train_loop's init priority (a resume still wins).
    init_dir = os.path.join(workdir, "init")
    if not os.path.isdir(init_dir):
      checkpoint.save_variables(init_dir, untrained_variables(cfg),
                                dict(demo_modulator_init="fan_in"))
    cfg = cfg.copy_and_resolve_references()
    cfg.init_checkpoint = init_dir
  result = train_loop.train(cfg, os.path.join(workdir, "train"),
                            make_data=_make_data, progress=progress)
  if result.preempted:
    raise KeyboardInterrupt(f"training stopped at step {result.step}; rerun "
                            "the same command to resume")
  info = dict(total_steps=int(cfg.total_steps), step=int(result.step),
              seconds_last_session=round(time.time() - start, 1),
              final_metrics=result.last_metrics, variant=cfg.variant)
  variables = {"params": result.state.params,
               "batch_stats": result.state.batch_stats}
  checkpoint.save_variables(model_dir, variables, info)
  return checkpoint.restore_variables(model_dir), info


# ---------------------------------------------------------------------------
# 3. Tracking.


def load_frame(path: str) -> np.ndarray:
  with Image.open(path) as im:
    return np.asarray(im.convert("RGB"))


def _result_paths(tracker_dir: str, name: str) -> tuple[str, str]:
  return (os.path.join(tracker_dir, f"{name}.txt"),
          os.path.join(tracker_dir, f"{name}_scores.txt"))


def _done(tracker_dir: str, name: str) -> bool:
  return all(os.path.isfile(p) for p in _result_paths(tracker_dir, name))


def _write(tracker_dir: str, name: str, boxes: np.ndarray,
           scores: np.ndarray, times: np.ndarray | None = None) -> None:
  # Scores first: a sequence counts as done once its box file exists too.
  results_io.write_values(_result_paths(tracker_dir, name)[1], scores)
  results_io.write_otb_result(tracker_dir, name, boxes, times)


def first_box_results(records: Sequence[Any], tracker_dir: str) -> int:
  """The "stay at the first box" baseline; returns sequences written."""
  n = 0
  for r in records:
    if _done(tracker_dir, r.name):
      continue
    boxes = np.repeat(r.boxes[:1], len(r.frame_paths), axis=0)
    _write(tracker_dir, r.name, boxes, np.ones(len(boxes)))
    n += 1
  return n


_TRACKERS: dict[str, Any] = {}


def track_records(cfg: Any, variables: Any, records: Sequence[Any],
                  tracker_dir: str, batch_size: int = 8,
                  progress: bool = True,
                  on_frame: Callable[[Any, int, dict[str, np.ndarray]],
                                     None] | None = None
                  ) -> int:
  """Tracks the unfinished `records` in lock-step batches of `batch_size`.

  Every batch has exactly `batch_size` slots (short groups repeat their last
  sequence; shorter sequences repeat their last frame), so the search step
  compiles once. Results: `<seq>.txt` (x, y, w, h per frame, frame 1 = the
  init box) and `<seq>_scores.txt` (top-1 score; 1 on frame 1).

  Args:
    on_frame: optional `(record, t, output) -> None` after each frame
      `t >= 1` of each sequence; `output` is that sequence's slice of the
      search step's dict (`proposals (T, P, 4)` in resized-canvas xyxy,
      `proposal_scores`, `rcnn_scores`, ...; T = 1 target).

  Returns:
    The number of sequences tracked.
  """
  todo = [r for r in records if not _done(tracker_dir, r.name)]
  if not todo:
    return 0
  key = json.dumps(cfg.to_dict(), sort_keys=True, default=str)
  if key not in _TRACKERS:
    _TRACKERS[key] = Tracker(cfg, variables)
  tracker = _TRACKERS[key]
  # The jitted steps take the variables as an argument: swapping them
  # reuses the compiled steps (trained and untrained share one compile).
  tracker.variables = jax.device_put(variables)
  bar = None
  if progress:
    bar = tqdm.tqdm(total=sum(len(r.frame_paths) for r in todo),
                    desc=os.path.basename(tracker_dir), unit="frame",
                    dynamic_ncols=True)
  for g in range(0, len(todo), batch_size):
    group = list(todo[g:g + batch_size])
    real = len(group)
    group += [group[-1]] * (batch_size - real)
    n = max(len(r.frame_paths) for r in group)
    boxes = [np.zeros((len(r.frame_paths), 4)) for r in group]
    scores = [np.ones(len(r.frame_paths)) for r in group]
    times = [np.zeros(len(r.frame_paths)) for r in group]
    tracker.init_batch([load_frame(r.frame_paths[0]) for r in group],
                       [r.boxes[0] for r in group])
    for i, r in enumerate(group):
      boxes[i][0] = r.boxes[0]
    for t in range(1, n):
      frames = [load_frame(r.frame_paths[min(t, len(r.frame_paths) - 1)])
                for r in group]
      t0 = time.perf_counter()
      results = tracker.track_batch(frames)
      dt = (time.perf_counter() - t0) / batch_size
      out = (None if on_frame is None else
             {k: np.asarray(v) for k, v in tracker.last_output.items()})
      for i, (r, res) in enumerate(zip(group[:real], results)):
        if t < len(r.frame_paths):
          boxes[i][t], scores[i][t], times[i][t] = res.box, res.score, dt
          if on_frame is not None:
            on_frame(r, t, {k: v[i] for k, v in out.items()})
      if bar is not None:
        bar.update(sum(t < len(r.frame_paths) for r in group[:real]))
    for i, r in enumerate(group[:real]):
      _write(tracker_dir, r.name, boxes[i], scores[i], times[i])
  if bar is not None:
    bar.close()
  return len(todo)


# ---------------------------------------------------------------------------
# 4. Report.


def write_gif(record: Any, results: Mapping[str, np.ndarray], path: str,
              num_frames: int = 60, upscale: int = 2) -> str:
  """An annotated GIF: ground truth (green) and each tracker's box.

  Args:
    record: a SequenceRecord.
    results: tracker name -> (N, 4) x, y, w, h (drawn in the given order,
      colours red, blue, yellow, ...).
    num_frames: frames kept (evenly spaced over the video).
  """
  colours = [(255, 40, 40), (60, 120, 255), (255, 220, 0), (255, 0, 255)]
  colour_names = ["red", "blue", "yellow", "magenta"]
  legend = "  ".join([f"{record.name}", "green=GT"] + [
      f"{c}={name}" for c, name in zip(colour_names, results)])
  n = len(record.frame_paths)
  keep = np.unique(np.linspace(0, n - 1, min(num_frames, n)).round()
                   .astype(int))
  frames = []
  for t in keep:
    im = Image.fromarray(load_frame(record.frame_paths[t]))
    im = im.resize((im.width * upscale, im.height * upscale), Image.NEAREST)
    draw = ImageDraw.Draw(im)

    def rect(b, colour, width=2):
      x, y, w, h = (np.asarray(b, float) * upscale).tolist()
      if w > 0 and h > 0 and np.isfinite([x, y, w, h]).all():
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=colour,
                       width=width)

    if record.visible[t]:
      rect(record.boxes[t], (40, 220, 40), 3)
    for c, (name, boxes) in zip(colours, results.items()):
      rect(boxes[t], c)
    draw.text((4, 4), legend, fill=(255, 255, 255))
    draw.text((4, 16), f"frame {t + 1}/{n}"
              + ("" if record.visible[t] else " (target absent)"),
              fill=(255, 255, 255))
    frames.append(im.convert("P", palette=Image.ADAPTIVE))
  frames[0].save(path, save_all=True, append_images=frames[1:], duration=120,
                 loop=0)
  return path


def _builtin(x: Any) -> Any:
  """json `default`: numpy scalars -> Python numbers."""
  if isinstance(x, np.generic):
    return x.item()
  raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _scores(rep: Mapping[str, Any]) -> dict[str, dict[str, float]]:
  keys = ("success_auc", "precision_20px", "norm_precision_020")
  return {name: {k: float(t["overall"][k]) for k in keys
                 if k in t["overall"]}
          for name, t in rep["trackers"].items()}


def _score_trackers(records: Sequence[Any], results_dir: str,
                    protocol: str | None) -> tuple[dict[str, Any], dict]:
  """`report.build_report` on exactly `records` (report.load_sequences
  keeps only official LaSOT test names, some of which the synthetic videos
  share, e.g. `person-1`)."""
  p = protocols.get_protocol("lasot", protocol)
  rep = {"benchmark": "lasot", "protocol": p.name, "subset": False,
         "num_sequences": len(records), "trackers": {}}
  curves = {}
  for name in TRACKERS:
    overall, per_seq, c = report.evaluate_tracker(
        p, records, os.path.join(results_dir, name))
    rep["trackers"][name] = {"overall": overall, "per_sequence": per_seq}
    curves[name] = c
  return rep, curves


def make_report(records: Sequence[Any], results_dir: str, out_dir: str,
                demo_info: Mapping[str, Any]) -> dict[str, Any]:
  """Scores every tracker (official LaSOT protocol + neuron) and writes
  report.json / report.md / plots into `out_dir`."""
  rep, curves = _score_trackers(records, results_dir, None)
  paths = report.write_report(rep, curves, out_dir)
  neuron, _ = _score_trackers(records, results_dir, "neuron")
  rep["variants"] = {"neuron": _scores(neuron)}
  auc = rep["trackers"][TRACKERS[0]]["overall"]["success_auc"]
  auc_n = neuron["trackers"][TRACKERS[0]]["overall"]["success_auc"]
  rep["demo"] = dict(demo_info, target_success_auc=TARGET_AUC,
                     reached_official=bool(auc >= TARGET_AUC),
                     reached_neuron=bool(auc_n >= TARGET_AUC))
  with open(paths[0], "w", encoding="utf-8") as f:
    json.dump(rep, f, indent=1, default=_builtin)
  lines = [report.markdown_table(rep),
           "\nGlobalTrack paper's evaluator (neuron: absent frames dropped "
           "from the denominator):\n", "| tracker | success_auc | "
           "precision_20px |", "|---|---|---|"]
  for name, s in sorted(rep["variants"]["neuron"].items(),
                        key=lambda kv: -kv[1]["success_auc"]):
    lines.append(f"| {name} | {s['success_auc']:.4f} | "
                 f"{s.get('precision_20px', float('nan')):.4f} |")
  lines += ["", "```", json.dumps(rep["demo"], indent=1, default=_builtin),
            "```", ""]
  with open(paths[1], "w", encoding="utf-8") as f:
    f.write("\n".join(lines))
  return rep


# ---------------------------------------------------------------------------
# The whole job.


@dataclasses.dataclass
class DemoOptions:
  workdir: str
  config: str = DEFAULT_CONFIG
  overrides: Sequence[str] = ()
  data_dir: str = ""  # "" -> <data.cache_dir>/synthetic_demo
  data_args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  batch_size: int = 8
  progress: bool = True


def _timings(workdir: str, stage: str | None = None,
             seconds: float = 0.0) -> dict[str, float]:
  path = os.path.join(workdir, "timings.json")
  t = {}
  if os.path.isfile(path):
    with open(path, encoding="utf-8") as f:
      t = json.load(f)
  if stage is not None:
    t[stage] = round(t.get(stage, 0.0) + seconds, 1)
    with open(path, "w", encoding="utf-8") as f:
      json.dump(t, f, indent=1)
  return t


def run(opts: DemoOptions) -> dict[str, Any]:
  """Runs (or continues) the four stages; returns the report dict."""
  os.makedirs(opts.workdir, exist_ok=True)
  t0 = time.time()
  log("1/4 data: synthetic dataset")
  base = load_config(opts.config, opts.overrides)
  cache = os.path.expanduser(base.data.cache_dir or "~/.cache/gt_jax")
  data_dir = opts.data_dir or os.path.join(cache, "synthetic_demo")
  paths = prepare_data(data_dir, **opts.data_args)
  cfg = demo_config(opts.config, paths, opts.overrides)
  _timings(opts.workdir, "data_s", time.time() - t0)

  log(f"2/4 train: {cfg.variant}, {cfg.total_steps} steps of "
      f"{cfg.global_batch_size} pairs")
  t0 = time.time()
  trained, train_info = train_demo(cfg, opts.workdir, opts.progress)
  _timings(opts.workdir, "train_s", time.time() - t0)

  log("3/4 evaluate: tracking the held-out test videos")
  t0 = time.time()
  records = benchmarks.load_benchmark(
      "lasot", paths["lasot_test"],
      sorted(lasot_names(paths["lasot_test"])))
  results_dir = os.path.join(opts.workdir, "results")
  first_box_results(records, os.path.join(results_dir, TRACKERS[2]))
  track_records(cfg, trained, records,
                os.path.join(results_dir, TRACKERS[0]), opts.batch_size,
                opts.progress)
  track_records(cfg, untrained_variables(cfg), records,
                os.path.join(results_dir, TRACKERS[1]), opts.batch_size,
                opts.progress)
  _timings(opts.workdir, "evaluate_s", time.time() - t0)

  log("4/4 report")
  out_dir = os.path.join(opts.workdir, "report")
  info = dict(config=opts.config, overrides=list(opts.overrides),
              data=dict(DEMO_DATA, **opts.data_args), train=train_info,
              timings_s=_timings(opts.workdir),
              num_test_sequences=len(records),
              num_test_frames=int(sum(len(r.frame_paths) for r in records)))
  rep = make_report(records, results_dir, out_dir, info)
  gif_record = max(records, key=lambda r: np.sum(~r.visible))
  write_gif(gif_record, {
      n: results_io.read_boxes(os.path.join(results_dir, n,
                                            f"{gif_record.name}.txt"))
      for n in (TRACKERS[0], TRACKERS[2])
  }, os.path.join(out_dir, "demo.gif"))
  return rep


def lasot_names(root: str) -> list[str]:
  """Sequence names of a LaSOT-layout folder (`<cat>/<cat>-<k>`)."""
  with open(os.path.join(root, "testing_set.txt"), encoding="utf-8") as f:
    return [l.strip() for l in f if l.strip()]


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  overrides, rest = config_lib.split_config_args(argv)
  parser = argparse.ArgumentParser(
      prog="python -m gt_jax.demo", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True,
                      help="output folder (rerun to resume)")
  parser.add_argument("--config", default=DEFAULT_CONFIG,
                      help="config file:variant (default: the demo variant)")
  parser.add_argument("--data_dir", default="",
                      help="synthetic dataset folder (default: "
                      "<data.cache_dir>/synthetic_demo)")
  parser.add_argument("--batch_size", type=int, default=8,
                      help="test sequences tracked in lock-step")
  parser.add_argument("--no_progress", action="store_true")
  args = parser.parse_args(rest)
  start = time.time()
  try:
    rep = run(DemoOptions(args.workdir, args.config, overrides,
                          args.data_dir, batch_size=args.batch_size,
                          progress=not args.no_progress))
  except KeyboardInterrupt as e:
    log(f"interrupted: {e or 'rerun the same command to resume'}")
    return 130
  out = os.path.join(args.workdir, "report")
  with open(os.path.join(out, "report.md"), encoding="utf-8") as f:
    print(f.read())
  demo = rep["demo"]
  log(f"done in {time.time() - start:.0f} s (this session); report in "
      f"{out}/ (report.md, report.json, *_plot.png, demo.gif); target "
      f"success AUC >= {TARGET_AUC}: official "
      f"{'reached' if demo['reached_official'] else 'NOT reached'}, "
      f"neuron {'reached' if demo['reached_neuron'] else 'NOT reached'}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
