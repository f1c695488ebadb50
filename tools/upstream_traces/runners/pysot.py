"""STVIR/pysot: ``ModelBuilder`` + ``build_tracker`` with an experiment's ``config.yaml``."""
from __future__ import annotations

import os
import sys

import numpy as np
import torch
import yaml

from .. import shims
from ..cases import Case
from ..record import Recording

# Keys some experiment configs carry that stock pysot's config schema rejects (they are unused there).
UNKNOWN_CONFIG_KEYS = (("BACKBONE", "CHANNELS"), ("RPN", "WEIGHTED"), ("ADJUST", "ADJUST_CHANNEL"))


def _stripped_config(src: str, dst: str) -> list[str]:
    with open(src, encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    stripped = []
    for section, key in UNKNOWN_CONFIG_KEYS:
        if key in config.get(section, {}):
            del config[section][key]
            stripped.append(f"{section}.{key}")
    with open(dst, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh)
    return stripped


def run(case: Case, checkout: str, checkpoint: str, frames: list[np.ndarray], init: list[float],
        workdir: str) -> Recording:
    shims.restore_numpy_aliases()
    shims.upsample_as_interpolate()
    sys.path.insert(0, checkout)
    from pysot.core.config import cfg
    from pysot.models.model_builder import ModelBuilder
    from pysot.tracker.tracker_builder import build_tracker

    config_rel = f"experiments/{case.variant}/config.yaml"
    config = os.path.join(workdir, "config.yaml")
    stripped = _stripped_config(os.path.join(checkout, config_rel), config)
    cfg.merge_from_file(config)
    cfg.CUDA = False
    model = ModelBuilder()
    model.load_state_dict(torch.load(checkpoint, map_location="cpu"), strict=True)
    model.eval()
    tracker = build_tracker(model)
    mask = cfg.MASK.MASK
    if mask:
        import cv2
        from pysot.tracker import siammask_tracker
        siammask_tracker.cv2 = shims.OpenCV4Facade(cv2)  # type: ignore[attr-defined]
    longterm = hasattr(tracker, "longterm_state")

    scores: list[float] = []
    polygons: list[list[float]] = []
    rec = Recording(scores=scores, polygons=polygons if mask else None)
    lost: list[bool] = []
    used_831: list[bool] = []
    with torch.no_grad():
        tracker.init(frames[0], list(init))
        for frame in frames[1:]:
            if longterm:
                used_831.append(bool(tracker.longterm_state))
            out = tracker.track(frame)
            rec.boxes.append([float(v) for v in out["bbox"]])
            scores.append(float(out["best_score"]))
            if mask:
                polygons.append([float(v) for v in np.asarray(out["polygon"]).reshape(-1)])
            if longterm:
                lost.append(bool(tracker.longterm_state))
    if longterm:
        assert cfg.TRACK.LOST_INSTANCE_SIZE == 831, cfg.TRACK.LOST_INSTANCE_SIZE
        rec.extras = {"lost": lost, "lost_search_831": used_831}
    rec.upstream = {"entry": f"{type(tracker).__module__}.{type(tracker).__name__}", "config": config_rel}
    if stripped:
        rec.upstream["config_keys_stripped"] = stripped
    return rec
