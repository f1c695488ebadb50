"""The Siamese network as two stateless branches.

``template(z) -> kernels`` and ``search(x, *kernels) -> outputs``: the network never stores the template,
so the two branches export as separate graphs and the runtime holds the kernels between frames.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import ModelSpec
from .backbones import build_backbone
from .heads import AdjustAllLayer, DepthwiseXCorr, Refine, build_head


class SiameseNet(nn.Module):
    """Backbone [+ neck] + head [+ SiamMask mask correlation and refine], split into two branches.

    Inputs are float32 ``(B, 3, S, S)`` crops in the channel order and value range the checkpoint expects
    (BGR 0..255 for pysot/DaSiamRPN, RGB 0..255 for SiamFC).

    Outputs of :meth:`search` (``N`` = score size):
    - RPN families: ``cls (B, 2A, N, N)``, ``loc (B, 4A, N, N)``;
    - SiamMask adds ``mask_corr (B, 256, N, N)`` and the refine features ``f0 (B,64,125,125)``,
      ``f1 (B,256,63,63)``, ``f2 (B,512,31,31)``;
    - SiamFC: ``response (B, 1, 17, 17)`` (already multiplied by ``out_scale``).
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self._half = False  # see half_features()
        self._autocast: torch.dtype | None = None  # see autocast_features()
        self.backbone = build_backbone(spec.backbone, spec.width_mult, spec.used_layers)
        self.neck = AdjustAllLayer(spec.neck_in, spec.neck_out) if spec.neck_out else None
        self.rpn_head = build_head(spec)
        if spec.mask:
            self.mask_head = DepthwiseXCorr(spec.head_in[0], spec.head_hidden, 63 * 63)
            if spec.refine:
                self.refine_head = Refine()

    # -- names of the branch inputs/outputs, shared by the engines and the exporter
    @property
    def kernel_names(self) -> list[str]:
        names = self.rpn_head.kernel_names(len(self.spec.head_in))
        return names + (["mask_kernel"] if self.spec.mask else [])

    @property
    def head_output_names(self) -> list[str]:
        """The search outputs a tracker decodes (the rest of :attr:`output_names` feed SiamMask's refine)."""
        return list(self.rpn_head.output_names)

    @property
    def output_names(self) -> list[str]:
        return self.head_output_names + (["mask_corr", "f0", "f1", "f2"] if self.spec.mask else [])

    def half_features(self) -> None:
        """Backbone and neck in FP16 (CUDA); their outputs are cast back, so correlation, heads and refine
        stay FP32."""
        self.backbone.half()
        if self.neck is not None:
            self.neck.half()
        self._half = True

    def autocast_features(self, dtype: torch.dtype | None) -> None:
        """Run backbone and neck under ``torch.autocast`` in ``dtype`` (``torch.bfloat16`` on the CPU; None:
        off). The weights stay FP32; the features are cast back to FP32 at the neck output, so the correlation,
        the heads and SiamMask's refine run in FP32."""
        self._autocast = dtype

    def _features(self, img: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(features for the heads, extra backbone levels for refine)."""
        if self._autocast is not None:
            with torch.autocast(device_type=img.device.type, dtype=self._autocast):
                heads_in, extra = self._backbone_neck(img)
            return [f.float() for f in heads_in], [e.float() for e in extra]
        return self._backbone_neck(img)

    def _backbone_neck(self, img: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        half = self._half
        feats = self.backbone(img.half() if half else img)
        if isinstance(feats, torch.Tensor):
            feats = [feats]
        extra = list(feats[:-1]) if self.spec.mask else []
        heads_in = [feats[-1]] if self.spec.mask else list(feats)
        if self.neck is not None:
            heads_in = self.neck(heads_in)
        if half:
            return [f.float() for f in heads_in], [e.float() for e in extra]
        return heads_in, extra

    def template(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Exemplar crops ``(B, 3, 127, 127)`` of ``B`` targets -> correlation kernels (weight-shaped, see
        :mod:`.heads`), the ``B`` targets' kernels concatenated along dim 0 (``B = 1``: one target's)."""
        zfs, _ = self._features(z)
        kernels = self.rpn_head.kernels(zfs)
        if self.spec.mask:
            kernels.append(self.mask_head.kernel(zfs[0]))
        return tuple(kernels)

    def search(self, x: torch.Tensor, *kernels: torch.Tensor, targets: int = 1) -> tuple[torch.Tensor, ...]:
        """Search crops ``(B, 3, S, S)`` + kernels -> outputs in :attr:`output_names` order.

        ``targets > 1``: ``x`` holds ``targets`` targets' crops target-major (``B = targets * n``, ``n`` crops
        each: 1, or SiamFC's scales) and every kernel is the ``targets`` targets' kernels concatenated along
        dim 0; the outputs' rows are target-major too, each equal to that target's own search.
        """
        xfs, extra = self._features(x)
        heads = tuple(self.rpn_head(xfs, list(kernels), targets))
        if not self.spec.mask:
            return heads
        corr = self.mask_head.correlate(xfs[0], kernels[-1], targets)
        return (*heads, corr, *extra)

    def mask_logits_at(self, corr_cell: torch.Tensor) -> torch.Tensor:
        """SiamMask base mode: the mask head on one correlation cell ``(1, 256, 1, 1)`` -> ``(1, 3969, 1, 1)``."""
        return self.mask_head.head(corr_cell)
