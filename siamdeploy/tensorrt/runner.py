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
- Several targets per call (``search_many`` / ``template_many``, docs/multi_target.md): one plan per batch
  bucket (``template_b{B}``, ``search_b{B}``, ``search_{size}_b{B}``), each with its own buffers and its own
  CUDA graphs. A bucket search takes a *kernel stack*: B rows of kernels in one device buffer set, filled
  by device-to-device copies from the targets' kernel slots (padding rows repeat the last target) and kept
  while the same targets (the same kernel handles, compared by identity) come back, so a steady set of
  targets costs no copy; the batched template plan writes such a stack directly (and copies each target's
  rows into its own slot, for single calls). A stack whose target was dropped is never matched again and
  its buffers return to the bucket's pool. Within ``search_many`` a search plan that runs again while the
  extras (SiamMask features) of its previous call are still held copies those to the host first, so every
  target of the frame can still be refined.

Never run on TensorRT or a GPU so far (the README's TensorRT section says what has been checked).

``close()`` frees everything (also on garbage collection); the engine is a context manager.
"""
from __future__ import annotations

import ctypes
import logging
import weakref
from collections.abc import Mapping, Sequence
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
STACK_KEEP = 4  # kernel stacks kept at once (a long-term tracker's lost targets form a second set, ...)


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

    def d2d(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        self("cudaMemcpyAsync", dst, src, nbytes, self.rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice, stream)


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
    targets: int = 1                    # targets per call (the bucket of a bucket plan)
    bound_slot: Any = None              # kernel slot (int) or kernel stack (("stack", bucket, index)) bound now
    graphs: dict[Any, Any] = field(default_factory=dict)  # bound kernels (as bound_slot) -> cudaGraphExec_t
    last_run: Any = None                # weakref to the _Run of the latest call (its outputs are in the buffers)

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


@dataclass(eq=False)
class _Run:
    """One search call with extra outputs: its plan, a sequence number, its targets per call, and (``host``)
    the copy of its extra outputs made when the plan ran again before they were read."""

    plan: str
    seq: int
    targets: int = 1
    host: dict[str, np.ndarray] | None = None


@dataclass
class _Extras:
    """What refine / mask_at need from a search: which call (its outputs stay on the device until asked for)
    and which target's rows of it."""

    run: _Run
    row: int = 0


class _Stack:
    """B rows of kernels on the device: buffer set ``index`` of bucket ``bucket``'s pool, holding the kernels of
    ``handles`` in order (padding rows repeat the last). The handles are held weakly: a stack whose target was
    dropped is never matched again."""

    def __init__(self, bucket: int, index: int, handles: Sequence[_Kernels]) -> None:
        self.bucket, self.index = bucket, index
        self.refs = [weakref.ref(h) for h in handles]

    @property
    def key(self) -> tuple[str, int, int]:
        return ("stack", self.bucket, self.index)

    def holds(self, handles: Sequence[Any]) -> bool:
        return len(handles) == len(self.refs) and all(r() is h for r, h in zip(self.refs, handles))

    def alive(self) -> bool:
        return all(r() is not None for r in self.refs)


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
                 cuda_graph: bool = False, buckets: Sequence[int] | None = None) -> None:
        self._closed = True
        _device.import_tensorrt()  # one-line install hints before any work
        _device.import_cudart()
        self._setup(entry, as_view(manifest), device, cuda_graph, str(entry.sidecar.get("precision", "fp16")),
                    buckets)

    # ------------------------------------------------------------------------------------------ setup
    def _setup(self, entry: CacheEntry, view: ManifestView, device: str | None, cuda_graph: bool,
               requested: str, buckets: Sequence[int] | None = None) -> None:
        """Load the single-target plans and the bucket plans of ``buckets`` (None: every bucket the entry and
        the export both have) and allocate their buffers."""
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
        loaded = set(entry.buckets) & set(view.buckets())
        if buckets is not None:
            loaded &= {int(b) for b in buckets}
        self.plans: dict[str, _Plan] = {}
        for name, path in entry.engines.items():
            targets = entry.bucket_of(name)
            if targets > 1 and (targets not in loaded or name not in view.graphs):
                continue
            info = view.graphs[name]["fp32"]
            self.plans[name] = self._load_plan(name, path, info.role, info.instance_size, targets)
        self.kernel_names = list(view.kernel_names)
        self.search_by_size = {p.instance_size: p.name for p in self.plans.values()
                               if p.role == "search" and p.instance_size is not None}
        # (search size, or None for the template; targets) -> bucket plan
        self._bucket_plans = {(p.instance_size if p.role == "search_batched" else None, p.targets): p.name
                              for p in self.plans.values() if p.role in ("template_batched", "search_batched")}
        self.buckets = (1, *sorted(b for (size, b) in self._bucket_plans if size is None))
        self._check_signatures()
        self._allocate()
        self._slots: list[dict[str, int]] = []
        self._free_slots: list[int] = []
        self._pool: dict[int, list[dict[str, int]]] = {}   # bucket -> kernel stack buffer sets
        self._pool_free: dict[int, list[int]] = {}
        self._stacks: list[_Stack] = []                    # most recently used first
        self._keep_extras = False                          # inside search_many: see _keep_previous_extras
        self._seq = 0
        self._fetched: tuple[int, set[str]] = (-1, set())
        log.info("TensorRT engine ready: %s", self.describe())

    def _load_plan(self, name: str, path: str, role: str, instance_size: int | None, targets: int = 1) -> _Plan:
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
        return _Plan(name, role, engine, context, tensors, instance_size, targets)

    def _check_signatures(self) -> None:
        template = self.plans.get("template")
        if template is None or not self.search_by_size:
            raise EngineError(f"{self.entry.path} lacks a template or search engine")
        for plan in self.plans.values():
            if plan.role not in ("search", "search_batched", "template_batched"):
                continue
            for kname in self.kernel_names:
                have, want = plan.tensors.get(kname), template.tensors.get(kname)
                rows = (want.shape[0] * plan.targets, *want.shape[1:]) if want is not None else None
                if have is None or want is None or have.shape != rows or have.dtype != want.dtype:
                    got = have and (have.shape, have.dtype)
                    raise EngineError(f"the {plan.name} engine's kernel tensor '{kname}' does not match the template "
                                      f"engine's output for {plan.targets} target(s) ({got} vs {rows}); rebuild the "
                                      "engines")
        for (size, bucket) in self._bucket_plans:
            if size is not None and (None, bucket) not in self._bucket_plans:
                raise EngineError(f"{self.entry.path} has a {bucket}-target search engine but no {bucket}-target "
                                  "template engine; rebuild the engines")

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
                if plan.role in ("template", "template_batched") and not t.is_input:
                    continue  # kernel slots / kernel stacks, allocated as targets come
                if plan.role in ("search", "search_batched") and t.name in self.kernel_names:
                    continue  # bound to a kernel slot (single search) or a kernel stack (bucket search)
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

    def _row_bytes(self, kname: str) -> int:
        """Bytes of one target's rows of kernel ``kname``."""
        return self.plans["template"].tensors[kname].nbytes

    def _take_buffers(self, bucket: int) -> int:
        """A free kernel stack buffer set of ``bucket`` rows (allocated when the pool has none)."""
        free = self._pool_free.setdefault(bucket, [])
        if free:
            return free.pop()
        pool = self._pool.setdefault(bucket, [])
        pool.append({k: self._device(self._row_bytes(k) * bucket) for k in self.kernel_names})
        return len(pool) - 1

    def _drop_stack(self, stack: _Stack) -> None:
        self._stacks.remove(stack)
        self._pool_free.setdefault(stack.bucket, []).append(stack.index)

    def _push_stack(self, stack: _Stack) -> None:
        self._stacks.insert(0, stack)
        while len(self._stacks) > STACK_KEEP:
            self._drop_stack(self._stacks[-1])

    def _stack_for(self, handles: Sequence[_Kernels], bucket: int) -> _Stack:
        """The kernel stack of ``handles`` for ``bucket``: kept from an earlier call with the same targets, or
        filled now by device-to-device copies of their slots (padding rows repeat the last target)."""
        for stack in [s for s in self._stacks if not s.alive()]:  # a target was dropped: its stack goes
            self._drop_stack(stack)
        for stack in self._stacks:
            if stack.bucket == bucket and stack.holds(handles):
                if stack is not self._stacks[0]:
                    self._stacks.remove(stack)
                    self._stacks.insert(0, stack)
                return stack
        index = self._take_buffers(bucket)
        buffers = self._pool[bucket][index]
        for kname, dst in buffers.items():
            row = self._row_bytes(kname)
            for i in range(bucket):
                src = self._slots[handles[min(i, len(handles) - 1)].slot][kname]
                self._cuda.d2d(dst + i * row, src, row, self._stream)
        stack = _Stack(bucket, index, handles)
        self._push_stack(stack)
        return stack

    def _template_batch(self, zs: list[np.ndarray], bucket: int) -> list[Any]:
        """One call of the ``bucket``-target template plan: its kernels land in a kernel stack (kept for a search
        of the same targets) and each target's rows are copied into its own slot."""
        if bucket == 1:
            return [self._template(zs[0])]
        plan = self.plans[self._bucket_plans[(None, bucket)]]
        index = self._take_buffers(bucket)
        buffers = self._pool[bucket][index]
        for kname, ptr in buffers.items():
            plan.bind(kname, ptr)
        self._stage_rows(plan, "template", zs, bucket)
        self._enqueue(plan)
        handles = []
        for i in range(len(zs)):
            slot = self._take_slot()
            for kname, dst in self._slots[slot].items():
                row = self._row_bytes(kname)
                self._cuda.d2d(dst, buffers[kname] + i * row, row, self._stream)
            handles.append(_Kernels(self, slot))
        self._sync()
        self._push_stack(_Stack(bucket, index, handles))
        return handles

    def search_buckets(self, x: np.ndarray) -> tuple[int, ...]:
        return (1, *sorted(b for (size, b) in self._bucket_plans if size == x.shape[-1]))

    def batched_template(self) -> bool:
        return len(self.buckets) > 1

    def search_many(self, xs: Sequence[np.ndarray] | np.ndarray, kernels: Sequence[Any]) -> list[SearchOutput]:
        """:meth:`Engine.search_many`; a search plan that runs twice in it (more targets than its bucket, or one
        call per target) first copies its previous call's extras to the host while they are held."""
        self._keep_extras = True
        try:
            return super().search_many(xs, kernels)
        finally:
            self._keep_extras = False

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

    def _stage_rows(self, plan: _Plan, name: str, parts: Sequence[np.ndarray], bucket: int) -> None:
        """Copy ``parts`` (one array per target) into the rows of input ``name`` of a ``bucket``-target plan,
        padding by repeating the last part, and upload it."""
        t = plan.tensors[name]
        rows = parts[0].shape[0]
        if (rows * bucket, *parts[0].shape[1:]) != t.shape:
            raise InputError(f"{plan.name} engine input '{name}' must be {t.shape} ({bucket} targets), got "
                             f"{len(parts)} x {tuple(parts[0].shape)}")
        for i in range(bucket):
            np.copyto(t.pinned[i * rows:(i + 1) * rows], parts[min(i, len(parts) - 1)], casting="same_kind")
        self._cuda.h2d(t.device, t.pinned, self._stream)

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

    def _execute(self, plan: _Plan, key: Any) -> dict[str, np.ndarray]:
        """Run ``plan`` (inputs staged, kernels ``key`` bound): replay its CUDA graph for ``key`` when there is one,
        else enqueue it (and, with CUDA graphs on, capture it for the next call); returns the head outputs
        (pinned arrays, valid until the next call)."""
        graph = plan.graphs.get(key) if self.cuda_graph_active else None
        if graph is not None:
            self._cuda("cudaGraphLaunch", graph, self._stream)
        else:
            self._enqueue(plan)
        heads = tuple(n for n in HEAD_OUTPUTS if n in plan.tensors)
        outs = self._fetch(plan, heads)
        if self.cuda_graph_active and graph is None:  # this call was the warm-up: capture for the next ones
            captured = self._capture(plan)
            if captured is None:
                self.cuda_graph_active = False
            else:
                plan.graphs[key] = captured
        return outs

    def _new_run(self, plan: _Plan) -> _Run | None:
        """The record of the call just made on ``plan`` when it has extra outputs (None otherwise)."""
        self._seq += 1
        if not any(n in plan.tensors for n in EXTRA_OUTPUTS):
            return None
        run = _Run(plan.name, self._seq, plan.targets)
        plan.last_run = weakref.ref(run)
        return run

    def _keep_previous_extras(self, plan: _Plan) -> None:
        """Inside :meth:`search_many`: before ``plan`` runs again, copy the extra outputs of its previous call to
        the host while someone still holds them (the frame's targets are refined after all searches)."""
        run = plan.last_run() if self._keep_extras and plan.last_run is not None else None
        if run is None or run.host is not None:
            return
        names = tuple(n for n in EXTRA_OUTPUTS if n in plan.tensors)
        run.host = {n: np.array(v) for n, v in self._fetch(plan, names).items()}

    def _search(self, x: np.ndarray, kernels: Any) -> SearchOutput:
        if not isinstance(kernels, _Kernels) or kernels.engine is not self:
            raise InputError("search() needs the kernels that this engine's template() returned")
        size = x.shape[-1]
        name = self.search_by_size.get(size)
        if name is None:
            raise EngineError(f"no TensorRT search engine for {size}x{size} crops (has {sorted(self.search_by_size)})")
        plan = self.plans[name]
        self._keep_previous_extras(plan)
        slot = kernels.slot
        if plan.bound_slot != slot:
            for kname, ptr in self._slots[slot].items():
                plan.bind(kname, ptr)
            plan.bound_slot = slot
        self._stage_inputs(plan, {"search": x})
        outs = self._execute(plan, slot)
        run = self._new_run(plan)
        outputs = {n: np.array(v, np.float32) for n, v in outs.items()}
        return SearchOutput(outputs, _Extras(run) if run is not None else None)

    def _search_batch(self, xs: list[np.ndarray], kernels: list[Any], bucket: int) -> list[SearchOutput]:
        """One call of the ``bucket``-target search plan for ``len(xs) <= bucket`` targets (padded by repeating the
        last); one :class:`SearchOutput` per target, its rows of the outputs."""
        if bucket == 1:
            return [self._search(xs[0], kernels[0])]
        if any(not isinstance(k, _Kernels) or k.engine is not self for k in kernels):
            raise InputError("search_many() needs the kernels that this engine's template() returned")
        name = self._bucket_plans.get((xs[0].shape[-1], bucket))
        if name is None:
            raise EngineError(f"no {bucket}-target TensorRT search engine for {xs[0].shape[-1]}x{xs[0].shape[-1]} "
                              "crops")
        plan = self.plans[name]
        self._keep_previous_extras(plan)
        stack = self._stack_for(kernels, bucket)
        if plan.bound_slot != stack.key:
            for kname, ptr in self._pool[bucket][stack.index].items():
                plan.bind(kname, ptr)
            plan.bound_slot = stack.key
        self._stage_rows(plan, "search", xs, bucket)
        outs = self._execute(plan, stack.key)
        run = self._new_run(plan)
        results = []
        for i in range(len(xs)):
            part = {n: np.array(v[i * (v.shape[0] // bucket):(i + 1) * (v.shape[0] // bucket)], np.float32)
                    for n, v in outs.items()}
            results.append(SearchOutput(part, _Extras(run, i) if run is not None else None))
        return results

    def _extras(self, extras: Any, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        if not isinstance(extras, _Extras):
            raise InputError("refine()/mask_at() need the extras of this engine's last search()")
        run = extras.run
        plan = self.plans[run.plan]
        if run.host is not None:
            found = run.host
        else:
            if plan.last_run is None or plan.last_run() is not run:
                raise EngineError("refine()/mask_at() must follow the search() whose extras they use (the device "
                                  "buffers hold the latest search only)")
            seq, done = self._fetched
            if seq != run.seq:
                done = set()
            missing = tuple(n for n in names if n not in done)
            if missing:
                self._fetch(plan, missing)
                self._fetched = (run.seq, done | set(missing))
            found = {n: plan.tensors[n].pinned for n in names}
        out = {}
        for n in names:
            rows = found[n].shape[0] // run.targets
            out[n] = found[n][extras.row * rows:(extras.row + 1) * rows]
        return out

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
        buckets = f", buckets {','.join(map(str, self.buckets[1:]))}" if len(self.buckets) > 1 else ""
        return f"{self.backend} ({self.precision}, {self.device}{graph}{buckets}{summary})"

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
        self._stacks, self._pool, self._pool_free = [], {}, {}
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
