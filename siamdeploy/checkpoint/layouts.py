"""Checkpoint key layouts of the upstream code bases, as data: how to recognise each and how to rename
its keys into siamdeploy's structure (which uses pysot's names).

Adding a code base = adding a :class:`Layout` row (and, if its tracker differs, a preset with rule variants).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import CheckpointError


@dataclass(frozen=True)
class Layout:
    """A key layout.

    ``marker``: regex that some key must match for the layout to apply (checked in table order).
    ``renames``: ordered ``(regex, replacement)`` pairs; the first matching pattern renames a key.
    ``source``: which upstream code base writes files in this layout.
    """

    name: str
    source: str
    marker: str
    renames: tuple[tuple[str, str], ...] = ()
    transform: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None
    note: str = ""

    def matches(self, keys: list[str]) -> bool:
        pattern = re.compile(self.marker)
        return any(pattern.search(k) for k in keys)

    def apply(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        compiled = [(re.compile(p), r) for p, r in self.renames]
        out: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            new = key
            for pattern, repl in compiled:
                if pattern.match(key):
                    new = pattern.sub(repl, key, count=1)
                    break
            if new in out:
                raise CheckpointError(f"checkpoint keys '{key}' and another both map to '{new}' in layout "
                                      f"'{self.name}'; the file mixes two layouts")
            out[new] = value
        return self.transform(out) if self.transform is not None else out


# pysot's `alexnet` backbone names its stages layer1..5; `alexnetlegacy` uses one `features` Sequential.
_ALEXNET_STAGES = {1: (0, 1), 2: (4, 5), 3: (8, 9), 4: (11, 12), 5: (14, 15)}
_ALEXNET_RENAMES = tuple((rf"^backbone\.layer{s}\.{i}\.", f"backbone.features.{dst}.")
                         for s, pair in _ALEXNET_STAGES.items() for i, dst in enumerate(pair))

_DASIAM_RENAMES = (
    (r"^featureExtract\.", "backbone.features."),
    (r"^conv_r1\.", "rpn_head.template_loc_conv."),
    (r"^conv_cls1\.", "rpn_head.template_cls_conv."),
    (r"^conv_r2\.", "rpn_head.search_loc_conv."),
    (r"^conv_cls2\.", "rpn_head.search_cls_conv."),
    (r"^regress_adjust\.", "rpn_head.loc_adjust."),
)

_HAOOOZI_RENAMES = (
    (r"^featureExtract\.", "backbone.features."),
    (r"^examplar_cla\.", "rpn_head.template_cls_conv."),
    (r"^examplar_reg\.", "rpn_head.template_loc_conv."),
    (r"^instance_cla\.", "rpn_head.search_cls_conv."),
    (r"^instance_reg\.", "rpn_head.search_loc_conv."),
    (r"^regress_adjust\.", "rpn_head.loc_adjust."),
)

_FOOLWOOD_RENAMES = (
    (r"^features\.features\.", "backbone."),
    (r"^features\.", "neck."),
    (r"^rpn_model\.", "rpn_head."),
    (r"^mask_model\.mask\.", "mask_head."),
    (r"^refine_model\.", "refine_head."),
)

# ImageNet statistics haooozi/SiamRPN normalises with (RGB order, on 0..1 input).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def fold_rgb_normalisation(state: dict[str, torch.Tensor], key: str = "backbone.features.0",
                           mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
                           ) -> dict[str, torch.Tensor]:
    """Fold "RGB, /255, minus mean, over std" into the first (unpadded) convolution, so the network takes
    BGR 0..255 like the other families. Exact up to float rounding: for input channel ``c`` (RGB),
    ``W'[:, 2-c] = W[:, c] / (255 std_c)`` and ``b' = b - sum_c (mean_c / std_c) * sum(W[:, c])``."""
    weight = state[f"{key}.weight"].double()
    bias = state[f"{key}.bias"].double()
    m = torch.tensor(mean, dtype=torch.float64)
    s = torch.tensor(std, dtype=torch.float64)
    scaled = weight / (255.0 * s.view(1, 3, 1, 1))
    new_bias = bias - (weight.sum(dim=(2, 3)) * (m / s).view(1, 3)).sum(dim=1)
    out = dict(state)
    out[f"{key}.weight"] = scaled.flip(1).float().contiguous()  # RGB -> BGR input channels
    out[f"{key}.bias"] = new_bias.float()
    return out


LAYOUTS: tuple[Layout, ...] = (
    Layout("haooozi", "haooozi/SiamRPN", r"^examplar_cla\.weight$", _HAOOOZI_RENAMES, fold_rgb_normalisation,
           note="input normalisation (RGB, /255, ImageNet mean/std) folded into the first convolution: "
                "the network takes BGR 0..255"),
    Layout("dasiamrpn", "dasiamrpn", r"^featureExtract\.\d+\.weight$", _DASIAM_RENAMES),
    Layout("foolwood_siammask", "foolwood/SiamMask", r"^features\.features\.conv1\.weight$", _FOOLWOOD_RENAMES),
    Layout("siamfc", "siamfc", r"^backbone\.conv5\.0\.weight$"),
    Layout("pysot_alexnet", "pysot", r"^backbone\.layer5\.0\.weight$", _ALEXNET_RENAMES),
    Layout("pysot", "pysot", r"^(backbone|rpn_head)\."),
)


def detect_layout(state: dict[str, torch.Tensor]) -> Layout:
    """The first layout whose marker some key matches; a clear error if none does."""
    keys = list(state)
    for layout in LAYOUTS:
        if layout.matches(keys):
            return layout
    raise CheckpointError(
        f"checkpoint keys do not match any known layout (first keys: {', '.join(keys[:4])}); supported: "
        + ", ".join(f"{lay.name} ({lay.source})" for lay in LAYOUTS))


def to_canonical(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], Layout]:
    """Rename a normalised state dict into siamdeploy's key names; returns it with the detected layout."""
    layout = detect_layout(state)
    return layout.apply(state), layout
