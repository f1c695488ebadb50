"""Frozen parameter records: what network to build (:class:`ModelSpec`) and how to track (:class:`TrackParams`).

They are plain data: passed explicitly to builders and trackers (no global config, unlike pysot's ``cfg``).
The pysot ``config.yaml`` reader lives in :mod:`siamdeploy.pysot_config`; the preset table in
:mod:`siamdeploy.presets`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any

from .errors import ConfigError


class RuleValue(str, enum.Enum):
    """Base of the rule enums: a member is its string value for comparisons (``CropRounding.HALF_EVEN ==
    "half_even"``), ``str``/``format``/f-strings, hashing and ``json.dumps``."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        return format(str.__str__(self), spec)

    __hash__ = str.__hash__

    @classmethod
    def coerce(cls, field: str, value: object) -> RuleValue:
        """``value`` as a member of this enum; a :class:`ConfigError` naming ``field``, the value and the
        allowed values when it is none of them."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except (ValueError, TypeError):
            allowed = ", ".join(repr(m.value) for m in cls)
            raise ConfigError(f"TrackParams.{field} = {value!r} is not a known {cls.__name__} value; "
                              f"use one of {allowed}") from None


class CropRounding(RuleValue):
    """How the upstream crop code rounds crop corners and sizes (see :func:`siamdeploy.runtime.crop.round_by_rule`)."""

    FLOOR_HALF_UP = "floor_half_up"   # pysot: floor(x + 0.5)
    HALF_AWAY = "half_away"           # Python 2 round (DaSiamRPN run as released)
    HALF_EVEN = "half_even"           # Python 3 round / np.round
    HALF_UP = "half_up"               # haooozi/SiamTrackers: round(v + 1e-6 + 1000) - 1000


class CropStyle(RuleValue):
    """Shape of the crop around the target."""

    SQUARE = "square"                    # pysot/DaSiamRPN/foolwood: integer side, corners rounded
    FLOAT_INCLUSIVE = "float_inclusive"  # haooozi/SiamTrackers: float side, inclusive rounded corners


class InitCentre(RuleValue):
    """Target centre computed from the initial box ``(x, y, w, h)``."""

    PYSOT = "pysot"   # centre x + (w-1)/2
    HALF = "half"     # centre x + w/2 (foolwood/SiamMask demo)


class BoxOutput(RuleValue):
    """Box reported from the tracked centre and size."""

    PYSOT = "pysot"           # (cx - w/2, cy - h/2, w, h)
    INCLUSIVE = "inclusive"   # (cx - (w-1)/2, cy - (h-1)/2, w, h)


class SizeClamp(RuleValue):
    """How the tracked size (and centre) is bounded after each update."""

    FRAME = "frame"                  # size clipped to [10, W] x [10, H], centre to the frame
    INIT_RELATIVE = "init_relative"  # size clipped relative to the initial size; crop size separately


class MaskSource(RuleValue):
    """Where SiamMask's mask comes from."""

    REFINE = "refine"   # refine branch, 127x127
    HEAD = "head"       # mask head at the best cell, 63x63 (foolwood base model)


class Colour(RuleValue):
    """Channel order the network was trained on (frames come in as OpenCV's BGR)."""

    BGR = "bgr"
    RGB = "rgb"


# Module-level names of the members, kept for the code that imports them.
ROUND_FLOOR_HALF_UP = CropRounding.FLOOR_HALF_UP
ROUND_HALF_AWAY = CropRounding.HALF_AWAY
ROUND_HALF_EVEN = CropRounding.HALF_EVEN
ROUND_HALF_UP = CropRounding.HALF_UP
CROP_SQUARE = CropStyle.SQUARE
CROP_FLOAT_INCLUSIVE = CropStyle.FLOAT_INCLUSIVE
CENTRE_PYSOT = InitCentre.PYSOT
CENTRE_HALF = InitCentre.HALF
BOX_PYSOT = BoxOutput.PYSOT
BOX_INCLUSIVE = BoxOutput.INCLUSIVE
CLAMP_FRAME = SizeClamp.FRAME
CLAMP_INIT_RELATIVE = SizeClamp.INIT_RELATIVE
MASK_REFINE = MaskSource.REFINE
MASK_HEAD = MaskSource.HEAD


