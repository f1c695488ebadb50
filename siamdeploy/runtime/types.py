"""Result types returned by the trackers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TrackResult:
    """One frame's tracking output.

    bbox: ``(x, y, w, h)`` in frame pixels, top-left + size, in the convention of the reproduced upstream
    tracker (pysot: ``(cx - w/2, cy - h/2, w, h)``). score: the network's confidence at the chosen location
    (RPN: foreground probability; SiamFC: the peak of the upsampled response). polygon: ``(4, 2)`` float
    corners of SiamMask's rotated box, else None. mask: ``(H, W)`` float32 foreground probability (SiamMask),
    else None.
    """

    bbox: tuple[float, float, float, float]
    score: float
    polygon: np.ndarray | None = None
    mask: np.ndarray | None = None
