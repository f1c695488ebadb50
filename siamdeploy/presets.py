"""The preset table as data (docs/codebases.md#presets): id -> network, tracker parameters, checkpoint layout."""
from __future__ import annotations

from dataclasses import dataclass

from .config import (BoxOutput, Colour, CropRounding, CropStyle, InitCentre, MaskSource, ModelSpec, SizeClamp,
                     TrackParams)
from .errors import unknown_name


@dataclass(frozen=True)
class Preset:
    """A named, complete tracker definition.

    ``source`` is the upstream code base whose tracker loop and conventions are reproduced.
    """

    name: str
    source: str
    model: ModelSpec
    track: TrackParams
    description: str


_ALEX = ModelSpec(backbone="alexnetlegacy", head="depthwise_rpn", head_in=(256,))
_R50_L234 = ModelSpec(backbone="resnet50", head="multi_rpn", used_layers=(2, 3, 4),
                      neck_in=(512, 1024, 2048), neck_out=(256, 256, 256), head_in=(256, 256, 256),
                      weighted=True)
_MOBILE = ModelSpec(backbone="mobilenetv2", head="multi_rpn", width_mult=1.4, used_layers=(3, 5, 7),
                    neck_in=(44, 134, 448), neck_out=(256, 256, 256), head_in=(256, 256, 256))
_MASK = ModelSpec(backbone="resnet50", head="depthwise_rpn", used_layers=(0, 1, 2, 3), neck_in=(1024,),
                  neck_out=(256,), head_in=(256,), mask=True, refine=True)
_UPCHANNEL = ModelSpec(backbone="alexnetlegacy", head="upchannel_rpn", head_in=(256,))
_UPCHANNEL_BIG = ModelSpec(backbone="alexnetlegacy", head="upchannel_rpn", width_mult=2.0, head_in=(512,))
_SIAMFC = ModelSpec(backbone="siamfc_alexnet", head="siamfc", head_in=(256,))


def _rpn(**kw: object) -> TrackParams:
    return TrackParams(tracker="siamrpn", **kw)  # type: ignore[arg-type]


def _dasiam(**kw: object) -> TrackParams:
    # DaSiamRPN as released is Python 2 code: round() is half away from zero (docs/tracking.md#crop-rounding).
    return TrackParams(tracker="siamrpn", instance_size=271, base_size=0, crop_rounding=CropRounding.HALF_AWAY,
                       size_rounding=CropRounding.HALF_AWAY, **kw)  # type: ignore[arg-type]


def _foolwood(**kw: object) -> TrackParams:
    # foolwood/SiamMask (Python 3): half-to-even crop rounding, centre x + w/2, polygon before clipping,
    # back-projected mask -1 outside the window (docs/codebases.md#siammask-foolwood).
    return TrackParams(tracker="siammask", crop_rounding=CropRounding.HALF_EVEN,
                       size_rounding=CropRounding.HALF_EVEN, init_centre=InitCentre.HALF, mask_border=-1.0,
                       polygon_before_clip=True, **kw)  # type: ignore[arg-type]


def _upchannel_1based(**kw: object) -> TrackParams:
    # haooozi/SiamRPN and HonglinChu/SiamTrackers: unrounded, possibly non-square crops, scale from the patch
    # height, sizes clamped relative to the initial size, 1-based boxes (reproduced in 0-based coordinates).
    return TrackParams(tracker="siamrpn", instance_size=271, base_size=0, crop_style=CropStyle.FLOAT_INCLUSIVE,
                       box_output=BoxOutput.INCLUSIVE, size_clamp=SizeClamp.INIT_RELATIVE,
                       **kw)  # type: ignore[arg-type]


