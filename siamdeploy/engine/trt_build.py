"""Build TensorRT engines from an export folder: one ``.engine`` plan per ONNX graph, into the engine cache.

Precision (docs/export.md#tensorrt; FP16 by default, FP32 on request):
- TensorRT < 8.5 is refused: it cannot take a convolution whose weights are a runtime tensor, and every
  correlation here is exactly that (the template branch's output is the search graph's Conv weight).
- 8.5 .. 10.x, ``typing="weak"``: the FP32 ONNX graphs + ``BuilderFlag.FP16``, with the correlation, head and
  refine layers pinned to FP32 (``OBEY_PRECISION_CONSTRAINTS``, ``layer.precision``, ``set_output_type``).
  The layers to pin are the manifest's ``fp32_nodes`` of the FP16 variant (TensorRT layer names are the ONNX
  node names, with ``_N`` suffixes where one node became several layers).
- TensorRT >= 10 (``typing="auto"``), and the only way on 11 (which removed ``BuilderFlag.FP16``): a strongly
  typed network (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``) from the mixed ``*_fp16.onnx`` graphs,
  whose types already say which nodes are FP16.
TF32 is switched off by default, so "FP32" layers really are FP32.

After each build the engine inspector (``ProfilingVerbosity.DETAILED``) says which precision every layer got;
that goes into the sidecar with the summary ``fp16 layers N / fp32 layers M``. Nothing claims FP16 that the
inspector does not show.

``tensorrt`` and ``cuda-python`` are imported lazily; without them the functions here raise a one-line
:class:`~siamdeploy.errors.DependencyError`.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import DependencyError, EngineError
from . import trt_cache

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install tensorrt cuda-python"
MIN_VERSION = (8, 5)
TYPINGS = ("auto", "strong", "weak")


# ------------------------------------------------------------------------------------------ dependencies
def import_tensorrt() -> Any:
    """``tensorrt``, or a one-line :class:`DependencyError` naming the package."""
    try:
        import tensorrt
    except ImportError:
        raise DependencyError(f"the TensorRT backend needs the 'tensorrt' package, which is not installed: "
                              f"{INSTALL_HINT} (or use backend='onnxruntime')") from None
    return tensorrt


def import_cudart() -> Any:
    """cuda-python's runtime API: ``cuda.bindings.runtime`` (cuda-python >= 12.6), else the older ``cuda.cudart``."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # type: ignore[no-redef]
        except ImportError:
            raise DependencyError(f"the TensorRT backend needs the 'cuda-python' package (cuda.bindings), which is not "
                                  f"installed: {INSTALL_HINT}") from None
    return cudart


def cuda_check(result: Any, what: str, cudart: Any) -> Any:
    """Unpack a cuda-python call's ``(err, *values)``; raise :class:`EngineError` naming the call on error."""
    if isinstance(result, tuple):
        err, values = result[0], result[1:]
    else:
        err, values = result, ()
    if err != cudart.cudaError_t.cudaSuccess:
        try:
            name = cudart.cudaGetErrorString(err)[1]
            name = name.decode() if isinstance(name, bytes) else str(name)
        except Exception:  # noqa: BLE001 - the message only
            name = str(err)
        raise EngineError(f"CUDA call {what} failed: {name} ({err})")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    compute_capability: str  # "8.9"


def gpu_identity(index: int = 0, cudart: Any = None) -> GpuInfo:
    """Name and compute capability of CUDA device ``index`` (cuda-python, no torch)."""
    cudart = cudart or import_cudart()
    count = cuda_check(cudart.cudaGetDeviceCount(), "cudaGetDeviceCount", cudart)
    if not count:
        raise EngineError("the TensorRT backend needs a CUDA GPU and none was found")
    if not 0 <= index < count:
        raise EngineError(f"CUDA device {index} does not exist (this machine has {count})")
    props = cuda_check(cudart.cudaGetDeviceProperties(index), "cudaGetDeviceProperties", cudart)
    name = props.name
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).split(b"\0", 1)[0].decode("utf-8", "replace")
    return GpuInfo(index, str(name).strip(), f"{props.major}.{props.minor}")


