"""Tests for gt_jax/evaluation/results_io.py (metrics.md §8.1)."""

import os
import zipfile

import numpy as np
import pytest

from gt_jax.evaluation import results_io as rio


def _write(path, text):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8", newline="") as f:
    f.write(text)
  return path


@pytest.mark.parametrize("text", [
    "1,2,3,4\n5.5,6,7,8\n",
    "1\t2\t3\t4\r\n5.5\t6\t7\t8\r\n",
    "1 2  3 4\n5.5,6\t7 8",            # mixed, no trailing newline
    "1, 2, 3, 4\n5.5, 6, 7, 8\n\n\n",  # blank trailing lines
])
def test_read_boxes_delimiters(tmp_path, text):
  p = _write(str(tmp_path / "r.txt"), text)
  np.testing.assert_array_equal(rio.read_boxes(p),
                                [[1, 2, 3, 4], [5.5, 6, 7, 8]])


def test_read_boxes_nan_and_single_row(tmp_path):
  p = _write(str(tmp_path / "a.txt"), "NaN,nan,NaN,NaN\n")
  b = rio.read_boxes(p)
  assert b.shape == (1, 4) and np.isnan(b).all()


@pytest.mark.parametrize("text,line,msg", [
    ("1,2,3,4\n1,2,3\n", 2, "expected 4 fields, got 3"),
    ("1,2,3,4\n1;2;3;4\n", 2, "expected 4 fields"),
    ("1,2,x,4\n", 1, "non-numeric"),
    ("1,2,3,4\n\n1,2,3,4\n", 2, "blank line"),
])
def test_read_boxes_errors_name_file_and_line(tmp_path, text, line, msg):
  p = _write(str(tmp_path / "bad.txt"), text)
  with pytest.raises(rio.ResultFileError, match=msg) as e:
    rio.read_boxes(p)
  assert e.value.line == line and str(e.value).startswith(f"{p}:{line}")


def test_missing_file_and_comma_only(tmp_path):
  with pytest.raises(rio.ResultFileError, match="not found"):
    rio.read_boxes(str(tmp_path / "nope.txt"))
  p = _write(str(tmp_path / "t.txt"), "1\t2\t3\t4\n")
  with pytest.raises(rio.ResultFileError, match="not comma separated"):
    rio.read_boxes(p, comma_only=True)
  p = _write(str(tmp_path / "c.txt"), "1, 2,3,4\n")
  np.testing.assert_array_equal(rio.read_boxes(p, comma_only=True),
                                [[1, 2, 3, 4]])


def test_write_read_roundtrip_and_corner_format(tmp_path):
  boxes = np.array([[1.23456, 2, 3, 4], [0, 0, 10.5, 2]])
  path = rio.write_otb_result(str(tmp_path / "trk"), "Seq", boxes,
                              times=np.array([0.1, 0.2]))
  with open(path) as f:
    assert f.readline() == "1.235,2.000,3.000,4.000\n"
  np.testing.assert_allclose(rio.read_boxes(path), boxes, atol=5e-4)
  t = rio.read_values(str(tmp_path / "trk" / "times" / "Seq_time.txt"))
  np.testing.assert_allclose(t, [0.1, 0.2])
  p = _write(str(tmp_path / "n.txt"), "10,20,49,49\n")  # neuron corners
  np.testing.assert_array_equal(rio.read_boxes(p, box_format="xyxy"),
                                [[10, 20, 40, 30]])
  with pytest.raises(ValueError, match="box_format"):
    rio.read_boxes(p, box_format="cxcywh")


def test_find_result_file_aliases(tmp_path):
  d = str(tmp_path)
  _write(os.path.join(d, "Jogging_1.txt"), "1,1,1,1\n")
  _write(os.path.join(d, "uav_bird1_1.txt"), "1,1,1,1\n")
  _write(os.path.join(d, "Human4_2.txt"), "1,1,1,1\n")
  assert rio.find_result_file(d, "Jogging.1").endswith("Jogging_1.txt")
  assert rio.find_result_file(d, "bird1_1").endswith("uav_bird1_1.txt")
  assert rio.find_result_file(d, "Human4").endswith("Human4_2.txt")
  assert rio.find_result_file(d, "Basketball") is None


