"""RPN anchors, laid out as the trackers flatten the score map: anchor-major, then row, then column."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def anchor_shapes(stride: int, ratios: Sequence[float], scales: Sequence[float]) -> np.ndarray:
    """``(A, 2)`` float32 anchor ``(w, h)``; sides are truncated to int before scaling, as upstream does
    (stride 8, scale 8: 104x32, 88x40, 64x64, 40x80, 32x96)."""
    area = stride * stride
    shapes = []
    for ratio in ratios:
        ws = int(math.sqrt(area / ratio))
        hs = int(ws * ratio)
        shapes += [(ws * s, hs * s) for s in scales]
    return np.asarray(shapes, np.float32)


def anchor_grid(stride: int, ratios: Sequence[float], scales: Sequence[float], score_size: int) -> np.ndarray:
    """``(A*N*N, 4)`` float32 ``(cx, cy, w, h)`` in search-crop pixels relative to the crop centre.

    Cell ``(i, j)`` is centred at ``(ori + stride*j, ori + stride*i)`` with ``ori = -(N // 2) * stride``.
    """
    shapes = anchor_shapes(stride, ratios, scales)
    n = score_size
    offsets = (-(n // 2) + np.arange(n)) * stride
    xx, yy = np.meshgrid(offsets, offsets)
    num = len(shapes)
    grid = np.empty((num, n * n, 4), np.float32)
    grid[:, :, 0] = xx.reshape(-1)
    grid[:, :, 1] = yy.reshape(-1)
    grid[:, :, 2:] = shapes[:, None, :]
    return grid.reshape(-1, 4)


def cosine_window(score_size: int, anchor_num: int) -> np.ndarray:
    """Outer product of Hann windows, tiled over anchors: ``(A*N*N,)`` float64."""
    hann = np.hanning(score_size)
    return np.tile(np.outer(hann, hann).reshape(-1), anchor_num)
