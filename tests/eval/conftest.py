"""Shared helpers for the evaluation tests: small generated benchmark folders (procedural images, so the
tests do not depend on scikit-image) and a scripted tracker double that needs no network."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from siamdeploy.eval.datasets import BenchmarkSequence
from siamdeploy.eval.generate import generate_benchmark_sequence, write_layout
from siamdeploy.runtime.types import TrackResult

SIZE = (128, 96)


@pytest.fixture(scope="session")
def generated():
    """Three short sequences covering every attribute (occlusion, out of view, rotation, ...)."""
    mixes = [("scale", "aspect", "occlusion", "distractor", "noise"),
             ("fast_motion", "blur", "out_of_view", "scale"),
             ("rotation", "aspect", "occlusion")]
    return [generate_benchmark_sequence(seed=10 + k, num_frames=12, size=SIZE, attributes=mix, images="procedural")
            for k, mix in enumerate(mixes)]


@pytest.fixture(scope="session")
def layout_root(generated, tmp_path_factory):
    """``layout_root(layout) -> folder`` written once per session."""
    cache: dict[str, str] = {}

    def make(layout: str) -> str:
        if layout not in cache:
            cache[layout] = write_layout(generated, str(tmp_path_factory.mktemp(f"bench_{layout}")), layout)
        return cache[layout]

    return make


class IndexedSequence(BenchmarkSequence):
    """A sequence whose frames are tiny arrays carrying their index (no image files)."""

    def frame(self, index: int) -> np.ndarray:
        img = np.zeros((self.size[1], self.size[0], 3), np.uint8)
        img[0, 0, 0] = index
        return img


class ScriptedTracker:
    """``box_at(frame_index) -> (x, y, w, h)``; records the frames and boxes it was initialised with."""

    def __init__(self, box_at: Callable[[int], tuple[float, float, float, float]]) -> None:
        self.box_at = box_at
        self.inits: list[tuple[int, tuple[float, ...]]] = []
        self.tracked: list[int] = []

    def init(self, frame: np.ndarray, box) -> None:
        self.inits.append((int(frame[0, 0, 0]), tuple(box)))

    def track(self, frame: np.ndarray) -> TrackResult:
        index = int(frame[0, 0, 0])
        self.tracked.append(index)
        return TrackResult(bbox=self.box_at(index), score=1.0)
