"""Tests for gt_jax/evaluation/{metrics,protocols,longterm}.py.

Expected numbers come from the worked examples of metrics.md §9 (checked
against the toolkits by the spec's authors), from hand computation, or from
the small plain-Python references below (written from the formulas, not from
the module under test).
"""

import math
import warnings

import numpy as np
import pytest

from gt_jax.evaluation import longterm
from gt_jax.evaluation import metrics
from gt_jax.evaluation import protocols

# §9 setup: static GT, five predictions.
G = np.tile([10.0, 20.0, 40.0, 30.0], (5, 1))
PRED = np.array([[10, 20, 40, 30], [20, 25, 40, 30], [0, 0, 20, 20],
                 [15, 20, 30, 30], [30, 40, 0, 0]], np.float64)


def ref_iou(a, b):
  """Continuous-box IoU of two xywh tuples (plain Python)."""
  iw = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
  ih = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
  inter = iw * ih
  union = a[2] * a[3] + b[2] * b[3] - inter
  return inter / union if union > 0 else 0.0


def ref_ce(a, b):
  return math.hypot(a[0] + a[2] / 2 - b[0] - b[2] / 2,
                    a[1] + a[3] / 2 - b[1] - b[3] / 2)


def scores(benchmark, variant, seqs):
  p = protocols.get_protocol(benchmark, variant)
  return protocols.evaluate_otb_style(p, seqs)


# ---------------------------------------------------------------------------
# Per-frame quantities.


def test_iou_forms_match_independent_reference():
  rng = np.random.default_rng(0)
  a = np.concatenate([rng.uniform(0, 50, (200, 2)),
                      rng.uniform(1, 40, (200, 2))], 1)
  b = np.concatenate([rng.uniform(0, 50, (200, 2)),
                      rng.uniform(1, 40, (200, 2))], 1)
  want = np.array([ref_iou(x, y) for x, y in zip(a, b)])
  for fn in (metrics.iou_got10k, metrics.iou_plus1, metrics.iou_neuron):
    np.testing.assert_allclose(fn(a, b), want, rtol=0, atol=1e-12)
  ce = np.array([ref_ce(x, y) for x, y in zip(a, b)])
  np.testing.assert_allclose(metrics.center_error(a, b), ce, atol=1e-12)


def test_worked_example_per_frame_table():
  np.testing.assert_allclose(metrics.iou_got10k(PRED, G),
                             [1, 750 / 1650, 0, 0.75, 0], atol=1e-12)
  np.testing.assert_allclose(
      metrics.center_error(PRED, G),
      [0, math.sqrt(125), math.sqrt(1025), 0, 5], atol=1e-9)
  np.testing.assert_allclose(metrics.normalized_center_error(PRED, G),
                             [0, 0.300463, 0.971825, 0, 0.166667], atol=1e-6)
  # Zero-size prediction: IoU 0 for got10k and neuron (not NaN).
  assert metrics.iou_neuron(PRED[4:], G[4:])[0] == 0.0


def test_got10k_clip_shifts_instead_of_cropping():
  b = metrics.clip_boxes_got10k(np.array([[-50.0, 5, 100, 10]]), 200, 100)
  np.testing.assert_array_equal(b, [[0, 5, 100, 10]])
  b = metrics.clip_boxes_got10k(np.array([[150.0, 90, 100, 30]]), 200, 100)
  np.testing.assert_array_equal(b, [[150, 90, 50, 10]])


def test_bad_box_shape_is_rejected():
  with pytest.raises(ValueError, match="pred must have shape"):
    metrics.iou_plus1(np.zeros((3, 3)), np.zeros((3, 4)))


# ---------------------------------------------------------------------------
# Worked examples E1-E5 (metrics.md §9).


def test_e1_got10k_success():
  err = metrics.got10k_otb_errors(PRED, G)
  c = metrics.curves(err, 21)
  want = np.array([0.6] * 10 + [0.4] * 5 + [0.2] * 5 + [0.0])
  np.testing.assert_allclose(c["success"], want, atol=1e-12)
  assert c["success"].mean() == pytest.approx(9 / 21, abs=1e-9)
  assert err.iou.mean() == pytest.approx(0.440909, abs=1e-6)
  c101 = metrics.curves(err, 101)
  assert c101["success"].mean() == pytest.approx(44.2 / 101, abs=1e-9)


