"""The onnxruntime engine: runs an export folder (manifest + ONNX graphs) without torch.

Kernels from the template graph stay as ``OrtValue`` s on the session's device and are bound to the
search graph every frame (I/O binding), so with the CUDA or TensorRT execution provider they never
travel back to the host.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from ..errors import DependencyError, EngineError
from ..families import family_of
from ..manifest import ExportManifest, graph_path
from .base import (Engine, ExportBuckets, SearchOutput, crop_refine_inputs_np, mask_feeds, pad_rows,
                   split_masks, split_rows)

log = logging.getLogger(__name__)

def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise DependencyError("the onnxruntime backend needs onnxruntime: pip install onnxruntime "
                              "(or onnxruntime-gpu for CUDA)") from None
    return onnxruntime


class OnnxRuntimeEngine(ExportBuckets, Engine):
    """An :class:`Engine` over a verified export folder (see :func:`siamdeploy.export.cache.ensure_export`).

    precision: a precision the export holds (``fp32``, ``fp16``). provider: the onnxruntime execution
    provider to run on (``CPUExecutionProvider``, ``CUDAExecutionProvider``, ``TensorrtExecutionProvider``);
    the session is refused when onnxruntime would fall back to another one.
    """

    backend = "onnxruntime"

    def __init__(self, folder: str, manifest: ExportManifest, precision: str = "fp32",
                 provider: str = "CPUExecutionProvider", device_id: int = 0, device: str = "cpu") -> None:
        ort = import_onnxruntime()
        manifest.require(precision, folder)
        available = ort.get_available_providers()
        if provider not in available:
            raise EngineError(f"onnxruntime here has no {provider} (available: {', '.join(available)}); "
                              "install onnxruntime-gpu or use device='cpu'")
        self.folder = folder
        self.manifest = manifest
        self.device = device
        self.precision = precision
        self.head_outputs = family_of(manifest.preset.track).head_outputs
        if provider == "TensorrtExecutionProvider":
            self.backend = "onnxruntime-trt"
        self._io_device = "cpu" if provider == "CPUExecutionProvider" else "cuda"
        self._device_id = device_id
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if provider == "CPUExecutionProvider":
            # Each session has its own intra-op threads, which by default spin after a run. When two sessions
            # run back to back (a 2-bucket and a 1-target call for 3 targets; a search then a refine), the first
            # one's spinning threads take the cores from the second: 3 targets ran 0.73x the speed of single calls
            # on 2 cores with spinning, 1.04x without, and single calls were no slower (benchmarks/multi_target.py).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = list(dict.fromkeys([provider, "CPUExecutionProvider"]))
        provider_options = [{"device_id": device_id} if p != "CPUExecutionProvider" else {} for p in providers]
        self.sessions: dict[str, Any] = {}
        self.search_by_size: dict[int, str] = {}
        for graph in manifest.graphs_for(precision):
            session = ort.InferenceSession(graph_path(folder, graph), options, providers=providers,
                                           provider_options=provider_options)
            if session.get_providers()[0] != provider:  # never a silent fallback to another provider
                raise EngineError(f"onnxruntime could not start {provider} for {graph.file} (runs "
                                  f"{session.get_providers()[0]}); check the CUDA/cuDNN/TensorRT libraries")
            self.sessions[graph.name] = session
            if graph.role == "search" and graph.instance_size is not None:
                self.search_by_size[graph.instance_size] = graph.name
        # per thread: search graph -> (the kernels bound to it, its I/O binding, its output names); see _search
        self._search_bindings = threading.local()
        self.kernel_names = list(manifest.kernel_names(precision))
        self.exemplar_size = manifest.exemplar_size
        self._ort = ort
        # bucket graphs (several targets per call): sessions made on first use
        self._load_buckets(manifest, precision)
        # on the CPU a padding row costs as much as a real target: split N exactly into buckets (5 = 4 + 1)
        self.batch_policy = "split" if provider == "CPUExecutionProvider" else "pad"
        self._session_args = (options, providers, provider_options)

    def close(self) -> None:
        self._search_bindings = threading.local()
        self.sessions.clear()
        self._stacks.clear()

    # ---- several targets per call (bucket graphs, docs/multi_target.md#batched-graphs)
    def _bucket_session(self, size: int | None, bucket: int, head: str = "") -> str:
        """The session of the bucket graph for ``bucket`` targets: the template (``size`` None) or the search of
        ``size``; with ``head`` (``refine`` / ``mask_head``) that head's graph."""
        graph = self._batched_masks[head][bucket] if head else self._batched[(size, bucket)]
        if graph.name not in self.sessions:
            options, providers, provider_options = self._session_args
            self.sessions[graph.name] = self._ort.InferenceSession(
                graph_path(self.folder, graph), options, providers=providers, provider_options=provider_options)
        return graph.name

    def _batched_kernels(self, kernels: list[Any], bucket: int) -> list[Any]:
        """The targets' kernels concatenated (padded up to ``bucket``) as OrtValues on the session's device:
        made once while the same targets come back, so a frame copies none of them (on CUDA: no upload)."""
        def build(sets: list[Any]) -> list[Any]:
            stacked = [pad_rows([k if isinstance(k, np.ndarray) else k.numpy() for k in parts], bucket)
                       for parts in zip(*sets)]
            return [self._ort.OrtValue.ortvalue_from_numpy(k, self._io_device, self._device_id) for k in stacked]
        return list(self._stacks.get(kernels, bucket, build))

    def _search_batch(self, xs: list[np.ndarray], kernels: list[Any], bucket: int) -> list[SearchOutput]:
        count = len(xs)
        if bucket == 1:
            return [self._search(xs[0], kernels[0])]
        name = self._bucket_session(xs[0].shape[-1], bucket)
        feeds: dict[str, Any] = {"search": pad_rows(xs, bucket)}
        feeds.update(zip(self.kernel_names, self._batched_kernels(kernels, bucket)))
        outs = self._run(name, feeds)
        rows = {n: v.shape[0] // bucket for n, v in outs.items()}
        return [self._split(part) for part in split_rows(outs, count, rows)]

    def _mask_batch(self, head: str, extras: list[Any], cells: list[tuple[int, int]], bucket: int
                    ) -> list[np.ndarray]:
        outs = self._run(self._bucket_session(None, bucket, head), mask_feeds(head, extras, cells, bucket))
        return split_masks(head, outs["mask_logits"], len(extras))

    def _template_batch(self, zs: list[np.ndarray], bucket: int) -> list[Any]:
        if bucket == 1:
            return [self._template(zs[0])]
        outs = self._run(self._bucket_session(None, bucket), {"template": pad_rows(zs, bucket)})
        sets = []
        for i in range(len(zs)):
            parts = [outs[n][i * r:(i + 1) * r] for n, r in zip(self.kernel_names, self._kernel_rows)]
            sets.append([self._ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(p), self._io_device,
                                                               self._device_id) for p in parts])
        return sets

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
        name = self.search_by_size[size]
        session = self.sessions[name]
        # the kernels are constant per target: bind them once, rebind only when another target's come in
        bindings = self._search_bindings.__dict__.setdefault("by_graph", {})  # one binding per thread and graph
        held = bindings.get(name)
        if held is None or held[0] is not kernels:
            if len(kernels) != len(self.kernel_names):
                raise EngineError(f"search needs {len(self.kernel_names)} kernels from this engine's template(), "
                                  f"got {len(kernels)}")
            binding = session.io_binding()
            # numpy kernels become OrtValues held with the binding (it only points at their memory)
            values = [self._ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(k, np.float32))
                      if isinstance(k, np.ndarray) else k for k in kernels]
            for kname, value in zip(self.kernel_names, values):
                binding.bind_ortvalue_input(kname, value)
            held = bindings[name] = (kernels, binding, [o.name for o in session.get_outputs()], values)
        _, binding, names, _ = held
        binding.bind_cpu_input("search", np.ascontiguousarray(x, np.float32))
        for out in names:  # fresh output buffers every run: the caller keeps the arrays
            binding.bind_output(out, "cpu", self._device_id)
        session.run_with_iobinding(binding)
        return self._split({n: v.numpy() for n, v in zip(names, binding.get_outputs())})

    def refine(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
        p0, p1, p2, p3 = crop_refine_inputs_np(extras["f0"], extras["f1"], extras["f2"], extras["mask_corr"], *cell)
        out = self._run("refine", {"p0": p0, "p1": p1, "p2": p2, "p3": p3})["mask_logits"]
        return out[0, 0]

    def mask_at(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
        y, x = cell
        corr = extras["mask_corr"][:, :, y:y + 1, x:x + 1]
        return self._run("mask_head", {"corr_cell": corr})["mask_logits"].reshape(63, 63)
