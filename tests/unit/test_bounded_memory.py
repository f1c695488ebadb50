"""Issue 13 item 4: memory stays bounded for huge boxes and long demos.

- crops: a window larger than ``MAX_EXACT_CROP_PIXELS`` is never allocated (tracemalloc peak), smaller ones
  are cut exactly as before; a 20000-pixel init box tracks in a process whose address space is capped at 3 GB
  (the old crops needed ~19 GB for its search window);
- the demo source draws frames lazily: the same frames as the in-memory generator, one at a time.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tracemalloc

import cv2
import numpy as np
import pytest

from siamdeploy.runtime.crop import MAX_EXACT_CROP_PIXELS, crop_window, cut_resized
from siamdeploy.synthetic import generate_sequence, lazy_sequence

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILL = np.array([10, 20, 30], np.uint8)


def _frame(height: int = 240, width: int = 320) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _peak(fn) -> tuple[object, int]:
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("x0, y0, side", [(-40, -30, 400), (100, 50, 64), (250, 200, 255), (-1500, -1400, 2900),
                                          (5, 5, 17)])
def test_windows_up_to_the_limit_are_cut_exactly(x0: int, y0: int, side: int) -> None:
    img = _frame()
    assert side * side <= MAX_EXACT_CROP_PIXELS
    expected = cv2.resize(crop_window(img, x0, y0, side, side, FILL), (127, 127))
    assert np.array_equal(cut_resized(img, x0, y0, side, side, 127, FILL), expected)
    assert np.array_equal(cut_resized(img, x0, y0, side, side, side, FILL, resize=False),
                          crop_window(img, x0, y0, side, side, FILL))


def test_huge_window_allocates_only_its_output() -> None:
    img = _frame()
    side = 80_000   # a 20000 px box's search window: 19.2 GB as a whole uint8 patch
    out, peak = _peak(lambda: cut_resized(img, -side // 2, -side // 2, side, side, 255, FILL))
    assert out.shape == (255, 255, 3)
    assert peak < 2_000_000, f"peak {peak / 1e6:.1f} MB"
    # the frame (320 x 240 of an 80000 window centred on its top-left corner) lands in the output's middle
    frame_part = np.flatnonzero((out != FILL).any(axis=2).any(axis=0))
    assert 127 <= frame_part.min() <= 128 and frame_part.max() <= 129   # 40000 * 255 / 80000 = 127.5
    assert (out[:120, :] == FILL).all() and (out[:, :120] == FILL).all()


def test_just_above_the_limit_is_close_to_the_exact_crop() -> None:
    img = np.ascontiguousarray(cv2.GaussianBlur(_frame(), (0, 0), 6))   # smooth, so both samplings agree
    side = 4200                                   # 17.6 M pixels: over the limit, still cheap to cut whole
    assert side * side > MAX_EXACT_CROP_PIXELS
    x0, y0 = -2000, -1900
    exact = cv2.resize(crop_window(img, x0, y0, side, side, FILL), (255, 255))
    bounded, peak = _peak(lambda: cut_resized(img, x0, y0, side, side, 255, FILL))
    assert peak < 2_000_000
    frame_exact = (exact != FILL).any(axis=2)
    frame_bounded = (bounded != FILL).any(axis=2)
    assert abs(int(frame_exact.sum()) - int(frame_bounded.sum())) <= 60    # the frame's footprint, ~19 x 15 px
    both = frame_exact & frame_bounded
    assert both.sum() >= 200
    assert float(np.abs(exact[both].astype(int) - bounded[both].astype(int)).mean()) < 12


def test_huge_init_box_tracks_in_a_capped_address_space() -> None:
    """Every tracker loop with a 20000-pixel box, in a subprocess limited to 3 GB of address space."""
    code = textwrap.dedent("""
        import resource, sys, tracemalloc
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        import numpy as np
        sys.path.insert(0, "tests/unit")
        from content_engine import ContentEngine
        from siamdeploy.presets import get_preset
        from siamdeploy.runtime import make_tracker
        frame = np.random.default_rng(0).integers(0, 256, (360, 480, 3), dtype=np.uint8)
        tracemalloc.start()
        for preset in ("siamrpn_alex_dwxcorr", "siamrpn_haooozi", "siamrpn_r50_l234_dwxcorr_lt", "siamfc"):
            params = get_preset(preset).track
            tracker = make_tracker(ContentEngine(params), params, preset)
            tracker.init(frame, (-100, -100, 20000, 20000))
            for _ in range(3):
                box = tracker.track(frame).bbox
            assert np.isfinite(box).all(), (preset, box)
        print("peak", tracemalloc.get_traced_memory()[1])
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak = int(proc.stdout.split()[-1])
    assert peak < 64_000_000, f"peak {peak / 1e6:.1f} MB"


def test_lazy_sequence_matches_the_generator_and_holds_no_frames() -> None:
    eager = generate_sequence(seed=5, num_frames=12, size=(320, 240))
    lazy = lazy_sequence(seed=5, num_frames=12, size=(320, 240))
    assert len(lazy) == 12 and np.array_equal(lazy.boxes, eager.boxes) and lazy.name == eager.name
    for i, frame in enumerate(lazy):
        assert np.array_equal(frame, eager.frames[i])
    assert np.array_equal(lazy[-1], eager.frames[-1]) and np.array_equal(lazy.frame(3), eager.frames[3])
    with pytest.raises(IndexError):
        lazy.frame(12)


def test_long_demo_source_is_lazy() -> None:
    from siamdeploy.apps.sources import open_source

    def first_frames():
        source = open_source("demo", demo_frames=100_000)
        frames = [next(source.frames) for _ in range(3)]
        return source, frames

    (source, frames), peak = _peak(first_frames)
    assert source.length == 100_000 and source.ground_truth.shape == (100_000, 4)
    # 100000 frames of 480 x 360 x 3 would be 52 GB; the path arrays and boxes are a few MB
    assert peak < 40_000_000, f"peak {peak / 1e6:.1f} MB"
    from siamdeploy.reference import DEMO_SEED, demo_sequence

    reference = demo_sequence(num_frames=3, seed=DEMO_SEED)  # the demo is the reference models' photo sequence
    for i, frame in enumerate(frames):
        assert np.array_equal(frame, reference.frames[i])
    assert np.array_equal(source.ground_truth[:3], reference.boxes)
