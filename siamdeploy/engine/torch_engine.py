"""The PyTorch engine: the reference backend (CPU, or CUDA when present).

On CUDA, for GPUs without TensorRT: ``precision="fp16"`` runs the backbone and neck in half precision and
the correlation and heads in FP32 (the features are cast back at the neck output), and ``cuda_graph=True``
replays the search step as a CUDA graph per search-crop shape (static shapes). Both are off by default; the
default path (FP32, no graph) is unchanged.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from ..errors import EngineError
from ..models import SiameseNet
from ..models.heads import crop_refine_inputs
from .base import Engine, KernelStacks, SearchOutput, split_rows


class TorchEngine(Engine):
    """Runs a :class:`SiameseNet` in eval mode under ``torch.inference_mode``. Kernels stay on the device."""

    backend = "torch"

    def __init__(self, net: SiameseNet, device: str | None = None, precision: str = "fp32",
                 cuda_graph: bool = False) -> None:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise EngineError(f"device '{device}' requested but this torch build sees no CUDA GPU; use device='cpu'")
        if precision not in ("fp32", "fp16"):
            raise EngineError(f"torch engine precision must be fp32 or fp16, got '{precision}'")
        if (precision == "fp16" or cuda_graph) and not str(device).startswith("cuda"):
            what = "FP16" if precision == "fp16" else "CUDA graphs"
            raise EngineError(f"{what} on the torch backend need a CUDA device (got '{device}'); use precision='fp32' "
                              "and cuda_graph=False on CPU")
        self.device = str(torch.device(device))
        if precision == "fp16":  # converted in place below: work on a copy, the caller's net stays FP32
            net = copy.deepcopy(net)
        self.net = net.eval().to(self.device)
        self.output_names = net.output_names
        self.head_outputs = tuple(net.head_output_names)
        self.precision = precision
        self.cuda_graph = cuda_graph
        self._graphs: dict[tuple[int, ...], tuple[Any, ...]] = {}
        self._stacks = KernelStacks()
        if precision == "fp16":
            self.net.half_features()

    def _tensor(self, arr: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(arr).to(self.device)

    def _template(self, z: np.ndarray) -> tuple[torch.Tensor, ...]:
        with torch.inference_mode():
            return self.net.template(self._tensor(z))

    def _search(self, x: np.ndarray, kernels: Any) -> SearchOutput:
        if self.cuda_graph:
            return self._search_graph(x, kernels)
        with torch.inference_mode():
            outs = self.net.search(self._tensor(x), *kernels)
        return self._split({n: t.cpu().numpy() if n in self.head_outputs else t
                            for n, t in zip(self.output_names, outs)})

    # ---- several targets per call: no graphs, the batch is folded into the correlation directly (up to 32 a call)
    buckets = (1, 32)

    def search_buckets(self, x: np.ndarray) -> tuple[int, ...]:
        return (1,) if self.cuda_graph else self.buckets

    def _search_batch(self, xs: list[np.ndarray], kernels: list[Any], bucket: int) -> list[SearchOutput]:
        count = len(xs)
        stacked = self._stacks.get(kernels, None, lambda ks: [torch.cat(parts) for parts in zip(*ks)])
        with torch.inference_mode():
            outs = self.net.search(self._tensor(np.concatenate(xs)), *stacked, targets=count)
        named = {n: t.cpu().numpy() if n in self.head_outputs else t for n, t in zip(self.output_names, outs)}
        rows = {n: v.shape[0] // count for n, v in named.items()}
        return [self._split(part) for part in split_rows(named, count, rows)]

    def batched_template(self) -> bool:
        return True

    def _template_batch(self, zs: list[np.ndarray], bucket: int) -> list[Any]:
        count = len(zs)
        with torch.inference_mode():
            stacked = self.net.template(self._tensor(np.concatenate(zs)))
        return [tuple(k[i * (k.shape[0] // count):(i + 1) * (k.shape[0] // count)] for k in stacked)
                for i in range(count)]

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

    # ---- CUDA graphs (static shapes): one graph per search-crop shape, fed through static input tensors
    def _search_graph(self, x: np.ndarray, kernels: Any) -> SearchOutput:
        with torch.inference_mode():
            key = tuple(x.shape)
            if key not in self._graphs:
                self._graphs[key] = self._capture(x, kernels)
            static_x, static_k, outs, graph = self._graphs[key]
            static_x.copy_(torch.from_numpy(x))
            for dst, src in zip(static_k, kernels):
                dst.copy_(src)
            graph.replay()
            # the graph's output tensors are overwritten by the next replay: hand out copies
            return self._split({n: t.cpu().numpy() if n in self.head_outputs else t.clone()
                                for n, t in zip(self.output_names, outs)})

    def _capture(self, x: np.ndarray, kernels: Any) -> tuple[Any, ...]:
        static_x = torch.from_numpy(x).to(self.device)
        static_k = [k.clone() for k in kernels]
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm-up outside the graph (cuDNN/cuBLAS workspaces, lazy init)
            for _ in range(2):
                self.net.search(static_x, *static_k)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.device(self.device), torch.cuda.graph(graph):
            outs = self.net.search(static_x, *static_k)
        return static_x, static_k, tuple(outs), graph

    def close(self) -> None:
        self._graphs.clear()
        self._stacks.clear()

    def describe(self) -> str:
        return f"{self.backend} ({self.precision}, {self.device}{', CUDA graph' if self.cuda_graph else ''})"
