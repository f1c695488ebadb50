"""Extending siamdeploy along its seams: a backend is one registered class, a family one registered
descriptor. These tests add both the way a user would and check that every consumer sees them."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import siamdeploy
from siamdeploy import families
from siamdeploy.backends import registry
from siamdeploy.backends.registry import Backend, LoadRequest, backend_names, configurations, load_engine, register
from siamdeploy.engine.base import Engine, SearchOutput
from siamdeploy.errors import ConfigError
from siamdeploy.presets import get_preset


class _ConstantEngine(Engine):
    """A deterministic stand-in network: the score peaks at the centre cell, zero box deltas."""

    backend = "constant"

    def __init__(self, n: int, anchors: int) -> None:
        self.n, self.anchors = n, anchors
        self.closed = False

    def _template(self, z: np.ndarray) -> list[np.ndarray]:
        return [z.mean(axis=(2, 3))]

    def _search(self, x: np.ndarray, kernels: object) -> SearchOutput:
        cls = np.zeros((1, 2 * self.anchors, self.n, self.n), np.float32)
        cls[:, self.anchors:, self.n // 2, self.n // 2] = 5.0  # foreground logit at the centre
        return self._split({"cls": cls, "loc": np.zeros((1, 4 * self.anchors, self.n, self.n), np.float32)})

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def constant_backend(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # registrations undone after the test

    @register
    class ConstantBackend(Backend):
        name = "constant"
        devices = ("cpu",)
        precisions = ("fp32",)
        auto_priority = -1  # tried before every built-in one

        @classmethod
        def probe(cls, device: str | None = None) -> tuple[bool, str]:
            return True, ""

        @classmethod
        def load(cls, request: LoadRequest) -> tuple[Engine, object]:
            preset = get_preset(str(request.preset or "siamrpn_alex_dwxcorr"))
            p = preset.track
            return _ConstantEngine(p.score_size(), p.anchor_num), preset

    return ConstantBackend


def test_a_registered_backend_reaches_every_consumer(constant_backend) -> None:
    assert "constant" in backend_names() and backend_names()[-1] == "auto"
    assert any(c.backend is constant_backend and c.ok for c in configurations())
    tracker = siamdeploy.load_tracker("any.pth", backend="constant", preset="siamrpn_alex_dwxcorr")
    frame = np.full((240, 320, 3), 90, np.uint8)
    tracker.init(frame, (100, 80, 40, 30))
    result = tracker.track(frame)
    x, y, w, h = result.bbox  # the peak at the centre cell with zero deltas: the centre does not move
    assert np.allclose((x + w / 2, y + h / 2), (100 + 39 / 2, 80 + 29 / 2), atol=1e-6)
    with tracker:
        pass
    assert tracker.engine.closed  # the tracker's context manager closes the engine
    engine, _ = load_engine("auto", LoadRequest("any.pth"))  # first in the auto order
    assert engine.backend == "constant"


def test_a_backend_refuses_what_it_does_not_declare(constant_backend) -> None:
    with pytest.raises(ConfigError, match="backend 'constant' runs fp32, not 'fp16'"):
        load_engine("constant", LoadRequest("any.pth", precision="fp16"))
    with pytest.raises(ConfigError, match="runs on cpu, not 'cuda:0'"):
        load_engine("constant", LoadRequest("any.pth", device="cuda:0"))


def test_a_registered_family_drives_export_sizes_and_the_tracker(monkeypatch) -> None:
    from siamdeploy.export.graphs import search_batch, search_sizes
    from siamdeploy.runtime.trackers.rpn import RPNTracker

    monkeypatch.setattr(families, "FAMILIES", dict(families.FAMILIES))
    families.register(families.Family("siamrpn_twice", "siamdeploy.runtime.trackers.rpn:RPNTracker",
                                      search_sizes=lambda p: [p.instance_size, 2 * p.instance_size],
                                      search_batch=lambda p: 2))
    base = get_preset("siamrpn_alex_dwxcorr")
    preset = dataclasses.replace(base, name="twice", track=base.track.with_(tracker="siamrpn_twice"))
    assert search_sizes(preset) == [287, 574] and search_batch(preset) == 2
    tracker = families.make_tracker(_ConstantEngine(21, 5), preset.track, preset.name)
    assert isinstance(tracker, RPNTracker)
    with pytest.raises(ConfigError, match="unknown tracker family 'siamrpn_twise'. Did you mean 'siamrpn_twice'"):
        families.get_family("siamrpn_twise")
