"""The onnxruntime engine: runs an export folder (manifest + ONNX graphs) without torch.

Kernels from the template graph stay as ``OrtValue`` s on the session's device and are bound to the
search graph every frame (I/O binding), so with the CUDA or TensorRT execution provider they never
travel back to the host.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from ..errors import DependencyError, EngineError
from ..export.manifest import read_manifest
from .base import Engine, SearchOutput, crop_refine_inputs_np

log = logging.getLogger(__name__)

_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise DependencyError("the onnxruntime backend needs onnxruntime: pip install onnxruntime "
                              "(or onnxruntime-gpu for CUDA)") from None
    return onnxruntime


class OnnxRuntimeEngine(Engine):
    """An :class:`Engine` over an export folder.

    precision: ``fp32`` | ``fp16`` (the mixed-precision graphs, when exported). device: ``cpu`` |
    ``cuda[:N]`` | ``tensorrt`` (onnxruntime's TensorRT execution provider).
    """

    backend = "onnxruntime"

    def __init__(self, folder: str, precision: str = "fp32", device: str | None = None, verify: bool = True) -> None:
        ort = import_onnxruntime()
        self.folder = folder
        self.manifest = read_manifest(folder, verify=verify)
        device = device or "cpu"
        kind, _, index = device.partition(":")
        if kind not in _PROVIDERS:
            raise EngineError(f"unknown onnxruntime device '{device}'; use cpu, cuda[:N] or tensorrt")
        available = ort.get_available_providers()
        if _PROVIDERS[kind][0] not in available:
            raise EngineError(f"onnxruntime here has no {_PROVIDERS[kind][0]} (available: {', '.join(available)}); "
                              "install onnxruntime-gpu or use device='cpu'")
        self.device = device
        self.precision = precision
        self._io_device = "cpu" if kind == "cpu" else "cuda"
        self._device_id = int(index) if index else 0
        options = ort.SessionOptions()
        options.log_severity_level = 3
        provider_options = [{"device_id": self._device_id} if p != "CPUExecutionProvider" else {}
                            for p in _PROVIDERS[kind]]
        self.sessions: dict[str, Any] = {}
        self.search_by_size: dict[int, str] = {}
        for name, variants in self.manifest["graphs"].items():
            if precision not in variants:
                raise EngineError(f"export '{folder}' has no {precision} graphs (has: {', '.join(variants)}); "
                                  f"re-export with --precision {precision} or both")
            entry = variants[precision]
            self.sessions[name] = ort.InferenceSession(os.path.join(folder, entry["file"]), options,
                                                       providers=_PROVIDERS[kind], provider_options=provider_options)
            if entry["role"] == "search":
                self.search_by_size[int(entry["instance_size"])] = name
        self.kernel_names = [t["name"] for t in self.manifest["graphs"]["template"][precision]["outputs"]]
        self.exemplar_size = int(self.manifest["preset"]["track"]["exemplar_size"])
        self._ort = ort

    def _run(self, name: str, feeds: dict[str, Any], keep_on_device: tuple[str, ...] = ()) -> dict[str, Any]:
        """Run one graph with I/O binding; outputs in ``keep_on_device`` stay OrtValues, the rest numpy."""
        session = self.sessions[name]
        binding = session.io_binding()
        for key, value in feeds.items():
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(key, np.ascontiguousarray(value, np.float32))
            else:
                binding.bind_ortvalue_input(key, value)
        names = [o.name for o in session.get_outputs()]
        for out in names:
            binding.bind_output(out, self._io_device if out in keep_on_device else "cpu", self._device_id)
        session.run_with_iobinding(binding)
        values = binding.get_outputs()
        return {n: (v if n in keep_on_device else v.numpy()) for n, v in zip(names, values)}

    def _template(self, z: np.ndarray) -> list[Any]:
        outs = self._run("template", {"template": z}, keep_on_device=tuple(self.kernel_names))
        return [outs[n] for n in self.kernel_names]

    def _search(self, x: np.ndarray, kernels: Any) -> SearchOutput:
        size = x.shape[-1]
        if size not in self.search_by_size:
            raise EngineError(f"export '{self.folder}' has no search graph for {size}x{size} crops "
                              f"(has {sorted(self.search_by_size)})")
        feeds: dict[str, Any] = {"search": x}
        feeds.update(zip(self.kernel_names, kernels))
        outs = self._run(self.search_by_size[size], feeds)
        heads = {k: outs[k] for k in ("cls", "loc", "response") if k in outs}
        extras = {k: v for k, v in outs.items() if k not in heads} or None
        return SearchOutput(heads, extras)

    def refine(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
        p0, p1, p2, p3 = crop_refine_inputs_np(extras["f0"], extras["f1"], extras["f2"], extras["mask_corr"], *cell)
        out = self._run("refine", {"p0": p0, "p1": p1, "p2": p2, "p3": p3})["mask_logits"]
        return out[0, 0]

    def mask_at(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
        y, x = cell
        corr = extras["mask_corr"][:, :, y:y + 1, x:x + 1]
        return self._run("mask_head", {"corr_cell": corr})["mask_logits"].reshape(63, 63)
