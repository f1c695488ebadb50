"""Frame sources: the built-in demo sequence, a video file, a folder of images, a camera."""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..errors import InputError
from ..images import list_images, read_image


@dataclass
class Source:
    """An iterable of BGR frames. ``length``: frame count when known; ``ground_truth``: ``(T, 4)`` boxes
    when the source knows them (the demo); ``fps``: nominal rate for writing videos."""

    name: str
    frames: Iterator[np.ndarray]
    length: int | None = None
    fps: float = 30.0
    ground_truth: np.ndarray | None = None
    release: list = field(default_factory=list)

    def close(self) -> None:
        for fn in self.release:
            fn()


def open_source(spec: str, demo_frames: int = 60, demo_seed: int | None = None) -> Source:
    """``demo`` | ``camera`` | ``camera:N`` | a video file | a folder of jpg/png/bmp images.

    The demo is the reference models' held-out photo sequence (seed ``demo_seed``, default the demo's)."""
    if spec == "demo":
        from ..reference import DEMO_SEED, lazy_demo_sequence

        name, frames, boxes = lazy_demo_sequence(demo_frames, DEMO_SEED if demo_seed is None else demo_seed)
        return Source(name, frames, len(boxes), 30.0, boxes)  # frames drawn one at a time
    if spec == "camera" or spec.startswith("camera:"):
        index_text = spec.partition(":")[2] or "0"
        if not index_text.isdigit():
            raise InputError(f"camera source '{spec}' needs a number, e.g. camera:0")
        cap = cv2.VideoCapture(int(index_text))
        if not cap.isOpened():
            raise InputError(f"cannot open camera {index_text}; check it is connected and not in use")
        return Source(f"camera{index_text}", _read_capture(cap), None, cap.get(cv2.CAP_PROP_FPS) or 30.0,
                      release=[cap.release])
    if os.path.isdir(spec):
        paths = list_images(spec)
        if not paths:
            raise InputError(f"folder '{spec}' has no .jpg/.png/.bmp images")
        return Source(os.path.basename(os.path.normpath(spec)), _read_images(paths), len(paths))
    if os.path.isfile(spec):
        cap = cv2.VideoCapture(spec)
        if not cap.isOpened():
            raise InputError(f"cannot read video '{spec}'; is it a video file OpenCV can decode?")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        return Source(os.path.splitext(os.path.basename(spec))[0], _read_capture(cap), count,
                      cap.get(cv2.CAP_PROP_FPS) or 30.0, release=[cap.release])
    raise InputError(f"source '{spec}' is not 'demo', 'camera[:N]', an existing video file or an image folder")


def _read_capture(cap: cv2.VideoCapture) -> Iterator[np.ndarray]:
    while True:
        ok, frame = cap.read()
        if not ok or frame is None:
            return
        yield frame


def _read_images(paths: list[str]) -> Iterator[np.ndarray]:
    for path in paths:
        yield read_image(path)
