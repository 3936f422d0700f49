"""Tests of the training-side dataset readers on tiny real-layout fixtures.

Expected values are hand-computed from the fixture recipes of datasets.md;
every malformed variant must raise DatasetLayoutError naming the file.
"""

import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

import dataset_fixtures as F
from gt_jax.data.errors import DatasetLayoutError
from gt_jax.data.records import ImageRecord, SequenceRecord, box_validity
from gt_jax.data.sources import coco, coco_tfds, got10k, lasot, manifest
from gt_jax.data.sources import textfile


def _raises(fn, path_end, line=None):
  """Asserts fn() raises DatasetLayoutError for `path_end` (and `line`)."""
  with pytest.raises(DatasetLayoutError) as info:
    fn()
  err = info.value
  assert os.path.normpath(err.path).endswith(os.path.normpath(path_end)), err
  assert err.path in str(err)
  if line is not None:
    assert err.line == line and f"line {line}" in str(err), err
  return err


# --------------------------------------------------------------- textfile
@pytest.mark.parametrize("text, expected", [
    ("1,2,3,4\n5,6,7,8\n", [[1, 2, 3, 4], [5, 6, 7, 8]]),
    ("1\t2\t3\t4\r\n5 6  7\t8\r\n\r\n\n", [[1, 2, 3, 4], [5, 6, 7, 8]]),
    ("1, 2 ,3,4", [[1, 2, 3, 4]]),                      # no final newline
    ("-1,-1,-1,-1\n2.5,1e1,.5,3.\n", [[-1, -1, -1, -1], [2.5, 10, .5, 3]]),
])
def test_read_boxes_delimiters_and_endings(tmp_path, text, expected):
  path = F.write_text(str(tmp_path / "gt.txt"), text)
  out = textfile.read_boxes(path)
  assert out.dtype == np.float64
  np.testing.assert_array_equal(out, np.asarray(expected, np.float64))


def test_read_boxes_nan_one_row_and_empty(tmp_path):
  nan = textfile.read_boxes(F.write_text(str(tmp_path / "a.txt"),
                                         "NaN,nan,1,2\n"))
  assert nan.shape == (1, 4) and np.isnan(nan[0, :2]).all()
  assert not box_validity(nan)[0]
  one = textfile.read_boxes(F.write_text(str(tmp_path / "b.txt"), "4,4,10,8"))
  assert one.shape == (1, 4)
  empty = textfile.read_boxes(F.write_text(str(tmp_path / "c.txt"), "\n\n"))
  assert empty.shape == (0, 4)


def test_read_boxes_matches_written_values_random_delimiters(tmp_path):
  # Independent reference: the array we format ourselves.
  rng = np.random.default_rng(0)
  values = np.round(rng.uniform(-50, 500, (40, 4)), 3)
  seps = [",", "\t", "  ", " , ", ", "]
  lines = [rng.choice(seps).join(f"{v:.3f}" for v in row) for row in values]
  text = "\r\n".join(lines) + "\r\n\r\n"
  out = textfile.read_boxes(F.write_text(str(tmp_path / "g.txt"), text))
  np.testing.assert_allclose(out, values, rtol=0, atol=1e-12)


@pytest.mark.parametrize("text, line", [
    ("1,2,3\n", 1),
    ("1,2,3,4\n1;2;3;4\n", 2),
    ("1,2,3,4\n2,3,ten,8\n", 2),
    ("1,2,3,4\n\n5,6,7,8\n", 2),        # blank line inside the data
    ("1,,3,4\n", 1),
    ("inf,1,2,3\n", 1),
    ("1,2,3,4\n1,2,3,4,5\n", 2),
])
def test_read_boxes_rejects_bad_rows(tmp_path, text, line):
  path = F.write_text(str(tmp_path / "gt.txt"), text)
  _raises(lambda: textfile.read_boxes(path), "gt.txt", line)


def test_read_flags(tmp_path):
  one_line = F.write_text(str(tmp_path / "occ.txt"), "0,1,0,1")
  np.testing.assert_array_equal(
      textfile.read_flags(one_line, single_line=True), [0, 1, 0, 1])
  per_line = F.write_text(str(tmp_path / "cover.label"), "8\r\n0\r\n3\r\n")
  np.testing.assert_array_equal(
      textfile.read_flags(per_line, tuple(range(9))), [8, 0, 3])
  bad = F.write_text(str(tmp_path / "absence.label"), "0\n2\n")
  _raises(lambda: textfile.read_flags(bad), "absence.label", 2)
  half = F.write_text(str(tmp_path / "h.label"), "0\n0.5\n")
  _raises(lambda: textfile.read_flags(half), "h.label", 2)


