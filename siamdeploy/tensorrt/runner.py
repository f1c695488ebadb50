"""The TensorRT engine: runs the built plans of an engine-cache entry with TensorRT + cuda-python, no torch.

It never builds: :func:`siamdeploy.tensorrt.build.ensure_engines` finds or builds the plans,
``TensorRTEngine(entry, manifest)`` loads them (:func:`siamdeploy.tensorrt.load_engine` does both).

- Named-tensor API (TensorRT >= 8.5; the only one from 10.0): ``num_io_tensors`` / ``get_tensor_name``,
  ``set_tensor_address``, ``execute_async_v3(stream_handle)`` on one CUDA stream. The stream is passed as
  its integer handle (``int(cudaStream_t)``), as NVIDIA's Polygraphy runner does
  (``tools/Polygraphy/polygraphy/backend/trt/runner.py``: ``execute_async_v3(self.stream.ptr)``).
- Every device buffer is allocated once, at load (``cudaMalloc``); the search input and the head outputs have
  pinned host twins (``cudaMallocHost``) for the asynchronous copies.
- Template kernels stay on the device between frames: the template engine writes them into a *kernel slot*
  whose buffers are bound directly as the search engine's kernel inputs (no copies). Each ``template()`` call
  takes a slot (several trackers can share one engine); the slot returns to a free list when the tracker
  drops its kernels.
- Optional CUDA-graph replay of the search engine (``cuda_graph=True``): the first frame of each search size
  and slot runs normally (TensorRT wants one plain enqueue before capture, to flush deferred updates), then
  ``execute_async_v3`` is captured on the stream once (``cudaStreamCaptureModeThreadLocal``, as NVIDIA's
  ``samples/common/sampleDevice.h`` does) and later frames are one ``cudaGraphLaunch``. If capture fails the
  engine says so and runs without graphs.
- SiamMask refine: the ``f0/f1/f2/mask_corr`` outputs are copied to (pinned) host memory, cropped in numpy at
  the chosen cell exactly like the onnxruntime engine, and fed to the refine engine.

``close()`` frees everything (also on garbage collection); the engine is a context manager.
"""
from __future__ import annotations

import ctypes
import logging
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine.base import Engine, SearchOutput, crop_refine_inputs_np
from ..errors import EngineError, InputError
from . import device as _device
from .cache import CacheEntry
from .inspection import realised_precision
from .manifest_view import ManifestView, as_view
from .network import make_logger

log = logging.getLogger(__name__)

HEAD_OUTPUTS = ("cls", "loc", "response")
EXTRA_OUTPUTS = ("mask_corr", "f0", "f1", "f2")


class _Cuda:
    """The few cuda-python runtime calls used here, each checked."""

    def __init__(self, cudart: Any) -> None:
        self.rt = cudart

    def __call__(self, name: str, *args: Any) -> Any:
        return _device.cuda_check(getattr(self.rt, name)(*args), name, self.rt)

    def host_array(self, shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, np.ndarray]:
        """Pinned host memory as a numpy array (pointer kept for cudaFreeHost)."""
        nbytes = max(int(np.prod(shape)) * dtype.itemsize, 1)
        ptr = int(self("cudaMallocHost", nbytes))
        raw = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_uint8)), (nbytes,))
        return ptr, raw[:int(np.prod(shape)) * dtype.itemsize].view(dtype).reshape(shape)

    def h2d(self, dst: int, host: np.ndarray, stream: Any) -> None:
        self("cudaMemcpyAsync", dst, host.ctypes.data, host.nbytes,
             self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream)

    def d2h(self, host: np.ndarray, src: int, stream: Any) -> None:
        self("cudaMemcpyAsync", host.ctypes.data, src, host.nbytes,
             self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream)


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    is_input: bool
    device: int = 0                     # device pointer (owned, or borrowed from a kernel slot)
    host: np.ndarray | None = None      # pinned twin, where the tensor crosses to/from the host

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def pinned(self) -> np.ndarray:
        """The pinned host twin (allocated for every tensor that crosses to or from the host)."""
        if self.host is None:
            raise EngineError(f"tensor '{self.name}' has no host buffer (it stays on the device)")
        return self.host


