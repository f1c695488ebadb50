"""Generated video sequences with exact ground truth (no downloads needed).

A textured target moves over a textured background along a smooth path that leaves the frame partly,
changes scale and aspect, and passes a look-alike distractor. Everything is seeded.
Images are procedural (multi-scale filtered noise); nothing here needs a dataset.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Sequence:
    """frames: list of ``HxWx3`` uint8 BGR; boxes: ``(T, 4)`` float64 ground truth ``(x, y, w, h)``, 0-based
    (a box may extend past the frame when the target leaves it)."""

    name: str
    frames: list[np.ndarray]
    boxes: np.ndarray


def texture(rng: np.random.Generator, height: int, width: int, smooth: float = 6.0) -> np.ndarray:
    """A colourful multi-scale noise texture, ``HxWx3`` uint8."""
    out = np.zeros((height, width, 3), np.float32)
    for sigma, weight in ((smooth * 4, 1.0), (smooth, 0.6), (smooth / 3, 0.35)):
        noise = rng.standard_normal((height, width, 3)).astype(np.float32)
        blurred = cv2.GaussianBlur(noise, (0, 0), sigma)
        out += weight * blurred / (blurred.std() + 1e-6)
    out = (out - out.mean()) / (out.std() + 1e-6)
    tint = rng.uniform(60, 200, size=3).astype(np.float32)
    return np.clip(tint + 45 * out, 0, 255).astype(np.uint8)


def _paste(frame: np.ndarray, patch: np.ndarray, x: float, y: float, w: float, h: float) -> None:
    """Draw ``patch`` resized to ``w x h`` at top-left ``(x, y)``, clipped to the frame."""
    wi, hi = max(int(round(w)), 1), max(int(round(h)), 1)
    xi, yi = int(round(x)), int(round(y))
    resized = cv2.resize(patch, (wi, hi), interpolation=cv2.INTER_LINEAR)
    fh, fw = frame.shape[:2]
    x0, y0, x1, y1 = max(xi, 0), max(yi, 0), min(xi + wi, fw), min(yi + hi, fh)
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = resized[y0 - yi:y1 - yi, x0 - xi:x1 - xi]


def generate_sequence(seed: int = 0, num_frames: int = 60, size: tuple[int, int] = (480, 360),
                      target_size: tuple[float, float] = (56.0, 40.0), distractor: bool = True) -> Sequence:
    """A seeded sequence of ``num_frames`` frames of ``size = (width, height)``.

    The target box is exact: integer-rounded pasting makes the drawn patch cover ``round(x), round(y)``
    to ``round(x)+round(w)``; the returned boxes are those rounded values.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    background = texture(rng, height, width, smooth=8.0)
    target = texture(rng, 64, 64, smooth=3.0)
    cv2.rectangle(target, (4, 4), (59, 59), tuple(int(v) for v in rng.integers(0, 255, 3)), 3)
    look_alike = cv2.addWeighted(target, 0.8, texture(rng, 64, 64, smooth=3.0), 0.2, 0)
    t = np.linspace(0.0, 1.0, num_frames)
    # A loop that reaches past the left/top edges and back, with a little jitter.
    phase = rng.uniform(-0.3, 0.3)  # starts near the centre, fully inside the frame
    cx = width * (0.5 + 0.55 * np.sin(2 * np.pi * t + phase)) + rng.normal(0, 1.5, num_frames)
    cy = height * (0.5 + 0.35 * np.sin(4 * np.pi * t + phase / 2)) + rng.normal(0, 1.5, num_frames)
    scale = 1.0 + 0.35 * np.sin(2 * np.pi * t * 1.5)
    aspect = 1.0 + 0.15 * np.cos(2 * np.pi * t)
    w = target_size[0] * scale * aspect
    h = target_size[1] * scale / aspect
    frames, boxes = [], []
    for i in range(num_frames):
        frame = background.copy()
        if distractor:  # crosses the target's path, drawn under it
            dx = width * (0.15 + 0.7 * t[i])
            dy = height * (0.5 + 0.3 * np.cos(3 * np.pi * t[i]))
            _paste(frame, look_alike, dx - w[i] / 2, dy - h[i] / 2, w[i], h[i])
        x, y = cx[i] - w[i] / 2, cy[i] - h[i] / 2
        _paste(frame, target, x, y, w[i], h[i])
        boxes.append((round(x), round(y), max(round(w[i]), 1), max(round(h[i]), 1)))
        frames.append(frame)
    return Sequence(name=f"synthetic_{seed}", frames=frames, boxes=np.asarray(boxes, np.float64))
