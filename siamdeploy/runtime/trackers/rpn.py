"""Anchor-based trackers: SiamRPN / SiamRPN++ / DaSiamRPN / up-channel SiamRPN, long-term, and SiamMask.

One loop (pysot's ``SiamRPNTracker``, see docs/tracking.md#the-rpn-tracking-loop). The upstream code bases
differ in small, named rules carried by :class:`~siamdeploy.config.TrackParams` (crop rounding and style,
centre and output conventions, size clamps); the long-term and mask variants override small hooks.
"""
from __future__ import annotations

import math

import numpy as np

from ...config import (BOX_INCLUSIVE, CENTRE_HALF, CLAMP_INIT_RELATIVE, CROP_FLOAT_INCLUSIVE, TrackParams)
from ...engine.base import Engine, SearchOutput
from ...geometry import HALF, INCLUSIVE, clip_state
from ..anchors import anchor_grid, cosine_window
from ..crop import float_crop, round_by_rule, square_crop, to_blob, truncated_fill
from ..rpn_decode import decode_boxes, foreground_scores, select_best, size_penalty
from ..types import TrackResult
from .base import Decoded, SearchRequest, Tracker
from .state import LongTermState, RPNState


class RPNTracker(Tracker):
    """pysot ``SiamRPNTracker`` and its relatives.

    State (:class:`RPNState`): ``centre`` (cx, cy) and ``size`` (w, h) in frame pixels, float64. ``crop_wh`` is
    the size the crops are cut for (the same as ``size`` except under the ``init_relative`` clamp, where the
    upstream code keeps a separately clipped copy).
    """

    state_type = RPNState

    def __init__(self, engine: Engine, params: TrackParams, name: str = "") -> None:
        super().__init__(engine, params, name)
        self._grids: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.centre = np.zeros(2)
        self.size = np.zeros(2)
        self.crop_wh = np.zeros(2)
        self.init_size = np.zeros(2)
        self.unclipped = (0.0, 0.0, 0.0, 0.0)
        self.instance_size = params.instance_size
        self.avg = np.zeros(3)
        self.frame_size = (0, 0)

    # ---- state
    @property
    def box_convention(self) -> str:
        return INCLUSIVE if self.params.box_output == BOX_INCLUSIVE else HALF

    def _get_state(self) -> RPNState:
        return RPNState(centre=self.centre, size=self.size, crop_wh=self.crop_wh, init_size=self.init_size,
                        instance_size=self.instance_size, avg=self.avg, frame_size=self.frame_size)

    def _set_state(self, state: RPNState, derive: bool) -> None:
        self.centre = np.array(state.centre)
        self.size = np.array(state.size)
        self.init_size = np.array(state.init_size)
        self.instance_size = state.instance_size
        self.avg = np.array(state.avg)
        self.frame_size = state.frame_size
        self.crop_wh = self._derived_crop_wh() if derive else np.array(state.crop_wh)

    def _derived_crop_wh(self) -> np.ndarray:
        """``crop_wh`` as the loop's update derives it from ``size``: a copy of it, or under the
        ``init_relative`` clamp ``size`` clipped to ``[10, W] x [10, H]`` of :attr:`frame_size`."""
        if self.params.size_clamp == CLAMP_INIT_RELATIVE:
            width, height = self.frame_size
            return np.array([float(np.clip(self.size[0], 10, width)), float(np.clip(self.size[1], 10, height))])
        return self.size.copy()

    # ---- geometry
    def grid(self, instance_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Anchors and cosine window for a search size (cached: the LT tracker switches sizes)."""
        if instance_size not in self._grids:
            p = self.params
            n = p.score_size(instance_size)
            self._grids[instance_size] = (anchor_grid(p.stride, p.ratios, p.scales, n),
                                          cosine_window(n, p.anchor_num))
        return self._grids[instance_size]

    def _context_size(self) -> float:
        """``sqrt(w_z * h_z)`` with ``w_z = w + context * (w + h)``: the exemplar side in frame pixels."""
        w, h = self.crop_wh
        context = self.params.context_amount * (w + h)
        return math.sqrt((w + context) * (h + context))

    def _crop(self, img: np.ndarray, side: float, out_size: int) -> tuple[np.ndarray, float, float]:
        """Crop of ``side`` frame pixels around the centre, resized to ``out_size``.

        Returns ``(patch, crop_side, scale)``: the side actually cut and, for the float-inclusive rule,
        the network-pixels-per-frame-pixel scale the upstream code derives from the patch height
        (0 for square crops, whose scale the caller takes from ``s_z``).
        """
        p = self.params
        fill = truncated_fill(self.avg)
        if p.crop_style == CROP_FLOAT_INCLUSIVE:
            patch, height = float_crop(img, (self.centre[0], self.centre[1]), side, out_size, fill)
            return patch, side, out_size / height
        size = max(round_by_rule(side, p.size_rounding), 1)  # sub-pixel boxes: upstream crashes
        return square_crop(img, (self.centre[0], self.centre[1]), size, out_size, fill, p.crop_rounding), size, 0.0

    # ---- protocol
    def _init_blob(self, img: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        p = self.params
        x, y, w, h = box
        half = (w / 2, h / 2) if p.init_centre == CENTRE_HALF else ((w - 1) / 2, (h - 1) / 2)
        self.centre = np.array([x + half[0], y + half[1]])
        self.size = np.array([w, h])
        self.crop_wh = self.size.copy()
        self.init_size = self.size.copy()
        self.instance_size = p.instance_size
        self.frame_size = (int(img.shape[1]), int(img.shape[0]))
        covered = w * h / float(img.shape[0] * img.shape[1])
        if p.small_target_instance_size is not None and covered < p.small_target_ratio:
            self.instance_size = p.small_target_instance_size
        self.avg = img.mean(axis=(0, 1))
        z, _, _ = self._crop(img, self._context_size(), p.exemplar_size)
        return to_blob([z], p.colour == "rgb")

    def search_size(self) -> int:
        """Search-crop side (network pixels) for the next frame."""
        return self.instance_size

    def window_influence(self) -> float:
        return self.params.window_influence

    def _prepare(self, img: np.ndarray) -> SearchRequest:
        p = self.params
        self.frame_size = (int(img.shape[1]), int(img.shape[0]))
        s_z = self._context_size()
        instance = self.search_size()
        prev_centre = self.centre.copy()
        patch, crop_side, scale = self._crop(img, s_z * (instance / p.exemplar_size), instance)
        scale = scale or p.exemplar_size / s_z
        return SearchRequest(None, instance, img, (prev_centre, crop_side, scale), patches=[patch],
                             rgb=p.colour == "rgb")

    def _decode(self, request: SearchRequest, out: SearchOutput) -> Decoded:
        p = self.params
        img, instance = request.img, request.size
        prev_centre, crop_side, scale = request.context
        anchors, window = self.grid(instance)
        score = foreground_scores(out.outputs["cls"])
        boxes = decode_boxes(out.outputs["loc"], anchors)
        penalty = size_penalty(boxes, (self.size[0], self.size[1]), scale, p.penalty_k)
        best = select_best(score, penalty, window, self.window_influence())
        best_box = boxes[:, best].astype(np.float64) / scale
        lr = float(penalty[best] * score[best] * p.lr)
        best_score = float(score[best])
        cx, cy, w, h = self._update(img, best_box, lr, best_score)
        if p.box_output == BOX_INCLUSIVE:
            bbox = (cx - (w - 1) / 2, cy - (h - 1) / 2, w, h)
        else:
            bbox = (cx - w / 2, cy - h / 2, w, h)
        result = TrackResult(bbox=bbox, score=best_score)
        return self._decoded(img, result, out, best, prev_centre, crop_side, instance)

    def _update(self, img: np.ndarray, box: np.ndarray, lr: float, score: float) -> tuple[float, float, float, float]:
        """Move and smooth the state towards ``box`` (frame pixels, relative centre); returns the reported
        ``(cx, cy, w, h)``."""
        cx = box[0] + self.centre[0]
        cy = box[1] + self.centre[1]
        w = self.size[0] * (1 - lr) + box[2] * lr
        h = self.size[1] * (1 - lr) + box[3] * lr
        self.unclipped = (cx, cy, w, h)
        if self.params.size_clamp == CLAMP_INIT_RELATIVE:
            return self._clamp_init_relative(img, cx, cy, w, h)
        cx, cy, w, h = clip_state(cx, cy, w, h, img.shape)
        self.centre = np.array([cx, cy])
        self.size = np.array([w, h])
        self.crop_wh = self.size
        return cx, cy, w, h

    def _clamp_init_relative(self, img: np.ndarray, cx: float, cy: float, w: float, h: float
                             ) -> tuple[float, float, float, float]:
        """haooozi / SiamTrackers: centre into the frame, size within [min, max] x initial size; the crops
        use a copy of the size clipped to [10, W] x [10, H]."""
        p = self.params
        height, width = img.shape[:2]
        cx, cy = float(np.clip(cx, 0, width)), float(np.clip(cy, 0, height))
        w = float(np.clip(w, p.min_scale * self.init_size[0], p.max_scale * self.init_size[0]))
        h = float(np.clip(h, p.min_scale * self.init_size[1], p.max_scale * self.init_size[1]))
        self.centre = np.array([cx, cy])
        self.size = np.array([w, h])
        self.crop_wh = np.array([float(np.clip(w, 10, width)), float(np.clip(h, 10, height))])
        return cx, cy, w, h

    def _decoded(self, img: np.ndarray, result: TrackResult, out: SearchOutput, best: int,
                 prev_centre: np.ndarray, crop_side: float, instance: int) -> Decoded:
        """Hook run after the state update: what is left of the frame (SiamMask asks for its mask here)."""
        return Decoded(result)


class LongTermTracker(RPNTracker):
    """pysot ``SiamRPNLTTracker``: a larger search and a flat window while lost; the state moves only on
    confident frames and is stored before clipping (only the reported box is clipped). State:
    :class:`LongTermState` (adds ``lost``)."""

    lost = False
    state_type = LongTermState

    def _on_init(self) -> None:
        self.lost = False

    def _get_state(self) -> LongTermState:
        return LongTermState(centre=self.centre, size=self.size, crop_wh=self.crop_wh, init_size=self.init_size,
                             instance_size=self.instance_size, avg=self.avg, frame_size=self.frame_size,
                             lost=self.lost)

    def _set_state(self, state: RPNState, derive: bool) -> None:
        assert isinstance(state, LongTermState)  # set_state checked the type
        super()._set_state(state, derive)
        self.lost = state.lost

    def search_size(self) -> int:
        return self.params.lost_instance_size if self.lost else self.params.instance_size

    def window_influence(self) -> float:
        return 0.001 if self.lost else self.params.window_influence

    def _update(self, img: np.ndarray, box: np.ndarray, lr: float, score: float) -> tuple[float, float, float, float]:
        p = self.params
        if score >= p.confidence_low:
            self.centre = np.array([box[0] + self.centre[0], box[1] + self.centre[1]])
            self.size = np.array([self.size[0] * (1 - lr) + box[2] * lr, self.size[1] * (1 - lr) + box[3] * lr])
            self.crop_wh = self.size
        if score < p.confidence_low:
            self.lost = True
        elif score > p.confidence_high:
            self.lost = False
        return clip_state(self.centre[0], self.centre[1], self.size[0], self.size[1], img.shape)
