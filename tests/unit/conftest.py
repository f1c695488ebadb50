"""Shared fixtures for the unit tests.

``scripted_engine``: a test double for :class:`siamdeploy.engine.base.Engine`. It runs no network: the
template branch returns a token and the search branch returns hand-made ``cls``/``loc`` arrays, so the
tracker tests exercise only the numpy tracker loop (crop sizes, decoding, selection, smoothing,
clipping) against values computed by hand.

``rpn_maps``: builds ``cls (1, 2A, N, N)`` / ``loc (1, 4A, N, N)`` with the channel layout of
docs/tracking.md#anchors (channel ``k*A + a`` = class / component ``k`` of anchor ``a``), written independently of
the package's decoder.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from siamdeploy.engine.base import Engine, SearchOutput

# Foreground logit for "nothing here": softmax fg = 1/(1+e^30) ~ 9e-14 against a background logit of 0.
QUIET_LOGIT = -30.0


def logit(p: float) -> float:
    """Foreground logit giving probability ``p`` against a background logit of 0: ln(p / (1-p))."""
    return math.log(p / (1.0 - p))


def make_rpn_maps(n: int, cells: Sequence[tuple[int, int, int, float, Sequence[float]]] = (),
                  anchor_num: int = 5) -> dict[str, np.ndarray]:
    """``cells``: ``(a, i, j, fg_probability, (dx, dy, dw, dh))``; every other location has fg ~ 0 and
    zero deltas."""
    cls = np.zeros((1, 2 * anchor_num, n, n), np.float32)
    cls[0, anchor_num:] = QUIET_LOGIT          # class 1 (foreground) channels are A..2A-1
    loc = np.zeros((1, 4 * anchor_num, n, n), np.float32)
    for a, i, j, prob, delta in cells:
        cls[0, 0 * anchor_num + a, i, j] = 0.0
        cls[0, 1 * anchor_num + a, i, j] = logit(prob)
        for k in range(4):
            loc[0, k * anchor_num + a, i, j] = delta[k]
    return {"cls": cls, "loc": loc}


Responder = Callable[[int], dict[str, np.ndarray]]


class ScriptedEngine(Engine):
    """Test double: no network. ``script`` is a list of callables ``side -> outputs`` consumed one per
    ``search`` call (``side`` = the search blob's side, so the callable can size its maps); records every
    template and search blob it receives."""

    backend = "test-double"

    def __init__(self, script: Sequence[Responder] = ()) -> None:
        self.script = list(script)
        self.template_blobs: list[np.ndarray] = []
        self.search_blobs: list[np.ndarray] = []

    @property
    def search_sides(self) -> list[int]:
        return [b.shape[-1] for b in self.search_blobs]

    def _template(self, z: np.ndarray) -> str:
        self.template_blobs.append(z.copy())
        return "kernels-token"

    def _search(self, x: np.ndarray, kernels: object) -> SearchOutput:
        assert kernels == "kernels-token"
        self.search_blobs.append(x.copy())
        if not self.script:
            raise AssertionError("ScriptedEngine: search called more often than scripted")
        return SearchOutput(self.script.pop(0)(x.shape[-1]))


@pytest.fixture
def scripted_engine() -> type[ScriptedEngine]:
    return ScriptedEngine


@pytest.fixture
def rpn_maps() -> Callable[..., dict[str, np.ndarray]]:
    return make_rpn_maps