_TABLE = [
    Preset("siamrpn_alex_dwxcorr", "pysot", _ALEX,
           _rpn(penalty_k=0.16, window_influence=0.40, lr=0.30, instance_size=287, base_size=0),
           "pysot SiamRPN, AlexNet (legacy), depthwise correlation"),
    Preset("siamrpn_alex_dwxcorr_otb", "pysot", _ALEX,
           _rpn(penalty_k=0.16, window_influence=0.40, lr=0.30, instance_size=287, base_size=0),
           "pysot SiamRPN AlexNet, OTB parameters"),
    Preset("siamrpn_mobilev2_l234_dwxcorr", "pysot", _MOBILE,
           _rpn(penalty_k=0.04, window_influence=0.40, lr=0.50),
           "pysot SiamRPN++ MobileNetV2 (w1.4), layers 3/5/7"),
    Preset("siamrpn_r50_l234_dwxcorr", "pysot", _R50_L234,
           _rpn(penalty_k=0.05, window_influence=0.42, lr=0.38),
           "pysot SiamRPN++ ResNet-50, layers 2/3/4, weighted fusion"),
    Preset("siamrpn_r50_l234_dwxcorr_otb", "pysot", ModelSpec(**{**_R50_L234.__dict__, "weighted": False}),
           _rpn(penalty_k=0.24, window_influence=0.50, lr=0.25),
           "pysot SiamRPN++ ResNet-50, OTB parameters, unweighted fusion"),
    Preset("siammask_r50_l3", "pysot", _MASK,
           TrackParams(tracker="siammask", penalty_k=0.10, window_influence=0.41, lr=0.32, mask_threshold=0.15),
           "pysot SiamMask ResNet-50 (layer 3) with refine"),
    Preset("siamrpn_r50_l234_dwxcorr_lt", "pysot",
           ModelSpec(**{**_R50_L234.__dict__, "neck_out": (128, 256, 512), "head_in": (128, 256, 512)}),
           TrackParams(tracker="siamrpn_lt", penalty_k=0.05, window_influence=0.28, lr=0.22,
                       lost_instance_size=831, confidence_low=0.8, confidence_high=0.998),
           "pysot SiamRPN++ long-term (831 search when lost)"),
    Preset("dasiamrpn_vot", "dasiamrpn", _UPCHANNEL, _dasiam(penalty_k=0.04, window_influence=0.44, lr=0.45),
           "DaSiamRPN SiamRPNVOT.model"),
    Preset("dasiamrpn_otb", "dasiamrpn", _UPCHANNEL, _dasiam(penalty_k=0.22, window_influence=0.40, lr=0.30),
           "DaSiamRPN SiamRPNOTB.model"),
    Preset("dasiamrpn_big", "dasiamrpn", _UPCHANNEL_BIG,
           _dasiam(penalty_k=0.055, window_influence=0.42, lr=0.295, small_target_instance_size=287),
           "DaSiamRPN SiamRPNBIG.model (287 search for small targets)"),
    Preset("siammask_vot", "foolwood", _MASK,
           _foolwood(penalty_k=0.04, window_influence=0.42, lr=0.25, mask_threshold=0.30),
           "foolwood/SiamMask sharp, SiamMask_VOT.pth / config_vot.json"),
    Preset("siammask_vot_ld", "foolwood", _MASK,
           _foolwood(penalty_k=0.10, window_influence=0.41, lr=0.32, mask_threshold=0.15),
           "foolwood/SiamMask sharp, SiamMask_VOT_LD.pth / config_vot18.json"),
    Preset("siammask_davis", "foolwood", _MASK,
           _foolwood(penalty_k=0.04, window_influence=0.40, lr=1.0, mask_threshold=0.35),
           "foolwood/SiamMask sharp, SiamMask_DAVIS.pth / config_davis.json"),
    Preset("siammask_base", "foolwood", ModelSpec(**{**_MASK.__dict__, "refine": False}),
           _foolwood(penalty_k=0.09, window_influence=0.39, lr=0.38, mask_threshold=0.30,
                     mask_source=MaskSource.HEAD, mask_output_size=63),
           "foolwood/SiamMask base (63x63 mask head, no refine)"),
    Preset("siamrpn_haooozi", "haooozi", _UPCHANNEL,
           _upchannel_1based(ratios=(0.5, 0.66, 1.0, 1.5, 2.0), penalty_k=0.20, window_influence=0.40, lr=0.25),
           "haooozi/SiamRPN (its RGB/255 ImageNet normalisation is folded into the first conv: BGR 0..255 in)"),
    Preset("siamrpn_siamtrackers", "siamtrackers", _UPCHANNEL,
           _upchannel_1based(penalty_k=0.22, window_influence=0.40, lr=0.30),
           "HonglinChu/SiamTrackers SiamRPN (BGR 0..255, as its tracker runs)"),
    Preset("siamfc", "siamfc", _SIAMFC,
           TrackParams(tracker="siamfc", window_influence=0.176, instance_size=255, colour=Colour.RGB,
                       crop_rounding=CropRounding.HALF_EVEN),
           "siamfc-pytorch AlexNetV1, 3-scale search"),
]