def test_missing_file_and_error_pickles(tmp_path):
  err = _raises(lambda: textfile.read_boxes(str(tmp_path / "nope.txt")),
                "nope.txt")
  again = pickle.loads(pickle.dumps(err))
  assert (again.path, again.reason, again.line) == (err.path, err.reason,
                                                    err.line)
  assert str(DatasetLayoutError("a/b.txt", "bad", 3)) == "a/b.txt, line 3: bad"


def test_data_readers_do_not_import_jax():
  code = ("import sys; import gt_jax.data.sources.coco, "
          "gt_jax.data.sources.coco_tfds, gt_jax.data.sources.got10k, "
          "gt_jax.data.sources.lasot; assert 'jax' not in sys.modules")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def test_records_validate_shapes():
  with pytest.raises(ValueError, match="boxes"):
    SequenceRecord("s", ["a", "b"], np.zeros((3, 4)), np.ones(3, bool),
                   np.ones(3, bool))
  r = SequenceRecord("s", ["a", "b"], np.zeros((1, 4)), [False], [False],
                     {"first_frame_only": True})
  assert len(r) == 2 and r.first_frame_only


# ----------------------------------------------------------------- GOT-10k
@pytest.fixture
def got_root(tmp_path):
  return F.make_got10k(str(tmp_path / "GOT-10k"))


def test_got10k_train(got_root):
  seqs = got10k.read_got10k(got_root, "train")
  assert [s.name for s in seqs] == ["GOT-10k_Train_000001",
                                    "GOT-10k_Train_000002"]
  s = seqs[0]
  assert [os.path.basename(p) for p in s.frame_paths] == [
      "00000001.jpg", "00000002.jpg", "00000003.jpg"]
  np.testing.assert_array_equal(
      s.boxes, [[2, 3, 10, 8], [3, 3, 10, 8], [-1, -1, -1, -1]])
  np.testing.assert_array_equal(s.valid, [True, True, False])
  np.testing.assert_array_equal(s.visible, [True, True, False])
  np.testing.assert_array_equal(s.meta["cover"], [8, 7, 0])
  np.testing.assert_allclose(s.meta["visible_ratio"], [1.0, 7 / 8, 0.0])
  assert s.meta["resolution"] == (32, 24)
  assert s.meta["meta_info"]["object_class"] == "dog"
  assert s.meta["meta_info"]["anno_fps"] == "10Hz"
  assert len(seqs[1]) == 2


def test_got10k_val_and_first_frame_only_test(got_root):
  (val,) = got10k.read_got10k(got_root, "val")
  assert val.name == "GOT-10k_Val_000001" and len(val) == 3
  (test,) = got10k.read_got10k(got_root, "test")
  assert test.boxes.shape == (1, 4) and len(test) == 4
  assert test.first_frame_only
  np.testing.assert_array_equal(test.boxes, [[2, 3, 10, 8]])


def _got_seq(root, split="train", k=1):
  name = {"train": "GOT-10k_Train_%06d", "test": "GOT-10k_Test_%06d"}[split]
  return os.path.join(root, split, name % k)


@pytest.mark.parametrize("variant", [
    "no_gt", "rows_lt_frames", "test_two_rows", "three_fields",
    "bad_token", "missing_listed", "short_absence", "missing_frame"])
def test_got10k_malformed(got_root, variant):
  seq = _got_seq(got_root)
  split, line = "train", None
  if variant == "no_gt":
    os.remove(os.path.join(seq, "groundtruth.txt"))
    end = os.path.join(seq, "groundtruth.txt")
  elif variant == "rows_lt_frames":
    F.write_text(os.path.join(seq, "groundtruth.txt"), "2,3,10,8\n2,3,10,8\n")
    end = os.path.join(seq, "groundtruth.txt")
  elif variant == "test_two_rows":
    split, seq = "test", _got_seq(got_root, "test")
    F.write_text(os.path.join(seq, "groundtruth.txt"), "2,3,10,8\n2,3,10,8\n")
    end = os.path.join(seq, "groundtruth.txt")
  elif variant in ("three_fields", "bad_token"):
    row = "2,3,10" if variant == "three_fields" else "2,3,ten,8"
    F.write_text(os.path.join(seq, "groundtruth.txt"),
                 f"2,3,10,8\n{row}\n-1,-1,-1,-1\n")
    end, line = os.path.join(seq, "groundtruth.txt"), 2
  elif variant == "missing_listed":
    with open(os.path.join(got_root, "train", "list.txt"), "a") as f:
      f.write("GOT-10k_Train_000003\n")
    end = _got_seq(got_root, k=3)
  elif variant == "short_absence":
    F.write_text(os.path.join(seq, "absence.label"), "0\n0\n")
    end = os.path.join(seq, "absence.label")
  else:
    os.remove(os.path.join(seq, "00000002.jpg"))
    end = seq
  _raises(lambda: got10k.read_got10k(got_root, split), end, line)