def test_e2_matlab_replaces_zero_size_prediction():
  o, per, _ = scores("otb", None, [protocols.SequenceInput("s", G, PRED)])
  assert o["success_auc"] == pytest.approx(12 / 21, abs=1e-9)
  assert o["success_rate_050"] == pytest.approx(0.6, abs=1e-12)
  assert o["precision_20px"] == pytest.approx(0.8, abs=1e-12)
  assert o["norm_precision_020"] == pytest.approx(0.6, abs=1e-12)
  assert per["s"] == o


def test_e3_got10k_precision_and_lasot_norm_mean():
  o, _, _ = scores("lasot", "got10k", [protocols.SequenceInput("s", G, PRED)])
  assert o["precision_20px"] == pytest.approx(0.8, abs=1e-12)
  assert o["norm_precision_mean"] == pytest.approx(
      (17 * 0.4 + 14 * 0.6 + 20 * 0.8) / 51, abs=1e-9)
  assert "norm_precision_020" not in o


def test_e4_trackingnet_devkit():
  o, _, c = protocols.evaluate_trackingnet([("s", G, PRED)])
  want_s = [1.0] + [0.6] * 9 + [0.4] * 6 + [0.2] * 5
  np.testing.assert_allclose(c["success"], want_s, atol=1e-12)
  assert o["success_trapz"] == pytest.approx(0.46, abs=1e-9)
  assert o["precision_trapz"] == pytest.approx(0.815, abs=1e-9)
  assert o["norm_precision_trapz"] == pytest.approx(0.61, abs=1e-9)
  assert o["coverage"] == pytest.approx(1.0)


E5_GT = G.copy()
E5_GT[2] = 0
E5_PRED = PRED.copy()
E5_PRED[2] = 0
E5_ABSENT = np.array([0, 0, 1, 0, 0], bool)


@pytest.mark.parametrize("variant,auc,sr,p20,extra", [
    (None, 12 / 21, 0.6, 0.8, ("norm_precision_020", 0.6)),
    ("pytracking", 12 / 21, 0.6, 0.8, ("norm_precision_020", 0.6)),
    ("got10k", 9 / 21, 0.4, 1.0, ("norm_precision_mean", 0.811765)),
    ("neuron", 0.535714, 0.5, 1.0, None),
])
def test_e5_absent_frame_lasot(variant, auc, sr, p20, extra):
  seq = protocols.SequenceInput("s", E5_GT, E5_PRED, absent=E5_ABSENT)
  o, _, _ = scores("lasot", variant, [seq])
  # 1e-6: pytracking's float32 curves carry ~1e-7 noise (metrics.md §1).
  assert o["success_auc"] == pytest.approx(auc, abs=1e-6)
  assert o["success_rate_050"] == pytest.approx(sr, abs=1e-6)
  assert o["precision_20px"] == pytest.approx(p20, abs=1e-6)
  if extra:
    assert o[extra[0]] == pytest.approx(extra[1], abs=1e-6)
  else:
    assert not any(k.startswith("norm") for k in o)


def test_e6_got10k_pools_frames_and_repetitions():
  gt = np.tile([0.0, 0.0, 10.0, 10.0], (4, 1))
  # IoU of (0,0,10,k) with (0,0,10,10) is k/10; frame 1 is dropped.
  run_a = np.array([[0, 0, 10, 10], [0, 0, 10, 9], [0, 0, 10, 8],
                    [0, 0, 10, 7]], np.float64)
  run_b = np.array([[0, 0, 10, 10], [0, 0, 10, 2]], np.float64)
  o, per, _ = protocols.evaluate_got10k([
      ("A", gt, [run_a], np.full(4, 8), (100, 100)),
      ("B", gt[:2], [run_b], np.full(2, 8), (100, 100))])
  assert o["ao"] == pytest.approx(0.65, abs=1e-12)
  assert o["sr_050"] == pytest.approx(0.75, abs=1e-12)
  assert o["sr_075"] == pytest.approx(0.5, abs=1e-12)
  assert per["A"]["ao"] == pytest.approx(0.8) and per["B"]["ao"] == 0.2
  # Two repetitions of A pooled; a cover-0 frame is removed.
  cover = np.array([8, 8, 0, 8])
  o, per, _ = protocols.evaluate_got10k([("A", gt, [run_a, gt], cover,
                                          (100, 100))])
  assert per["A"]["ao"] == pytest.approx((0.9 + 0.7 + 1 + 1) / 4)


