"""From raw RPN outputs to scored, penalised box candidates (see docs/tracking.md#decoding-and-selection)."""
from __future__ import annotations

import numpy as np


def foreground_scores(cls: np.ndarray) -> np.ndarray:
    """``cls (1, 2A, N, N)`` -> ``(A*N*N,)`` float32 softmax foreground probability.

    Channel ``k*A + a`` is class ``k`` of anchor ``a``; computed in float32 like the upstream torch softmax.
    """
    logits = np.asarray(cls[0], np.float32).reshape(2, -1)
    top = np.maximum(logits[0], logits[1])
    e0 = np.exp(logits[0] - top)
    e1 = np.exp(logits[1] - top)
    return e1 / (e0 + e1)


def decode_boxes(loc: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """``loc (1, 4A, N, N)`` + anchors ``(A*N*N, 4)`` -> ``(4, A*N*N)`` float32 ``(cx, cy, w, h)`` in crop
    pixels relative to the crop centre (float32, as upstream decodes)."""
    delta = np.asarray(loc[0], np.float32).reshape(4, -1)
    out = np.empty_like(delta)
    out[0] = delta[0] * anchors[:, 2] + anchors[:, 0]
    out[1] = delta[1] * anchors[:, 3] + anchors[:, 1]
    with np.errstate(over="ignore"):
        out[2] = np.exp(delta[2]) * anchors[:, 2]
        out[3] = np.exp(delta[3]) * anchors[:, 3]
    return out


def _change(r: np.ndarray) -> np.ndarray:
    return np.maximum(r, 1.0 / r)


def _padded_size(w: np.ndarray | float, h: np.ndarray | float) -> np.ndarray | float:
    pad = (w + h) * 0.5
    return np.sqrt((w + pad) * (h + pad))


def size_penalty(boxes: np.ndarray, size: tuple[float, float], scale_z: float, penalty_k: float) -> np.ndarray:
    """``exp(-(r_c * s_c - 1) * k)``: penalises change of scale and aspect from the current target.

    boxes: ``(4, M)`` decoded boxes in crop pixels; size: current target ``(w, h)`` in frame pixels;
    scale_z: crop pixels per frame pixel.
    """
    w, h = size
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s_c = _change(np.asarray(_padded_size(boxes[2], boxes[3]) / _padded_size(w * scale_z, h * scale_z)))
        r_c = _change((w / h) / (boxes[2] / boxes[3]))
        return np.exp(-(r_c * s_c - 1.0) * penalty_k)


def select_best(score: np.ndarray, penalty: np.ndarray, window: np.ndarray, window_influence: float) -> int:
    """``argmax(penalty*score*(1-wi) + window*wi)`` (first index on ties, like numpy/upstream)."""
    pscore = penalty * score
    pscore = pscore * (1 - window_influence) + window * window_influence
    return int(np.argmax(pscore))
