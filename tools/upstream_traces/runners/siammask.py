"""foolwood/SiamMask: ``Custom`` from ``experiments/siammask_sharp`` (or ``siammask_base``) loaded with the
repository's ``load_pretrain``, driven by ``siamese_init`` / ``siamese_track`` from ``tools/test.py`` with the
``hp`` of the case's config file, masks on (refine on for sharp, off for base), initialised as ``tools/demo.py``
does."""
from __future__ import annotations

import argparse
import os
import sys

import cv2
import numpy as np
import torch

from .. import shims
from ..cases import Case
from ..record import Recording
from . import load_file_module

MIN_CONTOUR_AREA = 100  # siamese_track uses the mask contour only if its largest area exceeds this


def run(case: Case, checkout: str, checkpoint: str, frames: list[np.ndarray], init: list[float],
        workdir: str) -> Recording:
    shims.restore_numpy_aliases()
    experiment, config_name = case.variant.split("/")
    experiment_dir = os.path.join(checkout, "experiments", experiment)
    sys.path[:0] = [checkout, experiment_dir]
    import utils  # noqa: F401  (SiamMask's own utils package, before the stand-ins below join it)

    # tools/test.py imports the Cython VOT module that only its VOT evaluation loop uses.
    shims.stub_module("utils.pyvotkit", region=None)
    shims.stub_module("utils.pyvotkit.region", vot_overlap=None, vot_float2str=None)
    test = load_file_module("siammask_tools_test", os.path.join(checkout, "tools", "test.py"))
    facade = shims.OpenCV4Facade(cv2)
    test.cv2 = facade  # type: ignore[attr-defined]
    from utils.config_helper import load_config
    from utils.load_helper import load_pretrain

    custom = load_file_module("siammask_custom", os.path.join(experiment_dir, "custom.py"))
    config_path = os.path.join(experiment_dir, config_name)
    cfg = load_config(argparse.Namespace(config=config_path, arch=""))
    model = custom.Custom(anchors=cfg["anchors"])
    model = load_pretrain(model, checkpoint)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu"), strict=True)  # every key matches
    model.eval()
    refine = bool(case.options["refine"])

    x, y, w, h = init
    scores: list[float] = []
    polygons: list[list[float]] = []
    rec = Recording(scores=scores, polygons=polygons)
    from_mask: list[bool] = []
    with torch.no_grad():
        state = test.siamese_init(frames[0], np.array([x + w / 2, y + h / 2]), np.array([w, h]), model, cfg["hp"],
                                  device="cpu")
        for frame in frames[1:]:
            facade.last_contours = ()
            state = test.siamese_track(state, frame, mask_enable=True, refine_enable=refine, device="cpu")
            (cx, cy), (sw, sh) = state["target_pos"], state["target_sz"]
            rec.boxes.append([float(cx - sw / 2), float(cy - sh / 2), float(sw), float(sh)])
            scores.append(float(state["score"]))
            polygons.append([float(v) for v in np.asarray(state["ploygon"]).reshape(-1)])
            contours: tuple[np.ndarray, ...] = facade.last_contours
            areas = [float(cv2.contourArea(contour)) for contour in contours]
            from_mask.append(bool(areas) and float(np.max(areas)) > MIN_CONTOUR_AREA)
    p = state["p"]
    rec.extras = {"polygon_from_mask": from_mask}
    rec.upstream = {
        "entry": f"tools/test.py siamese_init / siamese_track (mask_enable=True, refine_enable={refine}), "
                 f"experiments/{experiment}/custom.py Custom",
        "config": f"experiments/{experiment}/{config_name}",
        "params": {k: getattr(p, k) for k in ("penalty_k", "window_influence", "lr", "seg_thr", "out_size",
                                              "instance_size", "base_size")},
        "init": "target_pos = (x + w/2, y + h/2), target_sz = (w, h) (tools/demo.py), 0-based",
        "output": 'box (cx - w/2, cy - h/2, w, h) from state target_pos/target_sz after each frame; '
                  'polygon = state["ploygon"] (8 values)',
        "checkpoint": f"plain state_dict, foolwood key names ({case.options['checkpoint']})",
    }
    return rec