def device_index(device: str | None) -> int:
    """``None`` / ``cuda`` -> 0, ``cuda:N`` -> N; anything else is an error for TensorRT."""
    if device in (None, "", "cuda", "gpu"):
        return 0
    kind, _, index = str(device).partition(":")
    if kind != "cuda" or not index.isdigit():
        raise EngineError(f"the TensorRT backend runs on a CUDA GPU: device must be cuda or cuda:N, got '{device}'")
    return int(index)


def probe(device: str | None = None) -> tuple[bool, str]:
    """Can TensorRT run here? ``(True, description)`` or ``(False, reason)``. Used by ``backend='auto'``
    and by the GPU test skip markers; never raises."""
    try:
        trt = import_tensorrt()
        check_version(parse_version(trt.__version__))
        cudart = import_cudart()
        gpu = gpu_identity(device_index(device), cudart)
    except Exception as err:  # noqa: BLE001 - any failure is a reason to skip
        return False, str(err)
    return True, f"TensorRT {trt.__version__} on {gpu.name} (compute {gpu.compute_capability})"


# ------------------------------------------------------------------------------------------ versions
def parse_version(text: str) -> tuple[int, int, int]:
    """``10.13.0.35`` -> ``(10, 13, 0)``."""
    parts = [int(p) for p in re.findall(r"\d+", str(text))[:3]]
    if len(parts) < 2:
        raise EngineError(f"cannot read the TensorRT version '{text}'")
    return tuple(parts + [0] * (3 - len(parts)))  # type: ignore[return-value]


def check_version(version: tuple[int, int, int]) -> None:
    if version[:2] < MIN_VERSION:
        raise EngineError(f"TensorRT {'.'.join(map(str, version))} is too old: siamdeploy's search graphs use a "
                          "convolution whose weights are a runtime tensor (the template kernels), which TensorRT "
                          "supports from 8.5 on; upgrade TensorRT (JetPack 5.1+) or use backend='onnxruntime'")


def resolve_typing(version: tuple[int, int, int], requested: str = "auto") -> str:
    """``strong`` (strongly typed network) or ``weak`` (``BuilderFlag.FP16`` + precision constraints)."""
    if requested not in TYPINGS:
        raise EngineError(f"typing must be one of {', '.join(TYPINGS)}, got '{requested}'")
    if requested == "auto":
        return "strong" if version[0] >= 10 else "weak"
    if requested == "weak" and version[0] >= 11:
        raise EngineError("TensorRT 11 removed BuilderFlag.FP16 (every network is strongly typed); use typing='auto'")
    if requested == "strong" and version[:2] < (9, 1):
        raise EngineError(f"strongly typed networks need TensorRT 9.1 or later, this is "
                          f"{'.'.join(map(str, version))}; use typing='auto'")
    return requested


@dataclass(frozen=True)
class BuildOptions:
    """What changes a build besides the ONNX graphs, GPU, TensorRT version and precision.

    typing: ``auto`` | ``strong`` | ``weak`` (see the module doc). workspace_mb: the builder's workspace
    limit (None: TensorRT's default, the device memory). tf32: let "FP32" layers use TF32 (off: real FP32).
    """

    typing: str = "auto"
    workspace_mb: int | None = None
    tf32: bool = False

    def resolved(self, version: tuple[int, int, int], precision: str) -> dict[str, Any]:
        """The options as recorded in the sidecar (typing resolved for this TensorRT version)."""
        if precision not in ("fp16", "fp32"):
            raise EngineError(f"TensorRT precision must be fp16 or fp32, got '{precision}'")
        return {**asdict(self), "typing": resolve_typing(version, self.typing)}


# ------------------------------------------------------------------------------------------ layer names
_SUFFIX = re.compile(r"_\d+$")
_TOKEN_SPLIT = re.compile(r"[\s+(),\[\]{}]+|\.\.\.")