def test_got10k_boxes_outside_image_are_shifted_before_iou():
  gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float64)
  pred = np.array([[0, 0, 10, 10], [-5, 0, 10, 10]], np.float64)
  _, per, _ = protocols.evaluate_got10k([("A", gt, [pred], np.full(2, 8),
                                          (50, 50))])
  # Shifted to x=0 (a crop would give 5/10).
  assert per["A"]["ao"] == pytest.approx(1.0, abs=1e-12)
  with pytest.raises(metrics.ResultLengthError, match="A"):
    protocols.evaluate_got10k([("A", gt, [pred[:1]], np.full(2, 8), (50, 50))])


# ---------------------------------------------------------------------------
# Invalid predictions, absent / NaN / zero GT, lengths.


def test_matlab_replacement_chains_from_raw_first_frame():
  gt = np.tile([10.0, 10.0, 20.0, 20.0], (4, 1))
  pred = np.array([[30, 30, 20, 20], [0, 0, 0, 5], [np.nan] * 4,
                   [10, 10, 20, 20]])
  err = metrics.matlab_errors(pred, gt)
  # Frames 2 and 3 take the tracker's own frame-1 box, not the GT.
  want = [1.0, ref_iou(pred[0], gt[1]), ref_iou(pred[0], gt[2]), 1.0]
  np.testing.assert_allclose(err.iou, want, atol=1e-12)


def test_matlab_invalid_gt_counts_precise_but_fails_success():
  gt = np.array([[10, 10, 20, 20], [0, 10, 20, 20], [np.nan] * 4,
                 [10, 10, 20, 20]], np.float64)
  pred = np.array([[10, 10, 20, 20], [90, 90, 5, 5], [np.nan] * 4,
                   [10, 10, 20, 20]], np.float64)
  err = metrics.matlab_errors(pred, gt)
  np.testing.assert_array_equal(err.iou[1:3], [-1, -1])
  np.testing.assert_array_equal(err.ce[1:3], [-1, -1])
  c = metrics.curves(err)
  assert c["success"][0] == 0.5 and c["precision"][0] == 1.0
  # pytracking (uav allows NaN GT): CE -1 for uav, +inf for other datasets.
  pred2 = np.nan_to_num(pred)
  e_uav = metrics.pytracking_errors(pred2, gt, "uav")
  assert e_uav.ce[1] == -1 and e_uav.nce[1] == -1
  e_otb = metrics.pytracking_errors(pred2[[0, 1, 3]], gt[[0, 1, 3]], "otb")
  assert np.isinf(e_otb.ce[1]) and e_otb.iou[1] == -1
  # neuron drops x=0 and NaN frames from the denominator.
  e_n = metrics.neuron_errors(pred, gt)
  assert e_n.denom == 2 and len(e_n.iou) == 2


def test_pytracking_refuses_nan_or_negative_results():
  with pytest.raises(metrics.InvalidResultError, match="r.txt"):
    metrics.pytracking_errors(np.array([[1, 1, -2, 3.0]]), G[:1], "otb",
                              what="r.txt")
  with pytest.raises(metrics.InvalidResultError, match="NaN in the ground"):
    metrics.pytracking_errors(PRED, np.full((5, 4), np.nan), "otb")


