"""A test double for :class:`siamdeploy.engine.base.Engine` whose outputs are a fixed function of the crops it
receives, so a tracker driven by it moves with the image content (unlike the scripted engine in conftest,
whose outputs are written per call). No network runs; numpy and OpenCV only."""
from __future__ import annotations

import cv2
import numpy as np

from siamdeploy.engine.base import Engine, SearchOutput


class ContentEngine(Engine):
    """Outputs are a fixed function of the crops: the kernel is the exemplar's mean; a search map is the crop's
    grey level averaged onto the score grid, offset by the kernel, with per-anchor gains."""

    backend = "test-double"

    def __init__(self, params) -> None:
        self.p = params
        rng = np.random.default_rng(7)
        a = params.anchor_num
        self.cls_gain = rng.uniform(2.0, 6.0, a).astype(np.float32)
        self.loc_gain = rng.uniform(-0.3, 0.3, (4, a)).astype(np.float32)

    def _template(self, z: np.ndarray) -> float:
        return float(z.mean()) / 255.0

    def _grid(self, crop: np.ndarray, n: int) -> np.ndarray:
        grey = crop.mean(axis=0) / 255.0
        return cv2.resize(grey.astype(np.float32), (n, n), interpolation=cv2.INTER_AREA)

    def _search(self, x: np.ndarray, kernels: float) -> SearchOutput:
        p = self.p
        side = x.shape[-1]
        if p.tracker == "siamfc":
            n = (side - p.exemplar_size) // p.stride + 1
            maps = np.stack([self._grid(crop, n) for crop in x])
            return SearchOutput({"response": (maps - kernels)[:, None].astype(np.float32) * 4.0})
        n = p.score_size(side)
        g = self._grid(x[0], n) - kernels
        a = p.anchor_num
        cls = np.zeros((1, 2 * a, n, n), np.float32)
        cls[0, a:] = self.cls_gain[:, None, None] * g[None]
        loc = (self.loc_gain[:, :, None, None] * (g - g.mean())[None, None]).reshape(1, 4 * a, n, n)
        return SearchOutput({"cls": cls, "loc": loc.astype(np.float32)}, extras=g)

    def refine(self, extras: np.ndarray, cell: tuple[int, int]) -> np.ndarray:
        return (cv2.resize(extras, (127, 127)) * 12.0 + 0.01 * cell[0]).astype(np.float32)

    def mask_at(self, extras: np.ndarray, cell: tuple[int, int]) -> np.ndarray:
        return (cv2.resize(extras, (63, 63)) * 12.0 + 0.01 * cell[1]).astype(np.float32)