@dataclass
class _Plan:
    """One deserialized engine, its execution context and its I/O tensors."""

    name: str
    role: str
    engine: Any
    context: Any
    tensors: dict[str, _Tensor]
    instance_size: int | None = None
    bound_slot: int | None = None
    graphs: dict[int, Any] = field(default_factory=dict)  # kernel slot -> cudaGraphExec_t

    def bind(self, name: str, ptr: int) -> None:
        if not self.context.set_tensor_address(name, int(ptr)):
            raise EngineError(f"TensorRT refused the address of tensor '{name}' of the {self.name} engine")
        self.tensors[name].device = int(ptr)


class _Kernels:
    """The handle ``template()`` returns: a kernel slot on the device. Dropping it frees the slot."""

    def __init__(self, engine: TensorRTEngine, slot: int) -> None:
        self._engine = weakref.ref(engine)
        self.slot = slot

    @property
    def engine(self) -> TensorRTEngine | None:
        return self._engine()

    def __del__(self) -> None:
        engine = self._engine()
        if engine is not None:
            engine._release_slot(self.slot)


@dataclass
class _Extras:
    """What refine / mask_at need from a search: which plan and which search call (its outputs stay on the
    device until asked for)."""

    plan: str
    seq: int


class TensorRTEngine(Engine):
    """An :class:`Engine` over the built TensorRT plans of a cache entry.

    ``TensorRTEngine(entry, manifest)``: ``entry`` from :func:`~siamdeploy.tensorrt.build.ensure_engines` or
    :func:`~siamdeploy.tensorrt.cache.lookup`; ``manifest`` the export's manifest (or its
    :class:`~siamdeploy.tensorrt.manifest_view.ManifestView`). device: ``cuda`` / ``cuda:N``. cuda_graph:
    replay the search engine as a CUDA graph. ``precision`` afterwards says what the engine inspector
    reported (``fp16``, ``fp32``, ``int8`` or ``<requested> (unverified)``).
    """

    backend = "tensorrt"

    def __init__(self, entry: CacheEntry, manifest: ManifestView | Mapping[str, Any] | Any, device: str | None = None,
                 cuda_graph: bool = False) -> None:
        self._closed = True
        _device.import_tensorrt()  # one-line install hints before any work
        _device.import_cudart()
        self._setup(entry, as_view(manifest), device, cuda_graph, str(entry.sidecar.get("precision", "fp16")))

    # ------------------------------------------------------------------------------------------ setup
    def _setup(self, entry: CacheEntry, view: ManifestView, device: str | None, cuda_graph: bool,
               requested: str) -> None:
        self._closed = True
        trt = _device.import_tensorrt()
        cudart = _device.import_cudart()
        self._trt = trt
        self._cuda = _Cuda(cudart)
        self.entry = entry
        self.manifest = view
        index = _device.device_index(device)
        self.device = f"cuda:{index}"
        self._cuda("cudaSetDevice", index)
        self._owned_device: list[int] = []
        self._owned_host: list[int] = []
        self._graph_execs: list[Any] = []
        self._stream = self._cuda("cudaStreamCreate")
        self._stream_handle = int(self._stream)
        self._closed = False
        self._logger = make_logger(trt)
        self._runtime = trt.Runtime(self._logger)
        self.exemplar_size = int(view.exemplar_size or 127)
        self.cuda_graph = bool(cuda_graph)
        self.cuda_graph_active = bool(cuda_graph)
        self.summary = str(entry.sidecar.get("precision_summary", ""))
        realised = realised_precision(entry.sidecar)
        if requested == "fp16" and realised == "fp32":
            log.warning("the FP16 TensorRT engines in %s have no FP16 layer (TensorRT kept FP32 everywhere); "
                        "reporting them as fp32", entry.path)
        self.precision = realised if realised != "unverified" else f"{requested} (unverified)"
        self.plans: dict[str, _Plan] = {}
        for name, path in entry.engines.items():
            info = view.graphs[name]["fp32"]
            self.plans[name] = self._load_plan(name, path, info.role, info.instance_size)
        self.kernel_names = list(view.kernel_names)
        self.search_by_size = {p.instance_size: p.name for p in self.plans.values()
                               if p.role == "search" and p.instance_size is not None}
        self._check_signatures()
        self._allocate()
        self._slots: list[dict[str, int]] = []
        self._free_slots: list[int] = []
        self._seq = 0
        self._fetched: tuple[int, set[str]] = (-1, set())
        log.info("TensorRT engine ready: %s", self.describe())

    def _load_plan(self, name: str, path: str, role: str, instance_size: int | None) -> _Plan:
        trt = self._trt
        with open(path, "rb") as fh:
            engine = self._runtime.deserialize_cuda_engine(fh.read())
        if engine is None:
            errors = " | ".join(self._logger.errors[-3:]) or "unknown error"
            raise EngineError(f"TensorRT could not load {path}: {errors}; delete the cache entry to rebuild it")
        context = engine.create_execution_context()
        if context is None:
            raise EngineError(f"TensorRT could not create an execution context for {path} (out of GPU memory?)")
        tensors = {}
        for i in range(engine.num_io_tensors):
            tname = engine.get_tensor_name(i)
            shape = tuple(int(d) for d in engine.get_tensor_shape(tname))
            if any(d < 0 for d in shape):
                raise EngineError(f"{path}: tensor '{tname}' has a dynamic shape {shape}; siamdeploy builds static "
                                  "engines, rebuild it")
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(tname)))
            is_input = engine.get_tensor_mode(tname) == trt.TensorIOMode.INPUT
            tensors[tname] = _Tensor(tname, shape, dtype, is_input)
        return _Plan(name, role, engine, context, tensors, instance_size)

    def _check_signatures(self) -> None:
        template = self.plans.get("template")
        if template is None or not self.search_by_size:
            raise EngineError(f"{self.entry.path} lacks a template or search engine")
        for plan in self.plans.values():
            if plan.role != "search":
                continue
            for kname in self.kernel_names:
                have, want = plan.tensors.get(kname), template.tensors.get(kname)
                if have is None or want is None or have.shape != want.shape or have.dtype != want.dtype:
                    raise EngineError(f"the {plan.name} engine's kernel input '{kname}' does not match the template "
                                      f"engine's output ({have and (have.shape, have.dtype)} vs "
                                      f"{want and (want.shape, want.dtype)}); rebuild the engines")

    def _device(self, nbytes: int) -> int:
        ptr = int(self._cuda("cudaMalloc", max(nbytes, 1)))
        self._owned_device.append(ptr)
        return ptr

    def _host(self, io: _Tensor) -> np.ndarray:
        ptr, arr = self._cuda.host_array(io.shape, io.dtype)
        self._owned_host.append(ptr)
        return arr

    def _allocate(self) -> None:
        """Device buffers (and pinned host twins) for every tensor except the kernels, once."""
        for plan in self.plans.values():
            for t in plan.tensors.values():
                if plan.role == "template" and not t.is_input:
                    continue  # kernel slots, allocated per template() call
                if plan.role == "search" and t.name in self.kernel_names:
                    continue  # bound to the template engine's kernel slot
                plan.bind(t.name, self._device(t.nbytes))
                t.host = self._host(t)

    # ------------------------------------------------------------------------------------------ kernels
    def _take_slot(self) -> int:
        if self._free_slots:
            return self._free_slots.pop()
        template = self.plans["template"]
        self._slots.append({k: self._device(template.tensors[k].nbytes) for k in self.kernel_names})
        return len(self._slots) - 1

    def _release_slot(self, slot: int) -> None:
        if not getattr(self, "_closed", True) and slot not in self._free_slots:
            self._free_slots.append(slot)

    def _template(self, z: np.ndarray) -> _Kernels:
        plan = self.plans["template"]
        slot = self._take_slot()
        for kname, ptr in self._slots[slot].items():
            plan.bind(kname, ptr)
        self._run(plan, {"template": z})
        self._sync()
        return _Kernels(self, slot)

    # ------------------------------------------------------------------------------------------ running
    def _sync(self) -> None:
        self._cuda("cudaStreamSynchronize", self._stream)

    def _stage_inputs(self, plan: _Plan, feeds: Mapping[str, np.ndarray]) -> None:
        for name, value in feeds.items():
            t = plan.tensors[name]
            if tuple(value.shape) != t.shape:
                raise InputError(f"{plan.name} engine input '{name}' must be {t.shape}, got {tuple(value.shape)}")
            np.copyto(t.pinned, value, casting="same_kind")
            self._cuda.h2d(t.device, t.pinned, self._stream)

    def _enqueue(self, plan: _Plan) -> None:
        if not plan.context.execute_async_v3(self._stream_handle):
            raise EngineError(f"TensorRT failed to run the {plan.name} engine: "
                              f"{' | '.join(self._logger.errors[-3:]) or 'no error reported'}")

    def _run(self, plan: _Plan, feeds: Mapping[str, np.ndarray]) -> None:
        self._stage_inputs(plan, feeds)
        self._enqueue(plan)

    def _fetch(self, plan: _Plan, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Copy outputs to their pinned twins and wait; returns the pinned arrays (valid until the next call)."""
        for name in names:
            t = plan.tensors[name]
            self._cuda.d2h(t.pinned, t.device, self._stream)
        self._sync()
        return {name: plan.tensors[name].pinned for name in names}

    def _capture(self, plan: _Plan) -> Any | None:
        """Capture ``execute_async_v3`` of ``plan`` (current bindings) as a CUDA graph; None if it fails."""
        rt = self._cuda.rt
        try:
            self._cuda("cudaStreamBeginCapture", self._stream,
                       rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal)
        except EngineError as err:
            log.warning("CUDA-graph capture unavailable (%s); running the %s engine without graphs", err, plan.name)
            return None
        ok = False
        try:
            ok = bool(plan.context.execute_async_v3(self._stream_handle))
        finally:
            graph = self._cuda("cudaStreamEndCapture", self._stream)
        if not ok:
            self._cuda("cudaGraphDestroy", graph)
            log.warning("TensorRT could not be captured into a CUDA graph for the %s engine; running without graphs",
                        plan.name)
            return None
        # cuda-python >= 12 (runtime API of CUDA 12/13): cudaGraphInstantiate(graph, flags) -> (err, graphExec)
        graph_exec = self._cuda("cudaGraphInstantiate", graph, 0)
        self._cuda("cudaGraphDestroy", graph)
        self._graph_execs.append(graph_exec)
        return graph_exec

    def _search(self, x: np.ndarray, kernels: Any) -> SearchOutput:
        if not isinstance(kernels, _Kernels) or kernels.engine is not self:
            raise InputError("search() needs the kernels that this engine's template() returned")
        size = x.shape[-1]
        name = self.search_by_size.get(size)
        if name is None:
            raise EngineError(f"no TensorRT search engine for {size}x{size} crops (has {sorted(self.search_by_size)})")
        plan = self.plans[name]
        slot = kernels.slot
        if plan.bound_slot != slot:
            for kname, ptr in self._slots[slot].items():
                plan.bind(kname, ptr)
            plan.bound_slot = slot
        self._stage_inputs(plan, {"search": x})
        graph = plan.graphs.get(slot) if self.cuda_graph_active else None
        if graph is not None:
            self._cuda("cudaGraphLaunch", graph, self._stream)
        else:
            self._enqueue(plan)
        heads = tuple(n for n in HEAD_OUTPUTS if n in plan.tensors)
        outs = self._fetch(plan, heads)
        if self.cuda_graph_active and graph is None:  # this frame was the warm-up: capture for the next ones
            captured = self._capture(plan)
            if captured is None:
                self.cuda_graph_active = False
            else:
                plan.graphs[slot] = captured
        self._seq += 1
        outputs = {n: np.array(v, np.float32) for n, v in outs.items()}
        extras = _Extras(name, self._seq) if any(n in plan.tensors for n in EXTRA_OUTPUTS) else None
        return SearchOutput(outputs, extras)

    def _extras(self, extras: Any, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        if not isinstance(extras, _Extras):
            raise InputError("refine()/mask_at() need the extras of this engine's last search()")
        if extras.seq != self._seq:
            raise EngineError("refine()/mask_at() must follow the search() whose extras they use (the device buffers "
                              "hold the latest search only)")
        plan = self.plans[extras.plan]
        seq, done = self._fetched
        if seq != extras.seq:
            done = set()
        missing = tuple(n for n in names if n not in done)
        if missing:
            self._fetch(plan, missing)
            self._fetched = (extras.seq, done | set(missing))
        return {n: plan.tensors[n].pinned for n in names}

    def refine(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
        if "refine" not in self.plans:
            return super().refine(extras, cell)
        y, x = cell
        f = self._extras(extras, ("f0", "f1", "f2", "mask_corr"))
        p0, p1, p2, p3 = crop_refine_inputs_np(f["f0"], f["f1"], f["f2"], f["mask_corr"], y, x)
        plan = self.plans["refine"]
        self._run(plan, {"p0": p0, "p1": p1, "p2": p2, "p3": p3})
        return np.array(self._fetch(plan, ("mask_logits",))["mask_logits"][0, 0], np.float32)

    def mask_at(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
        if "mask_head" not in self.plans:
            return super().mask_at(extras, cell)
        y, x = cell
        corr = self._extras(extras, ("mask_corr",))["mask_corr"][:, :, y:y + 1, x:x + 1]
        plan = self.plans["mask_head"]
        self._run(plan, {"corr_cell": np.ascontiguousarray(corr)})
        return np.array(self._fetch(plan, ("mask_logits",))["mask_logits"], np.float32).reshape(63, 63)

    # ------------------------------------------------------------------------------------------ misc
    def describe(self) -> str:
        graph = ", CUDA graph" if self.cuda_graph_active else (", CUDA graph failed" if self.cuda_graph else "")
        summary = f"; {self.summary}" if self.summary else ""
        return f"{self.backend} ({self.precision}, {self.device}{graph}{summary})"

    def close(self) -> None:
        """Free the graphs, buffers and stream (also done when the engine is garbage-collected)."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        try:
            self._sync()
        except EngineError:
            pass
        for graph_exec in self._graph_execs:
            self._quiet("cudaGraphExecDestroy", graph_exec)
        for ptr in self._owned_device:
            self._quiet("cudaFree", ptr)
        for ptr in self._owned_host:
            self._quiet("cudaFreeHost", ptr)
        self._quiet("cudaStreamDestroy", self._stream)
        self._graph_execs, self._owned_device, self._owned_host = [], [], []
        plans = list(getattr(self, "plans", {}).values())
        for plan in plans:  # contexts before their engines, engines before the runtime
            plan.context = None
        for plan in plans:
            plan.engine = None
        self.plans = {}
        self._runtime = None

    def _quiet(self, name: str, *args: Any) -> None:
        try:
            self._cuda(name, *args)
        except Exception:  # noqa: BLE001 - teardown must not raise
            pass

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
