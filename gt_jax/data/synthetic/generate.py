"""Writes the embedded synthetic dataset in the real datasets' layouts.

    <out>/got10k/{train,val}/list.txt, GOT-10k_{Train,Val}_%06d/...
    <out>/lasot_test/<category>/<category>-<k>/img/%08d.jpg, ...
    <out>/lasot_test/testing_set.txt
    <out>/lasot_heldout/...      (the held-out generalisation set, same layout)
    <out>/catalog.json           (what every video is made of, per split)
    <out>/coco/annotations/instances_{train,val}2017.json
    <out>/coco/{train,val}2017/%012d.jpg
    <out>/manifest.json          (written last: marks a complete dataset)

Every video and image has its own random stream seeded by (seed, split,
index), so the output is a pure function of the arguments.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time

import numpy as np
from PIL import Image

from gt_jax.data.synthetic import domains
from gt_jax.data.synthetic import layouts
from gt_jax.data.synthetic import render
from gt_jax.data.synthetic import scenario

MANIFEST = "manifest.json"
FORMAT_VERSION = 2
CATALOG = "catalog.json"
_SPLIT_CODES = {"got10k_train": 1, "got10k_val": 2, "lasot_test": 3,
                "coco_train": 4, "coco_val": 5, "coco_ids": 6,
                "lasot_heldout": 7}
_JPEG_QUALITY = 90
# GOT-10k annotates at 10 Hz (meta_info.ini anno_fps).
_FPS = 10


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
  return np.random.default_rng([seed, _SPLIT_CODES[split], index])


def _save_jpeg(path: str, image: np.ndarray) -> None:
  Image.fromarray(image).save(path, quality=_JPEG_QUALITY)


def _clock(seconds: float) -> str:
  s = int(round(seconds))
  return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def render_video_files(plan: scenario.VideoPlan, frame_dir: str
                       ) -> list[render.LayerTruth]:
  """Renders all frames as frame_dir/%08d.jpg; returns the target truths."""
  os.makedirs(frame_dir, exist_ok=True)
  truths = []
  for t in range(plan.num_frames):
    image, layer_truths = render.render_frame(plan, t)
    _save_jpeg(os.path.join(frame_dir, f"{t + 1:08d}.jpg"), image)
    truths.append(layer_truths[plan.target_index])
  return truths


def describe_plan(plan: scenario.VideoPlan) -> dict:
  """What a plan is made of (catalog.json): domain, target, others."""
  def sprite_id(sprite) -> str:
    # An instance is its exact pixels: silhouette and texture.
    h = hashlib.sha1(np.round(sprite.alpha * 255).astype(np.uint8).tobytes())
    h.update(np.round(sprite.rgb).astype(np.uint8).tobytes())
    return h.hexdigest()[:16]
  target = plan.layers[plan.target_index] if plan.target_index >= 0 else None
  out = dict(domain=plan.domain, background=plan.background_name,
             camera=plan.camera_motion)
  if target is not None:
    out["target"] = dict(kind=target.sprite.kind,
                         texture=target.sprite.source, motion=target.motion,
                         instance=sprite_id(target.sprite))
  out["others"] = [dict(role=l.role, kind=l.sprite.kind,
                        texture=l.sprite.source, motion=l.motion,
                        instance=sprite_id(l.sprite))
                   for i, l in enumerate(plan.layers)
                   if i != plan.target_index]
  return out


def _write_got10k_split(root: str, split: str, count: int, seed: int,
                        num_frames: int, height: int, width: int,
                        catalog: dict) -> None:
  prefix = {"got10k_train": "GOT-10k_Train", "got10k_val": "GOT-10k_Val"}
  names = [f"{prefix[split]}_{i + 1:06d}" for i in range(count)]
  os.makedirs(root, exist_ok=True)
  for i, name in enumerate(names):
    plan = scenario.plan_video(_rng(seed, split, i), num_frames, height,
                               width, scenario.TRAIN_PROFILE, domains.TRAIN)
    seq_dir = os.path.join(root, name)
    truths = render_video_files(plan, seq_dir)
    kind = plan.target.sprite.kind
    meta = {
        "url": f"synthetic://gt_jax/seed{seed}/{name}",
        "begin": _clock(0),
        "end": _clock(num_frames / _FPS),
        "anno_fps": f"{_FPS}Hz",
        "object_class": domains.KIND_CLASSES[kind][0],
        "motion_class": plan.target.motion,
        "major_class": f"{kind} cut-out",
        "root_class": "object",
        "motion_adverb": "abruptly" if plan.absences else "freely",
        "resolution": f"({width}, {height})",
    }
    layouts.write_got10k_sequence(seq_dir, layouts.got10k_labels(truths),
                                  meta)
    catalog[f"{split}/{name}"] = describe_plan(plan)
  layouts.write_list(os.path.join(root, "list.txt"), names,
                     final_newline=True)


def _write_lasot_test(root: str, split: str, count: int, seed: int,
                      num_frames: int, height: int, width: int,
                      catalog: dict) -> None:
  domain = domains.TEST if split == "lasot_test" else domains.HELDOUT
  os.makedirs(root, exist_ok=True)
  names, per_category = [], {}
  for i in range(count):
    plan = scenario.plan_video(_rng(seed, split, i), num_frames,
                               height, width, scenario.TEST_PROFILE, domain)
    category = domains.KIND_CLASSES[plan.target.sprite.kind][0]
    per_category[category] = per_category.get(category, 0) + 1
    name = f"{category}-{per_category[category]}"
    seq_dir = os.path.join(root, category, name)
    truths = render_video_files(plan, os.path.join(seq_dir, "img"))
    layouts.write_lasot_sequence(
        seq_dir, layouts.lasot_labels(truths),
        f"the {plan.target.sprite.kind} among look-alikes over "
        f"{plan.background_name.replace('_', ' ')}")
    names.append(name)
    catalog[f"{split}/{name}"] = describe_plan(plan)
  layouts.write_list(os.path.join(root, "testing_set.txt"), names,
                     final_newline=False)


def _write_coco_split(root: str, split: str, count: int, seed: int,
                      height: int, width: int) -> None:
  image_dir = os.path.join(root, f"{split}2017")
  os.makedirs(image_dir, exist_ok=True)
  os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
  cat_ids = {c["name"]: c["id"] for c in layouts.coco_categories()}
  # Sparse, increasing image ids, like COCO's (datasets.md §1.1).
  id_rng = _rng(seed, "coco_ids", 0 if split == "train" else 1)
  image_id = 0 if split == "train" else 500000
  images, annotations = [], []
  for i in range(count):
    rng = _rng(seed, f"coco_{split}", i)
    image_id += int(id_rng.integers(1, 40))
    # Sizes vary around the video size; a quarter are portrait.
    w = int(round(width * rng.uniform(0.8, 1.25) / 8) * 8)
    h = int(round(height * rng.uniform(0.8, 1.25) / 8) * 8)
    if rng.random() < 0.25:
      w, h = h, w
    for _ in range(20):  # redraw until >= 2 instances stay visible
      plan = scenario.plan_still(rng, h, w)
      image, truths = render.render_frame(plan, 0)
      kept = [j for j, tr in enumerate(truths)
              if tr.visible_area >= 0.3 * max(tr.full_area, 1)]
      if len(kept) >= 2:
        break
    file_name = f"{image_id:012d}.jpg"
    _save_jpeg(os.path.join(image_dir, file_name), image)
    images.append(dict(id=image_id, file_name=file_name, width=w, height=h,
                       license=1, coco_url="", flickr_url="",
                       date_captured="2017-01-01 00:00:00"))
    for j in kept:
      name = domains.KIND_CLASSES[plan.layers[j].sprite.kind][1]
      ann = layouts.coco_annotation(render.render_visible_mask(plan, 0, j),
                                    len(annotations) + 1,
                                    image_id, cat_ids[name])
      if ann is not None:
        annotations.append(ann)
  layouts.write_coco_json(
      os.path.join(root, "annotations", f"instances_{split}2017.json"),
      images, annotations, f"gt_jax synthetic COCO-style {split} (seed "
      f"{seed})")


def dataset_paths(out_dir: str) -> dict[str, str]:
  """The paths of a generated dataset under `out_dir` (see module doc)."""
  root = os.path.abspath(out_dir)
  coco = os.path.join(root, "coco")
  return dict(
      root=root,
      got10k=os.path.join(root, "got10k"),
      got10k_train=os.path.join(root, "got10k", "train"),
      got10k_val=os.path.join(root, "got10k", "val"),
      lasot_test=os.path.join(root, "lasot_test"),
      lasot_testing_set=os.path.join(root, "lasot_test", "testing_set.txt"),
      lasot_heldout=os.path.join(root, "lasot_heldout"),
      lasot_heldout_testing_set=os.path.join(root, "lasot_heldout",
                                             "testing_set.txt"),
      coco=coco,
      coco_train_json=os.path.join(coco, "annotations",
                                   "instances_train2017.json"),
      coco_train_images=os.path.join(coco, "train2017"),
      coco_val_json=os.path.join(coco, "annotations",
                                 "instances_val2017.json"),
      coco_val_images=os.path.join(coco, "val2017"),
      catalog=os.path.join(root, CATALOG),
      manifest=os.path.join(root, MANIFEST),
  )


def _check_int(name: str, value: object, lo: int, hi: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise TypeError(f"generate: {name}={value!r} must be an int")
  if not lo <= value <= hi:
    raise ValueError(f"generate: {name}={value!r} must be in [{lo}, {hi}]")
  return int(value)


def generate(out_dir: str, *, seed: int = 0, num_train: int = 24,
             num_val: int = 6, num_test: int = 8,
             num_heldout: int | None = None, num_frames: int = 60,
             num_test_frames: int | None = None, height: int = 128,
             width: int = 160, num_coco_images: int = 40,
             num_coco_val_images: int = 8, overwrite: bool = False,
             verbose: bool = False) -> dict[str, str]:
  """Generates the synthetic dataset (or reuses an identical one).

  Args:
    out_dir: the output folder; created if missing.
    seed: the master seed.
    num_train, num_val: GOT-10k-layout train / val videos.
    num_test: LaSOT-layout in-distribution test videos (long absences).
    num_heldout: LaSOT-layout held-out videos (None: num_test): object
      kinds, textures and motions no training video uses.
    num_frames: frames per train / val video.
    num_test_frames: frames per test / held-out video (None:
      2 * num_frames).
    height, width: video frame size; COCO-style images vary around it.
    num_coco_images, num_coco_val_images: COCO-style train / val images.
    overwrite: replace a previous synthetic dataset made with other args.
    verbose: print progress.

  Returns:
    dict of paths (see dataset_paths).

  Raises:
    ValueError / TypeError: an argument is out of range (named).
    FileExistsError: out_dir holds other files, or a synthetic dataset with
      different arguments and overwrite is False.
  """
  if num_test_frames is None:
    num_test_frames = 2 * num_frames
  if num_heldout is None:
    num_heldout = num_test
  params = dict(
      seed=_check_int("seed", seed, 0, 2**63 - 1),
      num_train=_check_int("num_train", num_train, 0, 100000),
      num_val=_check_int("num_val", num_val, 0, 100000),
      num_test=_check_int("num_test", num_test, 0, 100000),
      num_heldout=_check_int("num_heldout", num_heldout, 0, 100000),
      # Events need room: 3 clear frames, exits, absences, occluder passes.
      num_frames=_check_int("num_frames", num_frames, 20, 100000),
      num_test_frames=_check_int("num_test_frames", num_test_frames, 20,
                                 100000),
      height=_check_int("height", height, 48, 4096),
      width=_check_int("width", width, 48, 4096),
      num_coco_images=_check_int("num_coco_images", num_coco_images, 0,
                                 1000000),
      num_coco_val_images=_check_int("num_coco_val_images",
                                     num_coco_val_images, 0, 1000000),
      format_version=FORMAT_VERSION)
  paths = dataset_paths(out_dir)
  root = paths["root"]
  if os.path.isdir(root) and os.listdir(root):
    if not os.path.isfile(paths["manifest"]):
      raise FileExistsError(
          f"{root}: not empty and has no {MANIFEST}; refusing to write the "
          "synthetic dataset over other files")
    with open(paths["manifest"], encoding="utf-8") as f:
      previous = json.load(f).get("params")
    if previous == params:
      return paths
    if not overwrite:
      raise FileExistsError(
          f"{paths['manifest']}: made with {previous}, not {params}; pass "
          "overwrite=True (--overwrite) to regenerate")
    os.remove(paths["manifest"])
    for key in ("got10k", "lasot_test", "lasot_heldout", "coco"):
      shutil.rmtree(paths[key], ignore_errors=True)

  start = time.time()
  catalog: dict = {}
  steps = (
      ("got10k/train", lambda: _write_got10k_split(
          paths["got10k_train"], "got10k_train", num_train, seed, num_frames,
          height, width, catalog)),
      ("got10k/val", lambda: _write_got10k_split(
          paths["got10k_val"], "got10k_val", num_val, seed, num_frames,
          height, width, catalog)),
      ("lasot_test", lambda: _write_lasot_test(
          paths["lasot_test"], "lasot_test", num_test, seed, num_test_frames,
          height, width, catalog)),
      ("lasot_heldout", lambda: _write_lasot_test(
          paths["lasot_heldout"], "lasot_heldout", num_heldout, seed,
          num_test_frames, height, width, catalog)),
      ("coco/train2017", lambda: _write_coco_split(
          paths["coco"], "train", num_coco_images, seed, height, width)),
      ("coco/val2017", lambda: _write_coco_split(
          paths["coco"], "val", num_coco_val_images, seed, height, width)),
  )
  for label, step in steps:
    step()
    if verbose:
      print(f"[synthetic] {label} done ({time.time() - start:.1f} s)")
  with open(paths["catalog"], "w", encoding="utf-8") as f:
    json.dump(catalog, f, indent=1, sort_keys=True)
  with open(paths["manifest"], "w", encoding="utf-8") as f:
    # Relative paths: the folder can move, and equal args give equal bytes.
    relative = {k: os.path.relpath(v, root) for k, v in paths.items()}
    json.dump(dict(generator="gt_jax.data.synthetic", params=params,
                   paths=relative), f, indent=1, sort_keys=True)
  return paths
