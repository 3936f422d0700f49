"""Tests of the embedded synthetic dataset (gt_jax.data.synthetic).

Label checks re-derive the expected values here with plain numpy from the
rendered pixels (marker mode) or from the files, independently of the
package's own label code.
"""

import filecmp
import importlib
import json
import os
import re
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from gt_jax.data import synthetic
from gt_jax.data.synthetic import assets
from gt_jax.data.synthetic import domains
from gt_jax.data.synthetic import images
from gt_jax.data.synthetic import motion
from gt_jax.data.synthetic import render
from gt_jax.data.synthetic import scenario
from gt_jax.data.synthetic import shapes
from gt_jax.data.synthetic.__main__ import main as cli_main

TINY = dict(seed=3, num_train=2, num_val=1, num_test=2, num_heldout=2,
            num_frames=24, num_test_frames=40, height=64, width=80,
            num_coco_images=4, num_coco_val_images=2)
MAGENTA = np.array(render.MARKER_COLORS["target"], np.uint8)
CYAN = np.array(render.MARKER_COLORS["distractor"], np.uint8)
META_KEYS = ["url", "begin", "end", "anno_fps", "object_class",
             "motion_class", "major_class", "root_class", "motion_adverb",
             "resolution"]


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
  out = tmp_path_factory.mktemp("synthetic") / "data"
  return synthetic.generate(str(out), **TINY)


@pytest.fixture(scope="session")
def marker_videos():
  """Rendered marker-mode test-profile videos: (plan, frames, truths)."""
  videos = []
  for seed in range(4):
    plan = synthetic.plan_video(np.random.default_rng(seed), 40, 64, 80,
                                synthetic.TEST_PROFILE,
                                (synthetic.TEST, synthetic.HELDOUT)[seed % 2])
    rendered = [synthetic.render_frame(plan, t, marker=True)
                for t in range(plan.num_frames)]
    videos.append((plan, [r[0] for r in rendered], [r[1] for r in rendered]))
  return videos


def _read_lines(path):
  with open(path, encoding="utf-8") as f:
    return f.read().splitlines()


def _got_sequences(root):
  names = _read_lines(os.path.join(root, "list.txt"))
  return [(n, os.path.join(root, n)) for n in names]


def _runs(flags):
  """Lengths of the runs of 1s in a 0/1 sequence."""
  runs, n = [], 0
  for f in list(flags) + [0]:
    if f:
      n += 1
    elif n:
      runs.append(n)
      n = 0
  return runs


def _pixel_box(mask):
  ys, xs = np.nonzero(mask)
  return np.array([xs.min(), ys.min(), xs.max(), ys.max()])


def test_got10k_layout(dataset):
  for split, count, prefix in (("got10k_train", 2, "GOT-10k_Train_"),
                               ("got10k_val", 1, "GOT-10k_Val_")):
    seqs = _got_sequences(dataset[split])
    assert [n for n, _ in seqs] == [f"{prefix}{i:06d}"
                                    for i in range(1, count + 1)]
    for _, d in seqs:
      jpgs = sorted(f for f in os.listdir(d) if f.endswith(".jpg"))
      assert jpgs == [f"{i:08d}.jpg" for i in range(1, 25)]
      with Image.open(os.path.join(d, jpgs[0])) as im:
        assert im.size == (80, 64) and im.mode == "RGB"
      rows = _read_lines(os.path.join(d, "groundtruth.txt"))
      assert len(rows) == 24
      for row in rows:  # GOT style: 4 comma-separated values, 4 decimals
        assert re.fullmatch(r"(-?\d+\.\d{4},){3}-?\d+\.\d{4}", row), row
      for label in ("absence", "cover", "cut_by_image"):
        values = _read_lines(os.path.join(d, f"{label}.label"))
        assert len(values) == 24 and all(v.isdigit() for v in values)
      meta = _read_lines(os.path.join(d, "meta_info.ini"))
      assert meta[0] == "[METAINFO]"
      assert [m.split(": ", 1)[0] for m in meta[1:]] == META_KEYS
      assert meta[-1] == "resolution: (80, 64)"


