"""Protocol quirks (docs/evaluation.md) on hand-made cases with hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from siamdeploy.eval import metrics as M
from siamdeploy.eval.datasets import vot_init_box
from siamdeploy.eval.runner import compute_metrics, run_ope, run_supervised

from .conftest import IndexedSequence, ScriptedTracker

GT = (20.0, 20.0, 40.0, 40.0)
FAR = (150.0, 100.0, 10.0, 10.0)


def _vot_sequence(n: int) -> IndexedSequence:
    return IndexedSequence("vot_case", [f"{i}.jpg" for i in range(n)], np.tile(GT, (n, 1)), origin=0,
                           size=(200, 150))


def _shrunk(i: int) -> tuple[float, float, float, float]:
    """A box inside GT whose IoU with it is k_i = 0.5 + i/100 (width scaled by k_i)."""
    return (GT[0], GT[1], GT[2] * (0.5 + i / 100), GT[3])


def test_vot_failure_reinit_after_five_frames():
    tracker = ScriptedTracker(lambda i: FAR if i == 7 else _shrunk(i))
    traj, times = run_supervised(tracker, _vot_sequence(20))
    codes = [e if isinstance(e, int) else "box" for e in traj]
    assert codes == [1] + ["box"] * 6 + [2, 0, 0, 0, 0, 1] + ["box"] * 7
    assert [f for f, _ in tracker.inits] == [0, 12]
    assert all(box == GT for _, box in tracker.inits)
    assert tracker.tracked == list(range(1, 8)) + list(range(13, 20))   # skipped frames are not tracked
    assert all(math.isnan(t) for t in times[8:12])
    # accuracy ignores 10 frames from each (re-)init: 0..9 and 12..21; 7 fails; 8..11 skipped -> nothing left
    acc = M.vot_overlaps(traj, [GT] * 20, (200, 150), burnin=10)
    assert np.isnan(acc).all()
    raw = M.vot_overlaps(traj, [GT] * 20, (200, 150), burnin=0)
    finite = [i for i in range(20) if not np.isnan(raw[i])]
    assert finite == list(range(1, 7)) + list(range(13, 20))
    assert raw[3] == pytest.approx(0.53)


def test_vot_accuracy_and_robustness_on_30_frames():
    tracker = ScriptedTracker(lambda i: FAR if i == 7 else _shrunk(i))
    seq = _vot_sequence(30)
    traj, _ = run_supervised(tracker, seq)
    result = compute_metrics("vot", [seq], [traj], eao_range=(1, 30))
    expected_accuracy = np.mean([0.5 + i / 100 for i in range(22, 30)])   # frames 22..29 only
    assert result["accuracy"] == pytest.approx(expected_accuracy, abs=1e-12)
    assert result["failures"] == 1
    assert result["failures_per_100_frames"] == pytest.approx(100 / 30)


def test_vot_polygon_prediction_and_ground_truth():
    """SiamMask-style polygons are compared as polygons; an overlap of exactly 0 (touching) is a failure."""
    poly_gt = np.array([30, 10, 50, 30, 30, 50, 10, 30], np.float64)      # a diamond, area 800

    class PolygonTracker(ScriptedTracker):
        def track(self, frame):
            result = super().track(frame)
            i = int(frame[0, 0, 0])
            result.polygon = (poly_gt.reshape(4, 2) + (0 if i != 2 else 20)).astype(np.float64)
            return result

    seq = IndexedSequence("poly", [f"{i}.jpg" for i in range(4)], np.tile(vot_init_box(poly_gt), (4, 1)),
                          polygons=np.tile(poly_gt, (4, 1)), size=(200, 150))
    tracker = PolygonTracker(lambda i: GT)
    traj, _ = run_supervised(tracker, seq)
    assert np.allclose(traj[1], poly_gt)       # the polygon, not the bbox, is recorded
    assert traj[2] == M.VOT_FAILURE             # shifted by (20, 20): touches at one corner, overlap 0
    assert traj[3] == M.VOT_SKIP


def test_vot_init_box_area_rule():
    # a square of side sqrt(200) rotated by 45 degrees: A1 = 200, bounding box 20 x 20 -> s = sqrt(1/2)
    poly = [0, 10, 10, 0, 20, 10, 10, 20]
    s = math.sqrt(200 / 400)
    w = s * 20 + 1
    x, y, bw, bh = vot_init_box(poly)
    assert (bw, bh) == pytest.approx((w, w))
    assert (x + (bw - 1) / 2, y + (bh - 1) / 2) == pytest.approx((10, 10))
    # an axis-aligned polygon in the inclusive convention gives the box back; 4 values pass through
    assert vot_init_box([5, 6, 14, 6, 14, 25, 5, 25]) == pytest.approx((5, 6, 10, 20))
    assert vot_init_box([5, 6, 10, 20]) == (5, 6, 10, 20)


def test_eao_fragments_hand_computed():
    nan = np.nan
    # seq 1: failure at frame 2, re-init at 4 (skipping 2); seq 2: no failure
    ov1 = [nan, 0.5, nan, nan, nan, 0.9]
    ov2 = [nan, 1, 1, 1, 1, 1]
    res = M.vot_eao([ov1, ov2], [[2], []], [6, 6], eao_range=(2, 6), skipping=2)
    # fragments: [0,.5,0,0,0,0] (zero-padded), [0,.9,nan..] (last, not padded), [nan,1,1,1,1,1]
    expected = [1.0, (0.5 + 0.9 + 1) / 3, (0.25 + 1) / 2, (0.5 / 3 + 1) / 2, (0.125 + 1) / 2, (0.1 + 1) / 2]
    np.testing.assert_allclose(res["expected_overlap"], expected, atol=1e-12)
    assert res["eao"] == pytest.approx(np.mean(expected[1:6]), abs=1e-12)
    assert res["fragments"] == 3
    # range starting at 1 includes the curve's first value (1 by definition), as pysot's slice does
    assert M.vot_eao([ov1, ov2], [[2], []], [6, 6], eao_range=(1, 2), skipping=2)["eao"] == pytest.approx(
        (1.0 + expected[1]) / 2)
    # a range past the longest sequence: no value
    assert math.isnan(M.vot_eao([ov1, ov2], [[2], []], [6, 6], eao_range=(10, 20), skipping=2)["eao"])


def test_eao_failure_whose_reinit_is_past_the_end_does_not_cut():
    nan = np.nan
    ov = [nan, 0.8, 0.6, 0.4, 0.2, nan]          # failure at the last frame; re-init would be frame 7
    res = M.vot_eao([ov], [[5]], [6], eao_range=(2, 6), skipping=2)
    # one fragment, NaN -> 0, not padded: [0, .8, .6, .4, .2, 0]
    expected = [1.0, 0.8, 0.7, 0.6, 0.5, 0.4]
    np.testing.assert_allclose(res["expected_overlap"], expected, atol=1e-12)


def test_vot_year_ranges_follow_reference():
    assert M.EAO_RANGES[2016] == (108, 371)
    assert M.EAO_RANGES[2017] == M.EAO_RANGES[2018] == (100, 356)
    assert M.EAO_RANGES[2019] == (46, 291)
    assert M.VOT_SKIP_FRAMES == 5 and M.VOT_BURNIN == 10


def test_lasot_absent_frames_removed_denominator_all_frames():
    gt = np.tile([10.0, 10.0, 20.0, 20.0], (10, 1))
    pred = gt.copy()
    pred[5:, 0] += 5                              # 5 px right: IoU 300/500 = 0.6, normalized error 0.25
    absent = np.zeros(10, bool)
    absent[3:5] = True                            # frames 3, 4 fully occluded (pred equals GT there too)
    res = M.lasot_metrics([pred], [gt], [absent])
    assert res["success_auc"] == pytest.approx((3 * 20 + 5 * 12) / (10 * 21), abs=1e-12)
    assert res["precision_20px"] == pytest.approx(0.8)
    assert res["norm_precision_at_0.20"] == pytest.approx(0.3)
    assert res["norm_precision_auc_0_0.5"] == pytest.approx((3 * 51 + 5 * 26) / (10 * 51), abs=1e-12)
    # without the absent flags the same boxes score higher: the flags matter
    assert M.ope_metrics([pred], [gt])["precision_20px"] == pytest.approx(1.0)


def test_got10k_skips_first_frame_and_invisible_frames():
    gt = np.tile([10.0, 10.0, 20.0, 20.0], (4, 1))
    pred = np.array([[80, 80, 5, 5], [15, 10, 20, 20], [80, 80, 5, 5], [10, 10, 20, 20]], np.float64)
    res = M.got10k_metrics([pred], [gt], [np.array([8, 8, 0, 8])], [(100, 100)])
    iou1 = 300 / 500
    assert res["ao"] == pytest.approx((iou1 + 1) / 2, abs=1e-9)
    assert res["sr_0.50"] == pytest.approx(1.0)
    assert res["sr_0.75"] == pytest.approx(0.5)
    assert res["frames"] == 2


def test_got10k_clip_quirk_shifts_instead_of_cutting():
    out = M.clip_boxes_got10k(np.array([[-10, 5, 30, 200]]), (100, 80))
    np.testing.assert_allclose(out, [[0, 5, 30, 75]])


def test_otb_first_frame_counts_and_strict_success():
    gt = np.tile([0.0, 0.0, 10.0, 10.0], (4, 1))
    pred = gt.copy()
    pred[1:, 0] = [5.0, 20.0, 20.0]               # IoU 50/150 = 1/3, then 0
    res = M.otb_metrics([pred], [gt])
    curve = np.array(res["success_curve"])
    assert curve[0] == pytest.approx(0.5)         # IoU > 0: frames 0 and 1
    assert curve[-1] == 0.0                       # IoU > 1 never
    assert curve[7] == pytest.approx(0.25)        # threshold 0.35 > 1/3: only frame 0
    prec = np.array(res["precision_curve"])
    assert prec[0] == pytest.approx(0.25) and prec[5] == pytest.approx(0.5)   # error <= 5 px includes 5
    assert res["success_auc"] == pytest.approx(curve.mean())


def test_run_ope_initialises_on_first_ground_truth():
    seq = IndexedSequence("ope", [f"{i}.jpg" for i in range(5)], np.tile(GT, (5, 1)), size=(200, 150))
    tracker = ScriptedTracker(_shrunk)
    boxes, times = run_ope(tracker, seq)
    assert tracker.inits == [(0, GT)]
    np.testing.assert_allclose(boxes[0], GT)
    np.testing.assert_allclose(boxes[3], _shrunk(3))
    assert len(times) == 5
