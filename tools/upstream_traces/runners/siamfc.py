"""huanglianghua/siamfc-pytorch: ``siamfc.TrackerSiamFC`` (got10k ``Tracker`` interface, RGB frames, 1-based
boxes)."""
from __future__ import annotations

import sys

import cv2
import numpy as np
import torch

from .. import shims
from ..cases import Case
from ..record import Recording


def run(case: Case, checkout: str, checkpoint: str, frames: list[np.ndarray], init: list[float],
        workdir: str) -> Recording:
    shims.restore_numpy_aliases()
    sys.path.insert(0, checkout)
    from siamfc import TrackerSiamFC

    tracker = TrackerSiamFC(net_path=checkpoint)  # load_state_dict is strict
    rgb = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames]
    x, y, w, h = init
    rec = Recording(scores=None)
    with torch.no_grad():
        tracker.init(rgb[0], np.array([x + 1, y + 1, w, h], np.float64))
        for frame in rgb[1:]:
            box = tracker.update(frame)
            rec.boxes.append([float(box[0] - 1), float(box[1] - 1), float(box[2]), float(box[3])])
    rec.upstream = {"entry": "siamfc.siamfc.TrackerSiamFC"}
    return rec