def test_got10k_flags_match_boxes(dataset):
  for split in ("got10k_train", "got10k_val"):
    for _, d in _got_sequences(dataset[split]):
      gt = np.loadtxt(os.path.join(d, "groundtruth.txt"), delimiter=",")
      absence, cover, cut = (
          np.loadtxt(os.path.join(d, f"{k}.label"), dtype=int)
          for k in ("absence", "cover", "cut_by_image"))
      absent = absence == 1
      np.testing.assert_array_equal(gt[absent], -1.0)
      assert np.all(cover[absent] == 0) and np.all(cut[absent] == 0)
      present = gt[~absent]
      assert np.all(present[:, 2:] >= 1)
      # 1-based boxes inside the 80x64 frame.
      assert np.all(present[:, :2] >= 1)
      assert np.all(present[:, 0] + present[:, 2] - 1 <= 80)
      assert np.all(present[:, 1] + present[:, 3] - 1 <= 64)
      assert np.all((cover >= 0) & (cover <= 8))
      # The first frame initialises trackers: whole target, in view.
      assert absence[0] == 0 and cover[0] == 8 and cut[0] == 0


@pytest.mark.parametrize("split", ["lasot_test", "lasot_heldout"])
def test_lasot_layout_and_flags(dataset, split):
  root = dataset[split]
  path = os.path.join(dataset[split], "testing_set.txt")
  with open(path, encoding="utf-8") as f:
    text = f.read()
  assert not text.endswith("\n")  # like the official testing_set.txt
  names = text.split("\n")
  assert len(names) == 2 and len(set(names)) == 2
  for name in names:
    category = name.rsplit("-", 1)[0]
    d = os.path.join(root, category, name)
    frames = sorted(os.listdir(os.path.join(d, "img")))
    assert frames == [f"{i:08d}.jpg" for i in range(1, 41)]
    gt = np.loadtxt(os.path.join(d, "groundtruth.txt"), delimiter=",",
                    dtype=np.int64)
    assert gt.shape == (40, 4)
    flags = {}
    for key in ("full_occlusion", "out_of_view"):
      lines = _read_lines(os.path.join(d, f"{key}.txt"))
      assert len(lines) == 1
      flags[key] = np.array([int(v) for v in lines[0].split(",")])
      assert flags[key].shape == (40,)
    hidden = (flags["full_occlusion"] == 1) | (flags["out_of_view"] == 1)
    np.testing.assert_array_equal(np.all(gt == 0, axis=1), hidden)
    assert np.all(gt[~hidden][:, 2:] >= 1) and np.all(gt[~hidden][:, :2] >= 1)
    assert not hidden[0]
    assert os.path.getsize(os.path.join(d, "nlp.txt")) > 0


@pytest.mark.parametrize("split", ["lasot_test", "lasot_heldout"])
def test_lasot_videos_have_long_absences(dataset, split):
  root = dataset[split]
  min_len = int(synthetic.TEST_PROFILE.absence_frac[0] * 40)
  for name in _read_lines(os.path.join(dataset[split], "testing_set.txt")):
    d = os.path.join(root, name.rsplit("-", 1)[0], name)
    out = [int(v) for v in _read_lines(os.path.join(d, "out_of_view.txt"))[0]
           .split(",")]
    assert max(_runs(out), default=0) >= min_len


def test_marker_pixels_match_boxes(marker_videos):
  checked_full = 0
  for plan, frames, truths in marker_videos:
    for frame, layer_truths in zip(frames, truths):
      tr = layer_truths[plan.target_index]
      target_px = np.all(frame == MAGENTA, axis=-1)
      assert target_px.sum() == tr.visible_area
      if not tr.in_view:
        assert not target_px.any()
        continue
      if tr.visible_area:
        x1, y1, x2, y2 = tr.box
        # Every visible target pixel lies inside the (amodal) box.
        assert not target_px[:, :x1].any() and not target_px[:, x2 + 1:].any()
        assert not target_px[:y1].any() and not target_px[y2 + 1:].any()
      if tr.visible_area == tr.full_area:
        # Unoccluded and uncut: the box is exactly tight on the pixels.
        np.testing.assert_array_equal(_pixel_box(target_px), tr.box)
        checked_full += 1
  assert checked_full > 30