def test_result_length_rules():
  long_pred = np.concatenate([PRED, PRED])
  a = metrics.matlab_errors(long_pred, G)
  b = metrics.matlab_errors(PRED, G)
  np.testing.assert_array_equal(a.iou, b.iou)
  with pytest.raises(metrics.ResultLengthError, match="3 rows.*has 5"):
    metrics.matlab_errors(PRED[:3], G, what="x.txt")
  with pytest.raises(metrics.ResultLengthError):
    metrics.neuron_errors(PRED[:3], G)
  with pytest.raises(metrics.ResultLengthError):
    metrics.pytracking_errors(PRED[:3], G, "lasot", np.ones(5, bool))
  # pytracking elsewhere pads with zero boxes (IoU 0, not replaced).
  e = metrics.pytracking_errors(PRED[:2], G, "otb")
  np.testing.assert_array_equal(e.iou[2:], [0, 0, 0])
  assert e.denom == 5
  # got10k cuts both to the shorter length, with a warning.
  with pytest.warns(UserWarning, match="cut to the shorter"):
    e = metrics.got10k_otb_errors(PRED[:3], G)
  assert e.denom == 3


def test_got10k_drops_only_nan_rows_for_uav():
  gt = G.copy()
  gt[3] = np.nan
  o, _, _ = scores("uav123", "got10k", [protocols.SequenceInput("s", gt,
                                                                PRED)])
  # Frames 1, 2, 3, 5 remain: IoUs [1, .4545, 0, 0].
  assert o["success_rate_050"] == pytest.approx(0.25)
  o2, _, _ = scores("otb", "got10k", [protocols.SequenceInput("s", gt, PRED)])
  assert o2["success_rate_050"] == pytest.approx(0.2)


def test_matlab_overall_skips_all_zero_curves_per_type():
  bad_gt = np.array([[0, 0, 10, 10]] * 3, np.float64)  # never valid (x = 0)
  good = protocols.SequenceInput("good", G, PRED)
  bad = protocols.SequenceInput("bad", bad_gt, np.ones((3, 4)))
  o, per, _ = scores("otb", None, [good, bad])
  assert per["bad"]["success_auc"] == 0.0
  assert per["bad"]["precision_20px"] == 1.0  # CE -1 counts as precise
  assert o["success_auc"] == pytest.approx(12 / 21)  # bad seq dropped
  assert o["precision_20px"] == pytest.approx((0.8 + 1.0) / 2)


def test_bins_and_inclusive_threshold_for_perfect_tracker():
  perfect = [protocols.SequenceInput("s", G, G)]
  assert scores("otb", None, perfect)[0]["success_auc"] == pytest.approx(
      20 / 21)
  o = scores("otb", "neuron", perfect)[0]
  assert o["success_auc"] == pytest.approx(100 / 101)
  assert o["success_rate_075"] == 1.0
  o = scores("tlp", None, perfect)[0]
  assert o["success_auc"] == pytest.approx(100 / 101)
  assert protocols.evaluate_trackingnet([("s", G, G)])[0][
      "success_trapz"] == pytest.approx(1.0)


def test_trackingnet_rounding_missing_rows_and_files():
  gt = np.array([[10.4, 10.6, 20, 20]] * 3)
  # Row 2 rounds to the GT (half to even: 10.5 -> 10), row 3 is missing.
  pred = np.array([[0, 0, 1, 1], [10.5, 11.4, 20.2, 19.6]])
  r = protocols.trackingnet_sequence(pred, gt)
  assert r.success[-1] == pytest.approx(2 / 3)
  assert r.precision[0] == pytest.approx(2 / 3)
  np.testing.assert_array_equal(r.covered, [True, True, False])
  z = protocols.trackingnet_sequence(None, gt)
  assert z.success[-1] == pytest.approx(1 / 3)  # only frame 1 (set to GT)
  o, _, _ = protocols.evaluate_trackingnet([("a", gt, pred), ("b", gt, None)])
  assert o["coverage"] == pytest.approx(3 / 6)


