"""Crops (pysot ``get_subwindow``, docs/tracking.md#crops): rounding rules, mean-colour padding, resize, blob."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from siamdeploy.errors import ConfigError, InputError
from siamdeploy.runtime import crop
from siamdeploy.runtime.crop import crop_window, round_by_rule, rounded_fill, square_crop, to_blob, truncated_fill

FILL = np.array([1, 2, 3], np.uint8)
H, W = 20, 24


def coded_image() -> np.ndarray:
    """Pixel (y, x) = (B, G, R) = (x + 50, y + 100, 200): every pixel tells where it came from, and no
    pixel equals FILL."""
    img = np.empty((H, W, 3), np.uint8)
    for y in range(H):
        for x in range(W):
            img[y, x] = (x + 50, y + 100, 200)
    return img


def expected_window(x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """The window [y0, y0+height) x [x0, x0+width) of coded_image(), written pixel by pixel from the
    definition: the coded colour inside the frame, FILL outside."""
    out = np.empty((height, width, 3), np.uint8)
    for r in range(height):
        for c in range(width):
            x, y = x0 + c, y0 + r
            out[r, c] = (x + 50, y + 100, 200) if (0 <= x < W and 0 <= y < H) else FILL
    return out


# ---------------------------------------------------------------- round_by_rule
@pytest.mark.parametrize("value, floor_half_up, half_away, half_even", [
    # floor(v + .5)          | Python 2 round (away from 0) | Python 3 round (to even)
    (0.5, 1, 1, 0),          # floor(1.0)=1  | 1  | 0
    (1.5, 2, 2, 2),          # floor(2.0)=2  | 2  | 2
    (2.5, 3, 3, 2),          # floor(3.0)=3  | 3  | 2
    (-0.5, 0, -1, 0),        # floor(0.0)=0  | -1 | 0 (-0)
    (-1.5, -1, -2, -2),      # floor(-1.0)=-1| -2 | -2
    (-2.5, -2, -3, -2),      # floor(-2.0)=-2| -3 | -2
    (7.5, 8, 8, 8),          # floor(8.0)=8  | 8  | 8
    (6.5, 7, 7, 6),          # floor(7.0)=7  | 7  | 6
    (2.4, 2, 2, 2),
    (-2.6, -3, -3, -3),      # floor(-2.1)=-3
    (-2.4, -2, -2, -2),      # floor(-1.9)=-2
])
def test_round_by_rule_half_values(value, floor_half_up, half_away, half_even):
    got = (round_by_rule(value, "floor_half_up"), round_by_rule(value, "half_away"),
           round_by_rule(value, "half_even"))
    assert got == (floor_half_up, half_away, half_even)
    assert all(type(v) is int for v in got)


def test_round_by_rule_unknown_rule():
    with pytest.raises(ConfigError, match="half_banker"):
        round_by_rule(1.5, "half_banker")


# ---------------------------------------------------------------- crop_window
def test_crop_window_inside_is_identical():
    img = coded_image()
    patch = crop_window(img, 3, 4, 6, 5, FILL)
    assert patch.shape == (5, 6, 3) and patch.dtype == np.uint8
    np.testing.assert_array_equal(patch, img[4:9, 3:9])
    np.testing.assert_array_equal(patch, expected_window(3, 4, 6, 5))


def test_crop_window_whole_frame_is_identical():
    img = coded_image()
    np.testing.assert_array_equal(crop_window(img, 0, 0, W, H, FILL), img)


@pytest.mark.parametrize("x0, y0, width, height", [
    (-2, -1, 4, 3),      # top-left overhang: row 0 and columns 0-1 are fill
    (W - 3, H - 2, 5, 4),  # bottom-right overhang
    (-3, 5, W + 6, 2),   # wider than the frame on both sides
    (5, -4, 3, H + 8),   # taller than the frame on both sides
    (-4, 2, 5, 3),       # exactly one column inside
    (3, H - 1, 2, 4),    # exactly one row inside
    (W - 1, H - 1, 3, 3),  # exactly one pixel inside
])
def test_crop_window_partially_outside_uses_fill(x0, y0, width, height):
    img = coded_image()
    patch = crop_window(img, x0, y0, width, height, FILL)
    assert patch.shape == (height, width, 3) and patch.dtype == np.uint8
    np.testing.assert_array_equal(patch, expected_window(x0, y0, width, height))


def test_crop_window_partially_outside_hand_values():
    img = coded_image()
    patch = crop_window(img, -2, -1, 4, 3, FILL)
    # row 0 is y=-1: all fill; columns 0,1 are x=-2,-1: fill
    assert (patch[0] == FILL).all()
    assert (patch[:, :2] == FILL).all()
    # patch[1, 2] is frame pixel (y=0, x=0) = (50, 100, 200); patch[2, 3] is (y=1, x=1) = (51, 101, 200)
    assert tuple(patch[1, 2]) == (50, 100, 200)
    assert tuple(patch[2, 3]) == (51, 101, 200)


@pytest.mark.parametrize("x0, y0", [(W, 0), (0, H), (-5, 0), (0, -4), (100, 100), (-50, -50)])
def test_crop_window_entirely_outside_is_all_fill(x0, y0):
    # widths 5 x 4: (-5, 0) ends at x=-1, (0, -4) ends at y=-1 -> no frame pixel inside
    patch = crop_window(coded_image(), x0, y0, 5, 4, FILL)
    assert patch.shape == (4, 5, 3)
    assert (patch == FILL).all()


def test_crop_window_does_not_modify_frame():
    img = coded_image()
    before = img.copy()
    crop_window(img, -3, -3, 10, 10, FILL)
    np.testing.assert_array_equal(img, before)


# ---------------------------------------------------------------- fills
def test_truncated_fill_truncates():
    # pysot writes the float mean into uint8: 127.9 -> 127, 0.99 -> 0, 254.5 -> 254
    fill = truncated_fill(np.array([127.9, 0.99, 254.5]))
    assert fill.dtype == np.uint8
    assert fill.tolist() == [127, 0, 254]


def test_rounded_fill_rounds_half_to_even():
    # cv2.copyMakeBorder rounds: 127.5 -> 128, 126.5 -> 126 (half to even), 0.4 -> 0, 254.6 -> 255
    fill = rounded_fill(np.array([127.5, 126.5, 0.4, 254.6]))
    assert fill.dtype == np.uint8
    assert fill.tolist() == [128, 126, 0, 255]


def test_truncated_and_rounded_fill_differ():
    mean = np.array([127.9, 127.5, 126.5])
    assert truncated_fill(mean).tolist() == [127, 127, 126]
    assert rounded_fill(mean).tolist() == [128, 128, 126]


# ---------------------------------------------------------------- square_crop
# corner = R(centre - (size+1)/2); size 5 -> c = 3, size 4 -> c = 2.5
@pytest.mark.parametrize("centre, size, rule, corner", [
    # centre (0.5, 9.5), size 5: (-2.5, 6.5)
    ((0.5, 9.5), 5, "floor_half_up", (-2, 7)),    # floor(-2.0), floor(7.0)
    ((0.5, 9.5), 5, "half_away", (-3, 7)),        # Python 2 round
    ((0.5, 9.5), 5, "half_even", (-2, 6)),        # Python 3 round
    # centre (1.5, 10.5), size 5: (-1.5, 7.5)
    ((1.5, 10.5), 5, "floor_half_up", (-1, 8)),   # floor(-1.0), floor(8.0)
    ((1.5, 10.5), 5, "half_away", (-2, 8)),
    ((1.5, 10.5), 5, "half_even", (-2, 8)),
    # centre (10.5, 10.5), size 5: (7.5, 7.5) -> 8 under every rule
    ((10.5, 10.5), 5, "floor_half_up", (8, 8)),
    ((10.5, 10.5), 5, "half_away", (8, 8)),
    ((10.5, 10.5), 5, "half_even", (8, 8)),
    # even size 4, centre (9.0, 12.0): (6.5, 9.5)
    ((9.0, 12.0), 4, "floor_half_up", (7, 10)),
    ((9.0, 12.0), 4, "half_away", (7, 10)),
    ((9.0, 12.0), 4, "half_even", (6, 10)),
    # bottom-right border, centre (23.5, 19.5), size 5: (20.5, 16.5)
    ((23.5, 19.5), 5, "floor_half_up", (21, 17)),
    ((23.5, 19.5), 5, "half_away", (21, 17)),
    ((23.5, 19.5), 5, "half_even", (20, 16)),
    # not a half value: (10.3, 10.7) size 5 -> (7.3, 7.7) -> (7, 8) everywhere
    ((10.3, 10.7), 5, "half_even", (7, 8)),
    ((10.3, 10.7), 5, "half_away", (7, 8)),
])
def test_square_crop_window(centre, size, rule, corner):
    patch = square_crop(coded_image(), centre, size, size, FILL, rule)
    assert patch.shape == (size, size, 3) and patch.dtype == np.uint8
    np.testing.assert_array_equal(patch, expected_window(corner[0], corner[1], size, size))


class _ResizeSpy:
    def __init__(self) -> None:
        self.calls: list[tuple[np.dtype, tuple[int, ...], tuple[int, int]]] = []
        self.original = cv2.resize

    def __call__(self, src, dsize, *args, **kwargs):
        self.calls.append((src.dtype, src.shape, tuple(dsize)))
        return self.original(src, dsize, *args, **kwargs)


def test_square_crop_no_resize_when_size_equals_out_size(monkeypatch):
    spy = _ResizeSpy()
    monkeypatch.setattr(crop.cv2, "resize", spy)
    square_crop(coded_image(), (10.5, 10.5), 7, 7, FILL, "floor_half_up")
    assert spy.calls == []


def test_square_crop_resizes_uint8_patch_when_sizes_differ(monkeypatch):
    img = coded_image()
    original_resize = cv2.resize
    spy = _ResizeSpy()
    monkeypatch.setattr(crop.cv2, "resize", spy)
    # centre (1.5, 1.5), size 6: corner floor(1.5 - 3.5 + .5) = floor(-1.5) = -2 -> window x,y in [-2, 4)
    patch = square_crop(img, (1.5, 1.5), 6, 15, FILL, "floor_half_up")
    assert len(spy.calls) == 1
    dtype, shape, dsize = spy.calls[0]
    assert dtype == np.uint8 and shape == (6, 6, 3) and dsize == (15, 15)
    assert patch.shape == (15, 15, 3) and patch.dtype == np.uint8
    # INTER_LINEAR (the default) on the uint8 window, padded with FILL
    np.testing.assert_array_equal(patch, original_resize(expected_window(-2, -2, 6, 6), (15, 15),
                                                         interpolation=cv2.INTER_LINEAR))


def test_square_crop_downscale_constant_image():
    img = np.full((40, 40, 3), 77, np.uint8)
    patch = square_crop(img, (20.0, 20.0), 30, 10, FILL, "floor_half_up")
    assert patch.shape == (10, 10, 3)
    assert (patch == 77).all()


# ---------------------------------------------------------------- to_blob
def test_to_blob_layout_bgr_and_rgb():
    a = np.zeros((2, 3, 3), np.uint8)
    a[..., 0], a[..., 1], a[..., 2] = 10, 20, 30          # B, G, R
    b = np.zeros((2, 3, 3), np.uint8)
    b[..., 0], b[..., 1], b[..., 2] = 1, 2, 3
    b[1, 2] = (4, 5, 6)                                    # row 1, column 2
    bgr = to_blob([a, b], rgb=False)
    assert bgr.shape == (2, 3, 2, 3) and bgr.dtype == np.float32 and bgr.flags.c_contiguous
    assert bgr[0, :, 0, 0].tolist() == [10.0, 20.0, 30.0]
    assert bgr[1, :, 1, 2].tolist() == [4.0, 5.0, 6.0]
    assert bgr[1, :, 0, 0].tolist() == [1.0, 2.0, 3.0]
    rgb = to_blob([a, b], rgb=True)
    assert rgb.shape == (2, 3, 2, 3) and rgb.dtype == np.float32 and rgb.flags.c_contiguous
    assert rgb[0, :, 0, 0].tolist() == [30.0, 20.0, 10.0]
    assert rgb[1, :, 1, 2].tolist() == [6.0, 5.0, 4.0]


def test_to_blob_keeps_0_255_range():
    p = np.full((4, 4, 3), 255, np.uint8)
    blob = to_blob([p], rgb=False)
    assert blob.max() == 255.0 and blob.min() == 255.0


def _blob_by_definition(patches: list[np.ndarray], rgb: bool) -> np.ndarray:
    """The blob written from its definition: stack, optional channel flip, HWC -> CHW, float32."""
    batch = np.stack(patches)
    if rgb:
        batch = batch[..., ::-1]
    return batch.transpose(0, 3, 1, 2).astype(np.float32)


@pytest.mark.parametrize("rgb", [False, True])
def test_to_blob_equals_definition_on_views_and_writes_into_out(rgb):
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (40, 50, 3), np.uint8)
    patches = [frame[2:19, 5:22], rng.integers(0, 256, (17, 17, 3), np.uint8)]  # a strided view and a copy
    np.testing.assert_array_equal(to_blob(patches, rgb), _blob_by_definition(patches, rgb))
    batch = np.full((3, 2, 3, 17, 17), -1.0, np.float32)
    got = to_blob(patches, rgb, out=batch[1])
    assert got.base is batch or got is batch[1] or np.shares_memory(got, batch)
    np.testing.assert_array_equal(batch[1], _blob_by_definition(patches, rgb))
    assert (batch[0] == -1).all() and (batch[2] == -1).all()  # the other rows are untouched


def test_to_blob_refuses_mismatched_patches_and_outputs():
    a = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(InputError, match="same size"):
        to_blob([a, np.zeros((5, 4, 3), np.uint8)], rgb=False)
    with pytest.raises(InputError, match="output"):
        to_blob([a], rgb=False, out=np.zeros((1, 3, 4, 5), np.float32))
    with pytest.raises(InputError, match="at least one"):
        to_blob([], rgb=False)


def test_crop_window_random_windows_equal_definition():
    img = coded_image()
    rng = np.random.default_rng(5)
    for _ in range(200):
        width, height = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        x0, y0 = int(rng.integers(-45, W + 5)), int(rng.integers(-45, H + 5))
        np.testing.assert_array_equal(crop_window(img, x0, y0, width, height, FILL),
                                      expected_window(x0, y0, width, height))
