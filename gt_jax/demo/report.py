"""The demo's report: scores under two protocols, plots, an annotated GIF.

`make_report(records, results_dir, out_dir, info)` scores every tracker's
result folder (official LaSOT protocol: absent frames count as failures;
and the GlobalTrack paper's evaluator, neuron: absent frames dropped) and
writes report.json / report.md / plots; `write_gif` draws boxes on frames.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image
from PIL import ImageDraw

from gt_jax.data.sources.frames import read_rgb
from gt_jax.evaluation import protocols
from gt_jax.evaluation import report

TRACKERS = ("globaltrack_demo", "globaltrack_untrained", "first_box")
TARGET_AUC = 0.5


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
    im = Image.fromarray(read_rgb(record.frame_paths[t]))
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
