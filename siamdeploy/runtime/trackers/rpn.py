"""Anchor-based trackers: SiamRPN / SiamRPN++ / DaSiamRPN, the long-term variant and SiamMask.

One loop (pysot's ``SiamRPNTracker``, REFERENCE.md §6); the variants override small hooks:
search size, window influence, how the state is updated, and the mask stage.
"""
from __future__ import annotations

import math

import numpy as np

from ...config import TrackParams
from ...engine.base import Engine, SearchOutput
from ..anchors import anchor_grid, cosine_window
from ..crop import round_by_rule, square_crop, to_blob, truncated_fill
from ..rpn_decode import decode_boxes, foreground_scores, select_best, size_penalty
from ..types import TrackResult
from .base import Tracker


class RPNTracker(Tracker):
    """pysot ``SiamRPNTracker`` (also DaSiamRPN with its rounding rules and adaptive search size).

    State: ``centre`` (cx, cy) and ``size`` (w, h) in frame pixels, float64.
    """

    def __init__(self, engine: Engine, params: TrackParams, name: str = "") -> None:
        super().__init__(engine, params, name)
        self._grids: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.centre = np.zeros(2)
        self.size = np.zeros(2)
        self.instance_size = params.instance_size
        self.avg = np.zeros(3)

    # ---- geometry caches
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
        p = self.params
        context = p.context_amount * (self.size[0] + self.size[1])
        return math.sqrt((self.size[0] + context) * (self.size[1] + context))

    def _crop(self, img: np.ndarray, out_size: int, size: int) -> np.ndarray:
        return square_crop(img, (self.centre[0], self.centre[1]), size, out_size, truncated_fill(self.avg),
                           self.params.crop_rounding)

    # ---- protocol
    def _init(self, img: np.ndarray, box: tuple[float, float, float, float]) -> None:
        p = self.params
        x, y, w, h = box
        self.centre = np.array([x + (w - 1) / 2, y + (h - 1) / 2])
        self.size = np.array([w, h])
        self.instance_size = p.instance_size
        if p.small_target_instance_size is not None and w * h / float(img.shape[0] * img.shape[1]) < p.small_target_ratio:
            self.instance_size = p.small_target_instance_size
        self.avg = img.mean(axis=(0, 1))
        s_z = max(round_by_rule(self._context_size(), p.size_rounding), 1)  # sub-pixel boxes: upstream crashes
        z = self._crop(img, p.exemplar_size, s_z)
        self.kernels = self.engine.template(to_blob([z], p.colour == "rgb"))
        self._on_init()

    def _on_init(self) -> None:
        """Hook for variants that keep extra state."""

    def search_size(self) -> int:
        """Search-crop side (network pixels) for the next frame."""
        return self.instance_size

    def window_influence(self) -> float:
        return self.params.window_influence

    def _track(self, img: np.ndarray) -> TrackResult:
        p = self.params
        s_z = self._context_size()
        scale_z = p.exemplar_size / s_z
        instance = self.search_size()
        crop_size = max(round_by_rule(s_z * (instance / p.exemplar_size), p.size_rounding), 1)
        prev_centre = self.centre.copy()
        out = self.engine.search(to_blob([self._crop(img, instance, crop_size)], p.colour == "rgb"), self.kernels)
        anchors, window = self.grid(instance)
        score = foreground_scores(out.outputs["cls"])
        boxes = decode_boxes(out.outputs["loc"], anchors)
        penalty = size_penalty(boxes, (self.size[0], self.size[1]), scale_z, p.penalty_k)
        best = select_best(score, penalty, window, self.window_influence())
        best_box = boxes[:, best].astype(np.float64) / scale_z
        lr = float(penalty[best] * score[best] * p.lr)
        best_score = float(score[best])
        cx, cy, w, h = self._update(img, best_box, lr, best_score)
        result = TrackResult(bbox=(cx - w / 2, cy - h / 2, w, h), score=best_score)
        return self._finish(img, result, out, best, prev_centre, crop_size, instance)

    def _update(self, img: np.ndarray, box: np.ndarray, lr: float, score: float) -> tuple[float, float, float, float]:
        """Move and smooth the state towards ``box`` (frame pixels, relative centre); returns the reported
        ``(cx, cy, w, h)``. pysot clips the state itself."""
        cx = box[0] + self.centre[0]
        cy = box[1] + self.centre[1]
        w = self.size[0] * (1 - lr) + box[2] * lr
        h = self.size[1] * (1 - lr) + box[3] * lr
        cx, cy, w, h = clip_state(cx, cy, w, h, img.shape)
        self.centre = np.array([cx, cy])
        self.size = np.array([w, h])
        return cx, cy, w, h

    def _finish(self, img: np.ndarray, result: TrackResult, out: SearchOutput, best: int,
                prev_centre: np.ndarray, crop_size: int, instance: int) -> TrackResult:
        """Hook run after the state update (SiamMask adds the mask here)."""
        return result


def clip_state(cx: float, cy: float, w: float, h: float, shape: tuple[int, ...]) -> tuple[float, float, float, float]:
    """Centre into ``[0, W] x [0, H]``, size into ``[10, W] x [10, H]`` (pysot ``_bbox_clip``)."""
    height, width = shape[:2]
    return (max(0, min(cx, width)), max(0, min(cy, height)), max(10, min(w, width)), max(10, min(h, height)))


class LongTermTracker(RPNTracker):
    """pysot ``SiamRPNLTTracker``: a larger search and a flat window while lost; the state moves only on
    confident frames and is stored before clipping (only the reported box is clipped)."""

    lost = False

    def _on_init(self) -> None:
        self.lost = False

    def search_size(self) -> int:
        return self.params.lost_instance_size if self.lost else self.params.instance_size

    def window_influence(self) -> float:
        return 0.001 if self.lost else self.params.window_influence

    def _update(self, img: np.ndarray, box: np.ndarray, lr: float, score: float) -> tuple[float, float, float, float]:
        p = self.params
        if score >= p.confidence_low:
            self.centre = np.array([box[0] + self.centre[0], box[1] + self.centre[1]])
            self.size = np.array([self.size[0] * (1 - lr) + box[2] * lr, self.size[1] * (1 - lr) + box[3] * lr])
        if score < p.confidence_low:
            self.lost = True
        elif score > p.confidence_high:
            self.lost = False
        return clip_state(self.centre[0], self.centre[1], self.size[0], self.size[1], img.shape)
