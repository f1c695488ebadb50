"""Tracker state as a value: exact round trips, teacher forcing by replacing centre/size, and the one
teacher-forcing loop (``siamdeploy.compare.teacher_force``), on every preset's tracker loop.

The engine is a test double that computes its outputs from the crops it is given (a fixed function of their
pixels), so a different state gives different crops and different boxes; no network runs.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from siamdeploy.compare import teacher_force
from siamdeploy.errors import InputError
from siamdeploy.geometry import box_to_centre_size
from siamdeploy.presets import PRESETS, get_preset
from siamdeploy.runtime import make_tracker
from siamdeploy.runtime.trackers.state import LongTermState, RPNState, SiamFCState
from siamdeploy.synthetic import generate_sequence

from .content_engine import ContentEngine

PRESET_NAMES = sorted(PRESETS)


def _tracker(preset: str):
    params = get_preset(preset).track
    return make_tracker(ContentEngine(params), params, preset)


def _sequence(preset: str):
    # DaSiamRPN-BIG switches to its small-target search below 0.4% of the frame: a small target covers that path
    target = (18.0, 14.0) if preset == "dasiamrpn_big" else (56.0, 40.0)
    return generate_sequence(seed=3, num_frames=14, size=(320, 240), target_size=target)


def _same(a, b) -> None:
    assert a.bbox == b.bbox and a.score == b.score
    assert (a.polygon is None) == (b.polygon is None)
    if a.polygon is not None:
        assert np.array_equal(a.polygon, b.polygon) and np.array_equal(a.mask, b.mask)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_state_round_trips_exactly(preset: str) -> None:
    seq = _sequence(preset)
    tracker = _tracker(preset)
    tracker.init(seq.frames[0], seq.boxes[0])
    for frame in seq.frames[1:6]:
        tracker.track(frame)
    snap = tracker.state
    assert isinstance(snap, tracker.state_type) and snap.exact
    first = [tracker.track(frame) for frame in seq.frames[6:]]
    after = tracker.state
    assert after != snap, "tracking must move the state (else this test proves nothing)"
    tracker.set_state(snap)
    assert tracker.state == snap
    again = [tracker.track(frame) for frame in seq.frames[6:]]
    for a, b in zip(first, again):
        _same(a, b)
    assert tracker.state == after


def test_state_is_a_frozen_value() -> None:
    seq = _sequence("siamrpn_alex_dwxcorr")
    tracker = _tracker("siamrpn_alex_dwxcorr")
    tracker.init(seq.frames[0], seq.boxes[0])
    snap = tracker.state
    centre = snap.centre.copy()
    tracker.track(seq.frames[1])
    assert np.array_equal(snap.centre, centre), "a state must not alias the tracker's arrays"
    with pytest.raises(ValueError):
        snap.centre[0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.size = np.zeros(2)  # type: ignore[misc]
    assert snap.centre.dtype == np.float64 and snap.size.dtype == np.float64
    tuples = dataclasses.replace(snap, centre=(10, 20), size=[30, 40])
    assert tuples.centre.tolist() == [10.0, 20.0] and tuples.size.dtype == np.float64 and not tuples.exact


def test_state_types_and_meaning() -> None:
    seq = _sequence("siamfc")
    x, y, w, h = seq.boxes[0]
    for preset, kind in (("siamrpn_alex_dwxcorr", RPNState), ("siamrpn_r50_l234_dwxcorr_lt", LongTermState),
                         ("siammask_r50_l3", RPNState), ("siamfc", SiamFCState)):
        tracker = _tracker(preset)
        tracker.init(seq.frames[0], seq.boxes[0])
        state = tracker.state
        assert type(state) is kind
        assert state.size.tolist() == [w, h]                       # (w, h), frame pixels
        assert state.centre.tolist() == [x + (w - 1) / 2, y + (h - 1) / 2]   # (cx, cy): pysot / siamfc init
    foolwood = _tracker("siammask_vot")
    foolwood.init(seq.frames[0], seq.boxes[0])
    assert foolwood.state.centre.tolist() == [x + w / 2, y + h / 2]


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_replacing_centre_and_size_equals_a_tracker_initialised_there(preset: str) -> None:
    """Forced (centre, size) from another box: the derived fields and the next frame equal a tracker
    initialised at that box on the same frame (same kernels; init-only fields are the same here)."""
    seq = _sequence(preset)
    forced, fresh = _tracker(preset), _tracker(preset)
    forced.init(seq.frames[0], seq.boxes[0])
    forced.track(seq.frames[1])
    x, y, w, h = seq.boxes[0]
    other = (x + 7.0, y - 5.0, w * 1.1, h * 0.95)
    fresh.init(seq.frames[0], other)
    fresh.kernels = forced.kernels
    target = fresh.state
    extra = {"lost": target.lost} if isinstance(target, LongTermState) else {}   # a flag, not derived
    forced.set_state(dataclasses.replace(forced.state, centre=target.centre, size=target.size, **extra))
    got = forced.state
    for name in got.DERIVED + ("centre", "size"):
        assert np.array_equal(getattr(got, name), getattr(target, name)), name
    if isinstance(got, RPNState):  # the init-time fields stay the forced tracker's own
        assert np.array_equal(got.init_size, seq.boxes[0][2:])
        assert got.instance_size == target.instance_size
    _same(forced.track(seq.frames[2]), fresh.track(seq.frames[2]))


def test_init_relative_crop_size_is_derived_from_the_clamped_size() -> None:
    tracker = _tracker("siamrpn_haooozi")
    seq = _sequence("siamrpn_haooozi")
    tracker.init(seq.frames[0], seq.boxes[0])
    state = dataclasses.replace(tracker.state, size=(400.0, 6.0))   # wider than the 320 px frame, shorter than 10
    tracker.set_state(state)
    assert tracker.state.crop_wh.tolist() == [320.0, 10.0]
    assert tracker.state.size.tolist() == [400.0, 6.0]
    pysot = _tracker("siamrpn_alex_dwxcorr")
    pysot.init(seq.frames[0], seq.boxes[0])
    pysot.set_state(dataclasses.replace(pysot.state, size=(400.0, 6.0)))
    assert pysot.state.crop_wh.tolist() == [400.0, 6.0]


def test_siamfc_crop_sides_follow_the_init_arithmetic() -> None:
    p = get_preset("siamfc").track
    tracker = _tracker("siamfc")
    seq = _sequence("siamfc")
    tracker.init(seq.frames[0], seq.boxes[0])
    for frame in seq.frames[1:4]:
        tracker.track(frame)
    exact = tracker.state
    tracker.set_state(dataclasses.replace(exact, size=exact.size))   # same numbers, but a forcing state
    sz = np.float32(exact.size[::-1])
    z = float(np.sqrt(np.prod(sz + np.float32(p.context_amount) * np.sum(sz))))
    assert tracker.state.z_sz == z and tracker.state.z_sz != exact.z_sz
    assert tracker.state.x_sz == pytest.approx(z * p.instance_size / p.exemplar_size, rel=1e-6)
    assert tracker.state.z_sz == pytest.approx(exact.z_sz, rel=1e-5)   # the same size, up to accumulated rounding


@pytest.mark.parametrize("preset", ["siamrpn_alex_dwxcorr", "dasiamrpn_vot", "siamrpn_haooozi", "siammask_vot",
                                    "siamfc"])
def test_state_for_box_inverts_the_reported_box(preset: str) -> None:
    seq = _sequence(preset)
    tracker = _tracker(preset)
    tracker.init(seq.frames[0], seq.boxes[0])
    for frame in seq.frames[1:5]:
        result = tracker.track(frame)
        behind = tracker.state_for_box(result.bbox)
        np.testing.assert_allclose(behind.centre, tracker.state.centre, rtol=0, atol=1e-9)
        np.testing.assert_allclose(behind.size, tracker.state.size, rtol=0, atol=1e-9)
    centre, size = box_to_centre_size((10, 20, 30, 40), tracker.box_convention)
    assert size.tolist() == [30, 40] and centre[0] in (25.0, 24.5)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_teacher_force_from_a_reference_tracker(preset: str) -> None:
    """Forced from a tracker running the same engine, every step equals the reference's own step; forced from
    a tracker with another engine, the state before each frame is the reference's."""
    seq = _sequence(preset)
    params = get_preset(preset).track
    reference, same = _tracker(preset), _tracker(preset)
    steps = teacher_force(same, seq.frames[:8], seq.boxes[0], reference)
    assert [s.index for s in steps] == list(range(1, 8))
    for step in steps:
        _same(step.result, step.reference)
    other_engine = ContentEngine(params)
    other_engine.cls_gain = other_engine.cls_gain[::-1].copy()
    other = make_tracker(other_engine, params, preset)
    reference = _tracker(preset)
    free = _tracker(preset)
    free.init(seq.frames[0], seq.boxes[0])
    states_before = []
    for frame in seq.frames[1:8]:
        states_before.append(free.state)
        free.track(frame)
    forced = teacher_force(other, seq.frames[:8], seq.boxes[0], reference)
    assert all(step.state == before for step, before in zip(forced, states_before))