def test_got10k_rows_from_marker_pixels(marker_videos):
  plan, frames, truths = marker_videos[0]
  labels = synthetic.got10k_labels([t[plan.target_index] for t in truths])
  for t, frame in enumerate(frames):
    tr = truths[t][plan.target_index]
    if tr.in_view and tr.visible_area == tr.full_area:
      x1, y1, x2, y2 = _pixel_box(np.all(frame == MAGENTA, axis=-1))
      # 1-based x, y; inclusive width/height.
      np.testing.assert_allclose(labels["groundtruth"][t],
                                 [x1 + 1, y1 + 1, x2 - x1 + 1, y2 - y1 + 1])
      assert labels["cover"][t] == 8 and labels["absence"][t] == 0


def test_full_occlusion_and_absence_labels(marker_videos):
  saw_full, saw_absent = False, False
  for plan, frames, truths in marker_videos:
    target = [t[plan.target_index] for t in truths]
    got = synthetic.got10k_labels(target)
    lasot = synthetic.lasot_labels(target)
    for t, frame in enumerate(frames):
      px = np.all(frame == MAGENTA, axis=-1).sum()
      if target[t].in_view and px == 0:  # hidden behind an occluder
        saw_full = True
        assert got["absence"][t] == 0 and got["cover"][t] == 0
        assert np.all(got["groundtruth"][t][2:] >= 1)
        assert lasot["full_occlusion"][t] == 1
        np.testing.assert_array_equal(lasot["groundtruth"][t], 0)
      if not target[t].in_view:
        saw_absent = True
        assert px == 0 and got["absence"][t] == 1
        np.testing.assert_array_equal(got["groundtruth"][t], -1)
        assert lasot["out_of_view"][t] == 1
  assert saw_full and saw_absent


def test_distractors_share_shape_or_texture_not_both(marker_videos):
  kinds = {"shape": 0, "texture": 0}
  for plan, frames, truths in marker_videos:
    roles = [layer.role for layer in plan.layers]
    dis = [i for i, r in enumerate(roles) if r == "distractor"]
    assert dis and roles.count("target") == 1
    target = plan.target.sprite
    for i in dis:
      sprite = plan.layers[i].sprite
      same_mask = (sprite.alpha.shape == target.alpha.shape and
                   np.array_equal(sprite.alpha, target.alpha))
      same_texture = sprite.source == target.source
      if same_mask:  # the silhouette, under another texture source
        assert sprite.kind == target.kind and not same_texture
        assert np.abs(sprite.rgb - target.rgb).mean() > 10.0
        kinds["shape"] += 1
      else:  # the texture, under another kind of silhouette
        assert same_texture and sprite.kind != target.kind
        kinds["texture"] += 1
    absent = [t for t, tr in enumerate(truths)
              if not tr[plan.target_index].in_view]
    assert absent
    with_distractor = sum(np.all(frames[t] == CYAN, axis=-1).any()
                          for t in absent)
    assert with_distractor >= len(absent) // 2
  assert kinds["shape"] and kinds["texture"], kinds


def test_colour_changes_over_time_and_first_frame_is_unchanged():
  plan = synthetic.plan_video(np.random.default_rng(5), 60, 64, 80,
                              synthetic.TEST_PROFILE, synthetic.TEST)
  gains = plan.target.gains
  assert gains.shape == (60, 3)
  np.testing.assert_allclose(gains[0], 1.0, atol=1e-6)
  assert np.abs(np.log(gains)).max() > 0.05
  # The drawn target follows the gain: its mean colour changes with it.
  frames = [synthetic.render_frame(plan, t)[0] for t in (0, 59)]
  assert not np.array_equal(frames[0], frames[1])


def test_cover_level_hand_values():
  ratios = [0.0, 1e-4, 0.125, 0.126, 0.5, 0.99, 1.0]
  assert [synthetic.cover_level(r) for r in ratios] == [0, 1, 1, 2, 4, 8, 8]


