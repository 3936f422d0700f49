"""Tests of the benchmark readers (gt_jax.evaluation) on tiny fixtures.

Expected values are hand-computed from the fixture recipes of datasets.md;
each malformed variant must raise DatasetLayoutError naming the file.
"""

import os
import shutil

import numpy as np
import pytest

import dataset_fixtures as F
from gt_jax.data.errors import DatasetLayoutError
from gt_jax.evaluation import benchmarks
from gt_jax.evaluation.benchmarks import load_benchmark
from gt_jax.evaluation.datasets import (otb, otb_tables, oxuva, tlp, uav,
                                        uav_tables)


def _raises(fn, path_end, line=None):
  with pytest.raises(DatasetLayoutError) as info:
    fn()
  err = info.value
  assert os.path.normpath(err.path).endswith(os.path.normpath(path_end)), err
  if line is not None:
    assert err.line == line and f"line {line}" in str(err), err
  return err


def _base(paths):
  return [os.path.basename(p) for p in paths]


# ---------------------------------------------------------------------- OTB
OTB_DIRS = ["Basketball", "Crossing", "Jogging", "Human4", "David", "Board"]


@pytest.fixture
def otb_root(tmp_path):
  return F.make_otb(str(tmp_path / "otb"))


def test_otb_tables():
  assert len(otb_tables.OTB2015_DIRS) == 98
  assert len(otb_tables.OTB2013_DIRS) == 50  # 51 sequences with Jogging.
  assert len(otb_tables.TB50_DIRS) == 49
  assert set(otb_tables.OTB2013_DIRS) <= set(otb_tables.OTB2015_DIRS)
  assert set(otb_tables.TB50_DIRS) <= set(otb_tables.OTB2015_DIRS)
  assert otb_tables.FRAME_RANGES["David"] == (300, 770)
  assert otb_tables.FRAME_RANGES["BlurCar1"] == (247, 988)


def test_otb_fixture_gives_seven_sequences(otb_root):
  seqs = otb.read_otb(otb_root, OTB_DIRS, frame_ranges=F.OTB_RANGES)
  by = {s.name: s for s in seqs}
  assert sorted(by) == sorted(["Basketball", "Crossing", "Jogging.1",
                               "Jogging.2", "Human4", "David", "Board"])
  np.testing.assert_array_equal(by["Crossing"].boxes,
                                [[1, 2, 10, 8], [2, 2, 10, 8]])
  np.testing.assert_array_equal(by["Jogging.2"].boxes[0], [5, 6, 10, 8])
  assert by["Jogging.1"].frame_paths == by["Jogging.2"].frame_paths
  assert by["Human4"].meta["groundtruth_file"] == "groundtruth_rect.2.txt"
  assert _base(by["David"].frame_paths) == ["0003.jpg", "0004.jpg",
                                            "0005.jpg"]
  assert by["David"].meta["first_frame"] == 3
  assert _base(by["Board"].frame_paths) == ["00001.jpg", "00002.jpg"]
  assert _base(by["Basketball"].frame_paths) == ["0001.jpg", "0002.jpg",
                                                 "0003.jpg"]


def test_otb_registry_subsets(otb_root):
  # David's real window (300..770) is not in the fixture, so leave it out.
  shutil.rmtree(os.path.join(otb_root, "David"))
  seqs = load_benchmark("otb", otb_root, subset="available")
  assert {s.name for s in seqs} == {"Basketball", "Crossing", "Jogging.1",
                                    "Jogging.2", "Human4", "Board"}
  two = load_benchmark("OTB-2015", otb_root, subset=["Jogging.2", "Board"])
  assert [s.name for s in two] == ["Jogging.2", "Board"]
  in13 = load_benchmark("otb2013", otb_root, subset="available")
  assert {s.name for s in in13} == {"Basketball", "Crossing", "Jogging.1",
                                    "Jogging.2"}
  _raises(lambda: load_benchmark("otb", otb_root), "Biker")  # Full split.
  _raises(lambda: load_benchmark("otb", otb_root, ["Woman"]), "Woman")


