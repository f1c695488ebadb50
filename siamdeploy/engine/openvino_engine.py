"""The OpenVINO engine: runs an export folder's ONNX graphs compiled by OpenVINO (``pip install openvino``).

Devices: siamdeploy's ``cpu`` is OpenVINO's ``CPU``; ``gpu`` / ``gpu:N`` is OpenVINO's Intel GPU plugin
(``GPU`` / ``GPU.N``; not CUDA); ``npu`` / ``npu:N`` is ``NPU`` / ``NPU.N``.

Precision is always set, never left to OpenVINO: on CPUs with bf16 units the CPU plugin's default
(``PERFORMANCE`` execution mode) runs bf16 and the GPU plugin's default is f16, either of which would break
the promise that fp32 gives the research code's boxes. ``fp32`` sets ``INFERENCE_PRECISION_HINT`` to f32;
``bf16`` (an explicit opt-in on the same fp32 graphs) is refused on a device whose
``OPTIMIZATION_CAPABILITIES`` lack ``BF16``. After compiling, the hint is read back from every compiled
model: one that does not run what was asked is refused (OpenVINO itself falls back to f32 silently).

Kernels: the template request writes into tensors allocated per ``template`` call, and the search request
takes those same tensors as inputs (``set_tensor``), so kernels never go back to numpy between frames and
several targets can share one engine. Compiled models are cached in OpenVINO's ``CACHE_DIR``
(``<siamdeploy cache>/openvino`` by default), so a second start skips compilation.
"""
from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any

import numpy as np

from ..errors import ConfigError, DependencyError, EngineError
from ..families import family_of
from ..manifest import ExportManifest, graph_path
from .base import (Engine, ExportBuckets, SearchOutput, crop_refine_inputs_np, mask_feeds, pad_rows,
                   split_masks, split_rows)

log = logging.getLogger(__name__)

# siamdeploy precision -> OpenVINO element type name (INFERENCE_PRECISION_HINT) and capability token
# int8: the export's Q/DQ graphs; the quantized convolutions run in int8, everything else in f32 (the hint)
_HINT = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
_CAPABILITY = {"fp32": "FP32", "bf16": "BF16", "int8": "INT8"}
_RAN = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}
_DEVICE_KINDS = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU"}
ENV_THREADS = "SIAMDEPLOY_OPENVINO_THREADS"


def import_openvino() -> Any:
    """The ``openvino`` module, or a :class:`DependencyError` with the install command."""
    try:
        import openvino
    except ImportError:
        raise DependencyError("the openvino backend needs OpenVINO: pip install 'siamdeploy[openvino]' "
                              "(or pip install openvino)") from None
    return openvino


@functools.lru_cache(maxsize=1)
def core() -> Any:
    """One ``openvino.Core`` per process (creating one loads the plugin list)."""
    return import_openvino().Core()


def openvino_device(device: str) -> str:
    """siamdeploy device string -> OpenVINO device name: ``cpu`` -> ``CPU``, ``gpu``/``gpu:0`` -> ``GPU`` (or
    ``GPU.0`` where OpenVINO numbers its GPUs), ``gpu:1`` -> ``GPU.1``, ``npu`` -> ``NPU``."""
    kind, _, index = device.partition(":")
    if kind not in _DEVICE_KINDS or (index and not index.isdigit()):
        raise ConfigError(f"OpenVINO device '{device[:40]}' is not one of cpu, gpu[:N], npu[:N]")
    name = _DEVICE_KINDS[kind]
    if kind == "cpu":
        return name
    if (not index or index == "0") and f"{name}.0" in available_devices() and name not in available_devices():
        return f"{name}.0"
    return name if not index or index == "0" else f"{name}.{index}"


def is_available(ov_device: str) -> bool:
    """Whether OpenVINO lists ``ov_device`` here (``GPU`` and ``GPU.0`` name the same first GPU)."""
    have = available_devices()
    kind, _, index = ov_device.partition(".")
    return ov_device in have or (index == "0" and kind in have) or (not index and f"{kind}.0" in have)


def available_devices() -> list[str]:
    """OpenVINO's device names here (``CPU``, ``GPU``, ``GPU.1``, ``NPU``, ...)."""
    return list(core().available_devices)


def device_capabilities(ov_device: str) -> tuple[str, ...]:
    """The device's ``OPTIMIZATION_CAPABILITIES`` (``FP32``, ``BF16``, ``FP16``, ``INT8``, ...)."""
    return tuple(str(c) for c in core().get_property(ov_device, "OPTIMIZATION_CAPABILITIES"))


def device_name(ov_device: str) -> str:
    try:
        return str(core().get_property(ov_device, "FULL_DEVICE_NAME"))
    except Exception:  # noqa: BLE001  (informative only)
        return ov_device


