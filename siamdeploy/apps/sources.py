"""Frame sources: the built-in demo sequence, a video file, a folder of images, a camera."""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


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


def _natural_key(name: str) -> list[object]:
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def open_source(spec: str, demo_frames: int = 60, demo_seed: int | None = None) -> Source:
    """``demo`` | ``camera`` | ``camera:N`` | a video file | a folder of jpg/png/bmp images.

    The demo is the reference models' held-out photo sequence (seed ``demo_seed``, default the demo's)."""
    if spec == "demo":
        from ..reference import DEMO_SEED, demo_sequence

        seq = demo_sequence(demo_frames, DEMO_SEED if demo_seed is None else demo_seed)
        return Source(seq.name, iter(seq.frames), len(seq.frames), 30.0, seq.boxes)
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
        files = sorted((f for f in os.listdir(spec) if f.lower().endswith(IMAGE_EXTENSIONS)), key=_natural_key)
        if not files:
            raise InputError(f"folder '{spec}' has no .jpg/.png/.bmp images")
        paths = [os.path.join(spec, f) for f in files]
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
        frame = cv2.imread(path, cv2.IMREAD_COLOR)
        if frame is None:
            raise InputError(f"cannot read image '{path}'")
        yield frame
