"""Every family end to end on the torch engine with seeded random weights (calibrated BatchNorm): the
checkpoint round-trips through a file, the preset is detected from the keys, outputs are O(1) and tracking
is deterministic. Exactness against the upstream code is checked by test_upstream_traces.py."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

import siamdeploy
from siamdeploy.synthetic import generate_sequence
from siamdeploy.checkpoint import load_model

FAST = ["siamrpn_alex_dwxcorr", "dasiamrpn_vot", "siamfc", "siamrpn_haooozi", "siamrpn_siamtrackers"]
SLOW = ["siamrpn_mobilev2_l234_dwxcorr", "siamrpn_r50_l234_dwxcorr", "siamrpn_r50_l234_dwxcorr_otb",
        "siammask_r50_l3", "siamrpn_r50_l234_dwxcorr_lt", "dasiamrpn_big", "siammask_vot", "siammask_base"]


def _track(path: str, preset: str | None, frames: int = 4) -> list[siamdeploy.TrackResult]:
    seq = generate_sequence(seed=5, num_frames=frames, size=(320, 240))
    tracker = siamdeploy.load_tracker(path, preset=preset, device="cpu")
    tracker.init(seq.frames[0], seq.boxes[0])
    return [tracker.track(f) for f in seq.frames[1:]]


def _check(preset: str, random_checkpoint, caplog: pytest.LogCaptureFixture) -> None:
    path = random_checkpoint(preset)
    with caplog.at_level(logging.WARNING):
        loaded = load_model(path)  # no preset: detected from keys and shapes
    detected = loaded.preset.name
    assert detected == preset or (preset.endswith("_otb") and detected == preset[:-4])
    a = _track(path, preset)
    b = _track(path, preset)
    boxes = np.array([r.bbox for r in a])
    assert np.isfinite(boxes).all() and (boxes[:, 2:] > 0).all()
    assert np.array_equal(boxes, np.array([r.bbox for r in b])), "tracking must be deterministic"
    assert all(0.0 <= r.score <= 1.0 for r in a) or preset == "siamfc"
    if preset.startswith("siammask"):
        assert all(r.polygon is not None and r.polygon.shape == (4, 2) for r in a)
        assert all(r.mask is not None and r.mask.shape == (240, 320) for r in a)


@pytest.mark.parametrize("preset", FAST)
def test_family_end_to_end(preset: str, random_checkpoint, caplog: pytest.LogCaptureFixture) -> None:
    _check(preset, random_checkpoint, caplog)


@pytest.mark.slow
@pytest.mark.parametrize("preset", SLOW)
def test_family_end_to_end_slow(preset: str, random_checkpoint, caplog: pytest.LogCaptureFixture) -> None:
    _check(preset, random_checkpoint, caplog)


def test_calibrated_outputs_are_order_one(random_checkpoint) -> None:
    """Random weights without calibration blow up on 0..255 input; calibrated ones give usable scores."""
    loaded = load_model(random_checkpoint("siamrpn_alex_dwxcorr"), preset="siamrpn_alex_dwxcorr")
    seq = generate_sequence(seed=1, num_frames=1)
    with torch.no_grad():
        z = torch.from_numpy(np.ascontiguousarray(seq.frames[0][:127, :127].transpose(2, 0, 1)[None],
                                                  dtype=np.float32))
        x = torch.from_numpy(np.ascontiguousarray(seq.frames[0][:287, :287].transpose(2, 0, 1)[None],
                                                  dtype=np.float32))
        cls, loc = loaded.net.search(x, *loaded.net.template(z))
    assert 0.2 < cls.std().item() < 10 and 0.02 < loc.std().item() < 2


def test_batchnorm_is_not_default(random_checkpoint) -> None:
    """Untouched BN (mean 0, var 1, gamma 1) would hide a broken BN export; the test models must not have it."""
    state = torch.load(random_checkpoint("siamrpn_alex_dwxcorr"), weights_only=True)
    means = [v for k, v in state.items() if k.endswith("running_mean")]
    assert means and all(v.abs().max() > 1e-3 for v in means)