def node_of(layer_name: str, nodes: set[str]) -> str | None:
    """The ONNX node a TensorRT network layer came from: the name itself, or the name with the ``_N`` suffix
    the ONNX parser adds when one node becomes several layers (or a name is taken). None if neither."""
    if layer_name in nodes:
        return layer_name
    base = _SUFFIX.sub("", layer_name)
    while base != layer_name:
        if base in nodes:
            return base
        layer_name, base = base, _SUFFIX.sub("", base)
    return None


def pinned_layers(layer_names: Iterable[str], fp32_nodes: Iterable[str]) -> list[str]:
    """The network layers to pin to FP32: those that come from an FP32 node of the mixed-precision export."""
    nodes = set(fp32_nodes)
    return [name for name in layer_names if node_of(name, nodes) is not None]


def _node_tokens(engine_layer_name: str) -> list[str]:
    """ONNX node names inside an engine layer name (fused layers: ``A + B``, ``PWN(A, B)``,
    ``{ForeignNode[A...B]}``, ``Reformatting CopyNode for Input Tensor 0 to A``)."""
    return [t for t in _TOKEN_SPLIT.split(engine_layer_name) if t.startswith("/")]


_DTYPES = [("fp16", re.compile(r"\b(fp16|half)\b", re.I)), ("bf16", re.compile(r"\b(bf16|bfloat16)\b", re.I)),
           ("fp32", re.compile(r"\b(fp32|float|float32)\b", re.I)), ("fp8", re.compile(r"\bfp8\b", re.I)),
           ("int8", re.compile(r"\bint8\b", re.I))]


def tensor_precision(fmt: str) -> str | None:
    """Precision named in an inspector ``Format/Datatype`` string (``Row major linear FP16 format``,
    ``Half``, ``Float`` ...); None for non-float or unknown tensors (shapes, indices)."""
    for label, pattern in _DTYPES:
        if pattern.search(fmt or ""):
            return label
    return None


def layer_precisions(info: str | Mapping[str, Any], fp32_nodes: Iterable[str] = ()) -> dict[str, Any]:
    """Per-layer precision from ``EngineInspector.get_engine_information(LayerInformationFormat.JSON)``.

    A layer's precision is that of its float inputs and outputs: ``fp16``, ``fp32``, ``mixed`` (a conversion,
    or a fused block spanning both) or ``other`` (no float tensors, or an engine built without detailed
    profiling). ``pinned_not_fp32`` lists layers made only of FP32 nodes that nevertheless run in FP16.
    """
    data = json.loads(info) if isinstance(info, str) else info
    raw = data.get("Layers", []) if isinstance(data, Mapping) else []
    fp32 = set(fp32_nodes)
    layers = []
    counts = {"fp16": 0, "fp32": 0, "mixed": 0, "other": 0}
    violations = []
    detailed = bool(raw) and all(isinstance(layer, Mapping) for layer in raw)
    for layer in raw:
        if not isinstance(layer, Mapping):  # LAYER_NAMES_ONLY: a plain name
            layers.append({"name": str(layer), "type": "?", "precision": "other"})
            counts["other"] += 1
            continue
        tensors = list(layer.get("Inputs", []) or []) + list(layer.get("Outputs", []) or [])
        found = {tensor_precision(str(t.get("Format/Datatype", ""))) for t in tensors if isinstance(t, Mapping)}
        found.discard(None)
        floats = found & {"fp16", "fp32", "bf16"}
        precision = next(iter(floats)) if len(floats) == 1 else ("mixed" if floats else "other")
        name = str(layer.get("Name", "?"))
        counts[precision if precision in counts else "mixed"] += 1
        layers.append({"name": name, "type": str(layer.get("LayerType", "?")), "precision": precision})
        tokens = _node_tokens(name)
        if fp32 and precision == "fp16" and tokens and all(node_of(t, fp32) for t in tokens):
            violations.append(name)
    summary = (f"fp16 layers {counts['fp16']} / fp32 layers {counts['fp32']}"
               + (f" (+{counts['mixed']} mixed/conversion, {counts['other']} other)" if counts["mixed"] or counts["other"] else ""))
    if not detailed:
        summary += " (precision not inspectable: engine built without detailed profiling)"
    return {"layers": layers, "counts": counts, "summary": summary, "pinned_not_fp32": violations,
            "detailed": detailed}


