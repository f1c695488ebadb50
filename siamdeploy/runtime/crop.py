"""Crops around the target, padded with the frame's mean colour, as the upstream trackers cut them.

Memory is bounded: a crop of at most :data:`MAX_EXACT_CROP_PIXELS` pixels is cut whole (the window, padded,
then resized), pixel for pixel as the upstream code does. A larger window (only reachable with a target many
times the frame, e.g. a 20000-pixel init box) is never allocated: the part that overlaps the frame is resized
straight to its share of the output and the rest of the output is the fill colour (see :func:`cut_resized`),
so a crop allocates at most ``3 * MAX_EXACT_CROP_PIXELS`` bytes plus its output.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from ..config import ROUND_FLOOR_HALF_UP, ROUND_HALF_AWAY, ROUND_HALF_EVEN, ROUND_HALF_UP, CropRounding
from ..errors import ConfigError, InputError

# Windows up to this many pixels (4096 x 4096, 48 MiB as uint8 BGR) are cut exactly; larger ones are bounded.
MAX_EXACT_CROP_PIXELS = 1 << 24


def round_by_rule(value: float, rule: CropRounding | str) -> int:
    """Round ``value`` to an integer by one of the upstream rules.

    ``floor_half_up``: ``floor(v + 0.5)`` (pysot); ``half_away``: Python 2 ``round`` (DaSiamRPN);
    ``half_even``: Python 3 ``round`` / ``np.round``; ``half_up``: haooozi's ``round(v + 1e-6 + 1000) - 1000``.
    """
    if rule == ROUND_FLOOR_HALF_UP:
        return math.floor(value + 0.5)
    if rule == ROUND_HALF_AWAY:
        return int(math.copysign(math.floor(abs(value) + 0.5), value))
    if rule == ROUND_HALF_EVEN:
        return round(value)
    if rule == ROUND_HALF_UP:  # the upstream offsets keep its float rounding at ties exactly
        return round(value + 1e-6 + 1000) - 1000
    raise ConfigError(f"unknown rounding rule '{rule}'; known: {', '.join(CropRounding)}")


def filled(height: int, width: int, fill: np.ndarray) -> np.ndarray:
    """A ``height x width x len(fill)`` uint8 image of the colour ``fill`` (written row by row: a broadcast of
    the 3-value colour over the whole image is several times slower)."""
    out = np.empty((height, width, len(fill)), np.uint8)
    if height and width:
        out[0] = fill
        out[1:] = out[0]
    return out


def crop_window(img: np.ndarray, x0: int, y0: int, width: int, height: int, fill: np.ndarray) -> np.ndarray:
    """Pixels ``[y0, y0+height) x [x0, x0+width)`` of ``img``; what lies outside the frame is ``fill``.

    img: ``HxWx3`` uint8; fill: 3 uint8 values. Returns ``height x width x 3`` uint8 (a view when inside).
    """
    h_img, w_img = img.shape[:2]
    if x0 >= 0 and y0 >= 0 and x0 + width <= w_img and y0 + height <= h_img:
        return img[y0:y0 + height, x0:x0 + width]
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x0 + width, w_img), min(y0 + height, h_img)
    if ix1 <= ix0 or iy1 <= iy0 or img.shape[2] != len(fill) or len(fill) > 4:
        patch = filled(height, width, fill)
        if ix1 > ix0 and iy1 > iy0:
            patch[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = img[iy0:iy1, ix0:ix1]
        return patch
    # the frame part with constant borders: a plain copy, pixel for pixel the same as filling and pasting
    return cv2.copyMakeBorder(img[iy0:iy1, ix0:ix1], iy0 - y0, y0 + height - iy1, ix0 - x0, x0 + width - ix1,
                              cv2.BORDER_CONSTANT, value=tuple(int(v) for v in fill))


def cut_resized(img: np.ndarray, x0: int, y0: int, width: int, height: int, out_size: int, fill: np.ndarray,
                resize: bool = True) -> np.ndarray:
    """The window ``[y0, y0+height) x [x0, x0+width)`` of ``img`` (``fill`` outside the frame) resized with
    INTER_LINEAR to ``out_size x out_size`` (or returned as cut when ``resize`` is False), uint8 ``HxWx3``.

    Windows of at most :data:`MAX_EXACT_CROP_PIXELS` pixels give exactly ``cv2.resize(crop_window(...))``.
    Larger ones never exist in memory: the frame part of the window is resized (INTER_AREA) to the output
    rectangle it covers, rounded to whole pixels, into an output filled with ``fill``.
    """
    if width * height <= MAX_EXACT_CROP_PIXELS:
        patch = crop_window(img, x0, y0, width, height, fill)
        return cv2.resize(patch, (out_size, out_size)) if resize else patch
    out = filled(out_size, out_size, fill)
    h_img, w_img = img.shape[:2]
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x0 + width, w_img), min(y0 + height, h_img)
    if ix1 <= ix0 or iy1 <= iy0:
        return out
    sx, sy = out_size / width, out_size / height
    ox0, oy0 = min(round((ix0 - x0) * sx), out_size - 1), min(round((iy0 - y0) * sy), out_size - 1)
    ox1, oy1 = max(round((ix1 - x0) * sx), ox0 + 1), max(round((iy1 - y0) * sy), oy0 + 1)
    out[oy0:oy1, ox0:ox1] = cv2.resize(img[iy0:iy1, ix0:ix1], (ox1 - ox0, oy1 - oy0), interpolation=cv2.INTER_AREA)
    return out


def truncated_fill(mean_colour: np.ndarray) -> np.ndarray:
    """pysot/DaSiamRPN write the float mean into a uint8 image: truncation (127.9 -> 127)."""
    return np.asarray(mean_colour, np.float64).astype(np.uint8)


def rounded_fill(mean_colour: np.ndarray) -> np.ndarray:
    """cv2.copyMakeBorder (siamfc-pytorch) rounds the float border value half to even."""
    return np.rint(np.asarray(mean_colour, np.float64)).astype(np.uint8)


def square_crop(img: np.ndarray, centre: tuple[float, float], size: int, out_size: int, fill: np.ndarray,
                rounding: str) -> np.ndarray:
    """pysot-style ``get_subwindow``: a ``size``-pixel square around ``centre`` resized to ``out_size``.

    The top-left corner is ``R(c - (size+1)/2)`` with ``R`` the rounding rule; the uint8 patch is resized
    with INTER_LINEAR only when ``size != out_size``. Returns ``out_size x out_size x 3`` uint8.
    """
    half = (size + 1) / 2
    x0 = round_by_rule(centre[0] - half, rounding)
    y0 = round_by_rule(centre[1] - half, rounding)
    return cut_resized(img, x0, y0, size, size, out_size, fill, resize=size != out_size)


def float_crop(img: np.ndarray, centre: tuple[float, float], side: float, out_size: int,
               fill: np.ndarray) -> tuple[np.ndarray, int]:
    """haooozi / SiamTrackers ``crop_and_pad``: a float-sized window, corners rounded half up, inclusive.

    Corners ``x0 = c - (side-1)/2``, ``x1 = x0 + side - 1``; the patch spans pixels ``R(x0)..R(x1)``
    (so it is ``floor(side)`` or ``ceil(side)`` wide per axis and may be non-square) and is resized to
    ``out_size`` unless ``side == out_size``. Returns ``(patch, patch_height_before_resize)``.
    """
    corners = []
    for c in centre:
        lo = c - (side - 1) / 2
        hi = lo + side - 1
        pad = round_by_rule(max(0.0, -lo), ROUND_HALF_UP)  # upstream rounds in padded coordinates
        corners.append((round_by_rule(lo + pad, ROUND_HALF_UP) - pad, round_by_rule(hi + pad, ROUND_HALF_UP) - pad))
    (x0, x1), (y0, y1) = corners
    patch = cut_resized(img, x0, y0, x1 - x0 + 1, y1 - y0 + 1, out_size, fill, resize=side != out_size)
    return patch, y1 - y0 + 1


def to_blob(patches: Sequence[np.ndarray], rgb: bool, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 ``HxWx3`` patches -> float32 ``(B, 3, H, W)`` network input, channels flipped for RGB models.

    Cropping and resizing act per channel, so flipping the crop equals cropping an RGB frame. ``out``: a
    float32 ``(B, 3, H, W)`` array to write into (e.g. this target's rows of a batch), returned; None: a new one.
    Each channel is split out and converted into its plane (no strided transpose of the whole batch).
    """
    if not patches:
        raise InputError("to_blob needs at least one patch")
    height, width = patches[0].shape[:2]
    shape = (len(patches), 3, height, width)
    if out is None:
        out = np.empty(shape, np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise InputError(f"to_blob writes {shape} float32, got an output {out.dtype} {out.shape}; pass an array of "
                         "that shape or none")
    for index, patch in enumerate(patches):
        if patch.shape != (height, width, 3) or patch.dtype != np.uint8:
            raise InputError(f"to_blob takes uint8 {height}x{width}x3 patches, got {patch.dtype} {patch.shape}; "
                             "cut every patch of a blob at the same size")
        channels = cv2.split(patch)
        for plane, channel in zip(out[index], channels[::-1] if rgb else channels):
            plane[...] = channel  # uint8 -> float32 is exact
    return out