def test_labels_from_hand_made_truths():
  def truth(box, full, inside, visible):
    return synthetic.LayerTruth(np.array(box), full, inside, visible,
                                np.array(box))
  truths = [truth([2, 3, 11, 10], 80, 80, 80),   # whole, 10x8 at (3, 4)
            truth([0, 0, 4, 9], 100, 50, 25),    # half out, half occluded
            truth([5, 5, 9, 9], 25, 25, 0),      # fully occluded
            truth([-1, -1, -1, -1], 40, 0, 0)]   # out of view
  got = synthetic.got10k_labels(truths)
  np.testing.assert_array_equal(
      got["groundtruth"],
      [[3, 4, 10, 8], [1, 1, 5, 10], [6, 6, 5, 5], [-1, -1, -1, -1]])
  np.testing.assert_array_equal(got["absence"], [0, 0, 0, 1])
  np.testing.assert_array_equal(got["cover"], [8, 2, 0, 0])
  np.testing.assert_array_equal(got["cut_by_image"], [0, 1, 0, 0])
  lasot = synthetic.lasot_labels(truths)
  np.testing.assert_array_equal(
      lasot["groundtruth"],
      [[3, 4, 10, 8], [1, 1, 5, 10], [0, 0, 0, 0], [0, 0, 0, 0]])
  np.testing.assert_array_equal(lasot["full_occlusion"], [0, 0, 1, 0])
  np.testing.assert_array_equal(lasot["out_of_view"], [0, 0, 0, 1])


def test_coco_json(dataset):
  expected_missing = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
  for split, count in (("train", 4), ("val", 2)):
    with open(dataset[f"coco_{split}_json"], encoding="utf-8") as f:
      doc = json.load(f)
    assert set(doc) >= {"info", "licenses", "images", "annotations",
                        "categories"}
    cat_ids = [c["id"] for c in doc["categories"]]
    assert len(cat_ids) == 80
    assert set(range(1, 91)) - set(cat_ids) == expected_missing
    assert len(doc["images"]) == count
    sizes = {}
    for img in doc["images"]:
      assert img["file_name"] == f"{img['id']:012d}.jpg"
      with Image.open(os.path.join(dataset[f"coco_{split}_images"],
                                   img["file_name"])) as im:
        assert im.size == (img["width"], img["height"])
      sizes[img["id"]] = (img["width"], img["height"])
    per_image = {}
    ann_ids = [a["id"] for a in doc["annotations"]]
    assert len(set(ann_ids)) == len(ann_ids)
    for a in doc["annotations"]:
      assert a["category_id"] in cat_ids and a["iscrowd"] == 0
      x, y, w, h = a["bbox"]
      img_w, img_h = sizes[a["image_id"]]
      assert x >= 0 and y >= 0 and w >= 1 and h >= 1
      assert x + w <= img_w and y + h <= img_h
      assert 0 < a["area"] <= w * h
      for poly in a["segmentation"]:
        assert len(poly) >= 6 and len(poly) % 2 == 0
      per_image[a["image_id"]] = per_image.get(a["image_id"], 0) + 1
    assert set(per_image) == set(sizes)
    assert min(per_image.values()) >= 2


def test_same_seed_same_bytes_other_seed_differs(dataset, tmp_path):
  again = synthetic.generate(str(tmp_path / "again"), **TINY)
  root_a, root_b = dataset["root"], again["root"]
  n_files = 0
  for dirpath, _, files in os.walk(root_a):
    for name in files:
      rel = os.path.relpath(os.path.join(dirpath, name), root_a)
      assert filecmp.cmp(os.path.join(root_a, rel), os.path.join(root_b, rel),
                         shallow=False), rel
      n_files += 1
  assert n_files > 100
  other = synthetic.generate(str(tmp_path / "other"),
                             **dict(TINY, seed=4, num_val=0, num_test=0,
                                    num_coco_images=0,
                                    num_coco_val_images=0))
  rel = os.path.join("GOT-10k_Train_000001", "00000001.jpg")
  assert not filecmp.cmp(os.path.join(dataset["got10k_train"], rel),
                         os.path.join(other["got10k_train"], rel),
                         shallow=False)


