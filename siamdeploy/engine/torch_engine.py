"""The PyTorch engine: the reference backend (CPU, or CUDA when present).

On CUDA, for GPUs without TensorRT: ``precision="fp16"`` runs the backbone and neck in half precision and
the correlation and heads in FP32 (the features are cast back at the neck output), and ``cuda_graph=True``
replays the search step as a CUDA graph per search-crop shape (static shapes). Both are off by default; the
default path (FP32, no graph) is unchanged.

On the CPU, ``precision="bf16"`` runs the backbone and neck under ``torch.autocast`` in bfloat16 (weights stay
FP32) and the correlation, heads and SiamMask refine in FP32. It is refused on a CPU where torch's oneDNN has
no bf16 kernels (:func:`cpu_bf16_support`): there torch emulates bf16 convolutions element by element, about
20 times slower than FP32 on an AVX2 CPU, and less exact. ``allow_emulated_bf16=True`` runs it anyway (for
numerical checks on such machines, never for speed).
"""
from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import torch

from ..errors import EngineError
from ..models import SiameseNet
from ..models.heads import crop_refine_inputs
from .base import MASK_HEAD, Engine, KernelStacks, SearchOutput, pad_rows, split_rows

log = logging.getLogger(__name__)


def cpu_bf16_support() -> tuple[bool, str]:
    """``(True, how)`` when torch runs bf16 convolutions on this CPU with oneDNN kernels (``how``: ``native``
    with AMX or AVX-512 BF16 instructions, ``AVX-512`` where oneDNN converts in AVX-512 registers: it runs,
    but is no faster than FP32), else ``(False, why + fix)``. torch's own test decides
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported``: AVX-512 BW/VL/DQ on x86, or Arm bf16)."""
    capability = torch.backends.cpu.get_cpu_capability()
    if not torch.backends.mkldnn.is_available():
        return False, "this torch build has no oneDNN (mkldnn), so it has no bf16 CPU kernels; use precision='fp32'"
    try:
        supported = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without the query: its oneDNN bf16 path is not known to run
        supported = False
    if not supported:
        return False, (f"this CPU has no bf16 support in torch (oneDNN bf16 needs AVX-512 or AMX; torch reports "
                       f"{capability}): torch would emulate bf16 at many times the FP32 time; use precision='fp32'")
    native = any(getattr(torch.cpu, probe, lambda: False)() for probe in
                 ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))
    return True, "native" if native else "AVX-512"


class TorchEngine(Engine):
    """Runs a :class:`SiameseNet` in eval mode under ``torch.inference_mode``. Kernels stay on the device."""

    backend = "torch"

    def __init__(self, net: SiameseNet, device: str | None = None, precision: str = "fp32",
                 cuda_graph: bool = False, allow_emulated_bf16: bool = False) -> None:
        """net: the model (the caller's object stays FP32); device: ``cpu`` / ``cuda[:N]`` (None: CUDA when
        present); precision: ``fp32``, ``fp16`` (CUDA) or ``bf16`` (CPU, see :func:`cpu_bf16_support`);
        cuda_graph: replay the search as a CUDA graph; allow_emulated_bf16: run bf16 where torch only
        emulates it (slow; for checks)."""
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise EngineError(f"device '{device}' requested but this torch build sees no CUDA GPU; use device='cpu'")
        if precision not in ("fp32", "fp16", "bf16"):
            raise EngineError(f"torch engine precision must be fp32 or fp16 (CUDA), or bf16 (CPU), got '{precision}'")
        if (precision == "fp16" or cuda_graph) and not str(device).startswith("cuda"):
            what = "FP16" if precision == "fp16" else "CUDA graphs"
            raise EngineError(f"{what} on the torch backend need a CUDA device (got '{device}'); use precision='fp32' "
                              "and cuda_graph=False on CPU")
        self.bf16_kernels = ""
        if precision == "bf16":
            if str(device).startswith("cuda"):
                raise EngineError(f"bf16 on the torch backend runs on the CPU only (got '{device}'); use "
                                  "precision='fp16' on CUDA")
            ok, how = cpu_bf16_support()
            if not ok and not allow_emulated_bf16:
                raise EngineError(f"torch cannot run bf16 here: {how}")
            self.bf16_kernels = how if ok else "emulated"
            if self.bf16_kernels != "native":
                log.warning("torch bf16 on a CPU without bf16 instructions (%s): slower than fp32 here",
                            self.bf16_kernels)
        self.device = str(torch.device(device))
        if precision in ("fp16", "bf16"):  # changed below: work on a copy, the caller's net stays FP32
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
        elif precision == "bf16":
            self.net.autocast_features(torch.bfloat16)

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
    batch_policy = "any"  # any count is one call: nothing padded

    def search_buckets(self, x: np.ndarray) -> tuple[int, ...]:
        return (1,) if self.cuda_graph else self.buckets

    def _search_batch(self, xs: list[np.ndarray], kernels: list[Any], bucket: int) -> list[SearchOutput]:
        count = len(xs)
        stacked = self._stacks.get(kernels, None, lambda ks: [torch.cat(parts) for parts in zip(*ks)])
        with torch.inference_mode():
            outs = self.net.search(self._tensor(pad_rows(xs, count)), *stacked, targets=count)
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

    # ---- several targets' masks per call: each target's crops stacked along dim 0 (no padding needed)
    def mask_buckets(self, head: str) -> tuple[int, ...]:
        return self.buckets

    def _mask_batch(self, head: str, extras: list[Any], cells: list[tuple[int, int]], bucket: int
                    ) -> list[np.ndarray]:
        with torch.inference_mode():
            if head == MASK_HEAD:
                corr = torch.cat([e["mask_corr"][:, :, y:y + 1, x:x + 1] for e, (y, x) in zip(extras, cells)])
                return list(self.net.mask_logits_at(corr).reshape(len(extras), 63, 63).cpu().numpy())
            parts = [crop_refine_inputs(e["f0"], e["f1"], e["f2"], e["mask_corr"], y, x) for e, (y, x) in
                     zip(extras, cells)]
            logits = self.net.refine_head(*(torch.cat(rows) for rows in zip(*parts)))
            return list(logits[:, 0].cpu().numpy())

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
        bf16 = f", backbone/neck bf16 autocast ({self.bf16_kernels} kernels)" if self.precision == "bf16" else ""
        return f"{self.backend} ({self.precision}, {self.device}{', CUDA graph' if self.cuda_graph else ''}{bf16})"
