"""Validation of what users hand to a tracker: frames and boxes."""
from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from ..errors import InputError


def as_bgr(frame: object) -> np.ndarray:
    """Return ``frame`` as an ``HxWx3`` uint8 BGR array.

    Grayscale (``HxW`` or ``HxWx1``) and BGRA (``HxWx4``) frames are converted; anything else is refused with
    the shape and dtype received.
    """
    if not isinstance(frame, np.ndarray):
        raise InputError(f"frame must be a numpy array (HxWx3 uint8 BGR, as cv2 reads it), got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InputError(f"frame must be uint8, got {frame.dtype} with shape {frame.shape}; "
                         "convert with frame.astype(np.uint8) after scaling to 0..255")
    if frame.ndim in (2, 3) and (frame.shape[0] < 1 or frame.shape[1] < 1):
        raise InputError(f"frame is empty (shape {frame.shape})")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        frame = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_GRAY2BGR)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGRA2BGR)
    elif not (frame.ndim == 3 and frame.shape[2] == 3):
        raise InputError(f"frame must be HxWx3 (BGR), HxW (gray) or HxWx4 (BGRA), got shape {frame.shape}")
    return frame


def check_box(box: Sequence[float], frame_shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    """Validate an ``(x, y, w, h)`` box (0-based, top-left + size) against a frame; returns floats."""
    if isinstance(box, (str, bytes)):
        raise InputError(f"box must be four numbers (x, y, w, h), got the string {box!r}")
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        raise InputError(f"box must be four numbers (x, y, w, h), got {box!r}") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise InputError(f"box must be finite numbers, got {(x, y, w, h)}")
    if w <= 0 or h <= 0:
        raise InputError(f"box width and height must be positive, got w={w:g}, h={h:g}")
    height, width = frame_shape[:2]
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise InputError(f"box {(x, y, w, h)} lies entirely outside the {width}x{height} frame; "
                         "give a box that overlaps the image")
    return x, y, w, h
