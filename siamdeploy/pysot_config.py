"""Reading pysot ``config.yaml`` files into a :class:`~siamdeploy.presets.Preset`.

Files in the wild carry keys stock pysot no longer knows (``BACKBONE.LAYERS``, ``BACKBONE.CHANNELS``,
``RPN.WEIGHTED``, ``ADJUST.ADJUST_CHANNEL`` ...). They are accepted with a warning, and used where they
carry information the KWARGS lack.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import yaml

from .config import ModelSpec, TrackParams
from .errors import ConfigError
from .presets import Preset

log = logging.getLogger(__name__)

# pysot defaults (pysot/core/config.py) for the keys that matter at inference.
_TRACK_DEFAULTS = {"PENALTY_K": 0.04, "WINDOW_INFLUENCE": 0.44, "LR": 0.4, "EXEMPLAR_SIZE": 127,
                   "INSTANCE_SIZE": 255, "BASE_SIZE": 8, "CONTEXT_AMOUNT": 0.5, "LOST_INSTANCE_SIZE": 831,
                   "CONFIDENCE_LOW": 0.85, "CONFIDENCE_HIGH": 0.998, "MASK_THERSHOLD": 0.30,
                   "MASK_OUTPUT_SIZE": 127}
_KNOWN = {
    "BACKBONE": {"TYPE", "KWARGS", "PRETRAINED", "TRAIN_LAYERS", "LAYERS_LR", "TRAIN_EPOCH"},
    "ADJUST": {"ADJUST", "TYPE", "KWARGS"},
    "RPN": {"TYPE", "KWARGS"},
    "MASK": {"MASK", "TYPE", "KWARGS"},
    "REFINE": {"REFINE", "TYPE"},
    "ANCHOR": {"STRIDE", "RATIOS", "SCALES", "ANCHOR_NUM"},
    "TRACK": set(_TRACK_DEFAULTS) | {"TYPE"},
}
_IGNORED_SECTIONS = {"META_ARC", "CUDA", "TRAIN", "DATASET", "GRAD_CLIP"}  # training-only, silently ignored
_TRACKERS = {"SiamRPNTracker": "siamrpn", "SiamMaskTracker": "siammask", "SiamRPNLTTracker": "siamrpn_lt"}
_BACKBONES = {"alexnetlegacy": "alexnetlegacy", "alexnet": "alexnetlegacy", "resnet50": "resnet50",
              "mobilenetv2": "mobilenetv2"}
_HEADS = {"DepthwiseRPN": "depthwise_rpn", "MultiRPN": "multi_rpn", "UPChannelRPN": "upchannel_rpn"}


def read_pysot_config(path: str | os.PathLike[str]) -> Preset:
    """Parse a pysot experiment ``config.yaml``; the preset is named after ``META_ARC`` or the folder."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file '{path}' does not exist; pass a pysot config.yaml")
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"config '{path}' is not valid YAML{at}; fix the file or pass --preset") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config '{path}' is not a text file; pass a pysot config.yaml") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config '{path}' is not a YAML mapping of pysot sections; pass a pysot config.yaml")
    return parse_pysot_config(data, name=_config_name(data, path))


def _config_name(data: dict[str, Any], path: str) -> str:
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return folder if folder and folder not in (".", "") else str(data.get("META_ARC", "pysot_config"))


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"config section {name} must be a mapping, got {type(value).__name__}")
    return value


