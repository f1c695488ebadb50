"""Preset detection is derived from the preset table: every preset is found from its own network's state
dict, the detection hints are consistent with the table, and a checkpoint that fits no preset exactly is
reported with its differences from the closest one."""
from __future__ import annotations

import os
from collections.abc import Mapping

import pytest
import torch

from siamdeploy import load_tracker
from siamdeploy.checkpoint import LAYOUTS, compare, guess_preset, model_signature, state_signature, to_canonical
from siamdeploy.checkpoint.detect import structure_groups
from siamdeploy.checkpoint.reader import normalise_state_dict
from siamdeploy.errors import CheckpointError
from siamdeploy.models import SiameseNet
from siamdeploy.presets import DETECT_HINTS, PRESETS, get_preset

from ..conftest import upstream_state_dict

_STATES: dict[object, dict[str, torch.Tensor]] = {}


def _random_state(preset: str) -> dict[str, torch.Tensor]:
    """Default-initialised weights of the preset's network (one per network structure)."""
    spec = get_preset(preset).model
    if spec not in _STATES:
        torch.manual_seed(0)
        _STATES[spec] = SiameseNet(spec).state_dict()
    return _STATES[spec]


def _as_its_code_base_writes_it(preset: str) -> tuple[dict[str, torch.Tensor], str, str | None]:
    """(canonical state, layout name, wrapper key) of the preset's weights in its upstream file format."""
    raw = upstream_state_dict(preset, _random_state(preset))
    assert isinstance(raw, Mapping)
    wrapper = next((k for k, v in raw.items() if isinstance(v, Mapping) and v), None)
    canonical, layout = to_canonical(normalise_state_dict(raw))
    return canonical, layout.name, wrapper


def _layout(name: str):
    return next(lay for lay in LAYOUTS if lay.name == name)


def _group_of(preset: str) -> tuple[str, ...]:
    return next(tuple(p.name for p in members) for _, members in structure_groups()
                if preset in {p.name for p in members})


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_is_detected_from_its_own_state_dict(preset: str) -> None:
    state, layout, wrapper = _as_its_code_base_writes_it(preset)
    hint = DETECT_HINTS.get(preset)
    # with its hint: the file name carries the preset's first name hint, the file its own wrapper
    filename = f"weights_{hint.names[0]}.pth" if hint and hint.names else "model.pth"
    guess = guess_preset(state, _layout(layout), os.path.join("some", "folder", filename), wrapper)
    assert guess.exact and guess.preset == preset, guess
    assert preset not in guess.alternatives
    # without it: still an exact match of the same network; presets that need no name or wrapper hint are
    # found all the same, the others are named as alternatives or ruled out by the missing wrapper
    bare = guess_preset(state, _layout(layout), "model.pth", None)
    assert bare.exact and bare.preset in _group_of(preset), bare
    if hint is None or (not hint.names and hint.wrapper is None):
        assert bare.preset == preset, bare
    elif hint.wrapper is None:
        assert bare.preset == preset or preset in bare.alternatives, bare


def test_detect_hints_refer_to_the_table() -> None:
    layouts = {lay.name for lay in LAYOUTS}
    for name, hint in DETECT_HINTS.items():
        assert name == hint.preset and name in PRESETS, name
        assert set(hint.layouts) <= layouts, (name, hint.layouts)
        assert all(n == n.lower() for n in hint.names), name
    for _, members in structure_groups():
        names = [p.name for p in members]
        if len(names) > 1:  # every preset that shares its network has a row saying how it is told apart
            assert all(n in DETECT_HINTS for n in names), names
        # a group's defaults may not compete for the same layout
        for lay in layouts:
            defaults = [n for n in names if n in DETECT_HINTS and DETECT_HINTS[n].default
                        and (not DETECT_HINTS[n].layouts or lay in DETECT_HINTS[n].layouts)]
            assert len(defaults) <= 1, (lay, defaults)


