"""Frozen parameter records: what network to build (:class:`ModelSpec`) and how to track (:class:`TrackParams`).

They are plain data: passed explicitly to builders and trackers (no global config, unlike pysot's ``cfg``).
The pysot ``config.yaml`` reader lives in :mod:`siamdeploy.pysot_config`; the preset table in
:mod:`siamdeploy.presets`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

# Rounding rules used by the upstream crop code (docs/tracking.md#crop-rounding). Values are the names understood by
# :func:`siamdeploy.runtime.crop.round_by_rule`.
ROUND_FLOOR_HALF_UP = "floor_half_up"   # pysot: floor(x + 0.5)
ROUND_HALF_AWAY = "half_away"           # Python 2 round (DaSiamRPN run as released)
ROUND_HALF_EVEN = "half_even"           # Python 3 round / np.round
ROUND_HALF_UP = "half_up"               # haooozi/SiamTrackers: round(v + 1e-6 + 1000) - 1000
CROP_SQUARE = "square"                  # pysot/DaSiamRPN/foolwood: integer side, corners rounded
CROP_FLOAT_INCLUSIVE = "float_inclusive"  # haooozi/SiamTrackers: float side, inclusive rounded corners
CENTRE_PYSOT = "pysot"                  # centre x + (w-1)/2
CENTRE_HALF = "half"                    # centre x + w/2 (foolwood/SiamMask demo)
BOX_PYSOT = "pysot"                     # reported (cx - w/2, cy - h/2, w, h)
BOX_INCLUSIVE = "inclusive"             # reported (cx - (w-1)/2, cy - (h-1)/2, w, h)
CLAMP_FRAME = "frame"                   # size clipped to [10, W] x [10, H], centre to the frame
CLAMP_INIT_RELATIVE = "init_relative"   # size clipped relative to the initial size; crop size separately
MASK_REFINE = "refine"
MASK_HEAD = "head"


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
    colour: str = "bgr"                      # channel order the network was trained on
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
    crop_rounding: str = ROUND_FLOOR_HALF_UP  # crop corners, e.g. pysot floor(c - (s+1)/2 + 0.5)
    size_rounding: str = ROUND_HALF_EVEN      # crop sizes: s_z at init and round(s_x) per frame
    crop_style: str = CROP_SQUARE             # square rounded crops | float-sized inclusive crops
    init_centre: str = CENTRE_PYSOT           # x + (w-1)/2 | x + w/2
    box_output: str = BOX_PYSOT               # reported box (cx - w/2, ...) | (cx - (w-1)/2, ...)
    size_clamp: str = CLAMP_FRAME             # size in [10, W] | in [min_scale, max_scale] x initial size
    min_scale: float = 0.1
    max_scale: float = 10.0
    mask_border: float = 0.0                  # value outside the warped mask window (foolwood: -1)
    polygon_before_clip: bool = False         # foolwood computes the mask fallback from the unclipped box
    mask_source: str = MASK_REFINE            # refine branch (127x127) | mask head at the cell (63x63)
    # --- SiamFC
    scale_num: int = 3
    scale_step: float = 1.0375
    scale_penalty: float = 0.9745
    scale_lr: float = 0.59
    response_up: int = 16

    @property
    def anchor_num(self) -> int:
        return len(self.ratios) * len(self.scales)

    def score_size(self, instance_size: int | None = None) -> int:
        """Side of the RPN score map for a search crop of ``instance_size`` (default: the normal one)."""
        size = self.instance_size if instance_size is None else instance_size
        return (size - self.exemplar_size) // self.stride + 1 + self.base_size

    def with_(self, **changes: Any) -> "TrackParams":
        """A copy with some fields changed."""
        return replace(self, **changes)