# -------------------------------------------------------------------- LaSOT
def test_lasot_split_tables():
  test, train = lasot.split_names("test"), lasot.split_names("train")
  assert len(test) == 280 and len(set(test)) == 280
  assert len(train) == 1120 and not set(test) & set(train)
  assert test[:5] == ["airplane-1", "airplane-9", "airplane-13",
                      "airplane-15", "basketball-1"]
  everything = set(lasot.split_names("all"))
  cats = {n.rpartition("-")[0] for n in everything}
  assert len(cats) == 70 and len(everything) == 1400
  assert {"rubicCube", "gametarget", "licenseplate", "electricfan"} <= cats
  # 4 test sequences per category.
  per_cat = {c: sum(n.rpartition("-")[0] == c for n in test) for c in cats}
  assert set(per_cat.values()) == {4}


@pytest.fixture
def lasot_root(tmp_path):
  return F.make_lasot(str(tmp_path / "lasot"))


def test_lasot_sequences(lasot_root):
  a, b = lasot.read_lasot(lasot_root, names=["airplane-1", "bear-2"])
  assert (a.name, b.name) == ("airplane-1", "bear-2")
  np.testing.assert_array_equal(a.boxes[2], [0, 0, 0, 0])
  np.testing.assert_array_equal(a.valid, [True, True, False])
  np.testing.assert_array_equal(a.visible, [True, True, False])
  np.testing.assert_array_equal(a.meta["full_occlusion"], [0, 0, 1])
  assert a.meta["category"] == "airplane"
  assert a.meta["nlp"] == "white airplane on the ground"
  assert len(b) == 2 and b.visible.all()
  assert a.frame_paths[0].endswith(os.path.join("img", "00000001.jpg"))


@pytest.mark.parametrize("variant", [
    "no_gt", "extra_image", "missing_image", "short_flags", "three_fields",
    "missing_sequence"])
def test_lasot_malformed(lasot_root, variant):
  seq = os.path.join(lasot_root, "airplane", "airplane-1")
  names, line = ["airplane-1", "bear-2"], None
  gt = os.path.join(seq, "groundtruth.txt")
  if variant == "no_gt":
    os.remove(gt)
    end = gt
  elif variant == "extra_image":
    F.write_jpeg(os.path.join(seq, "img", "00000004.jpg"))
    end = gt
  elif variant == "missing_image":
    os.remove(os.path.join(seq, "img", "00000003.jpg"))
    end = gt
  elif variant == "short_flags":
    F.write_text(os.path.join(seq, "full_occlusion.txt"), "0,0")
    end = os.path.join(seq, "full_occlusion.txt")
  elif variant == "three_fields":
    F.write_text(gt, "4,4,10,8\n4,4,10\n0,0,0,0\n")
    end, line = gt, 2
  else:
    names = names + ["cat-1"]
    end = os.path.join(lasot_root, "cat", "cat-1")
  _raises(lambda: lasot.read_lasot(lasot_root, names=names), end, line)


# ----------------------------------------------------------------- manifest
def test_manifest_reused_until_a_file_changes(tmp_path):
  root = tmp_path / "ds"
  gt = F.write_text(str(root / "a" / "gt.txt"), "1,2,3,4\n")
  calls = []

  def build():
    calls.append(1)
    boxes = textfile.read_boxes(gt)
    return [SequenceRecord("a", [str(root / "a" / "1.jpg")], boxes,
                           box_validity(boxes), [True],
                           {"flags": np.array([3], np.int64), "t": (1, 2)})]

  files = [gt, str(root / "a")]
  cache = str(tmp_path / "cache")
  first = manifest.load_or_build("toy", str(root), files, build, cache)
  second = manifest.load_or_build("toy", str(root), files, build, cache)
  assert len(calls) == 1  # Reused.
  for r in (first[0], second[0]):
    np.testing.assert_array_equal(r.boxes, [[1, 2, 3, 4]])
  assert second[0].frame_paths == first[0].frame_paths
  np.testing.assert_array_equal(second[0].meta["flags"], [3])
  assert second[0].meta["flags"].dtype == np.int64
  assert second[0].meta["t"] == (1, 2)
  F.write_text(gt, "5,6,7,8\n")  # Size and mtime change.
  third = manifest.load_or_build("toy", str(root), files, build, cache)
  assert len(calls) == 2
  np.testing.assert_array_equal(third[0].boxes, [[5, 6, 7, 8]])
  F.write_jpeg(str(root / "a" / "2.jpg"))  # Folder listing changes.
  manifest.load_or_build("toy", str(root), files, build, cache)
  assert len(calls) == 3
  manifest.load_or_build("toy", str(root), files, build, None)  # No cache.
  assert len(calls) == 4


