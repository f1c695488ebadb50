"""The demo sequence: a seeded video with exact ground truth (no downloads needed).

A textured target moves over a textured background along a smooth path that leaves the frame partly,
changes scale and aspect, and passes a look-alike distractor. Everything is seeded. The committed upstream
traces were recorded on these frames, so the output of :func:`generate_sequence` must never change.

:func:`lazy_sequence` gives the same frames one at a time (the random draws all happen up front, a frame is
drawn when asked for), so a long demo holds one frame at a time rather than all of them.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from .texture import paste, texture


@dataclass
class Sequence:
    """frames: list of ``HxWx3`` uint8 BGR; boxes: ``(T, 4)`` float64 ground truth ``(x, y, w, h)``, 0-based
    (a box may extend past the frame when the target leaves it)."""

    name: str
    frames: list[np.ndarray]
    boxes: np.ndarray


class LazySequence:
    """The frames of :func:`generate_sequence`, drawn on demand: ``len(seq)``, ``seq[i]`` / ``seq.frame(i)``
    (``HxWx3`` uint8 BGR, a new array per call) and iteration; ``boxes`` is the ``(T, 4)`` float64 ground truth.

    Memory: two small patches, one background and the ``T x 5`` path arrays; no frame is kept.
    """

    def __init__(self, name: str, background: np.ndarray, target: np.ndarray, look_alike: np.ndarray | None,
                 path: dict[str, np.ndarray], boxes: np.ndarray) -> None:
        self.name = name
        self.boxes = boxes
        self._background = background
        self._target = target
        self._look_alike = look_alike
        self._path = path

    def __len__(self) -> int:
        return len(self.boxes)

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (0-based; negative counts from the end)."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"frame {index} out of range for a {n}-frame sequence")
        i = index % n
        p = self._path
        w, h, t = p["w"][i], p["h"][i], p["t"][i]
        height, width = self._background.shape[:2]
        frame = self._background.copy()
        if self._look_alike is not None:  # crosses the target's path, drawn under it (scalar maths, as recorded)
            dx = width * (0.15 + 0.7 * t)
            dy = height * (0.5 + 0.3 * np.cos(3 * np.pi * t))
            _paste_float(frame, self._look_alike, dx - w / 2, dy - h / 2, w, h)
        _paste_float(frame, self._target, p["cx"][i] - w / 2, p["cy"][i] - h / 2, w, h)
        return frame

    def __getitem__(self, index: int) -> np.ndarray:
        return self.frame(index)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.frame(i) for i in range(len(self)))

    def materialize(self) -> Sequence:
        """Every frame in a list (memory ``T x H x W x 3`` bytes)."""
        return Sequence(name=self.name, frames=list(self), boxes=self.boxes.copy())


def _paste_float(frame: np.ndarray, patch: np.ndarray, x: float, y: float, w: float, h: float) -> None:
    """:func:`paste` at a float box: position and size rounded half to even, size at least 1 pixel."""
    paste(frame, patch, int(round(x)), int(round(y)), max(int(round(w)), 1), max(int(round(h)), 1))


def lazy_sequence(seed: int = 0, num_frames: int = 60, size: tuple[int, int] = (480, 360),
                  target_size: tuple[float, float] = (56.0, 40.0), distractor: bool = True) -> LazySequence:
    """The sequence of :func:`generate_sequence` with frames drawn on demand (identical pixels)."""
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
    path = {"t": t, "cx": cx, "cy": cy, "w": w, "h": h}
    # round() is half to even, as np.rint; sizes at least 1 pixel
    boxes = np.stack([np.rint(cx - w / 2), np.rint(cy - h / 2), np.maximum(np.rint(w), 1), np.maximum(np.rint(h), 1)],
                     axis=1) if num_frames else np.zeros((0,), np.float64)
    return LazySequence(f"synthetic_{seed}", background, target, look_alike if distractor else None, path,
                        boxes.astype(np.float64))


def generate_sequence(seed: int = 0, num_frames: int = 60, size: tuple[int, int] = (480, 360),
                      target_size: tuple[float, float] = (56.0, 40.0), distractor: bool = True) -> Sequence:
    """A seeded sequence of ``num_frames`` frames of ``size = (width, height)`` pixels, all in memory.

    The target box is exact: integer-rounded pasting makes the drawn patch cover ``round(x), round(y)``
    to ``round(x)+round(w)``; the returned boxes are those rounded values.
    """
    return lazy_sequence(seed, num_frames, size, target_size, distractor).materialize()
