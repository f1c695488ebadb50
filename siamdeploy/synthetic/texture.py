"""Procedural images and the one pasting routine every generated sequence draws with."""
from __future__ import annotations

import cv2
import numpy as np


def texture(rng: np.random.Generator, height: int, width: int, smooth: float = 6.0) -> np.ndarray:
    """A colourful multi-scale noise texture, ``height x width x 3`` uint8 (``smooth``: blur sigma, pixels)."""
    out = np.zeros((height, width, 3), np.float32)
    for sigma, weight in ((smooth * 4, 1.0), (smooth, 0.6), (smooth / 3, 0.35)):
        noise = rng.standard_normal((height, width, 3)).astype(np.float32)
        blurred = cv2.GaussianBlur(noise, (0, 0), sigma)
        out += weight * blurred / (blurred.std() + 1e-6)
    out = (out - out.mean()) / (out.std() + 1e-6)
    tint = rng.uniform(60, 200, size=3).astype(np.float32)
    return np.clip(tint + 45 * out, 0, 255).astype(np.uint8)


def paste(frame: np.ndarray, patch: np.ndarray, x: int, y: int, w: int, h: int) -> None:
    """Draw ``patch`` resized (INTER_LINEAR) to ``w x h`` pixels with its top-left at integer ``(x, y)`` into
    ``frame`` (``HxWx3`` uint8, modified in place), clipped to the frame."""
    resized = cv2.resize(patch, (w, h), interpolation=cv2.INTER_LINEAR)
    fh, fw = frame.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, fw), min(y + h, fh)
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = resized[y0 - y:y1 - y, x0 - x:x1 - x]
