"""Bad frames, boxes and call orders get an :class:`InputError` with a clear one-line message.

Trackers here drive the ``scripted_engine`` test double (tests/unit/conftest.py): no network runs.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from siamdeploy.errors import InputError, SiamDeployError
from siamdeploy.presets import get_preset
from siamdeploy.runtime.frames import as_bgr, check_box
from siamdeploy.runtime.trackers import make_tracker

PRESETS = ["siamrpn_alex_dwxcorr", "dasiamrpn_vot", "siamrpn_r50_l234_dwxcorr_lt", "siamfc"]


def _tracker(engine, preset="siamrpn_alex_dwxcorr"):
    return make_tracker(engine, get_preset(preset).track)


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert msg and "\n" not in msg
    return msg


# ---------------------------------------------------------------- frames
@pytest.mark.parametrize("frame", [
    np.zeros((20, 30, 3), np.float32),
    np.zeros((20, 30, 3), np.float64),
    np.zeros((20, 30, 3), np.uint16),
    np.zeros((20, 30, 3), np.int64),
    np.zeros((20, 30, 3), bool),
], ids=["float32", "float64", "uint16", "int64", "bool"])
def test_frame_wrong_dtype(frame):
    with pytest.raises(InputError) as err:
        as_bgr(frame)
    msg = _one_line(err)
    assert str(frame.dtype) in msg and "(20, 30, 3)" in msg


@pytest.mark.parametrize("shape", [(20, 30, 2), (20, 30, 5), (1, 20, 30, 3), (2, 1, 20, 30, 3), (30,),
                                   (20, 30, 3, 1)])
def test_frame_wrong_shape(shape):
    with pytest.raises(InputError) as err:
        as_bgr(np.zeros(shape, np.uint8))
    assert str(shape) in _one_line(err)


@pytest.mark.parametrize("frame", [[[1, 2, 3]], None, "frame.jpg", 3.0])
def test_frame_not_an_array(frame):
    with pytest.raises(InputError) as err:
        as_bgr(frame)
    assert type(frame).__name__ in _one_line(err)


def test_frame_empty_colour():
    with pytest.raises(InputError) as err:
        as_bgr(np.zeros((0, 30, 3), np.uint8))
    assert "(0, 30, 3)" in _one_line(err)


@pytest.mark.parametrize("shape", [(0, 30), (20, 0, 1), (0, 30, 4)])
def test_frame_empty_gray_or_bgra(shape):
    with pytest.raises(InputError):
        as_bgr(np.zeros(shape, np.uint8))


def test_gray_frames_converted():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    for frame in (gray, gray[..., None]):
        bgr = as_bgr(frame)
        assert bgr.shape == (3, 4, 3) and bgr.dtype == np.uint8
        for c in range(3):
            np.testing.assert_array_equal(bgr[..., c], gray)


def test_bgra_frame_drops_alpha():
    bgra = np.zeros((3, 4, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2], bgra[..., 3] = 10, 20, 30, 7
    bgr = as_bgr(bgra)
    assert bgr.shape == (3, 4, 3)
    assert bgr[0, 0].tolist() == [10, 20, 30]


def test_bgr_frame_passes_unchanged():
    frame = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(as_bgr(frame), frame)


@pytest.mark.parametrize("preset", PRESETS)
def test_tracker_accepts_gray_and_bgra(scripted_engine, preset):
    engine = scripted_engine()
    tracker = _tracker(engine, preset)
    tracker.init(np.full((60, 80), 42, np.uint8), (20, 20, 20, 20))
    assert (engine.template_blobs[-1] == 42).all()
    bgra = np.zeros((60, 80, 4), np.uint8)
    bgra[..., :3] = (10, 20, 30)
    bgra[..., 3] = 255
    tracker.init(bgra, (20, 20, 20, 20))
    z = engine.template_blobs[-1][0]
    # BGR presets feed (B, G, R) = (10, 20, 30); siamfc feeds RGB
    expected = (30, 20, 10) if preset == "siamfc" else (10, 20, 30)
    assert [float(z[c].min()) for c in range(3)] == list(expected)
    assert [float(z[c].max()) for c in range(3)] == list(expected)


def test_tracker_accepts_non_contiguous_frames(scripted_engine, rpn_maps):
    engine = scripted_engine([lambda side: rpn_maps(21, [(2, 10, 10, 0.9, (0, 0, 0, 0))])] * 2)
    tracker = _tracker(engine)
    rgb = np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    tracker.init(rgb[..., ::-1], (20, 20, 20, 20))     # the usual RGB -> BGR view
    tracker.track(rgb[:, ::-1])
    tracker.track(np.asfortranarray(rgb))
    assert len(engine.search_blobs) == 2


@pytest.mark.parametrize("frame", [np.zeros((60, 80, 3), np.float32), np.zeros((60, 80, 2), np.uint8)])
def test_track_rejects_bad_frame(scripted_engine, frame):
    tracker = _tracker(scripted_engine())
    tracker.init(np.zeros((60, 80, 3), np.uint8), (20, 20, 20, 20))
    with pytest.raises(InputError) as err:
        tracker.track(frame)
    assert str(frame.shape) in _one_line(err)


@pytest.mark.parametrize("preset", PRESETS)
def test_init_rejects_bad_frame(scripted_engine, preset):
    tracker = _tracker(scripted_engine(), preset)
    with pytest.raises(InputError) as err:
        tracker.init(np.zeros((60, 80, 3), np.float32), (20, 20, 20, 20))
    assert "(60, 80, 3)" in _one_line(err)
    assert not tracker.initialised


# ---------------------------------------------------------------- boxes
@pytest.mark.parametrize("box", [
    (10, 10, 0, 5), (10, 10, 5, 0), (10, 10, -3, 5), (10, 10, 5, -1e-9),
])
def test_box_non_positive_size(box):
    with pytest.raises(InputError) as err:
        check_box(box, (60, 80, 3))
    assert "positive" in _one_line(err)


@pytest.mark.parametrize("box", [
    (math.nan, 10, 5, 5), (10, math.nan, 5, 5), (10, 10, math.nan, 5), (10, 10, 5, math.inf),
    (-math.inf, 10, 5, 5), (np.float32("nan"), 1, 2, 3),
])
def test_box_not_finite(box):
    with pytest.raises(InputError) as err:
        check_box(box, (60, 80, 3))
    assert "finite" in _one_line(err)


@pytest.mark.parametrize("box", [(1, 2, 3), (1, 2, 3, 4, 5), (), None, 5, ("a", 1, 2, 3),
                                 [[1, 2], [3, 4]], {"x": 1}])
def test_box_wrong_length_or_type(box):
    with pytest.raises(InputError) as err:
        check_box(box, (60, 80, 3))
    assert "four numbers" in _one_line(err)


@pytest.mark.parametrize("box", [
    (80, 10, 5, 5),      # x >= W
    (100, 10, 5, 5),
    (10, 60, 5, 5),      # y >= H
    (-10, 10, 10, 5),    # covers x in [-10, 0): ends exactly at the left edge
    (10, -5, 5, 5),      # covers y in [-5, 0)
    (-50, -50, 20, 20),
])
def test_box_entirely_outside(box):
    with pytest.raises(InputError) as err:
        check_box(box, (60, 80, 3))
    msg = _one_line(err)
    assert "outside" in msg and "80x60" in msg


@pytest.mark.parametrize("box", [(-10, 10, 10.5, 5), (79.5, 59.5, 10, 10), (-5, -5, 100, 100),
                                 np.array([1, 2, 3, 4]), [1.5, 2.5, 3.5, 4.5]])
def test_box_partially_inside_is_accepted(box):
    x, y, w, h = check_box(box, (60, 80, 3))
    assert (x, y, w, h) == tuple(float(v) for v in box)
    assert all(type(v) is float for v in (x, y, w, h))


@pytest.mark.parametrize("preset", PRESETS)
def test_init_rejects_bad_box(scripted_engine, preset):
    engine = scripted_engine()
    tracker = _tracker(engine, preset)
    for box in [(10, 10, 0, 5), (math.nan, 1, 2, 3), (1, 2, 3), (200, 10, 5, 5)]:
        with pytest.raises(InputError):
            tracker.init(np.zeros((60, 80, 3), np.uint8), box)
    assert not tracker.initialised
    assert engine.template_blobs == []


def test_tiny_box_gives_clear_error_or_works(scripted_engine, rpn_maps):
    engine = scripted_engine([lambda side: rpn_maps(21, [(2, 10, 10, 0.9, (0, 0, 0, 0))])])
    tracker = _tracker(engine)
    img = np.zeros((60, 80, 3), np.uint8)
    try:
        tracker.init(img, (10, 10, 0.01, 0.01))
    except SiamDeployError:
        return
    try:
        tracker.track(img)
    except SiamDeployError:
        pass


# ---------------------------------------------------------------- call order
@pytest.mark.parametrize("preset", PRESETS)
def test_track_before_init(scripted_engine, preset):
    engine = scripted_engine()
    tracker = _tracker(engine, preset)
    with pytest.raises(InputError) as err:
        tracker.track(np.zeros((60, 80, 3), np.uint8))
    assert "init" in _one_line(err)
    assert engine.search_blobs == []


def test_failed_init_keeps_previous_target(scripted_engine, rpn_maps):
    """A rejected re-init does not destroy a running track."""
    engine = scripted_engine([lambda side: rpn_maps(21, [(2, 10, 10, 0.9, (0, 0, 0, 0))])])
    tracker = _tracker(engine)
    img = np.zeros((60, 80, 3), np.uint8)
    tracker.init(img, (20, 20, 20, 20))
    with pytest.raises(InputError):
        tracker.init(img, (20, 20, -1, 20))
    assert tracker.centre.tolist() == [29.5, 29.5]
    tracker.track(img)
