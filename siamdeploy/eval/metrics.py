"""OTB-style metrics (REFERENCE.md §8): continuous IoU, success curve and its AUC, centre-error precision.

Boxes are ``(N, 4)`` arrays of ``(x, y, w, h)``; centres are ``(x + (w-1)/2, y + (h-1)/2)``.
"""
from __future__ import annotations

import numpy as np


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Continuous intersection over union, row by row; ``(N,)`` in [0, 1]."""
    a = np.atleast_2d(np.asarray(a, np.float64))
    b = np.atleast_2d(np.asarray(b, np.float64))
    x0 = np.maximum(a[:, 0], b[:, 0])
    y0 = np.maximum(a[:, 1], b[:, 1])
    x1 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y1 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def center_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between box centres, ``(N,)`` pixels."""
    a = np.atleast_2d(np.asarray(a, np.float64))
    b = np.atleast_2d(np.asarray(b, np.float64))
    ca = a[:, :2] + (a[:, 2:] - 1) / 2
    cb = b[:, :2] + (b[:, 2:] - 1) / 2
    return np.sqrt(((ca - cb) ** 2).sum(axis=1))


def success_curve(pred: np.ndarray, gt: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
    """Fraction of frames with IoU **>** each threshold (default ``linspace(0, 1, 21)``)."""
    thresholds = np.linspace(0, 1, 21) if thresholds is None else thresholds
    overlaps = iou(pred, gt)
    return np.array([(overlaps > t).mean() for t in thresholds])


def success_auc(pred: np.ndarray, gt: np.ndarray) -> float:
    """OTB success score: the **mean** of the 21-point success curve (not a trapezoid)."""
    return float(success_curve(pred, gt).mean())


def precision_at(pred: np.ndarray, gt: np.ndarray, pixels: float = 20.0) -> float:
    """Fraction of frames whose centre error is **<=** ``pixels``."""
    return float((center_error(pred, gt) <= pixels).mean())
