"""Guess the preset of a checkpoint from its (canonical) keys and shapes.

The network structure is usually unambiguous; tracker parameters are not (pysot's `_otb` variants and
DaSiamRPN's VOT/OTB files share a structure), so :func:`guess_preset` also says whether it had to choose.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .layouts import Layout


@dataclass(frozen=True)
class Guess:
    """``preset``: the chosen id (None: no preset fits); ``alternatives``: others with the same structure;
    ``reason``: why, for the log."""

    preset: str | None
    alternatives: tuple[str, ...]
    reason: str


def _shape(state: dict[str, torch.Tensor], key: str) -> tuple[int, ...] | None:
    value = state.get(key)
    return tuple(value.shape) if value is not None else None


def guess_preset(state: dict[str, torch.Tensor], layout: Layout, filename: str = "",
                 wrapper: str | None = None) -> Guess:
    """Best preset for a canonical state dict (see :func:`siamdeploy.checkpoint.layouts.to_canonical`).

    ``wrapper``: the key the tensors were stored under in the file (SiamTrackers saves DaSiamRPN's key
    names under ``'model'``; DaSiamRPN's own files are plain state dicts)."""
    name = os.path.basename(filename).lower()
    keys = state.keys()
    if layout.name == "siamfc":
        return Guess("siamfc", (), "siamfc-pytorch AlexNetV1 keys")
    if layout.name == "haooozi":
        return Guess("siamrpn_haooozi", (), "haooozi/SiamRPN keys (examplar_cla, instance_cla, ...)")
    if layout.name == "dasiamrpn" and wrapper == "model":
        return Guess("siamrpn_siamtrackers", ("dasiamrpn_vot", "dasiamrpn_otb"),
                     "DaSiamRPN key names saved under 'model' (HonglinChu/SiamTrackers training snapshot)")
    if layout.name == "foolwood_siammask":
        if not any(k.startswith("refine_head.") for k in keys):
            return Guess("siammask_base", (), "foolwood/SiamMask keys without refine (base model)")
        for hint, preset in (("davis", "siammask_davis"), ("_ld", "siammask_vot_ld"), ("vot18", "siammask_vot_ld")):
            if hint in name:
                return Guess(preset, ("siammask_vot", "siammask_vot_ld", "siammask_davis"),
                             f"foolwood/SiamMask sharp keys, '{hint.strip('_')}' in the file name")
        return Guess("siammask_vot", ("siammask_vot_ld", "siammask_davis"),
                     "foolwood/SiamMask sharp keys (its three released configs share this structure)")
    if "rpn_head.template_cls_conv.weight" in keys:  # up-channel SiamRPN: DaSiamRPN's structure
        origin = "DaSiamRPN" if layout.name == "dasiamrpn" else "up-channel SiamRPN"
        width = (_shape(state, "backbone.features.0.weight") or (0,))[0]
        if width == 192:
            return Guess("dasiamrpn_big", (), f"{origin} keys, width-2 AlexNet (SiamRPNBIG)")
        if "otb" in name:
            return Guess("dasiamrpn_otb", ("dasiamrpn_vot",), f"{origin} width-1 keys, 'otb' in the file name")
        if "vot" in name:
            return Guess("dasiamrpn_vot", ("dasiamrpn_otb",), f"{origin} width-1 keys, 'vot' in the file name")
        return Guess("dasiamrpn_vot", ("dasiamrpn_otb",),
                     f"{origin} width-1 keys (SiamRPNVOT and SiamRPNOTB share this structure)")
    if any(k.startswith("mask_head.") for k in keys):
        return Guess("siammask_r50_l3", (), "pysot SiamMask keys (mask_head, refine_head)")
    if "backbone.features.0.weight" in keys:
        if "rpn_head.cls.conv_kernel.0.weight" in keys:
            return Guess("siamrpn_alex_dwxcorr", ("siamrpn_alex_dwxcorr_otb",),
                         "pysot AlexNet + depthwise RPN keys (the _otb preset has the same parameters)")
        return Guess(None, (), "pysot AlexNet keys with a head no preset uses; pass the model's config.yaml")
    if "backbone.layer0.0.weight" in keys:
        return Guess("siamrpn_mobilev2_l234_dwxcorr", (), "pysot MobileNetV2 keys")
    if "backbone.conv1.weight" in keys and "rpn_head.rpn2.cls.conv_kernel.0.weight" in keys:
        adjust = _shape(state, "neck.downsample2.downsample.0.weight")
        if adjust is not None and adjust[0] == 128:
            return Guess("siamrpn_r50_l234_dwxcorr_lt", (), "pysot ResNet-50 keys, 128/256/512 adjust (long-term)")
        if "rpn_head.cls_weight" in keys:
            return Guess("siamrpn_r50_l234_dwxcorr", (), "pysot ResNet-50 keys with fusion weights")
        return Guess("siamrpn_r50_l234_dwxcorr_otb", (), "pysot ResNet-50 keys without fusion weights (OTB model)")
    return Guess(None, (), "no preset has this structure; pass the model's config.yaml")
