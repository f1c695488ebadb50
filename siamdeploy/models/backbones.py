"""Backbones. Module attribute names follow the upstream state-dict keys (after
:mod:`siamdeploy.checkpoint.layouts` remapping), so checkpoints load strictly.

Shapes (batch 1): alexnetlegacy z 127 -> 6x6, x 255 -> 22, 271 -> 24, 287 -> 26;
resnet50 (atrous) levels 0..4 for z 127: 61, 31, 15, 15, 15; for x 255: 125, 63, 31, 31, 31.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError


def _conv_bn(cin: int, cout: int, k: int, *, stride: int = 1, padding: int = 0, dilation: int = 1,
             groups: int = 1, bias: bool = False, eps: float = 1e-5) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias),
            nn.BatchNorm2d(cout, eps=eps)]


class AlexNetLegacy(nn.Module):
    """pysot ``alexnetlegacy`` / DaSiamRPN ``featureExtract``: conv biases kept, no ReLU after the last BN."""

    def __init__(self, width_mult: float = 1.0) -> None:
        super().__init__()
        c = [3] + [int(v * width_mult) for v in (96, 256, 384, 384, 256)]
        pool = nn.MaxPool2d(kernel_size=3, stride=2)
        self.features = nn.Sequential(
            *_conv_bn(c[0], c[1], 11, stride=2, bias=True), pool, nn.ReLU(inplace=True),
            *_conv_bn(c[1], c[2], 5, bias=True), nn.MaxPool2d(kernel_size=3, stride=2), nn.ReLU(inplace=True),
            *_conv_bn(c[2], c[3], 3, bias=True), nn.ReLU(inplace=True),
            *_conv_bn(c[3], c[4], 3, bias=True), nn.ReLU(inplace=True),
            *_conv_bn(c[4], c[5], 3, bias=True),
        )
        self.out_channels = c[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class SiamFCAlexNet(nn.Module):
    """siamfc-pytorch ``AlexNetV1``: grouped conv2/4/5, BN eps 1e-6, conv5 without BN/ReLU."""

    def __init__(self) -> None:
        super().__init__()
        relu = nn.ReLU(inplace=True)
        self.conv1 = nn.Sequential(*_conv_bn(3, 96, 11, stride=2, bias=True, eps=1e-6), relu,
                                   nn.MaxPool2d(3, 2))
        self.conv2 = nn.Sequential(*_conv_bn(96, 256, 5, groups=2, bias=True, eps=1e-6), nn.ReLU(inplace=True),
                                   nn.MaxPool2d(3, 2))
        self.conv3 = nn.Sequential(*_conv_bn(256, 384, 3, bias=True, eps=1e-6), nn.ReLU(inplace=True))
        self.conv4 = nn.Sequential(*_conv_bn(384, 384, 3, groups=2, bias=True, eps=1e-6), nn.ReLU(inplace=True))
        self.conv5 = nn.Sequential(nn.Conv2d(384, 256, 3, groups=2))
        self.out_channels = 256

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv5(self.conv4(self.conv3(self.conv2(self.conv1(x)))))


class Bottleneck(nn.Module):
    """ResNet bottleneck with pysot's atrous padding rules (padding 0 on the stride-2 3x3)."""

    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        padding = 2 - stride
        if downsample is not None and dilation > 1:  # first block of a dilated stage keeps half the dilation
            dilation //= 2
            padding = dilation
        if dilation > 1:
            padding = dilation
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=padding, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet50Atrous(nn.Module):
    """pysot ``resnet50``: conv1 padding 0; layer3/4 dilated 2/4 with 3x3 downsamples.

    Layers past the last used level are not built (they have no parameters in the checkpoint).
    Returns the used levels as a list, in ``used_layers`` order.
    """

    def __init__(self, used_layers: tuple[int, ...]) -> None:
        super().__init__()
        self.used_layers = tuple(used_layers)
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._cin = 64
        self.layer1 = self._stage(64, 3)
        self.layer2 = self._stage(128, 4, stride=2)
        depth = max(self.used_layers)
        self.layer3 = self._stage(256, 6, dilation=2) if depth >= 3 else None
        self.layer4 = self._stage(512, 3, dilation=4) if depth >= 4 else None

    def _stage(self, planes: int, blocks: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._cin != planes * 4:
            if stride == 1 and dilation == 1:
                downsample = nn.Sequential(*_conv_bn(self._cin, planes * 4, 1))
            else:
                dd = dilation // 2 if dilation > 1 else 1
                pad = dd if dilation > 1 else 0
                downsample = nn.Sequential(*_conv_bn(self._cin, planes * 4, 3, stride=stride, padding=pad,
                                                     dilation=dd))
        layers = [Bottleneck(self._cin, planes, stride, dilation, downsample)]
        self._cin = planes * 4
        layers += [Bottleneck(self._cin, planes, dilation=dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x0 = self.relu(self.bn1(self.conv1(x)))
        levels = [x0]
        x = self.layer1(self.maxpool(x0))
        levels.append(x)
        for stage in (self.layer2, self.layer3, self.layer4):
            if stage is None:
                break
            x = stage(x)
            levels.append(x)
        return [levels[i] for i in self.used_layers]


class InvertedResidual(nn.Module):
    """pysot MobileNetV2 block: always expand -> depthwise -> project (keys ``conv.{0,1,3,4,6,7}``)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, dilation: int = 1) -> None:
        super().__init__()
        self.use_res = stride == 1 and cin == cout
        padding = dilation if dilation > 1 else 2 - stride
        hidden = cin * expand
        self.conv = nn.Sequential(
            *_conv_bn(cin, hidden, 1), nn.ReLU6(inplace=True),
            *_conv_bn(hidden, hidden, 3, stride=stride, padding=padding, dilation=dilation, groups=hidden),
            nn.ReLU6(inplace=True),
            *_conv_bn(hidden, cout, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


# (expansion t, channels c, repeats n, stride s, dilation d) of pysot's dilated MobileNetV2
_MOBILENET_STAGES = ((1, 16, 1, 1, 1), (6, 24, 2, 2, 1), (6, 32, 3, 2, 1), (6, 64, 4, 1, 2),
                     (6, 96, 3, 1, 2), (6, 160, 3, 1, 4), (6, 320, 1, 1, 4))


class MobileNetV2(nn.Module):
    """pysot ``mobilenetv2`` (dilated, output stride 8). Children ``layer0..layer7``."""

    def __init__(self, width_mult: float = 1.4, used_layers: tuple[int, ...] = (3, 5, 7)) -> None:
        super().__init__()
        self.used_layers = tuple(used_layers)
        cin = int(32 * width_mult)
        self.layer0 = nn.Sequential(*_conv_bn(3, cin, 3, stride=2, padding=0), nn.ReLU6(inplace=True))
        last_dilation = 1
        for idx, (t, c, n, s, d) in enumerate(_MOBILENET_STAGES, start=1):
            cout = int(c * width_mult)
            first_dilation = d if d == last_dilation else max(d // 2, 1)
            blocks = [InvertedResidual(cin, cout, s, t, first_dilation)]
            blocks += [InvertedResidual(cout, cout, 1, t, d) for _ in range(1, n)]
            setattr(self, f"layer{idx}", nn.Sequential(*blocks))
            cin, last_dilation = cout, d

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for idx in range(8):
            x = getattr(self, f"layer{idx}")(x)
            outs.append(x)
        return [outs[i] for i in self.used_layers]


def build_backbone(name: str, width_mult: float, used_layers: tuple[int, ...]) -> nn.Module:
    """Backbone by name (see :class:`siamdeploy.config.ModelSpec`)."""
    if name == "alexnetlegacy":
        return AlexNetLegacy(width_mult)
    if name == "resnet50":
        return ResNet50Atrous(used_layers)
    if name == "mobilenetv2":
        return MobileNetV2(width_mult, used_layers)
    if name == "siamfc_alexnet":
        return SiamFCAlexNet()
    raise ConfigError(f"unknown backbone '{name}'; known: alexnetlegacy, resnet50, mobilenetv2, siamfc_alexnet")
