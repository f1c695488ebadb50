"""Shared fixtures: seeded random-weight models (calibrated BatchNorm) saved once per test session."""
from __future__ import annotations

import os

import pytest
import torch

from siamdeploy.models.random_init import random_model
from siamdeploy.presets import get_preset

_CACHE: dict[tuple[str, int], str] = {}

# DaSiamRPN's own key names (REFERENCE.md §3), written independently of siamdeploy's layout table.
_DASIAM_NAMES = {"backbone.features.": "featureExtract.", "rpn_head.template_loc_conv.": "conv_r1.",
                 "rpn_head.template_cls_conv.": "conv_cls1.", "rpn_head.search_loc_conv.": "conv_r2.",
                 "rpn_head.search_cls_conv.": "conv_cls2.", "rpn_head.loc_adjust.": "regress_adjust."}


def upstream_state_dict(preset: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A pysot-named state dict in the key names the preset's upstream code base writes."""
    if get_preset(preset).source != "dasiamrpn":
        return state
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue  # torch 0.3 files have none
        prefix = next(p for p in _DASIAM_NAMES if key.startswith(p))
        out[_DASIAM_NAMES[prefix] + key[len(prefix):]] = value
    return out


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
