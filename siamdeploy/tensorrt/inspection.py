"""Per-layer precision from the engine inspector (``IEngineInspector``), without TensorRT.

``engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)`` on an engine
built with ``ProfilingVerbosity.DETAILED`` gives ``{"Layers": [{"Name", "LayerType", "Inputs": [...],
"Outputs": [...], ...}], "Bindings": [...]}`` where every tensor has a ``"Format/Datatype"`` string such as
``Row major linear FP32``, ``Channel major FP16 format where channel % 8 == 0``, ``Float``, ``Half``,
``Int8``; with less verbosity ``Layers`` is a list of plain names. The datatype is read from that string by
keyword, as NVIDIA's Polygraphy does (``tools/Polygraphy/polygraphy/backend/trt/util.py``,
``dtype_from_fmt_dtype``: BFLOAT16, FLOAT, FP32, FP16, INT8 ... substrings) and as the
``sampleEditableTimingCache`` README shows (``Format/Datatype: Float``).
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .network import node_of

_TOKEN_SPLIT = re.compile(r"[\s+(),\[\]{}]+|\.\.\.")
_DTYPES = [("fp16", re.compile(r"\b(fp16|half)\b", re.IGNORECASE)),
           ("bf16", re.compile(r"\b(bf16|bfloat16)\b", re.IGNORECASE)),
           ("fp32", re.compile(r"\b(fp32|float|float32)\b", re.IGNORECASE)),
           ("fp8", re.compile(r"\bfp8\b", re.IGNORECASE)),
           ("int8", re.compile(r"\bint8\b", re.IGNORECASE))]


def node_tokens(engine_layer_name: str) -> list[str]:
    """ONNX node names inside an engine layer name (fused layers: ``A + B``, ``PWN(A, B)``,
    ``{ForeignNode[A...B]}``, ``Reformatting CopyNode for Input Tensor 0 to A``)."""
    return [t for t in _TOKEN_SPLIT.split(engine_layer_name) if t.startswith("/")]


def tensor_precision(fmt: str) -> str | None:
    """Precision named in an inspector ``Format/Datatype`` string (``Row major linear FP16 format``,
    ``Half``, ``Float`` ...): ``fp16``, ``bf16``, ``fp32``, ``fp8``, ``int8``; None for other or unknown
    tensors (shapes, indices)."""
    for label, pattern in _DTYPES:
        if pattern.search(fmt or ""):
            return label
    return None


def layer_precisions(info: str | Mapping[str, Any], fp32_nodes: Iterable[str] = ()) -> dict[str, Any]:
    """Per-layer precision from the inspector's JSON (string or parsed).

    A layer's precision is that of its float inputs and outputs: ``fp16``, ``fp32``, ``mixed`` (a conversion,
    or a fused block spanning both), ``int8`` (a tensor of the layer is INT8: explicit quantization; only
    counted when present) or ``other`` (no float tensors, or an engine built without detailed profiling).
    ``pinned_not_fp32`` lists layers made only of FP32 nodes that nevertheless run in FP16.
    """
    data = json.loads(info) if isinstance(info, str) else info
    raw = data.get("Layers", []) if isinstance(data, Mapping) else []
    fp32 = set(fp32_nodes)
    layers = []
    counts = {"fp16": 0, "fp32": 0, "mixed": 0, "other": 0}
    violations = []
    detailed = bool(raw) and all(isinstance(record, Mapping) for record in raw)
    for record in raw:
        if not isinstance(record, Mapping):  # LAYER_NAMES_ONLY: a plain name
            layers.append({"name": str(record), "type": "?", "precision": "other"})
            counts["other"] += 1
            continue
        tensors = list(record.get("Inputs", []) or []) + list(record.get("Outputs", []) or [])
        found = {p for p in (tensor_precision(str(t.get("Format/Datatype", ""))) for t in tensors
                             if isinstance(t, Mapping)) if p is not None}
        floats = found & {"fp16", "fp32", "bf16"}
        if "int8" in found:
            precision = "int8"
        else:
            precision = next(iter(floats)) if len(floats) == 1 else ("mixed" if floats else "other")
        name = str(record.get("Name", "?"))
        if precision == "int8":
            counts["int8"] = counts.get("int8", 0) + 1
        else:
            counts[precision if precision in counts else "mixed"] += 1
        layers.append({"name": name, "type": str(record.get("LayerType", "?")), "precision": precision})
        tokens = node_tokens(name)
        if fp32 and precision == "fp16" and tokens and all(node_of(t, fp32) for t in tokens):
            violations.append(name)
    summary = f"fp16 layers {counts['fp16']} / fp32 layers {counts['fp32']}"
    if counts.get("int8"):
        summary += f" / int8 layers {counts['int8']}"
    if counts["mixed"] or counts["other"]:
        summary += f" (+{counts['mixed']} mixed/conversion, {counts['other']} other)"
    if not detailed:
        summary += " (precision not inspectable: engine built without detailed profiling)"
    return {"layers": layers, "counts": counts, "summary": summary, "pinned_not_fp32": violations,
            "detailed": detailed}


def realised_precision(sidecar: Mapping[str, Any]) -> str:
    """What an entry really runs: ``int8`` if any layer of any plan is INT8, else ``fp16`` if any layer
    runs in FP16, ``fp32`` if the inspector shows neither, ``unverified`` if it could not say."""
    per_graph = sidecar.get("layer_precision", {})
    if not per_graph or not all(g.get("detailed") for g in per_graph.values()):
        return "unverified"
    if any(g["counts"].get("int8") for g in per_graph.values()):
        return "int8"
    return "fp16" if any(g["counts"]["fp16"] for g in per_graph.values()) else "fp32"