def test_get_protocol_errors_and_names():
  assert protocols.get_protocol("lasot").name == "lasot_official"
  assert protocols.get_protocol("tlp").success_bins == 101
  assert protocols.get_protocol("lasot", "neuron").success_bins == 21
  assert protocols.get_protocol("otb2013", "neuron").success_bins == 21
  assert protocols.get_protocol("otb", "neuron").success_bins == 101
  assert protocols.get_protocol("uav123", "pytracking").pytracking_dataset == (
      "uav")
  with pytest.raises(ValueError, match="unknown benchmark 'vot'"):
    protocols.get_protocol("vot")
  with pytest.raises(ValueError, match="unknown --protocol 'foo'"):
    protocols.get_protocol("otb", "foo")
  with pytest.raises(ValueError, match="no 'neuron' protocol"):
    protocols.get_protocol("got10k", "neuron")


# ---------------------------------------------------------------------------
# Long-term: OxUvA (E7) and VOT-LT (E8).


@pytest.mark.parametrize("tpr,tnr,gm,maxgm", [
    (0.75, 0.5, 0.612372, 0.612372), (0.75, 0.0, 0.0, 0.433013),
    (0.6, 0.4, 0.489898, 0.5)])
def test_e7_oxuva_gm_and_maxgm(tpr, tnr, gm, maxgm):
  assert longterm.max_geometric_mean_line(tnr, tpr) == pytest.approx(
      maxgm, abs=1e-6)
  # A brute-force search over theta agrees.
  th = np.linspace(0, 1, 200001)
  brute = np.sqrt(((1 - th) * tnr + th) * ((1 - th) * tpr)).max()
  assert longterm.max_geometric_mean_line(tnr, tpr) == pytest.approx(
      brute, abs=1e-6)
  # Counts giving these rates.
  c = longterm.OxuvaCounts(tp=int(tpr * 20), fn=20 - int(tpr * 20),
                           tn=int(tnr * 10), fp=10 - int(tnr * 10))
  q = longterm.oxuva_quality(c)
  assert q["GM"] == pytest.approx(gm, abs=1e-6)
  assert q["MaxGM"] == pytest.approx(maxgm, abs=1e-6)


def test_oxuva_track_assessment_reuses_previous_prediction():
  box = (0.1, 0.5, 0.2, 0.6)
  labels = {30: (True, box), 60: (True, box), 90: (False, None),
            120: (False, None)}
  preds = {1: (True, 0.9, (0.1, 0.5, 0.2, 0.6)),
           60: (True, 0.8, (0.6, 0.9, 0.2, 0.6)),   # IoU 0 -> FN
           90: (True, 0.2, (0.1, 0.5, 0.2, 0.6)),   # FP
           100: (False, 0.0, None)}                 # carried to 120: TN
  c = longterm.oxuva_assess_track(labels, preds)
  assert (c.tp, c.fn, c.fp, c.tn) == (1, 1, 1, 1)
  # IoU is computed after clipping both boxes to the unit square.
  assert longterm.oxuva_iou((-1.0, 0.5, 0.0, 1.0),
                            (0.0, 0.5, 0.0, 1.0)) == pytest.approx(1.0)
  with pytest.raises(ValueError, match="no prediction at or before frame 30"):
    longterm.oxuva_assess_track(labels, {40: preds[1]}, what="t")


def test_oxuva_counts_are_pooled_over_tracks():
  box = (0.0, 0.5, 0.0, 0.5)
  good = {30: (True, box)}
  o, per, _ = protocols.evaluate_oxuva([
      ("a", {30: (True, box), 60: (True, box), 90: (True, box)},
       {30: (True, 1.0, box)}),
      ("b", {30: (False, None)}, {30: (False, 0.0, None)}),
      ("c", good, {30: (False, 0.0, None)})])
  assert o["TPR"] == pytest.approx(3 / 4) and o["TNR"] == 1.0
  assert math.isnan(per["b"]["TPR"]) and per["b"]["TNR"] == 1.0


E8_GT = np.array([[10, 10, 20, 20], [12, 10, 20, 20], [np.nan] * 4,
                  [14, 14, 20, 20]])
E8_PRED = np.array([[10, 10, 20, 20], [13, 12, 20, 20], [5, 5, 0, 0],
                    [30, 30, 20, 20]], np.float64)
E8_CONF = np.array([1.0, 0.9, 0.1, 0.5])