@pytest.mark.parametrize("variant", [
    "no_gt", "rows_lt_frames", "three_fields", "semicolons",
    "range_past_end"])
def test_otb_malformed(otb_root, variant):
  ranges, line = F.OTB_RANGES, None
  gt = os.path.join(otb_root, "Basketball", "groundtruth_rect.txt")
  if variant == "no_gt":
    os.remove(gt)
    end = os.path.join(otb_root, "Basketball")
  elif variant == "rows_lt_frames":
    F.write_text(gt, "1,2,10,8\n2,2,10,8\n")
    end = gt
  elif variant in ("three_fields", "semicolons"):
    row = "1,2,10" if variant == "three_fields" else "1;2;10;8"
    F.write_text(gt, f"1,2,10,8\n{row}\n3,2,10,8\n")
    end, line = gt, 2
  else:
    ranges = {"David": (3, 6)}
    F.write_text(os.path.join(otb_root, "David", "groundtruth_rect.txt"),
                 "1,1,5,5\n" * 4)
    end = os.path.join(otb_root, "David", "img", "0006.jpg")
  _raises(lambda: otb.read_otb(otb_root, OTB_DIRS, frame_ranges=ranges), end,
          line)


# ---------------------------------------------------------------------- UAV
@pytest.fixture
def uav_root(tmp_path):
  return F.make_uav(str(tmp_path / "uav"))


def test_uav_tables():
  assert len(uav_tables.UAV123) == 123 and len(uav_tables.UAV20L) == 20
  assert uav_tables.UAV123["car1_2"] == ("car1", 751, 1627)
  assert uav_tables.UAV123["uav1_3"] == ("uav1", 2473, 3469)
  assert uav_tables.UAV123["person22"] == ("person22", 1, 199)
  assert uav_tables.UAV20L["group3"] == ("group3", 1, 5527)
  folders = {f for f, _, _ in uav_tables.UAV123.values()}
  assert len(folders) == 91  # 123 sequences from 91 videos.


def test_uav_subranges_and_nan_rows(uav_root):
  seqs = uav.read_uav(uav_root, F.UAV_TABLE)
  by = {s.name: s for s in seqs}
  assert list(by) == ["bird1_1", "bird1_2", "bike1"]
  b = by["bird1_2"]
  assert _base(b.frame_paths) == ["000004.jpg", "000005.jpg", "000006.jpg"]
  np.testing.assert_array_equal(b.valid, [True, False, True])
  assert np.isnan(b.boxes[1]).all()
  np.testing.assert_array_equal(b.boxes[2], [3, 3, 5, 5])
  assert b.meta["folder"] == "bird1"


@pytest.mark.parametrize("variant", [
    "not_in_table", "rows_lt_range", "range_past_end", "nan3", "bad_token"])
def test_uav_malformed(uav_root, variant):
  table, line = dict(F.UAV_TABLE), None
  anno = os.path.join(uav_root, "anno", "UAV123")
  b2 = os.path.join(anno, "bird1_2.txt")
  if variant == "not_in_table":
    end = F.write_text(os.path.join(anno, "boat1.txt"), "1,1,5,5\n")
  elif variant == "rows_lt_range":
    F.write_text(b2, "2,2,5,5\n3,3,5,5\n")
    end = b2
  elif variant == "range_past_end":
    table["bird1_2"] = ("bird1", 5, 7)
    end = os.path.join(uav_root, "data_seq", "UAV123", "bird1", "000007.jpg")
  else:
    row = "NaN,NaN,NaN" if variant == "nan3" else "x,1,5,5"
    F.write_text(b2, f"2,2,5,5\n{row}\n3,3,5,5\n")
    end, line = b2, 2
  _raises(lambda: uav.read_uav(uav_root, table), end, line)


def test_uav20l_reads_shared_folders(uav_root):
  F.write_text(os.path.join(uav_root, "anno", "UAV20L", "bird1.txt"),
               "1,1,5,5\n" * 6)
  (s,) = uav.read_uav(uav_root, {"bird1": ("bird1", 1, 6)}, "UAV20L")
  assert s.name == "bird1" and len(s) == 6 and s.meta["anno_set"] == "UAV20L"
  assert s.frame_paths[-1].endswith(
      os.path.join("data_seq", "UAV123", "bird1", "000006.jpg"))