def realised_precision(sidecar: Mapping[str, Any]) -> str:
    """What an entry really runs: ``fp16`` if any layer of any plan runs in FP16 per the inspector, ``fp32`` if
    the inspector shows none, ``unverified`` if it could not say."""
    per_graph = sidecar.get("layer_precision", {})
    if not per_graph or not all(g.get("detailed") for g in per_graph.values()):
        return "unverified"
    return "fp16" if any(g["counts"]["fp16"] for g in per_graph.values()) else "fp32"


# ------------------------------------------------------------------------------------------ building
def engine_target(folder: str, manifest: Mapping[str, Any], gpu: GpuInfo, trt_version: str, precision: str,
                  options: Mapping[str, Any]) -> trt_cache.EngineTarget:
    """The cache target for ``folder``'s graphs on this GPU and TensorRT (options already resolved)."""
    sources = trt_cache.select_sources(manifest, precision, options["typing"])
    folder = os.path.abspath(folder)
    return trt_cache.EngineTarget(export_name=os.path.basename(folder.rstrip(os.sep)), gpu_name=gpu.name,
                                  compute_capability=gpu.compute_capability, trt_version=trt_version,
                                  precision=precision, onnx=sources, options=dict(options), export_folder=folder)


def ensure_engines(folder: str, precision: str = "fp16", cache_root: str | None = None, rebuild: bool = True,
                   options: BuildOptions | None = None, device: str | None = None,
                   manifest: Mapping[str, Any] | None = None) -> trt_cache.CacheEntry:
    """The cache entry with engines for every graph of the export ``folder``, built if missing or stale.

    rebuild=False: refuse (:class:`EngineError` saying why) instead of building. Raises
    :class:`DependencyError` without ``tensorrt`` / ``cuda-python``.
    """
    trt = import_tensorrt()
    cudart = import_cudart()
    version = parse_version(trt.__version__)
    check_version(version)
    if manifest is None:
        from ..manifest import read_manifest

        manifest = read_manifest(folder).to_dict()  # the TensorRT code still reads the JSON form
    gpu = gpu_identity(device_index(device), cudart)
    resolved = (options or BuildOptions()).resolved(version, precision)
    target = engine_target(folder, manifest, gpu, trt.__version__, precision, resolved)
    root = cache_root or trt_cache.default_root()

    def build(tmp: str) -> dict[str, Any]:
        return build_all(tmp, folder, manifest, precision, resolved, root, gpu, trt, cudart)

    return trt_cache.get_or_build(root, target, build, rebuild=rebuild)


def _timing_cache_path(root: str, gpu: GpuInfo, trt_version: str) -> str:
    return os.path.join(root, f"timing-{trt_cache.gpu_slug(gpu.name, gpu.compute_capability)}-"
                              f"trt{trt_cache.trt_version_tag(trt_version)}.cache")


def _make_logger(trt: Any) -> Any:
    """A ``trt.ILogger`` that forwards to :mod:`logging` and keeps the errors for the failure message."""

    class _Logger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            sev = trt.ILogger.Severity
            if severity in (sev.INTERNAL_ERROR, sev.ERROR):
                self.errors.append(str(msg))
                log.error("TensorRT: %s", msg)
            elif severity == sev.WARNING:
                log.warning("TensorRT: %s", msg)
            elif severity == sev.INFO:
                log.debug("TensorRT: %s", msg)

    return _Logger()