def test_generate_argument_and_folder_errors(dataset, tmp_path):
  with pytest.raises(ValueError, match="num_frames=5"):
    synthetic.generate(str(tmp_path / "a"), num_frames=5)
  with pytest.raises(TypeError, match="height=True"):
    synthetic.generate(str(tmp_path / "a"), height=True)
  (tmp_path / "foreign").mkdir()
  (tmp_path / "foreign" / "notes.txt").write_text("x")
  with pytest.raises(FileExistsError, match="manifest.json"):
    synthetic.generate(str(tmp_path / "foreign"), **TINY)
  # Same arguments: reused as is (no file is rewritten).
  gt_file = os.path.join(dataset["got10k_train"], "GOT-10k_Train_000001",
                         "groundtruth.txt")
  mtime = os.stat(gt_file).st_mtime_ns
  assert synthetic.generate(dataset["root"], **TINY) == dataset
  assert os.stat(gt_file).st_mtime_ns == mtime
  with pytest.raises(FileExistsError, match="overwrite"):
    synthetic.generate(dataset["root"], **dict(TINY, seed=5))


def test_overwrite_replaces_previous_dataset(tmp_path):
  small = dict(TINY, num_val=0, num_test=0, num_coco_images=0,
               num_coco_val_images=0)
  first = synthetic.generate(str(tmp_path / "d"), **small)
  second = synthetic.generate(str(tmp_path / "d"), overwrite=True,
                              **dict(small, num_train=1))
  assert _read_lines(os.path.join(second["got10k_train"], "list.txt")) == [
      "GOT-10k_Train_000001"]
  assert not os.path.exists(os.path.join(first["got10k_train"],
                                         "GOT-10k_Train_000002"))


def test_offline_images_only_and_bad_name():
  for name in images.ALL_IMAGES:
    photo = images.load_image(name)
    assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3
    assert min(photo.shape[:2]) >= 90 and photo.std() > 10, name
  with pytest.raises(synthetic.SyntheticAssetError, match="skimage.data.brain"):
    images.load_image("brain")


def test_cli(tmp_path, capsys):
  args = ["--out", str(tmp_path / "cli"), "--seed", "1", "--num-train", "1",
          "--num-val", "0", "--num-test", "1", "--num-frames", "20",
          "--height", "48", "--width", "64", "--num-coco-images", "1",
          "--num-coco-val-images", "0", "--quiet"]
  assert cli_main(args) == 0
  paths = json.loads(capsys.readouterr().out)
  assert os.path.isfile(os.path.join(paths["got10k_train"],
                                     "GOT-10k_Train_000001", "00000020.jpg"))
  assert cli_main(["--out", str(tmp_path / "bad"), "--width", "8"]) == 2
  assert "width=8" in capsys.readouterr().err


def test_package_does_not_import_jax():
  code = ("import sys, gt_jax.data.synthetic; "
          "sys.exit(int('jax' in sys.modules))")
  assert subprocess.run([sys.executable, "-c", code], check=False,
                        cwd=os.path.dirname(os.path.dirname(__file__))
                        ).returncode == 0


def test_first_frame_shows_whole_target():
  for seed in range(40):
    plan = synthetic.plan_video(np.random.default_rng(seed), 20, 48, 64,
                                synthetic.TEST_PROFILE)
    _, truths = synthetic.render_frame(plan, 0, marker=True)
    tr = truths[plan.target_index]
    assert tr.full_area > 0 and tr.visible_area == tr.full_area, seed


def test_project_readers_accept_output(dataset, tmp_path):
  # The dataset readers (gt_jax.data.sources) parse every split.
  from gt_jax.data.sources import coco  # pylint: disable=g-import-not-at-top
  from gt_jax.data.sources import got10k  # pylint: disable=g-import-not-at-top
  from gt_jax.data.sources import lasot  # pylint: disable=g-import-not-at-top
  cache = str(tmp_path / "cache")
  train = got10k.read_got10k(dataset["got10k"], "train", cache_dir=cache)
  assert [len(s.frame_paths) for s in train] == [24, 24]
  absence = np.loadtxt(os.path.join(dataset["got10k_train"], train[0].name,
                                    "absence.label"), dtype=int)
  assert np.all(~train[0].visible[absence == 1])
  assert len(got10k.read_got10k(dataset["got10k"], "val", cache_dir=cache)) == 1
  for split in ("lasot_test", "lasot_heldout"):
    names = _read_lines(os.path.join(dataset[split], "testing_set.txt"))
    test = lasot.read_lasot(dataset[split], names=names, cache_dir=cache)
    assert [s.name for s in test] == names
    assert all(len(s.frame_paths) == 40 and not s.visible.all()
               for s in test)
  images = coco.read_coco(dataset["coco"], "train", cache_dir=cache)
  assert len(images) == 4 and all(len(r.boxes) >= 2 for r in images)