PRESETS: dict[str, Preset] = {p.name: p for p in _TABLE}


@dataclass(frozen=True)
class DetectHint:
    """Evidence outside the network structure that tells presets with identical weights apart.

    Preset detection (:func:`siamdeploy.checkpoint.guess_preset`) first finds the presets whose network has
    exactly the checkpoint's keys and shapes; when several do, these rows decide:

    ``layouts``: checkpoint layouts (:data:`siamdeploy.checkpoint.LAYOUTS` names) this preset's files come in;
    a file in another layout rules the preset out (empty: any layout).
    ``wrapper``: the key its code base stores the tensors under in the file; a file without it rules the
    preset out, a file with it picks the preset before any file-name hint.
    ``names``: lower-case substrings of the file name that pick the preset.
    ``default``: the pick among the remaining presets when neither the wrapper nor the name decides
    (without one, the first in table order).
    """

    preset: str
    layouts: tuple[str, ...] = ()
    wrapper: str | None = None
    names: tuple[str, ...] = ()
    default: bool = False


# Presets that share a structure with another preset; a preset whose structure is unique needs no row.
_UPCHANNEL_LAYOUTS = ("dasiamrpn", "pysot", "pysot_alexnet")  # DaSiamRPN's own names or pysot's UPChannelRPN
DETECT_HINTS: dict[str, DetectHint] = {h.preset: h for h in (
    DetectHint("siamrpn_alex_dwxcorr", default=True),
    DetectHint("siamrpn_alex_dwxcorr_otb", names=("otb",)),
    DetectHint("dasiamrpn_vot", layouts=_UPCHANNEL_LAYOUTS, names=("vot",), default=True),
    DetectHint("dasiamrpn_otb", layouts=_UPCHANNEL_LAYOUTS, names=("otb",)),
    DetectHint("siamrpn_haooozi", layouts=("haooozi",)),
    DetectHint("siamrpn_siamtrackers", layouts=("dasiamrpn",), wrapper="model"),
    DetectHint("siammask_r50_l3", layouts=("pysot",)),
    DetectHint("siammask_vot", layouts=("foolwood_siammask",), default=True),
    DetectHint("siammask_vot_ld", layouts=("foolwood_siammask",), names=("_ld", "vot18")),
    DetectHint("siammask_davis", layouts=("foolwood_siammask",), names=("davis",)),
)}


def detect_hint(name: str) -> DetectHint:
    """The detection evidence of a preset id (an all-empty row for presets that need none)."""
    return DETECT_HINTS.get(name, DetectHint(name))


def get_preset(name: str) -> Preset:
    """Look up a preset id; an unknown id fails with the list of known ones and the closest match."""
    try:
        return PRESETS[name]
    except KeyError:
        raise unknown_name("preset", name, PRESETS, "Known presets") from None