def test_uav_registry_available(uav_root):
  # Official table: bike1 is whole (1..3085 frames), so reading it fails on
  # the row count; only `available` + a name list make sense on a fixture.
  _raises(lambda: load_benchmark("uav123", uav_root, ["bike1"]), "bike1.txt")
  _raises(lambda: load_benchmark("uav123", uav_root, ["car2"]), "car2.txt")


# -------------------------------------------------------------- TrackingNet
@pytest.fixture
def tn_root(tmp_path):
  return F.make_trackingnet(str(tmp_path / "tn"))


def test_trackingnet_numeric_order_and_test_row(tn_root):
  test, train = load_benchmark("trackingnet", tn_root)
  assert test.name == "xyz_0" and test.meta["chunk"] == "TEST"
  assert test.boxes.shape == (1, 4) and len(test) == 3
  assert test.first_frame_only
  assert train.name == F.TN_TRAIN
  assert _base(train.frame_paths) == [f"{k}.jpg" for k in range(12)]
  np.testing.assert_array_equal(train.boxes[:, 0], np.arange(1, 13))
  assert train.meta["video_id"] == "-abcDEF_123"
  assert train.meta["object_index"] == 0
  only_train = load_benchmark("trackingnet", tn_root, "TRAIN_0")
  assert [s.name for s in only_train] == [F.TN_TRAIN]
  named = load_benchmark("trackingnet", tn_root, ["xyz_0"])
  assert [s.name for s in named] == ["xyz_0"]
  _raises(lambda: load_benchmark("trackingnet", os.path.join(tn_root, "TEST")),
          "TEST")  # The root must hold the chunk folders.


@pytest.mark.parametrize("variant", [
    "no_frames", "rows_lt_frames", "test_two_rows", "test_three_fields",
    "frame_gap"])
def test_trackingnet_malformed(tn_root, variant):
  tr, te, line = (os.path.join(tn_root, "TRAIN_0"),
                  os.path.join(tn_root, "TEST"), None)
  if variant == "no_frames":
    F.write_text(os.path.join(tr, "anno", "foo_0.txt"), "1,1,5,5\n")
    end = os.path.join(tr, "frames", "foo_0")
  elif variant == "rows_lt_frames":
    end = F.write_text(os.path.join(tr, "anno", f"{F.TN_TRAIN}.txt"),
                       "1,1,5,5\r\n" * 11)
  elif variant == "test_two_rows":
    end = F.write_text(os.path.join(te, "anno", "xyz_0.txt"),
                       "4,4,10,8\n4,4,10,8\n")
  elif variant == "test_three_fields":
    end = F.write_text(os.path.join(te, "anno", "xyz_0.txt"), "4,4,10")
    line = 1
  else:
    os.remove(os.path.join(te, "frames", "xyz_0", "2.jpg"))
    F.write_jpeg(os.path.join(te, "frames", "xyz_0", "3.jpg"))
    end = os.path.join(te, "frames", "xyz_0")
  _raises(lambda: load_benchmark("trackingnet", tn_root), end, line)


# -------------------------------------------------------------------- OxUvA
@pytest.fixture
def oxuva_root(tmp_path):
  return F.make_oxuva(str(tmp_path / "oxuva"))


def test_oxuva_dev(oxuva_root):
  (s,) = load_benchmark("oxuva", oxuva_root)
  assert s.name == "vid0000_obj0000" and len(s) == 31
  assert s.frame_paths[0].endswith("000000.jpeg")
  # xmin, xmax, ymin, ymax = .1, .5, .2, .6 on a 32 x 24 image.
  np.testing.assert_allclose(s.boxes[0], [3.2, 4.8, 12.8, 9.6], rtol=1e-12)
  assert np.flatnonzero(s.meta["labelled"]).tolist() == [0, 30]
  assert s.meta["present"][30] == False  # noqa: E712
  assert not s.valid[30] and not s.visible[30] and not s.valid[15]
  assert s.meta["image_size"] == (32, 24)
  assert s.meta["class_name"] == "elephant"
  np.testing.assert_allclose(s.meta["normalized_boxes"][0],
                             [0.1, 0.5, 0.2, 0.6])