def test_e8_vot_longterm():
  t = longterm.vot_thresholds(E8_CONF)
  np.testing.assert_array_equal(t, [np.inf, 1.0, 0.9, 0.5, 0.1, -np.inf])
  ov = [longterm.vot_overlap(p, g, (100, 100)) for p, g in zip(E8_PRED, E8_GT)]
  pr, re = longterm.vot_pr_curves(ov, E8_CONF, 3, t)
  np.testing.assert_allclose(
      pr, [1, 1, 0.873362, 0.589044, 0.441783, 0.441783], atol=1e-6)
  np.testing.assert_allclose(
      re, [0, 0.333333, 0.582242, 0.589044, 0.589044, 0.589044], atol=1e-6)
  o, per = longterm.vot_longterm([{"pred": E8_PRED, "gt": E8_GT,
                                   "confidence": E8_CONF,
                                   "image_size": (100, 100)}])
  assert o["vot_lt_f"] == pytest.approx(0.698690, abs=1e-6)
  assert o["vot_lt_precision"] == pytest.approx(0.873362, abs=1e-6)
  assert o["vot_lt_recall"] == pytest.approx(0.582242, abs=1e-6)
  assert per[0] == o


def test_vot_overlap_empty_regions_and_image_bounds():
  absent = np.full(4, np.nan)
  assert longterm.vot_overlap(np.zeros(4), absent, (100, 100)) == 1.0
  assert longterm.vot_overlap(np.array([5, 5, 0, 0.]), absent, (100, 100)) == 0
  # Pixels outside a 20x20 image do not count: 10x10 inside vs 10x30.
  a = np.array([10, 10, 10, 10.])
  b = np.array([10, 10, 10, 30.])
  assert longterm.vot_overlap(a, b, (20, 20)) == pytest.approx(1.0)
  assert longterm.vot_overlap(a, b, None) == pytest.approx(1 / 3)


def ref_vot_overlap(p, g, size):
  """Mask-based reference of the vot toolkit's rectangle overlap."""
  def bounds(r):
    if r is None:
      return (0, 0, 0, 0)
    return (int(r[0]), int(r[1]), int(r[0] + r[2] - 1), int(r[1] + r[3] - 1))

  p = None if np.isnan(p).any() else np.round(p)
  g = None if np.isnan(g).any() else np.round(g)
  b1, b2 = bounds(p), bounds(g)
  u = (min(b1[0], b2[0]), min(b1[1], b2[1]), max(b1[2], b2[2]),
       max(b1[3], b2[3]))
  if u[0] >= u[2] or u[1] >= u[3]:
    return 1.0
  rb = (max(0, u[0]), max(0, u[1]), min(size[0] - 1, u[2]),
        min(size[1] - 1, u[3]))
  if rb[0] >= rb[2] or rb[1] >= rb[3]:
    return 0.0
  ys, xs = np.mgrid[rb[1]:rb[3] + 1, rb[0]:rb[2] + 1]

  def mask(r):
    if r is None:
      return np.zeros(xs.shape, bool)
    return ((xs >= r[0]) & (xs <= r[0] + r[2] - 1) & (ys >= r[1]) &
            (ys <= r[1] + r[3] - 1))

  m1, m2 = mask(p), mask(g)
  union = (m1 | m2).sum()
  return float((m1 & m2).sum()) / union if union else 0.0


def test_vot_overlap_matches_mask_reference():
  rng = np.random.default_rng(2)
  for _ in range(400):
    p = np.concatenate([rng.uniform(-20, 70, 2), rng.uniform(-3, 40, 2)])
    g = np.concatenate([rng.uniform(-20, 70, 2), rng.uniform(0, 40, 2)])
    if rng.random() < 0.1:
      g[:] = np.nan
    if rng.random() < 0.1:
      p[2:] = 0
    size = (int(rng.integers(20, 80)), int(rng.integers(20, 80)))
    assert longterm.vot_overlap(p, g, size) == pytest.approx(
        ref_vot_overlap(p, g, size), abs=1e-12)


def test_vot_thresholds_subsample_many_scores():
  s = np.linspace(0, 1, 250)
  t = longterm.vot_thresholds(s)
  assert len(t) == 100 and t[0] == np.inf and t[-1] == -np.inf
  desc = np.sort(s)[::-1]
  k = 250 // 98
  idx = [int(round(v)) for v in np.linspace(k, 250 - k, 98)]
  np.testing.assert_array_equal(t[1:-1], desc[idx])


