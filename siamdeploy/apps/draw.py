"""Drawing tracking results onto frames."""
from __future__ import annotations

import cv2
import numpy as np

from ..runtime.types import TrackResult

COLOURS = ((0, 255, 0), (0, 200, 255), (255, 120, 0), (255, 0, 255))


def draw_result(frame: np.ndarray, result: TrackResult, colour: tuple[int, int, int] = COLOURS[0],
                truth: np.ndarray | None = None) -> np.ndarray:
    """Box (or SiamMask rotated box and mask tint), score, and the ground truth in white when given."""
    out = frame.copy()
    if result.mask is not None:
        tint = np.zeros_like(out)
        tint[..., 2] = 255
        sel = result.mask > 0.5
        out[sel] = (0.6 * out[sel] + 0.4 * tint[sel]).astype(np.uint8)
    if truth is not None:
        x, y, w, h = (int(round(v)) for v in truth)
        cv2.rectangle(out, (x, y), (x + w, y + h), (255, 255, 255), 1)
    if result.polygon is not None:
        cv2.polylines(out, [np.round(result.polygon).astype(np.int32)], True, colour, 2)
    else:
        x, y, w, h = (int(round(v)) for v in result.bbox)
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, 2)
    return out


def draw_text(frame: np.ndarray, lines: list[str]) -> None:
    """Status lines in the top-left corner (in place)."""
    for i, line in enumerate(lines):
        org = (8, 20 + 20 * i)
        cv2.putText(frame, line, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(frame, line, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
