"""siamdeploy's metrics against the got10k toolkit (pip ``got10k``, with ``six``) as an independent oracle."""
from __future__ import annotations

import os

import numpy as np
import pytest

from siamdeploy.eval import metrics as M
from siamdeploy.eval.datasets import load_dataset
from siamdeploy.eval.runner import compute_metrics
from siamdeploy.eval.writers import write_got10k_results

got10k_metrics = pytest.importorskip("got10k.utils.metrics",
                                     reason="got10k toolkit not installed (pip install got10k six)")


def _random_boxes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    gt = np.column_stack([rng.uniform(0, 200, n), rng.uniform(0, 150, n), rng.uniform(5, 80, n),
                          rng.uniform(5, 80, n)])
    pred = gt + rng.normal(0, 1, (n, 4)) * np.array([12, 12, 8, 8])
    pred[:, 2:] = np.abs(pred[:, 2:])
    pred[::9] = gt[::9]                      # exact hits (IoU 1)
    pred[3::11] = [1000, 1000, 10, 10]       # far away (IoU 0, large centre error)
    pred[5::13, 2] = 0.0                     # zero width
    return pred, gt


def test_otb_curves_match_got10k_experiment():
    from got10k.experiments.otb import ExperimentOTB

    oracle = object.__new__(ExperimentOTB)   # only the curve code, no dataset
    oracle.nbins_iou, oracle.nbins_ce = 21, 51
    rng = np.random.default_rng(3)
    preds, gts = zip(*[_random_boxes(rng, n) for n in (40, 57, 23, 90)])
    succ, prec = [], []
    for p, g in zip(preds, gts):
        ious = got10k_metrics.rect_iou(p.copy(), g.copy())
        errs = got10k_metrics.center_error(p, g)
        s, q = oracle._calc_curves(ious, errs)
        succ.append(s)
        prec.append(q)
    succ_mean, prec_mean = np.mean(succ, axis=0), np.mean(prec, axis=0)
    ours = M.otb_metrics(list(preds), list(gts))
    np.testing.assert_allclose(ours["success_curve"], succ_mean, atol=1e-6)
    np.testing.assert_allclose(ours["precision_curve"], prec_mean, atol=1e-6)
    assert abs(ours["success_auc"] - np.mean(succ_mean)) < 1e-6
    assert abs(ours["precision_20px"] - prec_mean[20]) < 1e-6
    assert abs(ours["success_rate_50"] - succ_mean[10]) < 1e-6
    for name, s in zip(ours["per_sequence"], succ):
        assert abs(ours["per_sequence"][name]["success_auc"] - np.mean(s)) < 1e-6


def test_rect_iou_and_center_error_match_got10k():
    rng = np.random.default_rng(4)
    pred, gt = _random_boxes(rng, 200)
    np.testing.assert_allclose(M.iou(pred, gt), got10k_metrics.rect_iou(pred.copy(), gt.copy()), atol=1e-6)
    np.testing.assert_allclose(M.center_error(pred, gt), got10k_metrics.center_error(pred, gt), atol=1e-9)
    bound = (160, 120)
    np.testing.assert_allclose(M.clip_boxes_got10k(pred, bound)[:, 2:].min(), 0.0)
    ours = M._got10k_iou(M.clip_boxes_got10k(pred, bound), M.clip_boxes_got10k(gt, bound))
    np.testing.assert_allclose(ours, got10k_metrics.rect_iou(pred.copy(), gt.copy(), bound=bound), atol=1e-9)


def _rotated(cx: float, cy: float, w: float, h: float, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    pts = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]]) @ np.array([[c, -s], [s, c]]).T
    return (pts + [cx, cy]).reshape(-1)


def test_continuous_polygon_overlap_matches_shapely_oracle():
    rng = np.random.default_rng(5)
    bound = (120, 90)
    for _ in range(150):
        a = _rotated(*rng.uniform(0, 120, 2), *rng.uniform(5, 60, 2), rng.uniform(-1, 1))
        kind = rng.integers(3)
        if kind == 0:
            b = np.array([*rng.uniform(-10, 110, 2), *rng.uniform(5, 60, 2)])     # a box
        elif kind == 1:
            b = _rotated(*(a.reshape(4, 2).mean(0) + rng.normal(0, 8, 2)), *rng.uniform(5, 60, 2), rng.uniform(-1, 1))
        else:
            b = a + rng.normal(0, 3, 8)                                              # a perturbed quad
        want = got10k_metrics.poly_iou(np.array(a), np.array(b), bound=bound)[0]
        got = M.region_overlap(a, b, bound)
        assert got == pytest.approx(want, abs=1e-6)
        assert M.region_overlap(a, b) == pytest.approx(got10k_metrics.poly_iou(np.array(a), np.array(b))[0], abs=1e-6)


def test_concave_polygon_against_box_matches_shapely():
    arrow = np.array([10, 10, 50, 30, 10, 50, 25, 30], np.float64)    # concave quadrilateral
    box = np.array([20, 15, 40, 20], np.float64)
    want = got10k_metrics.poly_iou(arrow, box)[0]
    assert M.region_overlap(arrow, box) == pytest.approx(want, abs=1e-9)
    assert M.region_overlap(box, arrow) == pytest.approx(want, abs=1e-9)


def test_got10k_report_on_generated_folder_matches(layout_root, generated, tmp_path):
    """End to end: our reader + writer + metrics against got10k's ExperimentGOT10k.report on the same files."""
    from got10k.experiments import ExperimentGOT10k

    root = layout_root("got10k")                       # .../val
    dataset = load_dataset("got10k", root)
    rng = np.random.default_rng(6)
    preds = []
    for seq in dataset.sequences:
        p = seq.boxes + rng.normal(0, 1, seq.boxes.shape) * np.array([6, 6, 4, 4])
        p[2] = [-15, -12, 30, 25]                      # hangs over the top-left corner: the clip quirk
        p[4] = [seq.image_size[0] - 10, 40, 30, 20]    # hangs over the right edge
        p[:, 2:] = np.abs(p[:, 2:])
        preds.append(np.round(p, 4))                   # what the %.4f result files hold
    result_dir = tmp_path / "results"
    for seq, p in zip(dataset.sequences, preds):
        write_got10k_results(str(result_dir / "GOT-10k" / "mine"), seq.name, p, times=[0.01] * len(seq),
                             origin=seq.origin)
    experiment = ExperimentGOT10k(str(tmp_path_root(root)), subset="val", result_dir=str(result_dir),
                                  report_dir=str(tmp_path / "reports"))
    report = experiment.report(["mine"])["mine"]["overall"]
    ours = compute_metrics("got10k", dataset.sequences, preds)
    assert any((s.cover == 0).any() for s in dataset.sequences), "the generated data should exercise cover == 0"
    assert ours["ao"] == pytest.approx(report["ao"], abs=1e-6)
    assert ours["sr_0.50"] == pytest.approx(report["sr"], abs=1e-6)
    np.testing.assert_allclose(ours["success_curve"], report["succ_curve"], atol=1e-6)
    assert ours["sr_0.75"] == pytest.approx(report["succ_curve"][75], abs=1e-6)


def tmp_path_root(val_folder: str) -> str:
    """The dataset root above the ``val`` folder the generator's GOT-10k layout returns."""
    return os.path.dirname(val_folder)