def check_precision(device: str, precision: str) -> tuple[bool, str]:
    """``(True, "")`` when ``precision`` runs on ``device`` (siamdeploy device string) as asked, else
    ``(False, why + fix)``. Decided by the device's ``OPTIMIZATION_CAPABILITIES``."""
    if precision not in _HINT:
        return False, f"OpenVINO runs {', '.join(_HINT)} here, not {precision}"
    ov_device = openvino_device(device)
    if not is_available(ov_device):
        return False, f"OpenVINO sees no {ov_device} device here (has: {', '.join(available_devices())})"
    caps = device_capabilities(ov_device)
    if _CAPABILITY[precision] in caps:
        return True, ""
    fix = "use precision='fp32'" if precision != "fp32" else "use device='cpu'"
    return False, (f"{device_name(ov_device)} ({ov_device}) has no {precision} support (OpenVINO reports "
                   f"{', '.join(caps) or 'no capabilities'}); {fix}")


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads counted once)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{base}/physical_package_id") as fh:
                package = fh.read().strip()
            with open(f"{base}/core_id") as fh:
                cores.add((package, fh.read().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def threads_from_env() -> int | None:
    """``$SIAMDEPLOY_OPENVINO_THREADS`` as a positive int, or None when unset."""
    value = os.environ.get(ENV_THREADS, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{ENV_THREADS}={value[:20]!r} must be a positive number of threads (or unset: all "
                          "physical cores)")
    return int(value)


def default_compile_cache() -> str:
    """``<siamdeploy cache>/openvino``: where OpenVINO keeps compiled models between runs."""
    from ..backends.registry import default_cache_dir

    return os.path.join(default_cache_dir(), "openvino")


def _int8_ops(compiled: Any) -> int:
    """Operations of a compiled model that execute in int8/uint8 (its runtime model's ``runtimePrecision``)."""
    count = 0
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        try:
            value = str(info["runtimePrecision"].astype(str)) if "runtimePrecision" in info else ""
        except Exception:  # noqa: BLE001 - the rt_info API differs between versions; informative only
            value = str(info.get("runtimePrecision", "")) if hasattr(info, "get") else ""
        if value in ("i8", "u8"):
            count += 1
    return count


class OpenVINOEngine(ExportBuckets, Engine):
    """An :class:`Engine` over a verified export folder (see :func:`siamdeploy.export.cache.ensure_export`).

    precision: ``fp32`` (exact; the export's fp32 graphs with f32 inference precision), ``bf16`` (the same
    graphs, OpenVINO computing in bf16; opt-in) or ``int8`` (the export's Q/DQ graphs: the quantized
    backbone runs in int8, the rest in f32; ``int8_ops`` counts the int8 operations per graph, and a graph
    that compiled without any is refused). device: ``cpu``, ``gpu[:N]``, ``npu[:N]``.
    num_threads: CPU inference threads (None: all physical cores this process may use). cache_dir: OpenVINO's
    compiled-model cache (None: no cache).

    After construction: ``precision`` is what the compiled models report running, ``threads`` the CPU thread
    count they use, ``from_cache`` which graphs were loaded from the cache, ``compile_s`` seconds to compile
    (or load) them all.
    """

    backend = "openvino"

    def __init__(self, folder: str, manifest: ExportManifest, precision: str = "fp32", device: str = "cpu",
                 num_threads: int | None = None, cache_dir: str | None = None) -> None:
        ov = import_openvino()
        if precision not in _HINT:
            raise ConfigError(f"the openvino engine runs {', '.join(_HINT)}, not '{precision}'")
        self.ov_device = openvino_device(device)
        if not is_available(self.ov_device):
            raise EngineError(f"OpenVINO sees no {self.ov_device} device here (has: {', '.join(available_devices())})")
        ok, why = check_precision(device, precision)
        if not ok:
            raise ConfigError(f"backend 'openvino' cannot run {precision} on '{device}': {why}")
        # bf16 compiles the fp32 graphs with a bf16 inference precision; int8 compiles the Q/DQ graphs
        graphs = "int8" if precision == "int8" else "fp32"
        manifest.require(graphs, folder)
        self.folder = folder
        self.manifest = manifest
        self.device = device
        if num_threads is not None and num_threads < 1:
            raise ConfigError(f"num_threads must be a positive number of threads, got {num_threads}")
        self.head_outputs = family_of(manifest.preset.track).head_outputs
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": _HINT[precision], "PERFORMANCE_HINT": "LATENCY"}
        if self.ov_device == "CPU":
            config["INFERENCE_NUM_THREADS"] = num_threads or physical_cores()
            config["NUM_STREAMS"] = 1
        if cache_dir:
            os.makedirs(cache_dir, exist_ok=True)
            config["CACHE_DIR"] = cache_dir
        self.cache_dir = cache_dir
        self._ov = ov
        self._compiled: dict[str, Any] = {}
        self._requests: dict[str, Any] = {}
        self._outputs: dict[str, list[str]] = {}
        self._bound: dict[str, Any] = {}  # the kernels each search request holds now
        self.search_by_size: dict[int, str] = {}
        self.from_cache: dict[str, bool] = {}
        self._config = config
        self._load_buckets(manifest, graphs)
        # on the CPU a padding row costs as much as a real target: split N exactly into buckets (5 = 4 + 1)
        self.batch_policy = "split" if self.ov_device == "CPU" else "pad"
        started = time.perf_counter()
        self.int8_ops: dict[str, int] = {}
        for graph in manifest.graphs_for(graphs):
            self._compile(graph, precision)
            if graph.role == "search" and graph.instance_size is not None:
                self.search_by_size[graph.instance_size] = graph.name
        self.compile_s = time.perf_counter() - started
        self.precision = precision
        self.threads = int(self._compiled["template"].get_property("INFERENCE_NUM_THREADS")) \
            if self.ov_device == "CPU" else 0
        self.kernel_names = list(manifest.kernel_names(graphs))
        self.exemplar_size = manifest.exemplar_size
        log.info("%s: compiled %d graphs in %.2f s (%d from the cache)", self.describe(), len(self._compiled),
                 self.compile_s, sum(self.from_cache.values()))

    def _compile(self, graph: Any, precision: str) -> None:
        """Compile one graph (checking the precision it runs) and make its infer request."""
        config = self._config
        try:
            compiled = core().compile_model(graph_path(self.folder, graph), self.ov_device, config)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise EngineError(f"OpenVINO could not compile {graph.file} for {self.ov_device}: {first[:200]}") \
                from None
        ran = _RAN.get(compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name(), "?")
        if precision == "int8" and ran == "fp32":  # Q/DQ graphs: f32 hint, int8 where the graph quantizes
            self.int8_ops[graph.name] = _int8_ops(compiled)
            if graph.reduced_nodes and not self.int8_ops[graph.name]:
                raise EngineError(f"OpenVINO compiled {graph.file} for {self.ov_device} without any int8 "
                                  "operation although its Q/DQ graph asks for them; use precision='fp32'")
            ran = "int8"
        if ran != precision:  # OpenVINO falls back silently; siamdeploy does not
            raise EngineError(f"OpenVINO compiled {graph.file} for {self.ov_device} with inference precision "
                              f"{ran} although {precision} was asked; use precision='fp32'")
        try:
            self.from_cache[graph.name] = bool(compiled.get_property("LOADED_FROM_CACHE"))
        except RuntimeError:
            self.from_cache[graph.name] = False
        self._compiled[graph.name] = compiled
        self._requests[graph.name] = compiled.create_infer_request()
        # the manifest's name of each output (a port may carry several names; get_any_name picks any)
        self._outputs[graph.name] = [next((n for n in graph.output_names if n in port.get_names()),
                                          port.get_any_name()) for port in compiled.outputs]

    def describe(self) -> str:
        threads = f", {self.threads} threads" if self.threads else ""
        if self.precision == "int8":
            ops = sum(self.int8_ops.values())
            return (f"{self.backend} (int8, {self.device}; OpenVINO {self.ov_device}, Q/DQ graphs, {ops} int8 "
                    f"operations, the rest f32{threads})")
        cached = " from cache" if self.from_cache and all(self.from_cache.values()) else ""
        return (f"{self.backend} ({self.precision}, {self.device}; OpenVINO {self.ov_device}, inference precision "
                f"{_HINT.get(self.precision, self.precision)}{threads}{cached})")

    # ---- several targets per call (bucket graphs, compiled on first use)
    def _bucket_graph(self, size: int | None, bucket: int, head: str = "") -> str:
        """The bucket graph for ``bucket`` targets: the template (``size`` None) or the search of ``size``; with
        ``head`` (``refine`` / ``mask_head``) that head's graph."""
        graph = self._batched_masks[head][bucket] if head else self._batched[(size, bucket)]
        if graph.name not in self._requests:
            if not self._compiled:
                raise EngineError("this openvino engine is closed; load the model again")
            self._compile(graph, self.precision)
        return str(graph.name)

    def _search_batch(self, xs: list[np.ndarray], kernels: list[Any], bucket: int) -> list[SearchOutput]:
        if bucket == 1:
            return [self._search(xs[0], kernels[0])]
        name = self._bucket_graph(xs[0].shape[-1], bucket)

        def build(sets: list[Any]) -> list[np.ndarray]:
            return [pad_rows([np.asarray(k.data if isinstance(k, self._ov.Tensor) else k) for k in parts], bucket)
                    for parts in zip(*sets)]
        feeds = {"search": pad_rows(xs, bucket), **dict(zip(self.kernel_names, self._stacks.get(kernels, bucket,
                                                                                                build)))}
        outs = self._infer(name, feeds)
        rows = {n: v.shape[0] // bucket for n, v in outs.items()}
        return [self._split(part) for part in split_rows(outs, len(xs), rows)]

    def _mask_batch(self, head: str, extras: list[Any], cells: list[tuple[int, int]], bucket: int
                    ) -> list[np.ndarray]:
        outs = self._infer(self._bucket_graph(None, bucket, head), mask_feeds(head, extras, cells, bucket))
        return split_masks(head, outs["mask_logits"], len(extras))

    def _template_batch(self, zs: list[np.ndarray], bucket: int) -> list[Any]:
        if bucket == 1:
            return [self._template(zs[0])]
        outs = self._infer(self._bucket_graph(None, bucket), {"template": pad_rows(zs, bucket)})
        return [tuple(self._ov.Tensor(np.ascontiguousarray(outs[n][i * r:(i + 1) * r]))
                      for n, r in zip(self.kernel_names, self._kernel_rows)) for i in range(len(zs))]

    def close(self) -> None:
        self._stacks.clear()
        self._bound.clear()
        self._requests.clear()
        self._compiled.clear()

    def _request(self, name: str) -> Any:
        try:
            return self._requests[name]
        except KeyError:
            if not self._compiled:
                raise EngineError("this openvino engine is closed; load the model again") from None
            raise EngineError(f"export '{self.folder}' has no '{name}' graph") from None

    def _infer(self, name: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one graph on numpy inputs; outputs are numpy copies (the request reuses its buffers)."""
        request = self._request(name)
        # a shared-memory Tensor does not keep its numpy array alive: hold the (possibly new, contiguous) arrays
        # until the inference has run, or a cropped refine input would be read after it was freed
        arrays = {key: np.ascontiguousarray(value, np.float32) for key, value in feeds.items()}
        for key, array in arrays.items():
            request.set_tensor(key, self._ov.Tensor(array, shared_memory=True))
        request.infer()
        return {n: request.get_tensor(n).data.copy() for n in self._outputs[name]}

    def _template(self, z: np.ndarray) -> tuple[Any, ...]:
        request = self._request("template")
        compiled = self._compiled["template"]
        # fresh output tensors per call: the kernels outlive this request's next run (several targets)
        kernels = tuple(self._ov.Tensor(compiled.output(n).get_element_type(), compiled.output(n).get_shape())
                        for n in self.kernel_names)
        for name, tensor in zip(self.kernel_names, kernels):
            request.set_tensor(name, tensor)
        blob = np.ascontiguousarray(z, np.float32)  # held until infer() ran (see _infer)
        request.set_tensor("template", self._ov.Tensor(blob, shared_memory=True))
        request.infer()
        return kernels

    def _search(self, x: np.ndarray, kernels: Any) -> SearchOutput:
        size = x.shape[-1]
        if size not in self.search_by_size:
            raise EngineError(f"export '{self.folder}' has no search graph for {size}x{size} crops "
                              f"(has {sorted(self.search_by_size)})")
        name = self.search_by_size[size]
        request = self._request(name)
        if self._bound.get(name) is not kernels:  # bind only when the target (its kernels) changes
            if len(kernels) != len(self.kernel_names):
                raise EngineError(f"search needs {len(self.kernel_names)} kernels from this engine's template(), "
                                  f"got {len(kernels)}")
            for kname, kernel in zip(self.kernel_names, kernels):
                request.set_tensor(kname, kernel if isinstance(kernel, self._ov.Tensor) else
                                   self._ov.Tensor(np.ascontiguousarray(kernel, np.float32)))
            self._bound[name] = kernels
        blob = np.ascontiguousarray(x, np.float32)  # held until infer() ran (see _infer)
        request.set_tensor("search", self._ov.Tensor(blob, shared_memory=True))
        request.infer()
        return self._split({n: request.get_tensor(n).data.copy() for n in self._outputs[name]})

    def refine(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
        p0, p1, p2, p3 = crop_refine_inputs_np(extras["f0"], extras["f1"], extras["f2"], extras["mask_corr"], *cell)
        return self._infer("refine", {"p0": p0, "p1": p1, "p2": p2, "p3": p3})["mask_logits"][0, 0]

    def mask_at(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
        y, x = cell
        corr = extras["mask_corr"][:, :, y:y + 1, x:x + 1]
        return self._infer("mask_head", {"corr_cell": corr})["mask_logits"].reshape(63, 63)