def test_got10k_index_cached(got_root, tmp_path, monkeypatch):
  cache = str(tmp_path / "cache")
  first = got10k.read_got10k(got_root, "train", cache_dir=cache)
  assert os.listdir(os.path.join(cache, "manifests"))

  def fail(*args, **kwargs):
    raise AssertionError("the cached index should have been used")

  with monkeypatch.context() as m:
    m.setattr(got10k, "read_sequence", fail)
    cached = got10k.read_got10k(got_root, "train", cache_dir=cache)
  for a, b in zip(first, cached):
    assert a.name == b.name and a.frame_paths == b.frame_paths
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.visible, b.visible)
    np.testing.assert_array_equal(a.meta["cover"], b.meta["cover"])
  seq = _got_seq(got_root)
  F.write_text(os.path.join(seq, "groundtruth.txt"),
               "9,3,10,8\n3,3,10,8\n-1,-1,-1,-1\n")
  rebuilt = got10k.read_got10k(got_root, "train", cache_dir=cache)
  assert rebuilt[0].boxes[0, 0] == 9


# --------------------------------------------------------------------- COCO
# Hand-computed from dataset_fixtures.COCO_*: image 1 has no annotation,
# image 2 loses its crowd box, image 3 loses the w < 1 box, image 4 is 24 px
# high (< 32); labels are ranks of the category ids (1 -> 1, 3 -> 3, 90 -> 80).
COCO_EXPECTED = {
    2: (40, 48, [[2.5, 3.0, 20.25, 10.5]], [1], [10]),
    3: (48, 64, [[5, 5, 10, 12], [30, 20, 20, 16]], [3, 80], [12, 14]),
}


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
  return F.make_coco(str(tmp_path_factory.mktemp("coco")))


def _check_coco(records, tol):
  assert [r.meta["image_id"] for r in records] == sorted(COCO_EXPECTED)
  for r in records:
    h, w, boxes, labels, ids = COCO_EXPECTED[r.meta["image_id"]]
    assert (r.height, r.width) == (h, w)
    np.testing.assert_allclose(r.boxes, boxes, rtol=0, atol=tol)
    np.testing.assert_array_equal(r.meta["labels"], labels)
    np.testing.assert_array_equal(r.meta["annotation_ids"], ids)


def test_coco_raw(coco_root, caplog):
  with caplog.at_level("INFO"):
    records = coco.read_coco(coco_root, "train")
  _check_coco(records, 0)
  assert all(isinstance(r, ImageRecord) for r in records)
  assert records[0].path == os.path.join(coco_root, "train2017",
                                         "000000000002.jpg")
  assert "skipped 1 with a side < 32 px and 1 without" in caplog.text
  val = coco.read_coco(coco_root, "val")
  assert [r.meta["image_id"] for r in val] == [5, 6]
  loose = coco.read_coco(coco_root, "train", min_image_side=24)
  assert [r.meta["image_id"] for r in loose] == [2, 3, 4]


def test_coco_raw_drops_ignored(coco_root, tmp_path):
  root = str(tmp_path / "c")
  shutil.copytree(coco_root, root)
  path = coco.annotation_path(root, "train")
  data = json.load(open(path))
  data["annotations"][2]["ignore"] = 1  # Annotation 12 on image 3.
  F.write_text(path, json.dumps(data))
  (_, img3) = coco.read_coco(root, "train")
  np.testing.assert_array_equal(img3.meta["annotation_ids"], [14])


@pytest.mark.parametrize("variant", [
    "no_json", "unknown_image", "three_numbers", "missing_file"])