def ref_matlab_sequence(pred, gt, absent):
  """Plain-Python OTB/LaSOT MATLAB logic (metrics.md §6.1-6.2): returns the
  success (21), precision (51) and normalised (51) curves."""
  n = len(gt)
  pred = [list(r) for r in pred[:n]]
  for i in range(1, n):
    r = pred[i]
    bad = any(math.isnan(v) for v in r) or r[2] <= 0 or r[3] <= 0
    if bad and not any(math.isnan(v) for v in gt[i]):
      pred[i] = list(pred[i - 1])
  pred[0] = list(gt[0])
  ious, ces, nces = [], [], []
  for i in range(n):
    if absent[i]:
      continue
    g, r = gt[i], pred[i]
    if all(v > 0 for v in g):  # NaN compares False
      ious.append(ref_iou(r, g) if r[2] > 0 and r[3] > 0 else 0.0)
      ces.append(ref_ce(r, g))
      nces.append(math.hypot((r[0] + r[2] / 2 - g[0] - g[2] / 2) / g[2],
                             (r[1] + r[3] / 2 - g[1] - g[3] / 2) / g[3]))
    else:
      ious.append(-1.0)
      ces.append(-1.0)
      nces.append(-1.0)
  s = [sum(v > t for v in ious) / n for t in np.linspace(0, 1, 21)]
  p = [sum(v <= t for v in ces) / n for t in range(51)]
  q = [sum(v <= t / 100 for v in nces) / n for t in range(51)]
  return np.array(s), np.array(p), np.array(q)


def test_matlab_logic_matches_plain_python_reference():
  rng = np.random.default_rng(1)
  seqs, want = [], []
  for k in range(6):
    n = 40
    gt = np.concatenate([rng.uniform(1, 60, (n, 2)),
                         rng.uniform(5, 40, (n, 2))], 1).round(1)
    pred = gt + rng.normal(0, 6, (n, 4))
    pred[rng.random(n) < 0.15, 2] = 0            # zero width
    pred[rng.random(n) < 0.1] = np.nan           # NaN rows
    gt[rng.random(n) < 0.1] = np.nan             # UAV-style NaN GT
    gt[rng.random(n) < 0.1, 0] = 0               # x = 0: invalid GT
    gt[0] = [5, 5, 20, 20]
    absent = rng.random(n) < 0.1
    seqs.append(protocols.SequenceInput(f"s{k}", gt, pred, absent=absent))
    want.append(ref_matlab_sequence(pred, gt, absent))
  _, per, curves = scores("lasot", None, seqs)
  for k, (s, p, q) in enumerate(want):
    assert per[f"s{k}"]["success_auc"] == pytest.approx(s.mean(), abs=1e-12)
    assert per[f"s{k}"]["precision_20px"] == pytest.approx(p[20], abs=1e-12)
    assert per[f"s{k}"]["norm_precision_020"] == pytest.approx(q[20],
                                                               abs=1e-12)
  np.testing.assert_allclose(curves["success"],
                             np.mean([w[0] for w in want], 0), atol=1e-12)
  np.testing.assert_allclose(curves["precision"],
                             np.mean([w[1] for w in want], 0), atol=1e-12)


def test_pytracking_curves_are_float32_like_the_toolkit():
  o, per, c = scores("otb", "pytracking", [protocols.SequenceInput("s", G,
                                                                   PRED)])
  assert c["success"].dtype == np.float32
  # 0.6 stored as float32 then x100: pytracking prints 60.000004 for OP50.
  assert o["success_rate_050"] == float(np.float32(0.6) * np.float32(100)) / 100
  assert abs(o["success_rate_050"] - 0.6) < 1e-7
  assert per["s"]["precision_20px"] == pytest.approx(0.8, abs=1e-7)


def test_no_warnings_on_clean_input():
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    metrics.got10k_otb_errors(PRED, G)
    metrics.matlab_errors(PRED, G)