def test_oxuva_available_skips_missing_videos(oxuva_root):
  with open(os.path.join(oxuva_root, "tasks", "dev.csv"), "a") as f:
    f.write("vid0009,obj0000,0,30,0.1,0.5,0.2,0.6\n")
  seqs = load_benchmark("oxuva", oxuva_root, "available")
  assert [s.name for s in seqs] == ["vid0000_obj0000"]
  _raises(lambda: load_benchmark("oxuva", oxuva_root),
          os.path.join("images", "dev", "vid0009"))


def test_oxuva_test_split_has_init_box_only(oxuva_root):
  shutil.copytree(os.path.join(oxuva_root, "images", "dev"),
                  os.path.join(oxuva_root, "images", "test"))
  F.write_text(os.path.join(oxuva_root, "tasks", "test.csv"),
               "vid0000,obj0001,10,20,0.0,0.5,0.0,1.0\n")
  (s,) = load_benchmark("oxuva", oxuva_root, "test")
  assert s.first_frame_only and s.boxes.shape == (1, 4) and len(s) == 11
  np.testing.assert_allclose(s.boxes[0], [0, 0, 16, 24])
  assert s.frame_paths[0].endswith("000010.jpeg")


@pytest.mark.parametrize("variant", [
    "missing_video", "seven_fields", "bad_presence", "last_past_end"])
def test_oxuva_malformed(oxuva_root, variant):
  tasks = os.path.join(oxuva_root, "tasks", "dev.csv")
  anno = os.path.join(oxuva_root, "annotations", "dev.csv")
  line = None
  if variant == "missing_video":
    F.write_text(tasks, "vid0001,obj0000,0,30,0.1,0.5,0.2,0.6\n")
    end = os.path.join(oxuva_root, "images", "dev", "vid0001")
  elif variant == "seven_fields":
    end, line = F.write_text(tasks, "vid0000,obj0000,0,30,0.1,0.5,0.2\n"), 1
  elif variant == "bad_presence":
    with open(anno, "a") as f:
      f.write("vid0000,obj0000,20,elephant,unknown,unknown,30,maybe,0,0,0,0\n")
    end, line = anno, 3
  else:
    F.write_text(tasks, "vid0000,obj0000,0,40,0.1,0.5,0.2,0.6\n")
    end = os.path.join(oxuva_root, "images", "dev", "vid0000", "000031.jpeg")
  _raises(lambda: oxuva.read_oxuva(oxuva_root, "dev"), end, line)


# ---------------------------------------------------------------------- TLP
@pytest.fixture
def tlp_root(tmp_path):
  return F.make_tlp(str(tmp_path / "tlp"))


def test_tlp(tlp_root):
  (s,) = load_benchmark("tlp", tlp_root)
  assert s.name == "Alladin" and len(s) == 4
  np.testing.assert_array_equal(s.visible, [True, True, False, True])
  np.testing.assert_array_equal(s.boxes[1], [5, 4, 10, 8])
  assert _base(s.frame_paths)[0] == "00001.jpg"
  (tiny,) = load_benchmark("tlp", tlp_root, "tiny")  # <= 600 frames.
  assert len(tiny) == 4


@pytest.mark.parametrize("variant, line", [
    ("gap", 3), ("starts_at_0", 1), ("five_fields", 1),
    ("rows_lt_frames", None), ("lost_2", 2), ("no_gt", None)])
