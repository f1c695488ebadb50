"""foolwood/DaSiamRPN: ``net.SiamRPNvot`` / ``SiamRPNotb`` / ``SiamRPNBIG`` with ``run_SiamRPN.SiamRPN_init`` /
``SiamRPN_track`` (the code under ``code/``, written for Python 2)."""
from __future__ import annotations

import os
import sys

import numpy as np
import torch

from .. import shims
from ..cases import Case
from ..record import Recording


def run(case: Case, checkout: str, checkpoint: str, frames: list[np.ndarray], init: list[float],
        workdir: str) -> Recording:
    shims.restore_numpy_aliases()
    shims.cpu_only_cuda()
    sys.path.insert(0, os.path.join(checkout, "code"))
    import net as upstream_net
    import run_SiamRPN
    import utils as upstream_utils

    # Python 2 semantics: round() rounds halves away from zero; "/" on ints floors (anchor-grid origin).
    run_SiamRPN.round = shims.python2_round  # type: ignore[attr-defined]
    upstream_utils.round = shims.python2_round  # type: ignore[attr-defined]
    original_anchor = run_SiamRPN.generate_anchor

    def generate_anchor(total_stride, scales, ratios, score_size):  # type: ignore[no-untyped-def]
        return original_anchor(total_stride, scales, ratios, shims.Python2Int(score_size))

    run_SiamRPN.generate_anchor = generate_anchor

    net = getattr(upstream_net, case.variant)()
    net.load_state_dict(torch.load(checkpoint, map_location="cpu"), strict=True)
    net.eval()
    x, y, w, h = init
    target_pos = np.array([x + (w - 1) / 2, y + (h - 1) / 2])
    target_sz = np.array([w, h])
    scores: list[float] = []
    rec = Recording(scores=scores)
    with torch.no_grad():
        state = run_SiamRPN.SiamRPN_init(frames[0], target_pos, target_sz, net)
        for frame in frames[1:]:
            state = run_SiamRPN.SiamRPN_track(state, frame)
            (cx, cy), (sw, sh) = state["target_pos"], state["target_sz"]
            rec.boxes.append([float(cx - sw / 2), float(cy - sh / 2), float(sw), float(sh)])
            scores.append(float(state["score"]))
    rec.extras = {"instance_size": int(state["p"].instance_size)}
    rec.upstream = {"entry": f"run_SiamRPN.SiamRPN_init/SiamRPN_track (DaSiamRPN code/run_SiamRPN.py, "
                             f"net.{case.variant})"}
    return rec