# ---------------------------------------------------------------------------
# Domains: what training, the in-distribution test and the held-out set use.


def test_held_out_domain_shares_nothing_with_training():
  train, test, held = synthetic.TRAIN, synthetic.TEST, synthetic.HELDOUT
  for field in ("kinds", "textures", "backgrounds", "motions", "cameras"):
    assert not set(getattr(train, field)) & set(getattr(held, field)), field
    # The in-distribution test draws from the training pools...
    assert getattr(test, field) == getattr(train, field), field
  # ...but cuts its crops from another part of each photo.
  assert (train.region, test.region) == ("train", "test")
  lo_train, hi_train = images.REGIONS["train"]
  lo_test, hi_test = images.REGIONS["test"]
  assert hi_train <= lo_test and lo_train == 0 and hi_test == 1
  # Images from outside scikit-image serve the held-out set only.
  for name in images.MPL_IMAGES:
    assert name in held.textures and name not in train.textures
  assert set(domains.HELDOUT_SKIMAGE) <= set(held.textures)
  # Every usable scikit-image photo is used somewhere.
  assert (set(images.SKIMAGE_COLOR + images.SKIMAGE_GRAY)
          <= set(train.textures) | set(held.textures))
  assert not set(shapes.HERSHEY_CHARS) & set(shapes.TTF_CHARS)
  assert not set(train.motions) & set(held.motions)
  assert set(train.motions) | set(held.motions) == set(motion.OBJECT_MODELS)
  for kind in train.kinds + held.kinds:
    assert kind in synthetic.KIND_CLASSES


def test_photo_crops_stay_in_their_region():
  rng = np.random.default_rng(0)
  for name in ("astronaut", "brick", "coffee", "text"):
    width = images.load_image(name).shape[1]
    split = images.region_columns(width, "train")[1]
    for _ in range(20):
      _, (x0, _, cw, _) = images.crop(rng, name, 20, 30, "train")
      assert x0 + cw <= split
      _, (x0, _, cw, _) = images.crop(rng, name, 30, 20, "test")
      assert x0 >= split and x0 + cw <= width


def test_coin_and_face_cutouts_are_split_between_train_and_test():
  coins = shapes.coin_cutouts()
  lo, hi = images.REGIONS["test"]
  n_test = sum(lo <= c[2] < hi for c in coins)
  assert len(coins) >= 12 and 3 <= n_test < len(coins) - 3
  rng = np.random.default_rng(1)
  seen = {"train": set(), "test": set()}
  for region in seen:
    for _ in range(30):
      mask, rgb, _ = shapes.cutout(rng, "coin", region)
      assert mask.shape == rgb.shape[:2]
      seen[region].add(mask.tobytes())
  assert seen["train"] and seen["test"]
  assert not seen["train"] & seen["test"]


@pytest.mark.parametrize("domain", ["train", "heldout"])
def test_every_kind_renders_a_mask_touching_its_box(domain):
  rng = np.random.default_rng(2)
  d = synthetic.DOMAINS[domain]
  for kind in d.kinds:
    for _ in range(3):
      s = assets.make_sprite(rng, d, kind)
      hard = s.alpha >= 0.5
      assert s.kind == kind and hard.mean() > 0.15, kind
      # The silhouette spans its box (pointed tips soften below 0.5).
      ys, xs = np.nonzero(hard)
      assert np.ptp(ys) >= 0.8 * hard.shape[0] - 1, kind
      assert np.ptp(xs) >= 0.8 * hard.shape[1] - 1, kind
      # Survives downscaling to the smallest target size.
      small = render._resized(  # pylint: disable=protected-access
          scenario.Layer(s, "target", np.zeros((1, 4), int),
                                   np.ones(1, bool)), 12, 12, True)[1]
      assert small.sum() >= 12, kind