@dataclass(frozen=True)
class ModelSpec:
    """Network structure.

    backbone: ``alexnetlegacy`` | ``resnet50`` | ``mobilenetv2`` | ``siamfc_alexnet``.
    used_layers: backbone levels returned (resnet50: 0..4; mobilenetv2: layer indices 0..7).
    neck_in / neck_out: AdjustAllLayer channels per level; empty = no neck.
    head: ``depthwise_rpn`` | ``multi_rpn`` | ``upchannel_rpn`` | ``siamfc``.
    head_in: input channels of the head per level (``multi_rpn``: one per level).
    """

    backbone: str
    head: str
    width_mult: float = 1.0
    used_layers: tuple[int, ...] = ()
    neck_in: tuple[int, ...] = ()
    neck_out: tuple[int, ...] = ()
    head_in: tuple[int, ...] = (256,)
    head_hidden: int = 256
    anchor_num: int = 5
    weighted: bool = False
    mask: bool = False
    refine: bool = False
    out_scale: float = 0.001

    @property
    def family(self) -> str:
        """Coarse family name used in logs and manifests."""
        if self.head == "siamfc":
            return "siamfc"
        if self.mask:
            return "siammask"
        return "siamrpn"


@dataclass(frozen=True)
class TrackParams:
    """Tracker hyper-parameters and the rule variants that distinguish the upstream code bases.

    Sizes are in pixels of the network input; ``penalty_k``, ``window_influence`` and ``lr`` as in pysot.
    ``tracker`` selects the loop: ``siamrpn`` | ``siammask`` | ``siamrpn_lt`` | ``siamfc``.
    The rule fields (:data:`RULE_FIELDS`) hold enum members; plain strings are converted on construction
    and an unknown one raises :class:`~siamdeploy.errors.ConfigError`.
    """

    tracker: str
    penalty_k: float = 0.04
    window_influence: float = 0.44
    lr: float = 0.4
    exemplar_size: int = 127
    instance_size: int = 255
    base_size: int = 8
    context_amount: float = 0.5
    stride: int = 8
    ratios: tuple[float, ...] = (0.33, 0.5, 1.0, 2.0, 3.0)
    scales: tuple[float, ...] = (8.0,)
    colour: Colour = Colour.BGR              # channel order the network was trained on
    # --- SiamMask
    mask_threshold: float = 0.30
    mask_output_size: int = 127
    # --- long-term
    lost_instance_size: int = 831
    confidence_low: float = 0.85
    confidence_high: float = 0.998
    # --- DaSiamRPN-BIG: search size used when the target covers < small_target_ratio of the image at init
    small_target_instance_size: int | None = None
    small_target_ratio: float = 0.004
    # --- rule variants (docs/codebases.md#rule-fields): how the upstream code bases differ around the same loop
    crop_rounding: CropRounding = CropRounding.FLOOR_HALF_UP  # crop corners, e.g. pysot floor(c - (s+1)/2 + 0.5)
    size_rounding: CropRounding = CropRounding.HALF_EVEN  # crop sizes: s_z at init and round(s_x) per frame
    crop_style: CropStyle = CropStyle.SQUARE      # square rounded crops | float-sized inclusive crops
    init_centre: InitCentre = InitCentre.PYSOT    # x + (w-1)/2 | x + w/2
    box_output: BoxOutput = BoxOutput.PYSOT       # reported box (cx - w/2, ...) | (cx - (w-1)/2, ...)
    size_clamp: SizeClamp = SizeClamp.FRAME       # size in [10, W] | in [min_scale, max_scale] x initial size
    min_scale: float = 0.1
    max_scale: float = 10.0
    mask_border: float = 0.0                      # value outside the warped mask window (foolwood: -1)
    polygon_before_clip: bool = False             # foolwood computes the mask fallback from the unclipped box
    mask_source: MaskSource = MaskSource.REFINE   # refine branch (127x127) | mask head at the cell (63x63)
    # --- SiamFC
    scale_num: int = 3
    scale_step: float = 1.0375
    scale_penalty: float = 0.9745
    scale_lr: float = 0.59
    response_up: int = 16

    def __post_init__(self) -> None:
        # Rule fields given as plain strings (a manifest, a hand-written TrackParams) become enum members;
        # an unknown value fails here, naming the field, rather than deep inside a tracker.
        for name, kind in RULE_FIELDS.items():
            object.__setattr__(self, name, kind.coerce(name, getattr(self, name)))

    @property
    def anchor_num(self) -> int:
        return len(self.ratios) * len(self.scales)

    def score_size(self, instance_size: int | None = None) -> int:
        """Side of the RPN score map for a search crop of ``instance_size`` (default: the normal one)."""
        size = self.instance_size if instance_size is None else instance_size
        return (size - self.exemplar_size) // self.stride + 1 + self.base_size

    def with_(self, **changes: Any) -> TrackParams:
        """A copy with some fields changed."""
        return replace(self, **changes)


# TrackParams fields that hold a rule value, with the enum each must be a member of.
RULE_FIELDS: dict[str, type[RuleValue]] = {
    "colour": Colour, "crop_rounding": CropRounding, "size_rounding": CropRounding, "crop_style": CropStyle,
    "init_centre": InitCentre, "box_output": BoxOutput, "size_clamp": SizeClamp, "mask_source": MaskSource,
}