@pytest.mark.parametrize("preset", ["siamfc", "dasiamrpn_vot", "siamrpn_alex_dwxcorr"])
def test_meta_signature_equals_the_built_network(preset: str) -> None:
    spec = get_preset(preset).model
    signature = model_signature(spec)
    assert dict(signature) == state_signature(SiameseNet(spec).state_dict())
    assert not any(k.endswith("num_batches_tracked") for k in signature)
    assert model_signature(spec) is signature  # cached per ModelSpec


def test_presets_with_one_network_share_a_signature() -> None:
    groups = {tuple(p.name for p in members) for _, members in structure_groups()}
    assert ("dasiamrpn_vot", "dasiamrpn_otb", "siamrpn_haooozi", "siamrpn_siamtrackers") in groups
    assert ("siamrpn_alex_dwxcorr", "siamrpn_alex_dwxcorr_otb") in groups
    assert ("siamfc",) in groups and ("dasiamrpn_big",) in groups
    assert sum(len(g) for g in groups) == len(PRESETS)


def test_compare_names_each_kind_of_difference() -> None:
    diff = compare({"a": (1,), "b": (2, 3), "x": (4,)}, {"a": (1,), "b": (3, 3), "c": (5,)})
    assert diff.missing == ("c",) and diff.unexpected == ("x",) and diff.wrong_shape == (("b", (2, 3), (3, 3)),)
    assert diff.matched == 1 and diff.count == 3 and not diff.exact
    text = diff.describe()
    assert "1 missing (c)" in text and "1 unexpected (x)" in text and "b: checkpoint (2, 3), model (3, 3)" in text
    assert compare({"a": (1,)}, {"a": (1,)}).exact


def _damaged_siamfc() -> dict[str, torch.Tensor]:
    state = dict(_random_state("siamfc"))
    state["backbone.conv1.0.weight"] = torch.zeros(48, 3, 11, 11)
    del state["backbone.conv2.0.bias"]
    return state


def test_inexact_checkpoint_guess_is_the_closest_with_its_differences() -> None:
    guess = guess_preset(_damaged_siamfc(), _layout("siamfc"), "net.pth")
    assert guess.preset == "siamfc" and not guess.exact
    assert guess.diff is not None and guess.diff.missing == ("backbone.conv2.0.bias",)
    assert [k for k, _, _ in guess.diff.wrong_shape] == ["backbone.conv1.0.weight"]
    assert "backbone.conv2.0.bias" in guess.reason and "(48, 3, 11, 11)" in guess.reason


def test_unrelated_keys_give_no_guess() -> None:
    guess = guess_preset({"rpn_head.foo.weight": torch.zeros(3)}, _layout("pysot"), "x.pth")
    assert guess.preset is None and not guess.exact


def test_loading_an_inexact_checkpoint_names_the_differences(tmp_path) -> None:
    path = tmp_path / "net.pth"
    torch.save(_damaged_siamfc(), path)
    with pytest.raises(CheckpointError) as err:  # no preset given: detection refuses, naming the closest
        load_tracker(path, device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and "'siamfc'" in msg and "backbone.conv2.0.bias" in msg and "config.yaml" in msg
    with pytest.raises(CheckpointError) as err:  # another preset given: its differences, then the closest's
        load_tracker(path, preset="dasiamrpn_vot", device="cpu")
    msg = str(err.value)
    assert "does not fit preset 'dasiamrpn_vot'" in msg and "backbone.features.0.weight" in msg
    assert "closest is 'siamfc'" in msg and "backbone.conv2.0.bias" in msg


def test_strict_load_names_the_preset_that_matches_exactly(tmp_path) -> None:
    path = tmp_path / "SiamRPNOTB.pth"
    torch.save(_random_state("dasiamrpn_otb"), path)
    with pytest.raises(CheckpointError) as err:
        load_tracker(path, preset="siamrpn_alex_dwxcorr", device="cpu")
    msg = str(err.value)
    assert "matches preset 'dasiamrpn_otb' exactly" in msg and "dasiamrpn_vot" in msg
    assert "10 unexpected (rpn_head.loc_adjust.bias" in msg and "34 missing (rpn_head.cls.conv_kernel" in msg
