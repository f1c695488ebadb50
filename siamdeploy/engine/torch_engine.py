"""The PyTorch engine: the reference backend (CPU, or CUDA when present)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import EngineError
from ..models import SiameseNet
from ..models.heads import crop_refine_inputs
from .base import Engine, SearchOutput


class TorchEngine(Engine):
    """Runs a :class:`SiameseNet` in eval mode under ``torch.inference_mode``. Kernels stay on the device."""

    backend = "torch"

    def __init__(self, net: SiameseNet, device: str | None = None) -> None:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise EngineError(f"device '{device}' requested but this torch build sees no CUDA GPU; use device='cpu'")
        self.device = str(torch.device(device))
        self.net = net.eval().to(self.device)
        self.output_names = net.output_names

    def _tensor(self, arr: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(arr).to(self.device)

    def _template(self, z: np.ndarray) -> tuple[torch.Tensor, ...]:
        with torch.inference_mode():
            return self.net.template(self._tensor(z))

    def _search(self, x: np.ndarray, kernels: Any) -> SearchOutput:
        with torch.inference_mode():
            outs = self.net.search(self._tensor(x), *kernels)
        named = dict(zip(self.output_names, outs))
        heads = {k: named[k].cpu().numpy() for k in ("cls", "loc", "response") if k in named}
        extras = {k: v for k, v in named.items() if k not in heads} or None
        return SearchOutput(heads, extras)

    def refine(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
        y, x = cell
        with torch.inference_mode():
            parts = crop_refine_inputs(extras["f0"], extras["f1"], extras["f2"], extras["mask_corr"], y, x)
            return self.net.refine_head(*parts)[0, 0].cpu().numpy()

    def mask_at(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
        y, x = cell
        with torch.inference_mode():
            corr = extras["mask_corr"][:, :, y:y + 1, x:x + 1]
            return self.net.mask_logits_at(corr).reshape(63, 63).cpu().numpy()