def _make_progress(trt: Any, label: str) -> Any | None:
    """An ``IProgressMonitor`` (TensorRT >= 10) that logs top-level phases; None where there is none."""
    base = getattr(trt, "IProgressMonitor", None)
    if base is None:
        return None

    class _Progress(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self.started: dict[str, float] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self.started[phase_name] = time.monotonic()
            if parent_phase is None:
                log.info("  %s: %s (%d steps)", label, phase_name, num_steps)
            else:
                log.debug("  %s: %s / %s (%d steps)", label, parent_phase, phase_name, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            log.debug("  %s: %s step %d", label, phase_name, step)
            return True  # never cancel

        def phase_finish(self, phase_name: str) -> None:
            began = self.started.pop(phase_name, None)
            if began is not None:
                log.debug("  %s: %s done in %.1f s", label, phase_name, time.monotonic() - began)

    return _Progress()


def parser_errors(parser: Any) -> list[str]:
    """Every error the ONNX parser recorded, in full."""
    out = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        text = str(err)
        if not text or text.startswith("<"):
            parts = []
            for attr in ("node_name", "node_operator", "desc", "code", "func", "file", "line"):
                fn = getattr(err, attr, None)
                if callable(fn):
                    try:
                        parts.append(f"{attr}={fn()}")
                    except Exception:  # noqa: BLE001 - best effort description
                        pass
            text = ", ".join(parts) or repr(err)
        out.append(text)
    return out


def _network_flags(trt: Any, typing: str, version: tuple[int, int, int]) -> int:
    flags = 0
    creation = trt.NetworkDefinitionCreationFlag
    if version[0] < 10 and hasattr(creation, "EXPLICIT_BATCH"):  # the default (and deprecated) from 10.0 on
        flags |= 1 << int(creation.EXPLICIT_BATCH)
    if typing == "strong" and hasattr(creation, "STRONGLY_TYPED"):  # accepted and ignored on 11
        flags |= 1 << int(creation.STRONGLY_TYPED)
    return flags


def _pin_fp32(trt: Any, network: Any, fp32_nodes: list[str]) -> int:
    """Pin the layers of the FP32 nodes to FP32 (precision and float output types); returns how many."""
    nodes = set(fp32_nodes)
    floats = (trt.float32, trt.float16)
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if node_of(layer.name, nodes) is None:
            continue
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if not outputs or any(o.dtype not in floats for o in outputs):
            continue  # shape / index arithmetic: no float precision to pin
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)
        pinned += 1
    return pinned


def build_all(tmp: str, folder: str, manifest: Mapping[str, Any], precision: str, options: Mapping[str, Any],
              cache_root: str, gpu: GpuInfo, trt: Any, cudart: Any) -> dict[str, Any]:
    """Build a plan for every graph of the export into ``tmp``; the build callable of :mod:`.trt_cache`."""
    version = parse_version(trt.__version__)
    cuda_check(cudart.cudaSetDevice(gpu.index), "cudaSetDevice", cudart)
    logger = _make_logger(trt)
    builder = trt.Builder(logger)
    typing = options["typing"]
    if precision == "fp16" and typing == "weak" and getattr(builder, "platform_has_fast_fp16", True) is False:
        log.warning("%s has no fast FP16; TensorRT may keep most layers in FP32 (the sidecar will say)", gpu.name)
    timing_path = _timing_cache_path(cache_root, gpu, trt.__version__)
    timing_bytes = b""
    if os.path.isfile(timing_path):
        with open(timing_path, "rb") as fh:
            timing_bytes = fh.read()
    engines: dict[str, str] = {}
    layer_info: dict[str, Any] = {}
    pinned_counts: dict[str, int] = {}
    graphs = list(manifest["graphs"].items())
    runtime = trt.Runtime(logger)
    started = time.monotonic()
    for index, (name, variants) in enumerate(graphs, start=1):
        use = "fp16" if precision == "fp16" and typing == "strong" else "fp32"
        onnx_file = os.path.join(folder, variants[use]["file"])
        fp32_nodes = list(variants.get("fp16", {}).get("fp32_nodes", [])) if precision == "fp16" else []
        log.info("building TensorRT %s engine for %s (%d/%d, %s network) ...", precision, variants[use]["file"],
                 index, len(graphs), "strongly typed" if typing == "strong" else "FP16 flag + FP32 pins"
                 if precision == "fp16" else "FP32")
        t0 = time.monotonic()
        network = builder.create_network(_network_flags(trt, typing, version))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(onnx_file):
            errors = parser_errors(parser)
            raise EngineError(f"TensorRT {trt.__version__} could not parse {onnx_file} ({len(errors)} error(s)): "
                              + " | ".join(errors or logger.errors or ["no error reported"]))
        config = builder.create_builder_config()
        if options.get("workspace_mb"):
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options["workspace_mb"]) << 20)
        if not options.get("tf32") and hasattr(trt.BuilderFlag, "TF32"):
            config.clear_flag(trt.BuilderFlag.TF32)
        if precision == "fp16" and typing == "weak":
            config.set_flag(trt.BuilderFlag.FP16)
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
            pinned_counts[name] = _pin_fp32(trt, network, fp32_nodes)
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
        timing_cache = config.create_timing_cache(timing_bytes)  # the file's content, grown graph by graph
        if timing_cache is None and timing_bytes:
            log.warning("ignoring the unreadable timing cache %s", timing_path)
            timing_bytes = b""
            timing_cache = config.create_timing_cache(b"")
        if timing_cache is not None and not config.set_timing_cache(timing_cache, False):
            log.warning("the timing cache %s does not fit this GPU/TensorRT; building without it", timing_path)
        monitor = _make_progress(trt, name)
        if monitor is not None:
            config.progress_monitor = monitor
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise EngineError(f"TensorRT {trt.__version__} failed to build {onnx_file}: "
                              + (" | ".join(logger.errors[-5:]) or "no error reported"))
        file = f"{name}{trt_cache.ENGINE_SUFFIX}"
        with open(os.path.join(tmp, file), "wb") as fh:
            fh.write(plan)
        engines[name] = file
        grown = config.get_timing_cache()
        if grown is not None:
            timing_bytes = bytes(memoryview(grown.serialize()))
        engine = runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise EngineError(f"TensorRT could not load the engine it just built for {onnx_file}: "
                              + " | ".join(logger.errors[-5:]))
        inspector = engine.create_engine_inspector()
        info = layer_precisions(inspector.get_engine_information(trt.LayerInformationFormat.JSON), fp32_nodes)
        layer_info[name] = info
        log.info("  %s: %s in %.1f s", name, info["summary"], time.monotonic() - t0)
        if info["pinned_not_fp32"]:
            log.warning("  %s: %d layer(s) meant to stay FP32 run in FP16: %s", name, len(info["pinned_not_fp32"]),
                        ", ".join(info["pinned_not_fp32"][:5]))
        del inspector, engine, plan, parser, network, config
    if timing_bytes:
        _write_atomic(timing_path, timing_bytes)
    totals = {k: sum(g["counts"][k] for g in layer_info.values()) for k in ("fp16", "fp32", "mixed", "other")}
    summary = f"fp16 layers {totals['fp16']} / fp32 layers {totals['fp32']}"
    if precision == "fp16" and totals["fp16"] == 0:
        log.warning("the %s engines have no FP16 layer at all (TensorRT chose FP32 everywhere); they are recorded "
                    "as FP32", gpu.name)
    log.info("TensorRT engines built in %.1f s: %s", time.monotonic() - started, summary)
    return {"engines": engines, "layer_precision": layer_info, "precision_summary": summary,
            "realised_precision": realised_precision({"layer_precision": layer_info}),
            "precision_counts": totals, "pinned_layers": pinned_counts, "timing_cache": os.path.abspath(timing_path),
            "build_seconds": round(time.monotonic() - started, 1)}


def _write_atomic(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
