"""The photo-scene generator: seeded, exact boxes, held-out photographs that need no extra package."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from siamdeploy.synthetic import photos as P


def test_sequence_is_reproducible() -> None:
    a = P.photo_sequence(seed=7, num_frames=4)
    b = P.photo_sequence(seed=7, num_frames=4)
    c = P.photo_sequence(seed=8, num_frames=4)
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.frames[0], c.frames[0])
    assert a.frames[0].shape == (360, 480, 3) and a.frames[0].dtype == np.uint8
    assert a.boxes.shape == (4, 4) and np.all(a.boxes[:, 2:] > 4)


@pytest.mark.parametrize("angle", [0.0, 30.0])
@pytest.mark.parametrize("ellipse", [False, True])
def test_box_is_the_drawn_shape(angle: float, ellipse: bool) -> None:
    """A white object on black: the pixels it covers (alpha >= 0.5) span its ground-truth box within 1 px."""
    mover = P._Mover(np.full((96, 96, 3), 255, np.uint8), ellipse, (0.45, 0.55, 70.0, 40.0),
                     np.zeros((5, 1)), np.zeros((5, 1)), np.zeros((5, 1)), np.zeros(2))
    mover.amp[4, 0] = angle
    mover.phase[4, 0] = np.pi / 2  # sin(phase) = 1: the angle term equals `angle` at t = 0
    canvas = np.zeros((240, 320, 3), np.float32)
    P._draw(canvas, mover, 0.0)
    ys, xs = np.nonzero(canvas[:, :, 0] >= 127.5)
    x, y, w, h = mover.bbox(0.0, 320, 240)
    assert abs(xs.min() - x) <= 1.0 and abs(xs.max() + 1 - (x + w)) <= 1.0
    assert abs(ys.min() - y) <= 1.0 and abs(ys.max() + 1 - (y + h)) <= 1.0
    assert abs(x + w / 2 - 0.45 * 320) < 1e-9 and abs(y + h / 2 - 0.55 * 240) < 1e-9


def test_heldout_photographs_are_not_training_photographs() -> None:
    training = set(P._SKIMAGE_TRAIN) | {n.split(".")[0] for n in P._SKLEARN_TRAIN}
    assert not training & set(P.HELDOUT_NAMES)
    held = P.heldout_photos()
    assert sorted(held) == sorted(P.HELDOUT_NAMES)
    assert all(img.ndim == 3 and img.shape[2] == 3 and max(img.shape[:2]) <= 480 for img in held.values())


def test_demo_sequence_needs_no_scikit_image() -> None:
    code = ("import sys; sys.modules['skimage'] = None; sys.modules['sklearn'] = None\n"
            "from siamdeploy.reference import demo_sequence\n"
            "seq = demo_sequence(num_frames=3); print(len(seq.frames), seq.boxes.shape)")
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["3", "(3,", "4)"]


def test_make_scene_without_photographs_is_a_config_error() -> None:
    from siamdeploy.errors import ConfigError

    with pytest.raises(ConfigError, match="at least one photograph"):
        P.make_scene(0, {})
