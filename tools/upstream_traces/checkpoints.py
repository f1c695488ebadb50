"""siamdeploy's random state dicts written in each upstream code base's own checkpoint format.

The key names are the inverse of siamdeploy's layout table (:mod:`siamdeploy.checkpoint.layouts`), so the
file an upstream network loads strictly is also what siamdeploy's loader reads back to the same weights
(:func:`round_trip_error` checks that).
"""
from __future__ import annotations

import re

import torch

from siamdeploy.checkpoint.layouts import IMAGENET_MEAN, IMAGENET_STD, LAYOUTS, Layout, to_canonical
from siamdeploy.presets import get_preset

# preset.source -> the layout whose renames are inverted to write that code base's names.
_LAYOUT_OF_SOURCE = {"dasiamrpn": "dasiamrpn", "siamtrackers": "dasiamrpn", "haooozi": "haooozi",
                     "foolwood": "foolwood_siammask"}


def _layout(name: str) -> Layout:
    return next(layout for layout in LAYOUTS if layout.name == name)


def _inverse_prefixes(layout: Layout) -> list[tuple[str, str]]:
    """``(siamdeploy prefix, upstream prefix)`` pairs from a layout's ``^upstream\\.`` -> ``siamdeploy.`` rows,
    longest siamdeploy prefix first."""
    pairs = []
    for pattern, repl in layout.renames:
        match = re.fullmatch(r"\^((?:\w+\\\.)+)", pattern)
        if match is None or "\\" in repl:
            raise ValueError(f"layout '{layout.name}' rename {pattern!r} is not a plain prefix; extend the harness")
        pairs.append((repl, match.group(1).replace("\\.", ".")))
    return sorted(pairs, key=lambda p: -len(p[0]))


def rename_to_upstream(state: dict[str, torch.Tensor], layout_name: str, drop_bn_counters: bool = False
                       ) -> dict[str, torch.Tensor]:
    """Rename siamdeploy (pysot-named) keys to the upstream names of ``layout_name``; every key must be
    covered. ``drop_bn_counters`` drops ``num_batches_tracked`` (files written by torch 0.3 have none)."""
    pairs = _inverse_prefixes(_layout(layout_name))
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if drop_bn_counters and key.endswith("num_batches_tracked"):
            continue
        prefix = next((p for p in pairs if key.startswith(p[0])), None)
        if prefix is None:
            raise KeyError(f"key '{key}' has no upstream name in layout '{layout_name}'")
        out[prefix[1] + key[len(prefix[0]):]] = value
    return out


def unfold_rgb_normalisation(state: dict[str, torch.Tensor], key: str = "featureExtract.0",
                             mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
                             ) -> dict[str, torch.Tensor]:
    """The inverse of :func:`siamdeploy.checkpoint.layouts.fold_rgb_normalisation`: rewrite the first
    convolution, which takes BGR 0..255, so that it gives the same output on ``(RGB / 255 - mean) / std``.

    Kernel ``(out, 3, k, k)``: RGB input channel ``c`` is BGR channel ``2 - c`` times ``255 std_c``; the bias
    (``(out,)``) absorbs ``255 mean_c`` times the sum of that kernel channel.
    """
    weight = state[f"{key}.weight"].double()
    bias = state[f"{key}.bias"].double()
    rgb = weight.flip(1)
    s = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    m = torch.tensor(mean, dtype=torch.float64).view(1, 3)
    out = dict(state)
    out[f"{key}.weight"] = (rgb * 255.0 * s).float().contiguous()
    out[f"{key}.bias"] = (bias + (255.0 * m * rgb.sum(dim=(2, 3))).sum(dim=1)).float()
    return out


def upstream_checkpoint(preset: str, state: dict[str, torch.Tensor]) -> object:
    """What the preset's upstream code base writes as its checkpoint file, for a siamdeploy state dict.

    - DaSiamRPN: DaSiamRPN key names, no ``num_batches_tracked`` (a plain state dict).
    - HonglinChu/SiamTrackers: DaSiamRPN key names in ``{'epoch', 'model', 'optimizer'}``.
    - haooozi/SiamRPN: haooozi key names, first convolution in haooozi's input convention, same wrapper.
    - foolwood/SiamMask: foolwood key names (a plain state dict).
    - pysot, siamfc-pytorch: the names are siamdeploy's already.
    """
    source = get_preset(preset).source
    if source == "dasiamrpn":
        return rename_to_upstream(state, "dasiamrpn", drop_bn_counters=True)
    if source == "siamtrackers":
        return {"epoch": 50, "model": rename_to_upstream(state, "dasiamrpn"), "optimizer": {}}
    if source == "haooozi":
        return {"epoch": 50, "model": unfold_rgb_normalisation(rename_to_upstream(state, "haooozi")),
                "optimizer": {}}
    if source == "foolwood":
        return rename_to_upstream(state, "foolwood_siammask")
    return dict(state)


def round_trip_error(state: dict[str, torch.Tensor], written: object) -> float:
    """Max |difference| between ``state`` and what siamdeploy's layout table reads back from ``written``
    (the upstream file's contents); raises KeyError if the key sets differ (BN counters aside)."""
    inner = written["model"] if isinstance(written, dict) and "model" in written else written
    assert isinstance(inner, dict)
    back, _ = to_canonical(inner)
    want = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    got = {k: v for k, v in back.items() if not k.endswith("num_batches_tracked")}
    if set(want) != set(got):
        raise KeyError(f"round trip changed the keys: {sorted(set(want) ^ set(got))[:6]}")
    return max(float((want[k].double() - got[k].double()).abs().max()) if want[k].numel() else 0.0 for k in want)