def test_list_trackers_plain_and_pytracking_tree(tmp_path):
  r = str(tmp_path)
  _write(os.path.join(r, "A", "s.txt"), "1,1,1,1\n")
  _write(os.path.join(r, "pyt", "dimp50", "s.txt"), "1\t1\t1\t1\n")
  _write(os.path.join(r, "pyt", "dimp18", "s.txt"), "1\t1\t1\t1\n")
  _write(os.path.join(r, "G", "s1", "s1_001.txt"), "1,1,1,1\n")
  found = rio.list_trackers(r)
  assert sorted(found) == ["A", "G", "pyt/dimp18", "pyt/dimp50"]
  with pytest.raises(rio.ResultFileError, match="not found"):
    rio.list_trackers(str(tmp_path / "missing"))
  # A folder holding result files directly is one tracker.
  assert rio.list_trackers(os.path.join(r, "A")) == {"A": os.path.join(r,
                                                                       "A")}
  os.makedirs(os.path.join(r, "empty"))
  with pytest.raises(rio.ResultFileError, match="no tracker folders"):
    rio.list_trackers(os.path.join(r, "empty"))


def test_got10k_layout_roundtrip(tmp_path):
  d = str(tmp_path / "trk")
  runs = [np.ones((3, 4)), 2 * np.ones((3, 4))]
  rio.write_got10k_result(d, "GOT-10k_Val_000001", runs,
                          times=[np.array([.1, .2, .3]), np.array([1, 2, 3.])])
  seq_dir = os.path.join(d, "GOT-10k_Val_000001")
  assert sorted(os.listdir(seq_dir)) == [
      "GOT-10k_Val_000001_001.txt", "GOT-10k_Val_000001_002.txt",
      "GOT-10k_Val_000001_time.txt"]
  got = rio.read_got10k_result(d, "GOT-10k_Val_000001")
  assert len(got) == 2
  np.testing.assert_array_equal(got[1], runs[1])
  t = rio.read_values(os.path.join(seq_dir, "GOT-10k_Val_000001_time.txt"))
  assert t.shape == (3, 2)
  with pytest.raises(rio.ResultFileError, match="not found"):
    rio.read_got10k_result(d, "GOT-10k_Val_000002")


def test_trackingnet_zip_and_devkit_matching(tmp_path):
  z = str(tmp_path / "trk.zip")
  rio.write_trackingnet_zip(z, {"-abc_0": np.array([[1.234, 2, 3, 4]]),
                                "xabc_0": np.array([[5, 6, 7, 8.]])})
  with zipfile.ZipFile(z) as f:
    assert sorted(f.namelist()) == ["-abc_0.txt", "xabc_0.txt"]
    assert f.read("-abc_0.txt").decode() == "1.23,2.00,3.00,4.00\n"
  res = rio.TrackingNetResults(z)
  np.testing.assert_allclose(res.get("-abc_0"), [[1.23, 2, 3, 4]])
  # "abc_0.txt" is a substring of both names: the devkit treats it as missing.
  assert res.get("abc_0") is None
  assert res.get("zzz_1") is None


def test_oxuva_csv_roundtrip_header_and_bad_present(tmp_path):
  p = str(tmp_path / "vid0000_obj0000.csv")
  rio.write_oxuva_csv(p, "vid0000", "obj0000", [30, 60], [True, False],
                      [0.9, 0.1], np.array([[0.1, 0.5, 0.2, 0.6], [0] * 4]))
  with open(p) as f:
    assert f.readline().startswith("vid0000,obj0000,30,true,0.9,0.1,0.5")
  got = rio.read_oxuva_csv(p)
  assert got[30] == (True, 0.9, (0.1, 0.5, 0.2, 0.6))
  assert got[60] == (False, 0.1, None)
  h = _write(str(tmp_path / "h.csv"),
             "frame_num,video,object,present,score,xmin,xmax,ymin,ymax\n"
             "30,v,o,YES,1,0,1,0,1\n")
  assert rio.read_oxuva_csv(h)[30][0] is True
  bad = _write(str(tmp_path / "b.csv"), "v,o,30,present,1,0,1,0,1\n")
  with pytest.raises(rio.ResultFileError, match="true/false") as e:
    rio.read_oxuva_csv(bad)
  assert e.value.line == 1
