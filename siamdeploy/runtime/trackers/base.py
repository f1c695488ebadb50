"""What every tracker shares: input checking, the init/track protocol, the engine and its kernels."""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...config import TrackParams
from ...engine.base import Engine
from ...errors import InputError
from ..frames import as_bgr, check_box
from ..types import TrackResult


class Tracker(ABC):
    """Single-target tracker over an :class:`Engine`.

    ``init(frame, (x, y, w, h))`` then ``track(frame) -> TrackResult`` per frame. Frames are ``HxWx3`` uint8
    BGR (grayscale and BGRA are converted); boxes are 0-based ``(x, y, w, h)``.
    """

    def __init__(self, engine: Engine, params: TrackParams, name: str = "") -> None:
        self.engine = engine
        self.params = params
        self.name = name
        self.kernels: Any = None
        # seconds spent in the last track() call per stage: preprocess (crop, blob), engine, postprocess
        self.timings: dict[str, float] = {}
        self._clock = 0.0

    def _lap(self, stage: str) -> None:
        """Close the current stage of the per-frame timing (see :attr:`timings`)."""
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self._clock
        self._clock = now

    @property
    def initialised(self) -> bool:
        return self.kernels is not None

    def init(self, frame: np.ndarray, box: Sequence[float]) -> None:
        """Start tracking the target in ``box`` on ``frame``; runs the template branch once."""
        img = as_bgr(frame)
        self._init(img, check_box(box, img.shape))

    def track(self, frame: np.ndarray) -> TrackResult:
        """Locate the target in the next frame."""
        if not self.initialised:
            raise InputError("track() called before init(); call tracker.init(frame, (x, y, w, h)) first")
        self.timings = {}
        self._clock = time.perf_counter()
        return self._track(as_bgr(frame))

    def close(self) -> None:
        """Release the engine (sessions, device memory). An engine shared by several trackers is closed once,
        by whoever made it."""
        self.engine.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def _init(self, img: np.ndarray, box: tuple[float, float, float, float]) -> None: ...

    @abstractmethod
    def _track(self, img: np.ndarray) -> TrackResult: ...