@pytest.mark.parametrize("preset", ["siamrpn_alex_dwxcorr", "dasiamrpn_big", "siamrpn_siamtrackers", "siammask_base",
                                    "siamrpn_r50_l234_dwxcorr_lt", "siamfc"])
def test_teacher_force_from_states_and_from_boxes(preset: str) -> None:
    seq = _sequence(preset)
    ref = _tracker(preset)
    ref.init(seq.frames[0], seq.boxes[0])
    states, boxes, lost, expected = [], [], [], []
    for frame in seq.frames[1:10]:
        states.append(ref.state)
        result = ref.track(frame)
        expected.append(result)
        boxes.append(result.bbox)
        lost.append({"lost": ref.lost} if hasattr(ref, "lost") else {})
    by_state = teacher_force(_tracker(preset), seq.frames, seq.boxes[0], states)
    assert len(by_state) == len(states)
    for step, result in zip(by_state, expected):
        _same(step.result, result)
    by_box = teacher_force(_tracker(preset), seq.frames, seq.boxes[0], boxes, fields=lost)
    assert len(by_box) == len(boxes)
    # the state behind a reported box: exact up to float rounding (SiamFC: float32 state, derived crop sides)
    worst = max(float(np.abs(np.subtract(s.result.bbox, r.bbox)).max()) for s, r in zip(by_box, expected))
    assert worst <= 1e-3, worst


def test_set_state_refuses_wrong_kinds_and_uninitialised_trackers() -> None:
    seq = _sequence("siamfc")
    rpn, fc = _tracker("siamrpn_alex_dwxcorr"), _tracker("siamfc")
    with pytest.raises(InputError, match="before init"):
        rpn.state  # noqa: B018
    fc.init(seq.frames[0], seq.boxes[0])
    with pytest.raises(InputError, match="call tracker.init"):
        rpn.set_state(fc.state)
    rpn.init(seq.frames[0], seq.boxes[0])
    with pytest.raises(InputError, match="takes a RPNState, got SiamFCState"):
        rpn.set_state(fc.state)
    lt = _tracker("siamrpn_r50_l234_dwxcorr_lt")
    lt.init(seq.frames[0], seq.boxes[0])
    with pytest.raises(InputError, match="takes a LongTermState"):
        lt.set_state(rpn.state)
