"""Draws docs/synthetic.png: a contact sheet of the synthetic dataset.

    python bench/make_contact_sheet.py [--out docs/synthetic.png] [--seed 0]

Each row is one long-term (LaSOT-style) video at the default 160x128 size
(the first rows from the in-distribution test domain, the next ones from the
held-out domain): the first frame, then frames picked to show a look-alike
distractor next to the target, a partial and a full occlusion, the target
leaving the view and an absent frame. The last row shows COCO-style stills
(training domain). Boxes: green = target
(ground truth), orange = look-alike distractors, white = still instances.
"""

from __future__ import annotations

import argparse
import os
import sys

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gt_jax.data import synthetic  # pylint: disable=g-import-not-at-top

_GREEN = (0, 230, 0)
_ORANGE = (255, 140, 0)
_WHITE = (255, 255, 255)
_H, _W = 128, 160
_MAX_BYTES = 500_000


def _draw_box(img: np.ndarray, box: np.ndarray, color) -> None:
  if box[0] >= 0:
    x1, y1, x2, y2 = (int(v) for v in box)
    cv2.rectangle(img, (x1, y1), (x2, y2), color, 1)


def _caption(img: np.ndarray, text: str) -> np.ndarray:
  strip = np.zeros((14, img.shape[1], 3), np.uint8)
  cv2.putText(strip, text, (2, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.33, _WHITE, 1,
              cv2.LINE_AA)
  return np.concatenate([img, strip], axis=0)


def _pick_frames(plan, truths) -> list[tuple[int, str]]:
  """(frame, caption) for the six situations of one video, in time order."""
  target = [t[plan.target_index] for t in truths]
  dis = [i for i, layer in enumerate(plan.layers) if layer.role == "distractor"]

  def centre(box):
    return np.array([box[0] + box[2], box[1] + box[3]]) / 2

  def distractor_gap(t):
    if not target[t].in_view or target[t].visible_ratio < 0.9:
      return np.inf
    gaps = [np.linalg.norm(centre(truths[t][i].box) - centre(target[t].box))
            for i in dis if truths[t][i].in_view]
    return min(gaps, default=np.inf)

  n = len(target)
  picks = {0: "t=1 init (query)"}
  choices = (
      ("look-alike near", lambda t: distractor_gap(t)),
      ("partial occlusion", lambda t: abs(target[t].visible_ratio - 0.5)
       if target[t].in_view and target[t].visible_area < target[t].full_area
       and not target[t].cut_by_image else np.inf),
      ("full occlusion", lambda t: 0 if target[t].in_view
       and target[t].visible_area == 0 else np.inf),
      ("leaving view", lambda t: abs(target[t].visible_ratio - 0.4)
       if target[t].cut_by_image else np.inf),
      ("ABSENT", lambda t: 0 if not target[t].in_view else np.inf),
  )
  for label, cost in choices:
    costs = [cost(t) if t not in picks else np.inf for t in range(1, n)]
    t = int(np.argmin(costs)) + 1
    if np.isfinite(costs[t - 1]):
      picks[t] = f"t={t + 1} {label}"
  return sorted(picks.items())


def _video_row(seed: int, num_frames: int,
               domain: synthetic.Domain) -> np.ndarray | None:
  plan = synthetic.plan_video(np.random.default_rng(seed), num_frames, _H, _W,
                              synthetic.TEST_PROFILE, domain)
  if not any(full for _, _, full in plan.occlusions) or not plan.absences:
    return None
  truths = [synthetic.render_frame(plan, t)[1] for t in range(num_frames)]
  picks = _pick_frames(plan, truths)
  if len(picks) < 6:
    return None
  tiles = []
  picks[0] = (0, f"{domain.name}: {plan.target.sprite.kind}, "
              f"{plan.target.motion}")
  for t, text in picks[:6]:
    img, tr = synthetic.render_frame(plan, t)
    img = img.copy()
    for i, layer in enumerate(plan.layers):
      if layer.role == "distractor":
        _draw_box(img, tr[i].box, _ORANGE)
    _draw_box(img, tr[plan.target_index].box, _GREEN)
    tiles.append(_caption(img, text))
  return np.concatenate(tiles, axis=1)


def _still_row(seed: int) -> np.ndarray:
  tiles = []
  for i in range(6):
    plan = synthetic.plan_still(np.random.default_rng([seed, i]), _H, _W)
    img, truths = synthetic.render_frame(plan, 0)
    img = img.copy()
    for tr in truths:
      if tr.visible_area >= 0.3 * max(tr.full_area, 1):
        _draw_box(img, tr.visible_box, _WHITE)
    tiles.append(_caption(img, f"COCO-style still {i + 1}"))
  return np.concatenate(tiles, axis=1)


def make_contact_sheet(out: str, seed: int = 0, rows: int = 2) -> int:
  """Writes the sheet to `out` (PNG); returns its size in bytes."""
  video_rows = []
  for domain in (synthetic.TEST, synthetic.HELDOUT):
    s, n = seed, 0
    while n < rows:
      row = _video_row(s, 120, domain)
      if row is not None:
        video_rows.append(row)
        n += 1
      s += 1
  sheet = np.concatenate(video_rows + [_still_row(seed)], axis=0)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  image = Image.fromarray(sheet)
  image.save(out, optimize=True)
  if os.path.getsize(out) > _MAX_BYTES:  # keep the repository light
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                   dither=Image.Dither.NONE).save(out, optimize=True)
  return os.path.getsize(out)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="docs/synthetic.png")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  size = make_contact_sheet(args.out, args.seed)
  print(f"wrote {args.out} ({size / 1000:.0f} kB)")


if __name__ == "__main__":
  main()
