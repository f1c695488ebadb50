"""RPN decoding, penalty and selection (docs/tracking.md#decoding-and-selection)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from siamdeploy.runtime.rpn_decode import decode_boxes, foreground_scores, select_best, size_penalty


# ---------------------------------------------------------------- foreground_scores
def test_foreground_scores_layout_and_softmax():
    a_num, n = 3, 2
    cls = np.zeros((1, 2 * a_num, n, n), np.float32)      # all logits 0 -> fg = 0.5
    # anchor 1, cell (0, 1): bg channel 0*3+1 = 1 -> 0, fg channel 1*3+1 = 4 -> ln 3: fg = 3 / (1 + 3) = 0.75
    cls[0, 4, 0, 1] = math.log(3)
    # anchor 0, cell (1, 0): bg channel 0 -> ln 4, fg channel 3 -> 0: fg = 1 / (4 + 1) = 0.2
    cls[0, 0, 1, 0] = math.log(4)
    # anchor 2, cell (1, 1): bg channel 2 -> 2, fg channel 5 -> 2 + ln 9: fg = 9 / 10 = 0.9 (shift-invariant)
    cls[0, 2, 1, 1] = 2.0
    cls[0, 5, 1, 1] = 2.0 + math.log(9)
    score = foreground_scores(cls)
    assert score.shape == (a_num * n * n,)
    assert score.dtype == np.float32
    expected = np.full(a_num * n * n, 0.5)
    expected[1 * 4 + 0 * 2 + 1] = 0.75    # index a*N*N + i*N + j = 5
    expected[0 * 4 + 1 * 2 + 0] = 0.2     # index 2
    expected[2 * 4 + 1 * 2 + 1] = 0.9     # index 11
    np.testing.assert_allclose(score, expected, rtol=1e-6)


def test_foreground_scores_large_logits_do_not_overflow():
    cls = np.zeros((1, 2, 1, 2), np.float32)
    cls[0, 0, 0, 0], cls[0, 1, 0, 0] = 0.0, 1000.0      # fg -> 1
    cls[0, 0, 0, 1], cls[0, 1, 0, 1] = 1000.0, 0.0      # fg -> 0
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        score = foreground_scores(cls)
    assert score[0] == pytest.approx(1.0)
    assert score[1] == pytest.approx(0.0, abs=1e-30)


# ---------------------------------------------------------------- decode_boxes
def test_decode_boxes_hand_values():
    a_num, n = 2, 2
    # anchors (cx, cy, w, h), index a*4 + i*2 + j
    anchors = np.array([[-8, -8, 10, 20], [0, -8, 10, 20], [-8, 0, 10, 20], [0, 0, 10, 20],
                        [-8, -8, 64, 32], [0, -8, 64, 32], [-8, 16, 64, 32], [0, 0, 64, 32]], np.float32)
    loc = np.zeros((1, 4 * a_num, n, n), np.float32)
    # anchor 1, cell (1, 0) -> index 1*4 + 1*2 + 0 = 6; component k is channel k*2 + 1
    loc[0, 1, 1, 0] = 0.5            # dx
    loc[0, 3, 1, 0] = -0.25          # dy
    loc[0, 5, 1, 0] = math.log(2)    # dw
    loc[0, 7, 1, 0] = 0.0            # dh
    boxes = decode_boxes(loc, anchors)
    assert boxes.shape == (4, 8)
    # cx = 0.5*64 + (-8) = 24; cy = -0.25*32 + 16 = 8; w = e^{ln 2} * 64 = 128; h = e^0 * 32 = 32
    np.testing.assert_allclose(boxes[:, 6], [24, 8, 128, 32], rtol=1e-6)
    # zero deltas decode to the anchor itself
    for idx in (0, 1, 2, 3, 4, 5, 7):
        np.testing.assert_allclose(boxes[:, idx], anchors[idx], rtol=1e-6)


def test_decode_boxes_component_channels_are_k_major():
    anchors = np.array([[0, 0, 10, 10], [100, 200, 40, 80]], np.float32)
    loc = np.zeros((1, 8, 1, 1), np.float32)
    loc[0, :, 0, 0] = [0.1, 0.2, 0.3, 0.4, 0.0, math.log(3), math.log(0.5), 0.0]
    # anchor 0: dx = ch 0 = 0.1, dy = ch 2 = 0.3, dw = ch 4 = 0, dh = ch 6 = ln 0.5
    #   -> (0.1*10 + 0, 0.3*10 + 0, 10, 5)
    # anchor 1: dx = ch 1 = 0.2, dy = ch 3 = 0.4, dw = ch 5 = ln 3, dh = ch 7 = 0
    #   -> (0.2*40 + 100, 0.4*80 + 200, 120, 80) = (108, 232, 120, 80)
    boxes = decode_boxes(loc, anchors)
    np.testing.assert_allclose(boxes[:, 0], [1, 3, 10, 5], rtol=1e-6)
    np.testing.assert_allclose(boxes[:, 1], [108, 232, 120, 80], rtol=1e-6)


# ---------------------------------------------------------------- size_penalty
def _sz(w: float, h: float) -> float:
    p = (w + h) / 2
    return math.sqrt((w + p) * (h + p))


def test_size_penalty_hand_values():
    k = 0.16
    size, scale_z = (40.0, 20.0), 2.0
    # target in crop pixels: (80, 40); sz = sqrt((80+60)(40+60)) = sqrt(14000) = 118.32
    boxes = np.array([[0, 0, 0, 0], [0, 0, 0, 0],
                      [80, 160, 40, 20],
                      [40, 80, 40, 40]], np.float32)
    pen = size_penalty(boxes, size, scale_z, k)
    assert pen.shape == (4,)
    # box 0: (80, 40) = the target: s_c = 1, r_c = 1 -> exp(0) = 1
    assert pen[0] == pytest.approx(1.0, abs=1e-7)
    # box 1: (160, 80): sz doubles -> s_c = 2, r_c = (2)/(2) = 1 -> exp(-(2-1)k) = exp(-0.16) = 0.852144
    assert pen[1] == pytest.approx(math.exp(-0.16), rel=1e-6)
    # box 2: (40, 40): sz = sqrt(80*80) = 80, s_c = 118.32/80 = 1.47902; r_c = max(2/1, 1/2) = 2
    #   -> exp(-(2*1.47902 - 1)*0.16) = exp(-0.313286) = 0.731041
    expected2 = math.exp(-(2 * math.sqrt(14000) / 80 - 1) * k)
    assert expected2 == pytest.approx(0.731041, abs=1e-6)
    assert pen[2] == pytest.approx(expected2, rel=1e-6)
    # box 3: (20, 40): aspect inverted: r_c = (40/20)/(20/40) = 4; sz = sqrt(50*70) = sqrt(3500) = sz_target/2
    #   -> s_c = 2 -> exp(-(8-1)*0.16) = exp(-1.12) = 0.326280
    assert pen[3] == pytest.approx(math.exp(-1.12), rel=1e-6)


def test_size_penalty_is_symmetric_in_scale_change():
    # change(r) = max(r, 1/r): halving and doubling the size are penalised alike
    k = 0.3
    boxes = np.array([[0, 0], [0, 0], [25, 100], [25, 100]], np.float32)
    pen = size_penalty(boxes, (25.0, 25.0), 2.0, k)     # target 50 x 50 in the crop
    # (25, 25) -> sz = 50 vs 100 -> s_c = 2; (100, 100) -> sz = 200 vs 100 -> s_c = 2; both exp(-k)
    assert pen[0] == pytest.approx(math.exp(-k), rel=1e-6)
    assert pen[1] == pytest.approx(math.exp(-k), rel=1e-6)
    # and the general formula for a non-square box against a non-square target
    pen2 = size_penalty(np.array([[0], [0], [30.0], [70.0]], np.float32), (12.0, 9.0), 3.0, 0.05)
    s_c = max(_sz(30, 70) / _sz(36, 27), _sz(36, 27) / _sz(30, 70))
    r = (12 / 9) / (30 / 70)
    r_c = max(r, 1 / r)
    assert pen2[0] == pytest.approx(math.exp(-(r_c * s_c - 1) * 0.05), rel=1e-6)


# ---------------------------------------------------------------- select_best
def test_select_best_window_blend():
    score = np.array([0.9, 0.5, 0.8])
    penalty = np.array([0.5, 1.0, 1.0])
    window = np.array([1.0, 0.0, 0.2])
    # wi = 0: pscore = penalty*score = (0.45, 0.5, 0.8) -> 2 (the penalty demotes index 0)
    assert select_best(score, penalty, window, 0.0) == 2
    # wi = 0.4: (0.45*0.6 + 0.4, 0.5*0.6, 0.8*0.6 + 0.08) = (0.67, 0.30, 0.56) -> 0
    assert select_best(score, penalty, window, 0.4) == 0
    # wi = 0.1: (0.405 + 0.1, 0.45, 0.72 + 0.02) = (0.505, 0.45, 0.74) -> 2
    assert select_best(score, penalty, window, 0.1) == 2


def test_select_best_first_index_on_ties():
    score = np.array([0.5, 0.7, 0.7, 0.7])
    ones = np.ones(4)
    zeros = np.zeros(4)
    best = select_best(score, ones, zeros, 0.0)
    assert best == 1 and type(best) is int
    # tie created by the blend: (0.2*0.5 + 0.5*0.5, 0.1*0.5 + 0.6*0.5) = (0.35, 0.35) -> first
    assert select_best(np.array([0.2, 0.1]), np.ones(2), np.array([0.5, 0.6]), 0.5) == 0
