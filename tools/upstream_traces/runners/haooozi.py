"""haooozi/SiamRPN (``siamrpn/tracker.py``) and HonglinChu/SiamTrackers (``SiamRPN/SiamRPN/siamrpn/tracker.py``):
``SiamRPNTracker.init`` / ``update`` with 1-based boxes. haooozi's tracker converts frames to RGB in its own
``track()``, so it gets RGB; SiamTrackers' ``track()`` passes ``cv2.imread`` output on, so it gets BGR."""
from __future__ import annotations

import os
import sys

import cv2
import numpy as np
import torch

from .. import shims
from ..cases import Case
from ..record import Recording

_CHECKPOINT_NOTE = {"haooozi": "{'epoch', 'model', 'optimizer'} with haooozi key names",
                    "siamtrackers": "{'epoch', 'model', 'optimizer'} with DaSiamRPN key names"}
_FIRST_CONV_NOTE = ("saved in haooozi's input convention (RGB, /255, ImageNet mean/std): "
                    "W_h[:, c] = W[:, 2-c]*255*std[c], b_h = b + sum_c 255*mean[c]*sum(W[:, 2-c])")


def run(case: Case, checkout: str, checkpoint: str, frames: list[np.ndarray], init: list[float],
        workdir: str) -> Recording:
    shims.restore_numpy_aliases()
    shims.cpu_only_cuda()
    shims.torchvision_transforms_standin()
    sys.path.insert(0, os.path.normpath(os.path.join(checkout, case.variant)))
    import siamrpn.tracker as tracker_module
    import siamrpn.utils as utils_module
    from siamrpn.config import config

    # Record, without changing anything: the softmax scores and the chosen index (the best score), and the
    # search patches that were not square or reached past the image.
    softmax = shims.CallRecorder(tracker_module.F, ("softmax",))
    numpy = shims.CallRecorder(np, ("argmax",))
    tracker_module.F = softmax
    tracker_module.np = numpy
    resize = shims.CallRecorder(cv2, ("resize",))
    utils_module.cv2 = resize
    crops: list[tuple[bool, bool]] = []
    original_crop = utils_module.crop_and_pad

    def crop_and_pad(img, cx, cy, model_sz, original_sz, img_mean=None):  # type: ignore[no-untyped-def]
        resize.args.pop("resize", None)
        out = original_crop(img, cx, cy, model_sz, original_sz, img_mean)
        patch = resize.args["resize"][0] if "resize" in resize.args else None  # the patch before resizing
        im_h, im_w = img.shape[:2]
        xmin, ymin = cx - (original_sz - 1) / 2, cy - (original_sz - 1) / 2
        pads = (-xmin, -ymin, xmin + original_sz - 1 - im_w + 1, ymin + original_sz - 1 - im_h + 1)
        outside = any(int(utils_module.round_up(max(0.0, v))) for v in pads)  # as crop_and_pad pads
        crops.append((patch is not None and patch.shape[0] != patch.shape[1], outside))
        return out

    utils_module.crop_and_pad = crop_and_pad
    tracker = tracker_module.SiamRPNTracker(checkpoint)
    colour = str(case.options["colour"])
    images = [cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in frames] if colour == "RGB" else list(frames)
    x, y, w, h = init
    scores: list[float] = []
    rec = Recording(scores=scores)
    non_square: list[int] = []
    outside = 0
    with torch.no_grad():
        tracker.init(images[0], [x + 1, y + 1, w, h])
        for index, image in enumerate(images[1:], start=1):
            crops.clear()
            box = tracker.update(image)
            rec.boxes.append([float(box[0] - 1), float(box[1] - 1), float(box[2]), float(box[3])])
            best = int(numpy.last["argmax"])
            scores.append(float(softmax.last["softmax"][0, best, 1]))
            assert len(crops) == 1, crops
            if crops[0][0]:
                non_square.append(index)
            outside += crops[0][1]
    rec.extras = {"non_square_frames": len(non_square), "non_square_frame_indices": non_square,
                  "search_window_outside_frames": outside, "colour": colour}
    repo_path = os.path.normpath(os.path.join(case.variant, "siamrpn", "tracker.py")).replace(os.sep, "/")
    owner = "haooozi/SiamRPN" if case.codebase == "haooozi" else "HonglinChu/SiamTrackers"
    rec.upstream = {
        "entry": f"{repo_path} SiamRPNTracker.init / update ({owner})",
        "params": {"penalty_k": float(config.penalty_k), "window_influence": float(config.window_influence),
                   "lr_box": float(config.lr_box), "instance_size": int(config.instance_size),
                   "anchor_ratios": [float(r) for r in config.anchor_ratios]},
        "init": "init(frame, (x + 1, y + 1, w, h)) (1-based); outputs shifted back by -1 on x, y",
        "checkpoint": _CHECKPOINT_NOTE[case.codebase],
    }
    if case.codebase == "haooozi":
        rec.upstream["first_conv"] = _FIRST_CONV_NOTE
    return rec