def parse_pysot_config(data: dict[str, Any], name: str = "pysot_config") -> Preset:
    """Turn a parsed pysot config mapping into a Preset (warns about keys pysot itself would reject)."""
    unknown = [f"{sec}.{key}" for sec, keys in _KNOWN.items() for key in _section(data, sec) if key not in keys]
    unknown += [sec for sec in data if sec not in _KNOWN and sec not in _IGNORED_SECTIONS]
    if unknown:
        log.warning("config '%s': ignoring keys stock pysot does not know: %s (values used where they fill "
                    "gaps in KWARGS)", name, ", ".join(unknown))
    backbone = _section(data, "BACKBONE")
    btype = backbone.get("TYPE")
    if btype not in _BACKBONES:
        raise ConfigError(f"config BACKBONE.TYPE '{btype}' is not supported; known: {', '.join(_BACKBONES)}")
    bkw = dict(backbone.get("KWARGS") or {})
    used_layers = tuple(bkw.get("used_layers", backbone.get("LAYERS", ())))

    adjust = _section(data, "ADJUST")
    neck_in: tuple[int, ...] = ()
    neck_out: tuple[int, ...] = ()
    if adjust.get("ADJUST", False):
        akw = adjust.get("KWARGS") or {}
        neck_in = tuple(_as_list(akw.get("in_channels", backbone.get("CHANNELS", ()))))
        neck_out = tuple(_as_list(akw.get("out_channels", adjust.get("ADJUST_CHANNEL", ()))))
        if not neck_in or len(neck_in) != len(neck_out):
            raise ConfigError("config ADJUST.KWARGS needs in_channels and out_channels of equal length")

    rpn = _section(data, "RPN")
    rtype = rpn.get("TYPE")
    if rtype not in _HEADS:
        raise ConfigError(f"config RPN.TYPE '{rtype}' is not supported; known: {', '.join(_HEADS)}")
    rkw = dict(rpn.get("KWARGS") or {})
    head_in = tuple(_as_list(rkw.get("in_channels", rkw.get("feature_in", 256))))
    mask = bool(_section(data, "MASK").get("MASK", False))
    model = ModelSpec(
        backbone=_BACKBONES[btype], head=_HEADS[rtype], width_mult=float(bkw.get("width_mult", 1.0)),
        used_layers=used_layers, neck_in=neck_in, neck_out=neck_out, head_in=head_in,
        head_hidden=int(rkw.get("out_channels", head_in[0])) if rtype == "DepthwiseRPN" else 256,
        anchor_num=int(rkw.get("anchor_num", 5)), weighted=bool(rkw.get("weighted", rpn.get("WEIGHTED", False))),
        mask=mask, refine=mask and bool(_section(data, "REFINE").get("REFINE", False)))

    track = {**_TRACK_DEFAULTS, **_section(data, "TRACK")}
    anchor = _section(data, "ANCHOR")
    ttype = track.get("TYPE", "SiamMaskTracker" if mask else "SiamRPNTracker")
    if ttype not in _TRACKERS:
        raise ConfigError(f"config TRACK.TYPE '{ttype}' is not supported; known: {', '.join(_TRACKERS)}")
    params = TrackParams(
        tracker=_TRACKERS[ttype], penalty_k=float(track["PENALTY_K"]),
        window_influence=float(track["WINDOW_INFLUENCE"]), lr=float(track["LR"]),
        exemplar_size=int(track["EXEMPLAR_SIZE"]), instance_size=int(track["INSTANCE_SIZE"]),
        base_size=int(track["BASE_SIZE"]), context_amount=float(track["CONTEXT_AMOUNT"]),
        stride=int(anchor.get("STRIDE", 8)),
        ratios=tuple(float(r) for r in anchor.get("RATIOS", (0.33, 0.5, 1, 2, 3))),
        scales=tuple(float(s) for s in anchor.get("SCALES", (8,))),
        mask_threshold=float(track["MASK_THERSHOLD"]), mask_output_size=int(track["MASK_OUTPUT_SIZE"]),
        lost_instance_size=int(track["LOST_INSTANCE_SIZE"]), confidence_low=float(track["CONFIDENCE_LOW"]),
        confidence_high=float(track["CONFIDENCE_HIGH"]))
    if params.anchor_num != model.anchor_num:
        raise ConfigError(f"config has {params.anchor_num} anchors (RATIOS x SCALES) but RPN.KWARGS.anchor_num "
                          f"is {model.anchor_num}; make them agree")
    return Preset(name=name, source="pysot", model=model, track=params, description=f"pysot config {name}")


def _as_list(value: Any) -> list[int]:
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def explicit_preset(config: str | os.PathLike[str] | None, preset: str | Preset | None) -> Preset | None:
    """The preset a ``config.yaml`` or a preset id (or :class:`Preset`) names; None when neither is given.
    Both at once is a :class:`ConfigError`."""
    if config is not None and preset is not None:
        raise ConfigError("give either a config file or a preset id, not both")
    if config is not None:
        return read_pysot_config(config)
    if preset is None or isinstance(preset, Preset):
        return preset
    from .presets import get_preset

    return get_preset(str(preset))
