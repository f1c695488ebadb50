"""Box geometry shared by the runtime, the evaluation and the comparisons (numpy only).

Boxes are ``(x, y, w, h)`` in frame pixels, 0-based, top-left corner plus size. A tracker's state is a
centre ``(cx, cy)`` and a size ``(w, h)``; two conventions link the two, and each upstream code base uses one:

- ``half``: ``x = cx - w/2`` (pysot's reported box, foolwood/SiamMask's init);
- ``inclusive``: ``x = cx - (w-1)/2``, the centre of an inclusive pixel span ``x .. x+w-1`` (pysot's init,
  siamfc-pytorch, haooozi/SiamTrackers' reported box; the OTB centre-error metric).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

HALF = "half"
INCLUSIVE = "inclusive"


def _offset(convention: str) -> float:
    if convention == HALF:
        return 0.0
    if convention == INCLUSIVE:
        return 1.0
    raise ValueError(f"unknown box convention '{convention}'; known: {HALF}, {INCLUSIVE}")


def as_boxes(a: Any) -> np.ndarray:
    """``(N, 4)`` float64 view of one box or a sequence of boxes."""
    return np.atleast_2d(np.asarray(a, np.float64))


def box_to_centre_size(box: Sequence[float], convention: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y, w, h)`` -> (centre ``(cx, cy)``, size ``(w, h)``), float64 ``(2,)`` arrays, in ``convention``."""
    x, y, w, h = (float(v) for v in box)
    off = _offset(convention)
    return np.array([x + (w - off) / 2, y + (h - off) / 2]), np.array([w, h])


def centre_size_to_box(centre: Sequence[float], size: Sequence[float], convention: str
                       ) -> tuple[float, float, float, float]:
    """Centre ``(cx, cy)`` and size ``(w, h)`` -> ``(x, y, w, h)`` floats, in ``convention``."""
    cx, cy = (float(v) for v in centre)
    w, h = (float(v) for v in size)
    off = _offset(convention)
    return cx - (w - off) / 2, cy - (h - off) / 2, w, h


def clip_state(cx: float, cy: float, w: float, h: float, shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    """Centre into ``[0, W] x [0, H]``, size into ``[10, W] x [10, H]`` for a frame of ``shape = (H, W, ...)``
    (pysot ``_bbox_clip``)."""
    height, width = shape[:2]
    return (max(0, min(cx, width)), max(0, min(cy, height)), max(10, min(w, width)), max(10, min(h, height)))


def iou(a: Any, b: Any) -> np.ndarray:
    """Continuous intersection over union of ``(x, y, w, h)`` boxes, row by row; ``(N,)`` in [0, 1] (0 where
    the union is empty)."""
    a, b = as_boxes(a), as_boxes(b)
    x0 = np.maximum(a[:, 0], b[:, 0])
    y0 = np.maximum(a[:, 1], b[:, 1])
    x1 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y1 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(invalid="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return np.clip(out, 0.0, 1.0)


def centres(a: Any, convention: str = INCLUSIVE) -> np.ndarray:
    """``(N, 2)`` box centres in ``convention`` (default: the OTB toolkits' ``x + (w-1)/2``)."""
    a = as_boxes(a)
    return a[:, :2] + (a[:, 2:] - _offset(convention)) / 2


def center_error(a: Any, b: Any) -> np.ndarray:
    """Euclidean distance between box centres (``x + (w-1)/2``, as the OTB toolkits), ``(N,)`` pixels.
    The distance does not depend on the convention when both boxes have the same size."""
    return np.sqrt(((centres(a) - centres(b)) ** 2).sum(axis=1))
