"""Seeded random weights that behave like a trained model numerically (docs/testing.md#random-weight-models).

Random conv weights on 0..255 input blow up, and untouched BatchNorm (gamma 1, beta 0, mean 0, var 1) would
hide a broken BN export. So: randomise every BN, then recalibrate its running statistics on real-looking
crops (train mode, cumulative average), and rescale the last layer of each head so outputs are O(1).
Used by the tests and the demo; it is not a substitute for trained weights.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..synthetic.texture import texture
from ..presets import Preset
from .heads import _scale_last, crop_refine_inputs
from .siamese import SiameseNet


def _crops(rng: np.random.Generator, count: int, side: int, rgb: bool) -> torch.Tensor:
    imgs = [texture(rng, side, side, smooth=float(rng.uniform(2, 10))) for _ in range(count)]
    arr = np.stack(imgs).astype(np.float32).transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(arr[:, ::-1] if rgb else arr))


@torch.no_grad()
def random_model(preset: Preset, seed: int = 0, calib_pairs: int = 4) -> SiameseNet:
    """A :class:`SiameseNet` for ``preset`` with seeded random weights and calibrated BatchNorm (eval mode)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = SiameseNet(preset.model)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0.0, 0.2)
            m.running_mean.normal_(0.0, 1.0)
            m.running_var.uniform_(0.5, 2.0)
    if preset.model.weighted:
        net.rpn_head.cls_weight.normal_(0, 0.5)
        net.rpn_head.loc_weight.normal_(0, 0.5)
    p = preset.track
    rgb = p.colour == "rgb"
    zs = _crops(rng, calib_pairs, p.exemplar_size, rgb)
    xs = _crops(rng, calib_pairs, p.instance_size, rgb)
    # 1) BN statistics: cumulative average over template and search passes in train mode.
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    net.train()
    for i in range(calib_pairs):
        net.search(xs[i:i + 1], *net.template(zs[i:i + 1]))
    net.eval()
    # 2) Output scales: cls logits std ~1.5, loc deltas std ~0.25, so trackers neither explode nor freeze.
    _rescale_heads(net, zs[:2], xs[:2])
    return net


def _outputs(net: SiameseNet, zs: torch.Tensor, xs: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
    return [net.search(xs[i:i + 1], *net.template(zs[i:i + 1])) for i in range(len(zs))]


def _rescale_heads(net: SiameseNet, zs: torch.Tensor, xs: torch.Tensor) -> None:
    if net.head_output_names != ["cls", "loc"]:  # SiamFC: only the argmax of the response matters
        return
    outs = _outputs(net, zs, xs)
    cls_std = torch.cat([o[0].flatten() for o in outs]).std().item()
    loc_std = torch.cat([o[1].flatten() for o in outs]).std().item()
    net.rpn_head.rescale(1.5 / max(cls_std, 1e-12), 0.25 / max(loc_std, 1e-12))
    if net.spec.refine:
        out = net.search(xs[:1], *net.template(zs[:1]))
        n = out[0].shape[-1]
        logits = net.refine_head(*crop_refine_inputs(out[3], out[4], out[5], out[2], n // 2, n // 2))
        factor = 2.0 / max(logits.std().item(), 1e-12)  # logits ~ N(0, 2): some pixels pass the threshold
        _scale_last(net.refine_head.post2, factor)
        net.refine_head.post2.bias.sub_(logits.mean().item() * factor)