def test_catalog_keeps_domains_and_instances_apart(dataset):
  with open(dataset["catalog"], encoding="utf-8") as f:
    catalog = json.load(f)
  by_split = {}
  for key, video in catalog.items():
    by_split.setdefault(key.split("/")[0], []).append(video)
  assert set(by_split) == {"got10k_train", "got10k_val", "lasot_test",
                           "lasot_heldout"}
  own = {"coins", "lfw_subset", "present"}  # cut-outs' own pixels
  train_ids = set()
  for split, videos in by_split.items():
    domain = {"lasot_test": synthetic.TEST,
              "lasot_heldout": synthetic.HELDOUT}.get(split, synthetic.TRAIN)
    for v in videos:
      assert v["domain"] == domain.name
      assert v["background"] in domain.backgrounds
      assert v["camera"] in domain.cameras
      objects = [v["target"]] + v["others"]
      assert v["target"]["motion"] in domain.motions
      for o in objects:
        assert o["kind"] in domain.kinds + ("occluder",), (split, o)
        assert o["texture"] in domain.textures + tuple(own), (split, o)
        if split.startswith("got10k"):
          train_ids.add(o["instance"])
  for split in ("lasot_test", "lasot_heldout"):
    for v in by_split[split]:
      for o in [v["target"]] + v["others"]:
        assert o["instance"] not in train_ids


def test_demo_test_sets_have_a_quarter_of_absent_frames():
  """The demo's in-distribution (and held-out) test sets, planned with the
  generator's own streams: >= 25 % of frames without a visible target."""
  # The package exports the function `generate`, shadowing the module.
  gen = importlib.import_module("gt_jax.data.synthetic.generate")
  from gt_jax.demo.run import DEMO_DATA  # pylint: disable=g-import-not-at-top
  n_frames = 2 * DEMO_DATA["num_frames"]
  for split, domain in (("lasot_test", synthetic.TEST),
                        ("lasot_heldout", synthetic.HELDOUT)):
    absent = total = 0
    for i in range(DEMO_DATA[{"lasot_test": "num_test",
                              "lasot_heldout": "num_heldout"}[split]]):
      rng = gen._rng(0, split, i)  # pylint: disable=protected-access
      plan = synthetic.plan_video(rng, n_frames, 128, 160,
                                  synthetic.TEST_PROFILE, domain)
      # Only frames of exits, absences and occluder passes can lack a
      # visible target; render just those (marker mode).
      events = np.zeros(n_frames, bool)
      for s, e in plan.absences:
        events[max(0, s - 6):e] = True
      for s, e, _ in plan.occlusions:
        events[s:e] = True
      for t in np.flatnonzero(events):
        tr = synthetic.render_frame(plan, int(t), marker=True)[1][
            plan.target_index]
        absent += tr.visible_area == 0
      total += n_frames
    assert absent / total >= 0.25, (split, absent / total)


@pytest.mark.parametrize("model", motion.OBJECT_MODELS)
def test_motion_models_keep_first_frames_whole_and_most_in_view(model):
  for seed in range(5):
    track = motion.object_motion(np.random.default_rng(seed), model, 60, 64,
                                 80, np.array([16.0, 12.0]))
    assert track.shape == (60, 4) and np.all(track[:, 2:] >= motion.MIN_SIDE)
    c, wh = track[:, :2], track[:, 2:]
    size = np.array([80, 64])
    first = slice(0, motion.CLEAR_START)
    assert np.all(c[first] - wh[first] / 2 >= 0)
    assert np.all(c[first] + wh[first] / 2 <= size + 1)
    assert np.all(c >= 0.3 * wh - 1e-6) and np.all(c <= size - 0.3 * wh
                                                   + 1e-6)
    assert np.ptp(c, 0).max() > 2 or np.ptp(wh, 0).max() > 2, model
