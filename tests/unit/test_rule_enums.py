"""Rule values are enums that still behave as their strings (comparisons, JSON, f-strings, dict keys), and
TrackParams turns plain strings into them or names the bad field."""
from __future__ import annotations

import dataclasses
import json

import pytest

from siamdeploy import config
from siamdeploy.config import (RULE_FIELDS, BoxOutput, Colour, CropRounding, CropStyle, InitCentre, MaskSource,
                               SizeClamp, TrackParams)
from siamdeploy.errors import ConfigError
from siamdeploy.manifest import preset_from_dict, preset_to_dict
from siamdeploy.presets import PRESETS, get_preset

ALIASES = {"ROUND_FLOOR_HALF_UP": "floor_half_up", "ROUND_HALF_AWAY": "half_away", "ROUND_HALF_EVEN": "half_even",
           "ROUND_HALF_UP": "half_up", "CROP_SQUARE": "square", "CROP_FLOAT_INCLUSIVE": "float_inclusive",
           "CENTRE_PYSOT": "pysot", "CENTRE_HALF": "half", "BOX_PYSOT": "pysot", "BOX_INCLUSIVE": "inclusive",
           "CLAMP_FRAME": "frame", "CLAMP_INIT_RELATIVE": "init_relative", "MASK_REFINE": "refine",
           "MASK_HEAD": "head"}


@pytest.mark.parametrize("alias, value", list(ALIASES.items()))
def test_old_constants_are_members_equal_to_their_strings(alias: str, value: str) -> None:
    member = getattr(config, alias)
    assert isinstance(member, config.RuleValue) and isinstance(member, str)
    assert member == value and value == member and member.value == value
    assert str(member) == value and f"{member}" == value and f"{member:>20}" == f"{value:>20}"
    assert hash(member) == hash(value) and {value: 1}[member] == 1
    assert json.dumps(member) == json.dumps(value)


def test_every_rule_field_holds_a_member_in_every_preset() -> None:
    for preset in PRESETS.values():
        for name, kind in RULE_FIELDS.items():
            assert type(getattr(preset.track, name)) is kind, (preset.name, name)


def test_strings_are_coerced() -> None:
    params = TrackParams(tracker="siamrpn", crop_rounding="half_away", size_rounding="half_up",
                         crop_style="float_inclusive", init_centre="half", box_output="inclusive",
                         size_clamp="init_relative", mask_source="head", colour="rgb")
    assert params.crop_rounding is CropRounding.HALF_AWAY and params.size_rounding is CropRounding.HALF_UP
    assert params.crop_style is CropStyle.FLOAT_INCLUSIVE and params.init_centre is InitCentre.HALF
    assert params.box_output is BoxOutput.INCLUSIVE and params.size_clamp is SizeClamp.INIT_RELATIVE
    assert params.mask_source is MaskSource.HEAD and params.colour is Colour.RGB
    assert params.with_(colour="bgr").colour is Colour.BGR
    assert dataclasses.replace(params, box_output="pysot").box_output is BoxOutput.PYSOT
    assert params == TrackParams(tracker="siamrpn", crop_rounding=CropRounding.HALF_AWAY,
                                 size_rounding=CropRounding.HALF_UP, crop_style=CropStyle.FLOAT_INCLUSIVE,
                                 init_centre=InitCentre.HALF, box_output=BoxOutput.INCLUSIVE,
                                 size_clamp=SizeClamp.INIT_RELATIVE, mask_source=MaskSource.HEAD,
                                 colour=Colour.RGB)


@pytest.mark.parametrize("field, value", [("crop_rounding", "round"), ("box_output", "INCLUSIVE"),
                                          ("colour", "gray"), ("mask_source", None), ("size_clamp", 3)])
def test_unknown_value_names_field_value_and_allowed(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as err:
        TrackParams(tracker="siamrpn", **{field: value})
    msg = str(err.value)
    assert "\n" not in msg and field in msg and repr(value) in msg
    assert all(repr(m.value) in msg for m in RULE_FIELDS[field])


def test_manifest_round_trip_of_string_values() -> None:
    for name in ("siamrpn_haooozi", "siammask_base", "siamfc", "dasiamrpn_vot"):
        preset = get_preset(name)
        data = json.loads(json.dumps(preset_to_dict(preset)))  # as written to and read from manifest.json
        assert data["track"]["crop_style"] == preset.track.crop_style.value
        back = preset_from_dict(data)
        assert back == preset
        assert all(type(getattr(back.track, f)) is kind for f, kind in RULE_FIELDS.items())


def test_manifest_with_an_unknown_rule_value_fails_clearly() -> None:
    data = json.loads(json.dumps(preset_to_dict(get_preset("siamfc"))))
    data["track"]["crop_rounding"] = "banker"
    with pytest.raises(ConfigError, match="crop_rounding.*'banker'.*'half_even'"):
        preset_from_dict(data)
