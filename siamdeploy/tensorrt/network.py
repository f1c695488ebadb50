"""ONNX -> TensorRT network -> builder config: parsing, creation flags, FP32 pinning, INT8 (Q/DQ) checks.

Every function that takes ``trt`` takes the ``tensorrt`` module (imported lazily by the caller). Functions
that exist only on part of the supported versions carry :func:`~.versions.trt_path`; the bindings check
(:mod:`.api_names`) verifies each TensorRT name used here against NVIDIA's published bindings of those
versions. By convention TensorRT objects are named ``trt``, ``builder``, ``network``, ``config``, ``parser``,
``layer``, ``tensor``, ``runtime``, ``engine``, ``context``, ``inspector`` (the check recognises them).

Layer names (for pinning): the ONNX parser names the layer of a node after the node and, when that name is
taken, appends ``_<counter>`` (onnx-tensorrt ``ImporterContext::registerLayer`` / ``generateUniqueName``:
``basename + "_" + std::to_string(mSuffixCounter)``). Auxiliary layers it adds on its own (casts,
broadcasts, shape arithmetic) are named ``ONNXTRT_<what>`` with the same suffix rule and carry no node name:
one whose float inputs all come from pinned layers is pinned with them, so it cannot round FP32 to FP16.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import EngineError
from .versions import PRECISIONS, Version, resolve_typing, trt_path

log = logging.getLogger(__name__)

_SUFFIX = re.compile(r"_\d+$")
AUX_PREFIX = "ONNXTRT_"


@dataclass(frozen=True)
class BuildOptions:
    """What changes a build besides the ONNX graphs, GPU, TensorRT version and precision.

    typing: ``auto`` | ``strong`` | ``weak`` (see :mod:`.versions`). workspace_mb: the builder's workspace
    limit in MiB (None: TensorRT's default, the device memory). tf32: let FP32 layers use TF32 (off: real
    FP32; ``BuilderFlag.TF32`` is kept in TensorRT 11 and is independent of typing, so this holds for
    strongly typed networks too).
    """

    typing: str = "auto"
    workspace_mb: int | None = None
    tf32: bool = False

    def resolved(self, version: Version, precision: str) -> dict[str, Any]:
        """The options as recorded in the sidecar (typing resolved for this TensorRT version)."""
        if precision not in PRECISIONS:
            raise EngineError(f"TensorRT precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
        return {**asdict(self), "typing": resolve_typing(version, self.typing, precision)}


# ------------------------------------------------------------------------------------------ layer names
def node_of(layer_name: str, nodes: set[str]) -> str | None:
    """The ONNX node a TensorRT network layer came from: the name itself, or the name without the ``_N``
    suffixes the ONNX parser appends when a name is taken. None if neither is in ``nodes``."""
    if layer_name in nodes:
        return layer_name
    base = _SUFFIX.sub("", layer_name)
    while base != layer_name:
        if base in nodes:
            return base
        layer_name, base = base, _SUFFIX.sub("", base)
    return None


def pinned_layers(layer_names: Iterable[str], fp32_nodes: Iterable[str]) -> list[str]:
    """The network layers that come from an FP32 node of the mixed-precision export (by name)."""
    nodes = set(fp32_nodes)
    return [name for name in layer_names if node_of(name, nodes) is not None]


# ------------------------------------------------------------------------------------------ logger, progress
def make_logger(trt: Any) -> Any:
    """A ``trt.ILogger`` that forwards to :mod:`logging` and keeps the errors (``.errors``) for messages."""

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if severity in (trt.ILogger.Severity.INTERNAL_ERROR, trt.ILogger.Severity.ERROR):
                self.errors.append(str(msg))
                log.error("TensorRT: %s", msg)
            elif severity == trt.ILogger.Severity.WARNING:
                log.warning("TensorRT: %s", msg)
            elif severity == trt.ILogger.Severity.INFO:
                log.debug("TensorRT: %s", msg)

    return _Logger()


@trt_path(since=(10, 0, 0))
def attach_progress(trt: Any, config: Any, label: str) -> None:
    """Log the builder's phases through an ``IProgressMonitor`` (TensorRT >= 10; 8.x has none)."""
    config.progress_monitor = make_progress(trt, label)


@trt_path(since=(10, 0, 0))
def make_progress(trt: Any, label: str) -> Any:
    """An ``IProgressMonitor`` that logs the builder's top-level phases (TensorRT >= 10)."""

    class _Progress(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
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


# ------------------------------------------------------------------------------------------ network
@trt_path(below=(10, 0, 0))
def _explicit_batch_flag(trt: Any) -> int:
    """8.5 .. 9.x need explicit batch for ONNX (the default, and deprecated, from 10.0; gone in 11)."""
    return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)


