"""Necks and heads, each split into a template part (-> correlation kernels) and a search part.

Kernels are returned already shaped as convolution weights, so the search part is a plain grouped
convolution whose weight is a runtime input (docs/networks.md#correlation-as-a-grouped-convolution):
- depthwise: ``(C, 1, k, k)``, conv with ``groups=C``;
- up-channel / SiamFC: ``(K, C, k, k)``, conv with ``groups=1``.

Several targets run as one call by folding the batch into the groups (docs/multi_target.md#batched-graphs):
the kernels of ``B`` targets are concatenated along dim 0 (depthwise ``(B*C, 1, k, k)``, up-channel / SiamFC
``(B*K, C, k, k)``), the search features of target ``b`` become channels ``b*C..(b+1)*C`` of one map, and the
convolution runs with ``groups=B*C`` (depthwise) or ``groups=B`` (full). ``targets=1`` is the plain path.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelSpec
from ..errors import ConfigError


def depthwise_xcorr(search: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """search ``(B, C, H, W)``, kernel ``(C, 1, k, k)`` -> ``(B, C, H-k+1, W-k+1)``."""
    return F.conv2d(search, kernel, groups=kernel.shape[0])


def full_xcorr(search: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """search ``(B, C, H, W)``, kernel ``(K, C, k, k)`` -> ``(B, K, H-k+1, W-k+1)``."""
    return F.conv2d(search, kernel)


def fold_targets(search: torch.Tensor, targets: int) -> torch.Tensor:
    """Search features of ``targets`` targets ``(B*n, C, H, W)`` (target-major: target ``b``'s ``n`` crops are
    rows ``b*n..(b+1)*n``) -> ``(n, B*C, H, W)``: target ``b`` in channels ``b*C..(b+1)*C``."""
    bn, c, h, w = search.shape
    n = bn // targets
    if n == 1:
        return search.reshape(1, targets * c, h, w)
    return search.reshape(targets, n, c, h, w).transpose(0, 1).reshape(n, targets * c, h, w)


def unfold_targets(folded: torch.Tensor, targets: int) -> torch.Tensor:
    """Inverse of :func:`fold_targets` for a correlation output ``(n, B*K, H, W)`` -> ``(B*n, K, H, W)``."""
    n, bk, h, w = folded.shape
    k = bk // targets
    if n == 1:
        return folded.reshape(targets, k, h, w)
    return folded.reshape(n, targets, k, h, w).transpose(0, 1).reshape(targets * n, k, h, w)


def depthwise_xcorr_batched(search: torch.Tensor, kernel: torch.Tensor, targets: int) -> torch.Tensor:
    """``targets`` targets at once: search ``(B*n, C, H, W)``, kernel ``(B*C, 1, k, k)`` -> ``(B*n, C, H', W')``,
    one grouped convolution with ``groups=B*C``."""
    if targets == 1:
        return depthwise_xcorr(search, kernel)
    return unfold_targets(F.conv2d(fold_targets(search, targets), kernel, groups=kernel.shape[0]), targets)


def full_xcorr_batched(search: torch.Tensor, kernel: torch.Tensor, targets: int) -> torch.Tensor:
    """``targets`` targets at once: search ``(B*n, C, H, W)``, kernel ``(B*K, C, k, k)`` -> ``(B*n, K, H', W')``,
    one grouped convolution with ``groups=B``."""
    if targets == 1:
        return full_xcorr(search, kernel)
    return unfold_targets(F.conv2d(fold_targets(search, targets), kernel, groups=targets), targets)


def as_depthwise_weight(feature: torch.Tensor) -> torch.Tensor:
    """Template feature ``(B, C, k, k)`` -> depthwise weight ``(B*C, 1, k, k)`` (``B`` targets' weights
    concatenated along dim 0; ``B = 1``: ``(C, 1, k, k)``)."""
    return feature.reshape(feature.shape[0] * feature.shape[1], 1, feature.shape[2], feature.shape[3])


class AdjustLayer(nn.Module):
    """1x1 conv + BN; a template-sized map (width < 20) keeps its centre 7x7."""

    def __init__(self, cin: int, cout: int, center_size: int = 7) -> None:
        super().__init__()
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.center_size = center_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if x.shape[3] < 20:
            lo = (x.shape[3] - self.center_size) // 2
            x = x[:, :, lo:lo + self.center_size, lo:lo + self.center_size]
        return x


class AdjustAllLayer(nn.Module):
    """One AdjustLayer per level: ``downsample`` for a single level, ``downsample2..4`` for several."""

    def __init__(self, cins: tuple[int, ...], couts: tuple[int, ...]) -> None:
        super().__init__()
        self.num = len(couts)
        if self.num == 1:
            self.downsample = AdjustLayer(cins[0], couts[0])
        else:
            for i, (ci, co) in enumerate(zip(cins, couts)):
                setattr(self, f"downsample{i + 2}", AdjustLayer(ci, co))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.num == 1:
            return [self.downsample(feats[-1])]
        return [getattr(self, f"downsample{i + 2}")(f) for i, f in enumerate(feats)]


def _conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DepthwiseXCorr(nn.Module):
    """conv_kernel / conv_search (3x3, BN, ReLU) -> depthwise xcorr -> head (1x1 BN ReLU 1x1)."""

    def __init__(self, cin: int, hidden: int, cout: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv_kernel = _conv_bn_relu(cin, hidden, kernel_size)
        self.conv_search = _conv_bn_relu(cin, hidden, kernel_size)
        self.head = nn.Sequential(nn.Conv2d(hidden, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                                  nn.ReLU(inplace=True), nn.Conv2d(hidden, cout, 1))

    def kernel(self, z: torch.Tensor) -> torch.Tensor:
        return as_depthwise_weight(self.conv_kernel(z))

    def correlate(self, x: torch.Tensor, kernel: torch.Tensor, targets: int = 1) -> torch.Tensor:
        """The correlation feature before the head (SiamMask's refine needs it)."""
        return depthwise_xcorr_batched(self.conv_search(x), kernel, targets)

    def forward(self, x: torch.Tensor, kernel: torch.Tensor, targets: int = 1) -> torch.Tensor:
        return self.head(self.correlate(x, kernel, targets))


class DepthwiseRPN(nn.Module):
    """cls and loc depthwise branches; kernels ``[cls, loc]``."""

    def __init__(self, anchor_num: int, cin: int, hidden: int) -> None:
        super().__init__()
        self.cls = DepthwiseXCorr(cin, hidden, 2 * anchor_num)
        self.loc = DepthwiseXCorr(cin, hidden, 4 * anchor_num)

    output_names = ("cls", "loc")

    @staticmethod
    def kernel_names(levels: int) -> list[str]:
        return ["cls_kernel0", "loc_kernel0"]

    def kernels(self, zfs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Last-level template features -> ``[cls (C,1,k,k), loc (C,1,k,k)]`` depthwise weights."""
        return [self.cls.kernel(zfs[-1]), self.loc.kernel(zfs[-1])]

    def forward(self, xfs: list[torch.Tensor], kernels: list[torch.Tensor], targets: int = 1
                ) -> tuple[torch.Tensor, ...]:
        return self.cls(xfs[-1], kernels[0], targets), self.loc(xfs[-1], kernels[1], targets)

    def rescale(self, cls_factor: float, loc_factor: float) -> None:
        """Scale the last layers so cls/loc outputs scale by these factors (seeded random weights)."""
        _scale_last(self.cls.head[3], cls_factor)
        _scale_last(self.loc.head[3], loc_factor)


class MultiRPN(nn.Module):
    """DepthwiseRPN per level (``rpn2..``), fused by the mean or by softmax(weights)."""

    def __init__(self, anchor_num: int, cins: tuple[int, ...], weighted: bool) -> None:
        super().__init__()
        self.levels = len(cins)
        self.weighted = weighted
        for i, c in enumerate(cins):
            setattr(self, f"rpn{i + 2}", DepthwiseRPN(anchor_num, c, c))
        if weighted:
            self.cls_weight = nn.Parameter(torch.ones(self.levels))
            self.loc_weight = nn.Parameter(torch.ones(self.levels))

    output_names = ("cls", "loc")

    @staticmethod
    def kernel_names(levels: int) -> list[str]:
        return [n for i in range(levels) for n in (f"cls_kernel{i}", f"loc_kernel{i}")]

    def kernels(self, zfs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Template features per level -> ``[cls0, loc0, cls1, loc1, ...]`` depthwise weights."""
        out: list[torch.Tensor] = []
        for i, zf in enumerate(zfs):
            out += getattr(self, f"rpn{i + 2}").kernels([zf])
        return out

    def rescale(self, cls_factor: float, loc_factor: float) -> None:
        for i in range(self.levels):
            getattr(self, f"rpn{i + 2}").rescale(cls_factor, loc_factor)

    def forward(self, xfs: list[torch.Tensor], kernels: list[torch.Tensor], targets: int = 1
                ) -> tuple[torch.Tensor, ...]:
        outs = [getattr(self, f"rpn{i + 2}")([xf], kernels[2 * i:2 * i + 2], targets) for i, xf in enumerate(xfs)]
        if self.weighted:
            wc, wl = F.softmax(self.cls_weight, 0), F.softmax(self.loc_weight, 0)
            cls = sum(o[0] * wc[i] for i, o in enumerate(outs))
            loc = sum(o[1] * wl[i] for i, o in enumerate(outs))
        else:
            cls = sum(o[0] for o in outs) / self.levels
            loc = sum(o[1] for o in outs) / self.levels
        return cls, loc  # type: ignore[return-value]


class UPChannelRPN(nn.Module):
    """SiamRPN up-channel head: template convs make 2A and 4A full filters; loc goes through ``loc_adjust``."""

    def __init__(self, anchor_num: int, cin: int) -> None:
        super().__init__()
        self.anchor_num = anchor_num
        self.template_cls_conv = nn.Conv2d(cin, cin * 2 * anchor_num, 3)
        self.template_loc_conv = nn.Conv2d(cin, cin * 4 * anchor_num, 3)
        self.search_cls_conv = nn.Conv2d(cin, cin, 3)
        self.search_loc_conv = nn.Conv2d(cin, cin, 3)
        self.loc_adjust = nn.Conv2d(4 * anchor_num, 4 * anchor_num, 1)

    output_names = ("cls", "loc")

    @staticmethod
    def kernel_names(levels: int) -> list[str]:
        return ["cls_kernel0", "loc_kernel0"]

    def kernels(self, zfs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Last-level template features ``(B, C, k, k)`` -> ``[cls (B*2A,C,k,k), loc (B*4A,C,k,k)]`` full
        filters (``B`` targets concatenated along dim 0)."""
        zf = zfs[-1]
        b, c = zf.shape[0], zf.shape[1]
        cls_k = self.template_cls_conv(zf)
        loc_k = self.template_loc_conv(zf)
        k = cls_k.shape[-1]
        return [cls_k.reshape(b * 2 * self.anchor_num, c, k, k), loc_k.reshape(b * 4 * self.anchor_num, c, k, k)]

    def forward(self, xfs: list[torch.Tensor], kernels: list[torch.Tensor], targets: int = 1
                ) -> tuple[torch.Tensor, ...]:
        xf = xfs[-1]
        cls = full_xcorr_batched(self.search_cls_conv(xf), kernels[0], targets)
        loc = self.loc_adjust(full_xcorr_batched(self.search_loc_conv(xf), kernels[1], targets))
        return cls, loc

    def rescale(self, cls_factor: float, loc_factor: float) -> None:
        _scale_last(self.template_cls_conv, cls_factor)
        _scale_last(self.template_loc_conv, loc_factor)
        self.loc_adjust.bias.mul_(loc_factor)


class SiamFCHead(nn.Module):
    """SiamFC: the template feature map itself is the kernel; response = full correlation x ``out_scale``.
    No parameters (so no checkpoint keys)."""

    output_names = ("response",)

    def __init__(self, out_scale: float) -> None:
        super().__init__()
        self.out_scale = out_scale

    @staticmethod
    def kernel_names(levels: int) -> list[str]:
        return ["kernel"]

    def kernels(self, zfs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [zfs[0]]

    def forward(self, xfs: list[torch.Tensor], kernels: list[torch.Tensor], targets: int = 1
                ) -> tuple[torch.Tensor, ...]:
        return (full_xcorr_batched(xfs[0], kernels[0], targets) * self.out_scale,)

    def rescale(self, cls_factor: float, loc_factor: float) -> None:
        """Nothing to rescale: only the argmax of the response matters."""


def _scale_last(module: nn.Module, factor: float) -> None:
    module.weight.mul_(factor)  # type: ignore[operator]
    if module.bias is not None:
        module.bias.mul_(factor)  # type: ignore[operator]


def build_head(spec: ModelSpec) -> nn.Module:
    """The correlation head named by ``spec.head`` (see :data:`HEADS`)."""
    try:
        make = HEADS[spec.head]
    except KeyError:
        raise ConfigError(f"unknown head '{spec.head}'; known: {', '.join(HEADS)}") from None
    return make(spec)


# head name (ModelSpec.head) -> builder. Every head takes feature lists and returns its outputs in order.
HEADS: dict[str, Callable[[ModelSpec], nn.Module]] = {
    "depthwise_rpn": lambda s: DepthwiseRPN(s.anchor_num, s.head_in[0], s.head_hidden),
    "multi_rpn": lambda s: MultiRPN(s.anchor_num, s.head_in, s.weighted),
    "upchannel_rpn": lambda s: UPChannelRPN(s.anchor_num, s.head_in[0]),
    "siamfc": lambda s: SiamFCHead(s.out_scale),
}


def _conv_relu_pair(cin: int, mid: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, mid, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(mid, cout, 3, padding=1), nn.ReLU(inplace=True))


class Refine(nn.Module):
    """SiamMask refine over pre-cropped inputs (static shapes, so it exports cleanly).

    p0 ``(1,64,61,61)``, p1 ``(1,256,31,31)``, p2 ``(1,512,15,15)``, p3 ``(1,256,1,1)`` -> logits ``(1,1,127,127)``.
    Use :func:`crop_refine_inputs` to cut them from the search features at a score cell.
    """

    def __init__(self) -> None:
        super().__init__()
        self.v0 = _conv_relu_pair(64, 16, 4)
        self.v1 = _conv_relu_pair(256, 64, 16)
        self.v2 = _conv_relu_pair(512, 128, 32)
        self.h2 = _conv_relu_pair(32, 32, 32)
        self.h1 = _conv_relu_pair(16, 16, 16)
        self.h0 = _conv_relu_pair(4, 4, 4)
        self.deconv = nn.ConvTranspose2d(256, 32, 15, 15)
        self.post0 = nn.Conv2d(32, 16, 3, padding=1)
        self.post1 = nn.Conv2d(16, 4, 3, padding=1)
        self.post2 = nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, p3: torch.Tensor) -> torch.Tensor:
        out = self.deconv(p3)
        out = self.post0(F.interpolate(self.h2(out) + self.v2(p2), size=(31, 31), mode="nearest"))
        out = self.post1(F.interpolate(self.h1(out) + self.v1(p1), size=(61, 61), mode="nearest"))
        return self.post2(F.interpolate(self.h0(out) + self.v0(p0), size=(127, 127), mode="nearest"))


def crop_refine_inputs(f0: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor, corr: torch.Tensor,
                       y: int, x: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut the refine inputs at score cell ``(y, x)`` (docs/networks.md#siammask-refine)."""
    p0 = F.pad(f0, [16, 16, 16, 16])[:, :, 4 * y:4 * y + 61, 4 * x:4 * x + 61]
    p1 = F.pad(f1, [8, 8, 8, 8])[:, :, 2 * y:2 * y + 31, 2 * x:2 * x + 31]
    p2 = F.pad(f2, [4, 4, 4, 4])[:, :, y:y + 15, x:x + 15]
    p3 = corr[:, :, y, x].reshape(-1, corr.shape[1], 1, 1)
    return p0, p1, p2, p3
