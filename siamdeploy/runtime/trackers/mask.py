"""SiamMask: the RPN loop plus a mask at the chosen cell, warped back into the frame (pysot ``SiamMaskTracker``)."""
from __future__ import annotations

import cv2
import numpy as np

from ...config import MASK_HEAD
from ...engine.base import SearchOutput
from ..types import TrackResult
from .base import Decoded, MaskRequest
from .rpn import RPNTracker


def sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 logistic function."""
    x = np.asarray(x, np.float32)
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def warp_mask_to_frame(mask: np.ndarray, window: tuple[float, float, float], frame_shape: tuple[int, ...],
                       border: float = 0.0) -> np.ndarray:
    """Place a square mask covering ``window = (x0, y0, side)`` (frame pixels) into an ``H x W`` float32 frame.

    Uses pysot's affine (maps the mask's ``out-1`` span onto the frame's ``W-1``/``H-1`` span scaled by the
    mask resolution), INTER_LINEAR, constant ``border`` outside.
    """
    out = mask.shape[0]
    height, width = frame_shape[:2]
    s = out / window[2]
    back = (-window[0] * s, -window[1] * s, width * s, height * s)
    a = (width - 1) / back[2]
    b = (height - 1) / back[3]
    mapping = np.array([[a, 0, -a * back[0]], [0, b, -b * back[1]]], np.float64)
    return cv2.warpAffine(mask, mapping, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def mask_polygon(mask: np.ndarray, threshold: float, fallback: tuple[float, float, float, float]) -> np.ndarray:
    """Rotated box of the largest external contour (area > 100) of ``mask > threshold``, as ``(4, 2)``
    float corners; otherwise the corners of the axis-aligned ``fallback`` ``(x, y, w, h)``."""
    binary = (mask > threshold).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    areas = [cv2.contourArea(c) for c in contours]
    if contours and max(areas) > 100:
        contour = contours[int(np.argmax(areas))]
        return cv2.boxPoints(cv2.minAreaRect(contour.reshape(-1, 2))).astype(np.float64)
    x, y, w, h = fallback
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)


class MaskTracker(RPNTracker):
    """Adds ``polygon`` and ``mask`` to each result. The mask never feeds back into the tracker state.

    Rules: ``mask_source`` (pysot/foolwood sharp: the refine branch's 127x127; foolwood base: the mask head's
    63x63 at the chosen cell), ``mask_border`` (value outside the warped window) and ``polygon_before_clip``
    (the empty-mask fallback box is the unclipped state, as foolwood computes it before clipping).
    """

    def _decoded(self, img: np.ndarray, result: TrackResult, out: SearchOutput, best: int,
                 prev_centre: np.ndarray, crop_side: float, instance: int) -> Decoded:
        """Ask for the mask at the chosen cell; keep the window it covers and the empty-mask fallback box."""
        p = self.params
        n = p.score_size(instance)
        _, y, x = np.unravel_index(best, (p.anchor_num, n, n))
        head = "mask_head" if p.mask_source == MASK_HEAD else "refine"
        # The exemplar-sized window of the search crop centred on the chosen cell, in frame pixels.
        s = crop_side / instance
        left = prev_centre[0] - crop_side / 2
        top = prev_centre[1] - crop_side / 2
        window = (left + (x - p.base_size / 2) * p.stride * s, top + (y - p.base_size / 2) * p.stride * s,
                  s * p.exemplar_size)
        if p.polygon_before_clip:
            cx, cy, w, h = self.unclipped
        else:
            (cx, cy), (w, h) = self.centre, self.size
        fallback = (cx - w / 2, cy - h / 2, w, h)
        return Decoded(result, MaskRequest(head, out.extras, (int(y), int(x))), (img.shape, window, fallback))

    def _finish(self, decoded: Decoded, logits: np.ndarray | None) -> TrackResult:
        """The mask logits warped into the frame (``result.mask``) and their rotated box (``result.polygon``)."""
        p = self.params
        shape, window, fallback = decoded.context
        if logits is None:
            raise ValueError("a SiamMask result needs the mask logits it asked for in decode()")
        frame_mask = warp_mask_to_frame(sigmoid(logits), window, shape, p.mask_border)
        result = decoded.result
        result.polygon = mask_polygon(frame_mask, p.mask_threshold, fallback)
        result.mask = frame_mask
        return result
