"""Find or build the TensorRT plans of an export folder: :func:`ensure_engines`.

One ``.engine`` plan per ONNX graph, into the engine cache (:mod:`.cache`), with the precision every layer
got according to the engine inspector (:mod:`.inspection`) in the sidecar. Nothing claims FP16 that the
inspector does not show. A timing cache per GPU and TensorRT version (``timing-<gpu>-trt<version>.cache``
beside the entries) makes rebuilds fast.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from typing import Any

from ..errors import EngineError
from . import cache
from . import device as _device
from .inspection import layer_precisions, realised_precision
from .manifest_view import ManifestView, read_view
from .network import BuildOptions, attach_progress, builder_config, make_logger, parse_onnx
from .qdq import tensorrt_int8_onnx
from .versions import check_version, parse_version

log = logging.getLogger(__name__)


def engine_target(folder: str, view: ManifestView, gpu: _device.GpuInfo, trt_version: str, precision: str,
                  options: dict[str, Any], buckets: tuple[int, ...] | list[int] | None = None) -> cache.EngineTarget:
    """The cache target for ``folder``'s graphs on this GPU and TensorRT (options already resolved): every
    single-target graph and the bucket graphs of ``buckets`` (None: every bucket of the export)."""
    sources = cache.select_sources(view, precision, options["typing"], buckets)
    folder = os.path.abspath(folder)
    return cache.EngineTarget(export_name=os.path.basename(folder.rstrip(os.sep)), gpu_name=gpu.name,
                              compute_capability=gpu.compute_capability, trt_version=trt_version,
                              precision=precision, onnx=sources, options=dict(options), export_folder=folder)


def ensure_engines(folder: str, precision: str = "fp16", cache_root: str | None = None, rebuild: bool = True,
                   options: BuildOptions | None = None, device: str | None = None,
                   view: ManifestView | None = None, buckets: tuple[int, ...] | list[int] | None = None
                   ) -> cache.CacheEntry:
    """The cache entry with a plan for every graph of the export ``folder``, built if missing or stale.

    precision: ``fp16`` | ``fp32`` | ``int8`` (Q/DQ graphs only; this path has not been run on a GPU yet).
    buckets: the batch buckets (targets per call, above 1) to build a template and a search plan for, besides
    the single-target plans; None: every bucket of the export; ``()`` or ``(1,)``: none (one call per target).
    A bucket the export lacks is an :class:`EngineError`. INT8 has no bucket graphs: an INT8 entry holds the
    single-target plans only. An entry with more buckets is used as it is; one with fewer is rebuilt with
    the buckets asked for plus those it had.
    rebuild=False: refuse (:class:`EngineError` saying why) instead of building. Raises
    :class:`~siamdeploy.errors.DependencyError` without ``tensorrt`` / ``cuda-python``.
    """
    trt = _device.import_tensorrt()
    cudart = _device.import_cudart()
    version = parse_version(trt.__version__)
    check_version(version)
    view = view if view is not None else read_view(folder)
    gpu = _device.gpu_identity(_device.device_index(device), cudart)
    resolved = (options or BuildOptions()).resolved(version, precision)
    root = cache_root or cache.default_root()
    target = plan_target(folder, view, gpu, trt.__version__, precision, resolved, root, buckets)
    chosen = view.restricted(target.buckets)

    def build(tmp: str) -> dict[str, Any]:
        return build_all(tmp, folder, chosen, precision, resolved, root, gpu, trt, cudart)

    return cache.get_or_build(root, target, build, rebuild=rebuild)


def plan_target(folder: str, view: ManifestView, gpu: _device.GpuInfo, trt_version: str, precision: str,
                options: dict[str, Any], root: str, buckets: tuple[int, ...] | list[int] | None = None
                ) -> cache.EngineTarget:
    """The cache target :func:`ensure_engines` builds or loads: the single-target plans and those of
    ``buckets`` (None: all of the export's); when the cached entry is stale only because it lacks some of
    them, the target also keeps the buckets the entry had (a rebuild never drops what was built). Logs the
    plan list, and that INT8 runs one call per target."""
    if precision == "int8" and view.buckets():
        log.info("INT8 TensorRT engines: the export has bucket graphs (%s targets) in FP32/FP16 only, so INT8 "
                 "builds the single-target plans and runs one engine call per target",
                 ",".join(map(str, view.buckets())))
    target = engine_target(folder, view, gpu, trt_version, precision, options, buckets)
    found = cache.lookup(root, target, verify_plans=False)
    if isinstance(found, cache.Stale) and found.reason == cache.BUCKETS:
        had = cache.bucket_sizes((cache.read_sidecar(found.path) or {}).get("onnx", {}))
        keep = sorted((set(had) & set(view.buckets())) | set(target.buckets))
        target = engine_target(folder, view, gpu, trt_version, precision, options, keep)
    singles = sum(1 for v in target.onnx.values() if int(v.get("targets", 1)) == 1)
    log.info("TensorRT %s plans for %s: %d single-target + %d bucket plan(s) (buckets: %s)", precision,
             target.export_name, singles, len(target.onnx) - singles,
             ",".join(map(str, target.buckets)) or "none, one call per target")
    return target


def timing_cache_path(root: str, gpu: _device.GpuInfo, trt_version: str) -> str:
    """``<root>/timing-<gpu-slug>-trt<version>.cache``."""
    return os.path.join(root, f"timing-{cache.gpu_slug(gpu.name, gpu.compute_capability)}-"
                              f"trt{cache.trt_version_tag(trt_version)}.cache")


def build_all(tmp: str, folder: str, view: ManifestView, precision: str, options: dict[str, Any],
              cache_root: str, gpu: _device.GpuInfo, trt: Any, cudart: Any) -> dict[str, Any]:
    """Build a plan for every graph of the export into ``tmp``; the build callable of :mod:`.cache`."""
    version = parse_version(trt.__version__)
    _device.cuda_check(cudart.cudaSetDevice(gpu.index), "cudaSetDevice", cudart)
    logger = make_logger(trt)
    builder = trt.Builder(logger)
    runtime = trt.Runtime(logger)
    timing_path = timing_cache_path(cache_root, gpu, trt.__version__)
    timing = [b""]
    if os.path.isfile(timing_path):
        with open(timing_path, "rb") as fh:
            timing[0] = fh.read()
    engines: dict[str, str] = {}
    layer_info: dict[str, Any] = {}
    pinned_counts: dict[str, int] = {}
    started = time.monotonic()
    use = cache.source_variant(precision, options["typing"])
    graphs = list(view.graphs.items())
    for index, (name, variants) in enumerate(graphs, start=1):
        onnx_file = os.path.join(folder, variants[use].file)
        fp32_nodes = list(variants["fp16"].fp32_nodes) if precision == "fp16" and "fp16" in variants else []
        route = {"strong": "strongly typed", "weak": "FP16 flag + FP32 pins" if precision == "fp16" else "FP32"}
        log.info("building TensorRT %s engine for %s (%d/%d, %s network) ...", precision, variants[use].file,
                 index, len(graphs), route[options["typing"]])
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory() as scratch:
            parse = tensorrt_int8_onnx(onnx_file, scratch) if precision == "int8" else onnx_file
            plan, pinned = _build_one(trt, builder, logger, parse, options, precision, fp32_nodes, name, version,
                                      timing, timing_path)
        file = f"{name}{cache.ENGINE_SUFFIX}"
        with open(os.path.join(tmp, file), "wb") as fh:
            fh.write(plan)
        engines[name] = file
        pinned_counts[name] = pinned
        info = _inspect(trt, runtime, logger, plan, onnx_file, fp32_nodes)
        layer_info[name] = info
        log.info("  %s: %s in %.1f s", name, info["summary"], time.monotonic() - t0)
        if info["pinned_not_fp32"]:
            log.warning("  %s: %d layer(s) meant to stay FP32 run in FP16: %s", name, len(info["pinned_not_fp32"]),
                        ", ".join(info["pinned_not_fp32"][:5]))
    if timing[0]:
        _write_atomic(timing_path, timing[0])
    totals = {k: sum(g["counts"].get(k, 0) for g in layer_info.values()) for k in ("fp16", "fp32", "mixed", "other")}
    summary = f"fp16 layers {totals['fp16']} / fp32 layers {totals['fp32']}"
    int8 = sum(g["counts"].get("int8", 0) for g in layer_info.values())
    if int8:
        totals["int8"] = int8
        summary += f" / int8 layers {int8}"
    if precision == "fp16" and totals["fp16"] == 0:
        log.warning("the %s engines have no FP16 layer at all (TensorRT chose FP32 everywhere); they are recorded "
                    "as FP32", gpu.name)
    log.info("TensorRT engines built in %.1f s: %s", time.monotonic() - started, summary)
    return {"engines": engines, "layer_precision": layer_info, "precision_summary": summary,
            "realised_precision": realised_precision({"layer_precision": layer_info}),
            "precision_counts": totals, "pinned_layers": pinned_counts, "timing_cache": os.path.abspath(timing_path),
            "build_seconds": round(time.monotonic() - started, 1)}


def _build_one(trt: Any, builder: Any, logger: Any, onnx_file: str, options: dict[str, Any], precision: str,
               fp32_nodes: list[str], label: str, version: tuple[int, int, int], timing: list[bytes],
               timing_path: str) -> tuple[bytes, int]:
    """One serialized plan for ``onnx_file`` and the number of pinned layers; grows ``timing[0]``."""
    network, parser = parse_onnx(trt, builder, logger, onnx_file, options["typing"], version)
    config, pinned = builder_config(trt, builder, network, options, precision, fp32_nodes, label, onnx_file)
    timing_cache = config.create_timing_cache(timing[0])  # the file's content, grown graph by graph
    if timing_cache is None and timing[0]:
        log.warning("ignoring the unreadable timing cache %s", timing_path)
        timing[0] = b""
        timing_cache = config.create_timing_cache(b"")
    if timing_cache is not None and not config.set_timing_cache(timing_cache, False):
        log.warning("the timing cache %s does not fit this GPU/TensorRT; building without it", timing_path)
    if version[0] >= 10:
        attach_progress(trt, config, label)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f"TensorRT {trt.__version__} failed to build {onnx_file}: "
                          + (" | ".join(logger.errors[-5:]) or "no error reported"))
    grown = config.get_timing_cache()
    if grown is not None:
        timing[0] = bytes(memoryview(grown.serialize()))
    del parser, network, config
    return bytes(memoryview(plan)), pinned


def _inspect(trt: Any, runtime: Any, logger: Any, plan: bytes, onnx_file: str, fp32_nodes: list[str]
             ) -> dict[str, Any]:
    """Per-layer precisions of a just-built plan, from the engine inspector."""
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise EngineError(f"TensorRT could not load the engine it just built for {onnx_file}: "
                          + " | ".join(logger.errors[-5:]))
    inspector = engine.create_engine_inspector()
    info = layer_precisions(inspector.get_engine_information(trt.LayerInformationFormat.JSON), fp32_nodes)
    del inspector, engine
    return info


def _write_atomic(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