@trt_path(since=(9, 1, 0))
def _strongly_typed_flag(trt: Any) -> int:
    """``STRONGLY_TYPED`` (accepted and ignored on 11, where every network is strongly typed)."""
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def network_flags(trt: Any, typing: str, version: Version) -> int:
    """The ``create_network`` flags for ``typing`` (``strong`` / ``weak``) on TensorRT ``version``."""
    flags = 0
    if version[0] < 10:
        flags |= _explicit_batch_flag(trt)
    if typing == "strong":
        flags |= _strongly_typed_flag(trt)
    return flags


def parse_onnx(trt: Any, builder: Any, logger: Any, onnx_file: str, typing: str, version: Version) -> tuple[Any, Any]:
    """``(network, parser)`` for ``onnx_file``; :class:`EngineError` with every parser error on failure."""
    network = builder.create_network(network_flags(trt, typing, version))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(onnx_file):
        errors = parser_errors(parser)
        raise EngineError(f"TensorRT {trt.__version__} could not parse {onnx_file} ({len(errors)} error(s)): "
                          + " | ".join(errors or logger.errors or ["no error reported"]))
    return network, parser


@trt_path(below=(11, 0, 0))
def pin_fp32(trt: Any, network: Any, fp32_nodes: Iterable[str]) -> int:
    """Pin the layers of the FP32 nodes (and the parser's auxiliary ``ONNXTRT_*`` layers fed only by them) to
    FP32: layer precision and every float output type. Weakly typed networks only. Returns how many layers."""
    nodes = set(fp32_nodes)
    floats = (trt.float32, trt.float16)
    pinned_outputs: set[str] = set()
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        outputs = []
        for j in range(layer.num_outputs):
            tensor = layer.get_output(j)
            outputs.append(tensor)
        if not outputs or any(tensor.dtype not in floats for tensor in outputs):
            continue  # shape / index arithmetic: no float precision to pin
        if node_of(layer.name, nodes) is None:
            if not layer.name.startswith(AUX_PREFIX):
                continue
            inputs = []
            for j in range(layer.num_inputs):
                tensor = layer.get_input(j)
                if tensor is not None and tensor.dtype in floats:
                    inputs.append(tensor.name)
            if not inputs or not all(name in pinned_outputs for name in inputs):
                continue
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)
            pinned_outputs.add(layer.get_output(j).name)
        pinned += 1
    return pinned


@trt_path(below=(11, 0, 0))
def weak_fp16(trt: Any, builder: Any, network: Any, config: Any, fp32_nodes: Iterable[str], label: str) -> int:
    """``BuilderFlag.FP16`` with the FP32 nodes pinned (``OBEY_PRECISION_CONSTRAINTS``); returns the pins."""
    if not builder.platform_has_fast_fp16:
        log.warning("%s: this GPU has no fast FP16; TensorRT may keep most layers in FP32 (the sidecar will say)",
                    label)
    config.set_flag(trt.BuilderFlag.FP16)
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return pin_fp32(trt, network, fp32_nodes)


@trt_path(since=(10, 0, 0))
def require_qdq(trt: Any, network: Any, onnx_file: str) -> int:
    """INT8 is explicit quantization only: the parsed network must hold Q/DQ layers. Returns how many."""
    count = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE):
            count += 1
    if not count:
        raise EngineError(f"{onnx_file} has no QuantizeLinear/DequantizeLinear nodes: INT8 engines are built only "
                          "from Q/DQ graphs (explicit quantization; TensorRT 11 removed implicit INT8 "
                          "calibration); quantize the export first, or build fp16")
    return count


def builder_config(trt: Any, builder: Any, network: Any, options: dict[str, Any], precision: str,
                   fp32_nodes: Iterable[str], label: str, onnx_file: str) -> tuple[Any, int]:
    """``(config, pinned layer count)`` for one graph: workspace, TF32 off unless asked, detailed profiling
    (so the inspector can report per-layer precision), and the precision route of ``options["typing"]``.

    strong: nothing to set, the network's types decide (FP16 from the mixed ONNX, INT8 from Q/DQ).
    weak + fp16: :func:`weak_fp16`. fp32: nothing (TF32 off keeps it real FP32).
    """
    config = builder.create_builder_config()
    if options.get("workspace_mb"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options["workspace_mb"]) << 20)
    if not options.get("tf32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    pinned = 0
    if precision == "int8":
        require_qdq(trt, network, onnx_file)
    elif precision == "fp16" and options["typing"] == "weak":
        pinned = weak_fp16(trt, builder, network, config, fp32_nodes, label)
    return config, pinned