def test_coco_raw_malformed(coco_root, tmp_path, variant):
  root = str(tmp_path / "c")
  shutil.copytree(coco_root, root)
  path = coco.annotation_path(root, "train")
  data = json.load(open(path))
  end = path
  if variant == "no_json":
    os.remove(path)
  elif variant == "unknown_image":
    data["annotations"][0]["image_id"] = 999
  elif variant == "three_numbers":
    data["annotations"][0]["bbox"] = [1.0, 2.0, 3.0]
  else:
    end = os.path.join(root, "train2017", "000000000003.jpg")
    os.remove(end)
  if variant in ("unknown_image", "three_numbers"):
    F.write_text(path, json.dumps(data))
  _raises(lambda: coco.read_coco(root, "train"), end)


@pytest.fixture(scope="module")
def coco_tfds_dir(coco_root, tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  coco_tfds.prepare_coco_tfds(coco_root, data_dir)
  return data_dir


def test_coco_tfds_prepared_without_tensorflow(coco_tfds_dir):
  assert "tensorflow" not in sys.modules
  files = os.listdir(os.path.join(coco_tfds_dir, "coco", "2017", "1.1.0"))
  assert {"dataset_info.json", "features.json",
          "objects-label.labels.txt"} <= set(files)
  assert any(f.startswith("coco-train.array_record") for f in files)
  src = coco_tfds.open_source(coco_tfds_dir, "train")
  assert len(src) == 4  # Empty and small images are stored too.
  ex = next(src[i] for i in range(4) if src[i]["image/id"] == 2)
  # Raw objects: both of image 2's annotations, crowd kept, sorted by id.
  assert isinstance(ex["objects"]["bbox"], list)
  np.testing.assert_array_equal(ex["objects"]["is_crowd"], [False, True])
  np.testing.assert_array_equal(ex["objects"]["label"], [0, 79])
  np.testing.assert_allclose(  # [ymin, xmin, ymax, xmax] / (H, W).
      ex["objects"]["bbox"][0], [3 / 40, 2.5 / 48, 13.5 / 40, 22.75 / 48],
      rtol=1e-6)


def test_coco_tfds_records_match_raw(coco_tfds_dir, coco_root):
  reader = coco_tfds.CocoTfds(coco_tfds_dir, "train")
  records = sorted(reader.records, key=lambda r: r.meta["image_id"])
  _check_coco(records, 1e-4)  # float32 storage of normalised boxes.
  assert all(isinstance(r.path, int) for r in records)
  img = reader.image(records[0])
  raw = F.Image.open(os.path.join(coco_root, "train2017",
                                  "000000000002.jpg")).convert("RGB")
  assert img.shape == (40, 48, 3) and img.dtype == np.uint8
  assert np.abs(img.astype(int) - np.asarray(raw, int)).mean() < 2
  again = pickle.loads(pickle.dumps(reader))
  assert again.image(records[1]).shape == (48, 64, 3)
  val = coco_tfds.read_coco_tfds(coco_tfds_dir, "validation")
  assert sorted(r.meta["image_id"] for r in val) == [5, 6]
  # With a 24 px minimum side, image 4 (40 x 24) is kept too.
  loose = coco_tfds.CocoTfds(coco_tfds_dir, "train", min_image_side=24)
  assert sorted(r.meta["image_id"] for r in loose.records) == [2, 3, 4]


def test_coco_tfds_index_cached(coco_tfds_dir, tmp_path, monkeypatch):
  cache = str(tmp_path / "cache")
  first = coco_tfds.CocoTfds(coco_tfds_dir, "train", cache_dir=cache)
  monkeypatch.setattr(coco_tfds.CocoTfds, "_scan",
                      lambda self: pytest.fail("index was not reused"))
  second = coco_tfds.CocoTfds(coco_tfds_dir, "train", cache_dir=cache)
  assert [r.path for r in first.records] == [r.path for r in second.records]


def test_coco_tfds_errors(coco_root, tmp_path):
  _raises(lambda: coco_tfds.open_source(str(tmp_path / "empty")),
          os.path.join("coco", "2017", "1.1.0"))
  root = str(tmp_path / "raw")
  shutil.copytree(coco_root, root)
  os.remove(coco.annotation_path(root, "val"))
  _raises(lambda: coco_tfds.prepare_coco_tfds(root, str(tmp_path / "t")),
          "instances_val2017.json")
  path = coco.annotation_path(root, "train")
  data = json.load(open(path))
  data["categories"] = data["categories"][:2]
  data["annotations"] = [a for a in data["annotations"]
                         if a["category_id"] in (1, 2)]
  F.write_text(path, json.dumps(data))
  with pytest.raises(ValueError, match="ClassLabel"):
    coco_tfds.prepare_coco_tfds(root, str(tmp_path / "t2"), ("train",))
