"""Shared fixtures: seeded random-weight models (calibrated BatchNorm) saved once per test session."""
from __future__ import annotations

import os

import pytest
import torch

from siamdeploy.models.random_init import random_model
from siamdeploy.presets import get_preset

_CACHE: dict[tuple[str, int], str] = {}

# The upstream code bases' own key names (docs/checkpoints.md#key-layouts), written independently of the layout table.
_DASIAM_NAMES = {"backbone.features.": "featureExtract.", "rpn_head.template_loc_conv.": "conv_r1.",
                 "rpn_head.template_cls_conv.": "conv_cls1.", "rpn_head.search_loc_conv.": "conv_r2.",
                 "rpn_head.search_cls_conv.": "conv_cls2.", "rpn_head.loc_adjust.": "regress_adjust."}
_HAOOOZI_NAMES = {"backbone.features.": "featureExtract.", "rpn_head.template_cls_conv.": "examplar_cla.",
                  "rpn_head.template_loc_conv.": "examplar_reg.", "rpn_head.search_cls_conv.": "instance_cla.",
                  "rpn_head.search_loc_conv.": "instance_reg.", "rpn_head.loc_adjust.": "regress_adjust."}
_FOOLWOOD_NAMES = {"backbone.": "features.features.", "neck.": "features.", "rpn_head.": "rpn_model.",
                   "mask_head.": "mask_model.mask.", "refine_head.": "refine_model."}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _rename(state: dict[str, torch.Tensor], names: dict[str, str], drop_bn_counters: bool = False
            ) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if drop_bn_counters and key.endswith("num_batches_tracked"):
            continue  # torch 0.3 files have none
        prefix = next(p for p in names if key.startswith(p))
        out[names[prefix] + key[len(prefix):]] = value
    return out


def _unfold_for_haooozi(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """siamdeploy's weights take BGR 0..255; haooozi's network sees (RGB/255 - mean)/std. Rewrite the first
    conv so haooozi's input gives the same function: W_h[:, c] = W[:, 2-c] * 255 std_c and
    b_h = b + sum_c 255 mean_c sum(W[:, 2-c])."""
    out = dict(state)
    weight = state["featureExtract.0.weight"].double()
    bias = state["featureExtract.0.bias"].double()
    rgb = weight.flip(1)  # input channel c of the RGB network is BGR channel 2 - c
    std = torch.tensor(_IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    mean = torch.tensor(_IMAGENET_MEAN, dtype=torch.float64).view(1, 3)
    out["featureExtract.0.weight"] = (rgb * 255.0 * std).float()
    out["featureExtract.0.bias"] = (bias + (255.0 * mean * rgb.sum(dim=(2, 3))).sum(dim=1)).float()
    return out


def upstream_state_dict(preset: str, state: dict[str, torch.Tensor]) -> object:
    """A pysot-named state dict as the preset's upstream code base writes its checkpoint file."""
    source = get_preset(preset).source
    if source == "dasiamrpn":
        return _rename(state, _DASIAM_NAMES, drop_bn_counters=True)
    if source == "siamtrackers":
        return {"epoch": 50, "model": _rename(state, _DASIAM_NAMES), "optimizer": {}}
    if source == "haooozi":
        return {"epoch": 50, "model": _unfold_for_haooozi(_rename(state, _HAOOOZI_NAMES)), "optimizer": {}}
    if source == "foolwood":
        return _rename(state, _FOOLWOOD_NAMES)
    return state


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def random_checkpoint(model_dir: str):
    """``random_checkpoint(preset, seed=0) -> path`` of a state dict in the upstream code base's own key
    names, built once per session."""

    def make(preset: str, seed: int = 0) -> str:
        key = (preset, seed)
        if key not in _CACHE:
            path = os.path.join(model_dir, f"{preset}_{seed}.pth")
            state = random_model(get_preset(preset), seed=seed).state_dict()
            torch.save(upstream_state_dict(preset, state), path)
            _CACHE[key] = path
        return _CACHE[key]

    return make