def test_tlp_malformed(tlp_root, variant, line):
  d = os.path.join(tlp_root, "Alladin")
  gt = os.path.join(d, "groundtruth_rect.txt")
  text = {"gap": "1,4,4,10,8,0\n2,5,4,10,8,0\n4,0,0,0,0,1\n5,6,4,10,8,0\n",
          "starts_at_0": "0,4,4,10,8,0\n1,5,4,10,8,0\n2,0,0,0,0,1\n"
                         "3,6,4,10,8,0\n",
          "five_fields": "1,4,4,10,8\n",
          "lost_2": "1,4,4,10,8,0\n2,5,4,10,8,2\n"}.get(variant)
  if text is not None:
    F.write_text(gt, text)
  if variant == "rows_lt_frames":
    F.write_jpeg(os.path.join(d, "img", "00005.jpg"))
  if variant == "no_gt":
    os.remove(gt)
  _raises(lambda: load_benchmark("tlp", tlp_root), gt, line)
  # An explicit skip list leaves a broken sequence out on purpose.
  assert tlp.read_tlp(tlp_root, skip=("Alladin",)) == []


# -------------------------------------------------- LaSOT, GOT-10k, folder
def test_lasot_registry(tmp_path):
  root = F.make_lasot(str(tmp_path / "lasot"))
  seqs = load_benchmark("lasot", root, ["airplane-1", "bear-2"])
  assert [s.name for s in seqs] == ["airplane-1", "bear-2"]
  shutil.copytree(os.path.join(root, "airplane", "airplane-1"),
                  os.path.join(root, "airplane", "airplane-2"))  # A train seq.
  avail = load_benchmark("lasot", root, "available")
  assert [s.name for s in avail] == ["airplane-1", "bear-2"]  # Both test.
  _raises(lambda: load_benchmark("lasot", root),
          os.path.join("airplane", "airplane-9"))


def test_got10k_registry(tmp_path):
  root = F.make_got10k(str(tmp_path / "GOT-10k"))
  (val,) = load_benchmark("got10k", os.path.join(root, "val"))
  assert val.name == "GOT-10k_Val_000001" and val.boxes.shape == (3, 4)
  (test,) = load_benchmark("GOT-10k", root)  # Root + default split: test.
  assert test.first_frame_only and test.boxes.shape == (1, 4)
  (val2,) = load_benchmark("got10k", root, "val")
  assert val2.name == val.name
  os.remove(os.path.join(root, "test", "GOT-10k_Test_000001",
                         "00000003.jpg"))
  _raises(lambda: load_benchmark("got10k", root, "test"),
          os.path.join("test", "GOT-10k_Test_000001"))


def test_folder_sequences(tmp_path):
  one = str(tmp_path / "clip")
  F.write_frames(one, [f"frame{k}.png" for k in range(2)])  # Ignored.
  F.write_frames(os.path.join(one, "img"), [f"{k}.jpg" for k in range(0, 12)])
  F.write_text(os.path.join(one, "groundtruth.txt"), "3 4 10 8\n")
  (s,) = load_benchmark("folder", one)
  assert s.name == "clip" and len(s) == 12 and s.first_frame_only
  assert _base(s.frame_paths)[:3] == ["0.jpg", "1.jpg", "2.jpg"]
  assert _base(s.frame_paths)[-1] == "11.jpg"
  many = str(tmp_path / "many")
  F.write_frames(os.path.join(many, "a"), ["0001.jpg", "0002.jpg"])
  F.write_text(os.path.join(many, "a", "groundtruth.txt"), "1,1,4,4\n" * 2)
  (a,) = load_benchmark("folder", many)
  assert a.name == "a" and not a.first_frame_only and a.valid.all()
  F.write_text(os.path.join(many, "a", "groundtruth.txt"), "1,1,4,4\n" * 3)
  _raises(lambda: load_benchmark("folder", many),
          os.path.join("a", "groundtruth.txt"))
  empty = str(tmp_path / "empty")
  os.makedirs(os.path.join(empty, "sub"))
  _raises(lambda: load_benchmark("folder", empty), empty)


def test_registry_errors(tmp_path):
  with pytest.raises(ValueError, match="unknown benchmark"):
    load_benchmark("vot2018", str(tmp_path))
  _raises(lambda: load_benchmark("otb", str(tmp_path / "nope")), "nope")
  with pytest.raises(ValueError, match="unknown subset"):
    load_benchmark("otb", str(tmp_path), "otb2099")
  assert set(benchmarks.OFFICIAL_SIZES) <= set(benchmarks.BENCHMARKS)
