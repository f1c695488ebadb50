"""Anchors and the cosine window (docs/tracking.md#anchors)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from siamdeploy.runtime.anchors import anchor_grid, anchor_shapes, cosine_window

RATIOS = [0.33, 0.5, 1, 2, 3]

# ws = int(sqrt(64 / r)), hs = int(ws * r), times scale 8:
#  r=0.33: sqrt(193.94)=13.93 -> 13, int(4.29)=4   -> 104 x 32
#  r=0.5 : sqrt(128)=11.31   -> 11, int(5.5)=5     ->  88 x 40
#  r=1   : 8, 8                                    ->  64 x 64
#  r=2   : sqrt(32)=5.66     -> 5,  int(10)=10     ->  40 x 80
#  r=3   : sqrt(21.33)=4.62  -> 4,  int(12)=12     ->  32 x 96
PYSOT_SHAPES = [(104, 32), (88, 40), (64, 64), (40, 80), (32, 96)]


def test_anchor_shapes_pysot():
    shapes = anchor_shapes(8, RATIOS, [8])
    assert shapes.shape == (5, 2)
    assert [tuple(int(v) for v in s) for s in shapes] == PYSOT_SHAPES


def test_anchor_shapes_haooozi_ratios():
    # r=0.66: sqrt(96.97)=9.85 -> 9, int(5.94)=5 -> 72 x 40; r=1.5: sqrt(42.67)=6.53 -> 6, int(9)=9 -> 48 x 72
    shapes = anchor_shapes(8, [0.5, 0.66, 1, 1.5, 2], [8])
    assert [tuple(int(v) for v in s) for s in shapes] == [(88, 40), (72, 40), (64, 64), (48, 72), (40, 80)]


def test_anchor_shapes_two_scales_scale_inner():
    # pysot loops ratios outside, scales inside: (r=1, s=4), (r=1, s=8)
    shapes = anchor_shapes(8, [1], [4, 8])
    assert shapes.tolist() == [[32.0, 32.0], [64.0, 64.0]]


@pytest.mark.parametrize("n, ori", [(17, -64), (19, -72), (21, -80), (25, -96)])
def test_anchor_grid_layout(n, ori):
    # ori = -(N // 2) * 8: 17 -> -64, 19 -> -72, 21 -> -80, 25 -> -96
    grid = anchor_grid(8, RATIOS, [8], n)
    assert grid.shape == (5 * n * n, 4)
    # flattened index = a*N*N + i*N + j; cell (i, j) centred at (ori + 8j, ori + 8i)
    for a, (wa, ha) in enumerate(PYSOT_SHAPES):
        for i in range(n):
            for j in range(n):
                assert grid[a * n * n + i * n + j].tolist() == [ori + 8 * j, ori + 8 * i, wa, ha]


def test_anchor_grid_hand_picked_cells():
    n = 21
    grid = anchor_grid(8, RATIOS, [8], n)
    # first entry: anchor 0, cell (0, 0) -> (-80, -80, 104, 32)
    assert grid[0].tolist() == [-80, -80, 104, 32]
    # anchor 0, cell (0, 1) -> x moves first: (-72, -80)
    assert grid[1].tolist() == [-72, -80, 104, 32]
    # anchor 0, cell (1, 0) = index 21 -> (-80, -72)
    assert grid[21].tolist() == [-80, -72, 104, 32]
    # anchor 2, centre cell (10, 10) = 2*441 + 10*21 + 10 = 1102 -> (0, 0, 64, 64)
    assert grid[1102].tolist() == [0, 0, 64, 64]
    # anchor 4, cell (20, 3) = 4*441 + 20*21 + 3 = 2187 -> (-80+24, -80+160) = (-56, 80), 32 x 96
    assert grid[2187].tolist() == [-56, 80, 32, 96]


def _hann(n: int) -> list[float]:
    # Hann window: 0.5 - 0.5 cos(2 pi k / (N - 1))
    return [0.5 - 0.5 * math.cos(2 * math.pi * k / (n - 1)) for k in range(n)]


@pytest.mark.parametrize("n", [17, 19, 21, 25])
def test_cosine_window_is_tiled_outer_hann(n):
    win = cosine_window(n, 5)
    assert win.shape == (5 * n * n,) and win.dtype == np.float64
    h = _hann(n)
    for a in range(5):
        for i in range(n):
            for j in range(n):
                assert win[a * n * n + i * n + j] == pytest.approx(h[i] * h[j], abs=1e-12)


def test_cosine_window_hand_values():
    n = 17
    win = cosine_window(n, 5).reshape(5, n, n)
    # hann[8] = 0.5 - 0.5 cos(pi) = 1; hann[4] = 0.5 - 0.5 cos(pi/2) = 0.5; hann[0] = 0
    assert win[3, 8, 8] == pytest.approx(1.0)
    assert win[0, 4, 8] == pytest.approx(0.5)
    assert win[4, 4, 4] == pytest.approx(0.25)
    assert win[1, 0, 8] == pytest.approx(0.0, abs=1e-15)
    assert win[2, 8, 16] == pytest.approx(0.0, abs=1e-15)
