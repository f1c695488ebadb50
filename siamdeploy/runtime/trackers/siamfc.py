"""SiamFC multi-scale tracker (siamfc-pytorch ``TrackerSiamFC``, see docs/tracking.md#siamfc).

siamfc-pytorch keeps its centre and target size in float32 and lets numpy 2's promotion rules decide the
rest; the arithmetic below follows the same dtypes so rounding of crop corners matches frame by frame.
"""
from __future__ import annotations

import cv2
import numpy as np

from ...config import TrackParams
from ...engine.base import Engine, SearchOutput
from ...geometry import INCLUSIVE
from ..crop import cut_resized, round_by_rule, rounded_fill, to_blob
from ..types import TrackResult
from .base import Decoded, SearchRequest, Tracker
from .state import SiamFCState


class SiamFCTracker(Tracker):
    """Internal state: ``centre`` (y, x) and ``target_sz`` (h, w) as float32 arrays, ``z_sz``/``x_sz`` crop
    sides; as a value (:attr:`state`) a :class:`SiamFCState` with ``centre`` (cx, cy) and ``size`` (w, h)."""

    state_type = SiamFCState

    def __init__(self, engine: Engine, params: TrackParams, name: str = "") -> None:
        super().__init__(engine, params, name)
        p = params
        self.response_side = p.response_up * ((p.instance_size - p.exemplar_size) // p.stride + 1)
        hann = np.outer(np.hanning(self.response_side), np.hanning(self.response_side))
        self.window = hann / hann.sum()
        half = p.scale_num // 2
        self.scale_factors = p.scale_step ** np.linspace(-half, half, p.scale_num)
        self.centre = np.zeros(2, np.float32)
        self.target_sz = np.zeros(2, np.float32)
        # float32 after init (siamfc-pytorch's arithmetic), float64 once a frame has rescaled them
        self.z_sz: float | np.floating = 0.0
        self.x_sz: float | np.floating = 0.0
        self.fill = np.zeros(3, np.uint8)

    # ---- state
    @property
    def box_convention(self) -> str:
        return INCLUSIVE

    def _get_state(self) -> SiamFCState:
        return SiamFCState(centre=self.centre[::-1].astype(np.float64), size=self.target_sz[::-1].astype(np.float64),
                           z_sz=float(self.z_sz), x_sz=float(self.x_sz), fill=self.fill)

    def _set_state(self, state: SiamFCState, derive: bool) -> None:
        self.centre = np.asarray(state.centre[::-1], np.float32).copy()
        self.target_sz = np.asarray(state.size[::-1], np.float32).copy()
        self.fill = np.array(state.fill, np.uint8)
        if derive:
            self._derive_crop_sides()
        else:
            self.z_sz, self.x_sz = state.z_sz, state.x_sz

    def _derive_crop_sides(self) -> None:
        """``z_sz``/``x_sz`` from ``target_sz`` in the float32 arithmetic of siamfc-pytorch's init."""
        p = self.params
        context = np.float32(p.context_amount) * np.sum(self.target_sz)
        self.z_sz = np.sqrt(np.prod(self.target_sz + context))
        self.x_sz = self.z_sz * np.float32(p.instance_size) / np.float32(p.exemplar_size)

    def _crop(self, img: np.ndarray, size: float, out_size: int) -> np.ndarray:
        side = max(round_by_rule(float(size), "half_even"), 1)
        # corners in the float32 arithmetic of the upstream code, then np.round (half to even)
        y0, x0 = np.round(self.centre - np.float32((side - 1) / 2)).astype(int)
        return cut_resized(img, int(x0), int(y0), side, side, out_size, self.fill)

    def _init_blob(self, img: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        p = self.params
        x, y, w, h = box
        self.centre = np.array([y + (h - 1) / 2, x + (w - 1) / 2], np.float32)
        self.target_sz = np.array([h, w], np.float32)
        self._derive_crop_sides()
        self.fill = rounded_fill(img.mean(axis=(0, 1)))
        z = self._crop(img, float(self.z_sz), p.exemplar_size)
        return to_blob([z], p.colour == "rgb")

    def _prepare(self, img: np.ndarray) -> SearchRequest:
        p = self.params
        crops = [self._crop(img, self.x_sz * f, p.instance_size) for f in self.scale_factors]
        return SearchRequest(None, p.instance_size, img, patches=crops, rgb=p.colour == "rgb")

    def _decode(self, request: SearchRequest, out: SearchOutput) -> Decoded:
        p = self.params
        raw = out.outputs["response"][:, 0]
        side = self.response_side
        responses = np.stack([cv2.resize(r, (side, side), interpolation=cv2.INTER_CUBIC) for r in raw])
        mid = p.scale_num // 2
        responses[:mid] *= np.float32(p.scale_penalty)
        responses[mid + 1:] *= np.float32(p.scale_penalty)
        scale_id = int(np.argmax(np.amax(responses, axis=(1, 2))))
        response = responses[scale_id]
        peak = float(response.max())
        response = response - response.min()
        response = response / (response.sum() + np.float32(1e-16))
        response = (1 - p.window_influence) * response + p.window_influence * self.window
        loc = np.unravel_index(int(response.argmax()), response.shape)
        disp = (np.array(loc) - (side - 1) / 2) * p.stride / p.response_up
        disp = disp * self.x_sz * self.scale_factors[scale_id] / p.instance_size
        self.centre = (self.centre.astype(np.float64) + disp).astype(np.float32)
        scale = (1 - p.scale_lr) * 1.0 + p.scale_lr * self.scale_factors[scale_id]
        self.target_sz = (self.target_sz.astype(np.float64) * scale).astype(np.float32)
        self.z_sz = float(self.z_sz) * scale
        self.x_sz = float(self.x_sz) * scale
        cy, cx = (float(v) for v in self.centre)
        h, w = (float(v) for v in self.target_sz)
        return Decoded(TrackResult(bbox=(cx - (w - 1) / 2, cy - (h - 1) / 2, w, h), score=peak))
