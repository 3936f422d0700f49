"""PyTorch peer: torchvision Faster R-CNN R50-FPN frame and train step times.

Standalone (imports neither jax nor gt_jax), so it can run from a separate
virtualenv that holds torch:

  python -m venv peer && peer/bin/pip install torch==2.14.1 torchvision==0.29.1
  peer/bin/python bench/torch_peer.py --height 800 --width 1333 --json out.json

`bench/perf_table.py` and `bench/train_speed.py` call it with
`--torch_python peer/bin/python` (or import it directly when torch is
importable in their own interpreter) and print our ratio to each row.

Rows (random-init weights, no download):
  eval   one frame through `fasterrcnn_resnet50_fpn` in eval mode
         (min_size/max_size set so the frame is not resized);
  train  one SGD step on one image with M boxes, stem + layer1 frozen as
         GlobalTrack's `frozen_stages = 1` (trainable_backbone_layers=3),
         BatchNorm frozen (torchvision's FrozenBatchNorm2d, like
         `norm_eval`).
Times are medians of `--runs` after one warm-up, in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def _median(fn, runs: int) -> float:
  fn()
  times = []
  for _ in range(runs):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def peer_times(height: int, width: int, instances: list[int],
               runs: int) -> dict:
  """{"eval_s": s, "train_s": {M: s}, "torch": version, "threads": n}."""
  import torch  # pylint: disable=g-import-not-at-top
  import torchvision  # pylint: disable=g-import-not-at-top
  from torchvision.models import resnet50  # pylint: disable=g-import-not-at-top
  from torchvision.models.detection import FasterRCNN  # pylint: disable=g-import-not-at-top
  from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor  # pylint: disable=g-import-not-at-top
  from torchvision.ops.misc import FrozenBatchNorm2d  # pylint: disable=g-import-not-at-top

  torch.manual_seed(0)
  side = dict(min_size=min(height, width), max_size=max(height, width))
  # What fasterrcnn_resnet50_fpn builds for pretrained weights (frozen BN,
  # stem + layer1 frozen), without downloading any: with weights=None it
  # would train every layer and use batch-statistics BatchNorm.
  backbone = _resnet_fpn_extractor(
      resnet50(weights=None, norm_layer=FrozenBatchNorm2d), 3)
  model = FasterRCNN(backbone, num_classes=91, **side)
  image = torch.rand(3, height, width)
  out = {"torch": torch.__version__, "torchvision": torchvision.__version__,
         "threads": torch.get_num_threads(), "height": height,
         "width": width}
  from torch.utils.flop_counter import FlopCounterMode  # pylint: disable=g-import-not-at-top

  def gflop(fn) -> float:
    """Matmul + convolution GFLOP of one call (torch's flop counter: the
    ops XLA's cost analysis also counts, elementwise work aside)."""
    with FlopCounterMode(display=False) as counter:
      fn()
    return counter.get_total_flops() / 1e9

  model.eval()
  with torch.no_grad():
    out["eval_s"] = _median(lambda: model([image]), runs)
    out["eval_gflop"] = gflop(lambda: model([image]))
  model.train()
  params = [p for p in model.parameters() if p.requires_grad]
  opt = torch.optim.SGD(params, lr=1e-4, momentum=0.9, weight_decay=1e-4)
  out["train_s"] = {}
  for m in instances:
    g = torch.Generator().manual_seed(m)
    xy = torch.rand(m, 2, generator=g) * torch.tensor([width, height]) * 0.5
    wh = (torch.rand(m, 2, generator=g) * 0.3 + 0.1) * torch.tensor(
        [width, height])
    target = {"boxes": torch.cat([xy, xy + wh], 1),
              "labels": torch.ones(m, dtype=torch.int64)}

    def step():
      opt.zero_grad()
      loss = sum(model([image], [target]).values())
      loss.backward()
      opt.step()

    out["train_s"][str(m)] = _median(step, runs)
    out.setdefault("train_gflop", {})[str(m)] = gflop(step)
  return out


def measure(height: int, width: int, instances: list[int], runs: int,
            python: str = "") -> dict | None:
  """Peer times in this interpreter (torch importable) or in `python`.

  Returns None (after saying how to get torch) when neither is available.
  """
  if python:
    with tempfile.TemporaryDirectory() as tmp:
      out = os.path.join(tmp, "peer.json")
      cmd = [python, os.path.abspath(__file__), "--height", str(height),
             "--width", str(width), "--instances",
             ",".join(str(m) for m in instances), "--runs", str(runs),
             "--json", out]
      subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
      with open(out, encoding="utf-8") as f:
        return json.load(f)
  try:
    import torchvision  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    print("PyTorch peer skipped: torch/torchvision not importable here. "
          "For the comparison: python -m venv peer && peer/bin/pip install "
          "torch==2.14.1 torchvision==0.29.1 (about 5.5 GB), then pass "
          "--torch_python peer/bin/python.", flush=True)
    return None
  return peer_times(height, width, instances, runs)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--height", type=int, default=800)
  p.add_argument("--width", type=int, default=1333)
  p.add_argument("--instances", default="1,8")
  p.add_argument("--runs", type=int, default=3)
  p.add_argument("--json", default="")
  a = p.parse_args(argv)
  res = peer_times(a.height, a.width,
                   [int(x) for x in a.instances.split(",") if x], a.runs)
  text = json.dumps(res)
  if a.json:
    with open(a.json, "w", encoding="utf-8") as f:
      f.write(text)
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
