"""INT8 graphs: post-training static quantization of the FP32 export to Q/DQ ONNX (docs/export.md#int8).

Library: ``onnxruntime.quantization.quantize_static`` with ``QuantFormat.QDQ``. Weights are int8, symmetric,
per output channel; activations int8, symmetric (zero point 0, which TensorRT's explicit quantization
requires), ranges from min/max calibration. Only the backbone and the neck are quantized (the nodes the FP16
export turns to FP16, :data:`siamdeploy.export.fp16.FP16_SCOPES`), except the first backbone stage by default;
the correlations, the heads, refine and the graph inputs/outputs stay FP32, and the Q/DQ pair the quantizer
puts on the backbone's output is taken off the FP32 nodes that read it (:func:`strip_boundary_qdq`), so no
correlation or head input is rounded to int8. Weights are in a 7-bit range by default (see
:class:`Int8Options`).

Calibration: the FP32 export tracks generated photo sequences (training photographs, seeds
:data:`CALIBRATION_SEED`..) through the real runtime; every template and search crop it asks for is recorded
with the kernels of its sequence, so the crops come from states the model itself reaches. Search graphs the
tracker did not switch to get the same search crops resized to their side; the template graph also gets the
search crops resized to the exemplar side (more samples for its ranges). The per-tensor ranges are stored in
``int8_calibration/<graph>-<key>.json`` in the export folder; the key covers the FP32 graph's sha256 and
every calibration setting, so a re-export of the same checkpoint reuses them.

Backbone stages (:func:`backbone_stages`): the first name component under the backbone (``conv1``,
``layer1``.. for ResNet/MobileNet, ``conv1``..``conv5`` for SiamFC), or the second where the backbone is one
sequence (AlexNet's ``features.0``, ``features.4``, ...); ``neck`` is one more stage. Nodes without a Conv
(ReLU, pooling) belong to the stage before them. :func:`sensitivity` quantizes one stage at a time and
reports the search outputs' relative error; ``keep`` keeps chosen stages in FP32 (default: the first one).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from ..errors import DependencyError, ExportError
from ..manifest import read_manifest
from .fp16 import FP16_SCOPES

log = logging.getLogger(__name__)

CALIBRATION_SEED = 4000          # photo sequences on the training photographs; the accuracy gate uses others
CALIBRATION_DIR = "int8_calibration"
MIN_INT8_OPSET = 13              # per-channel QuantizeLinear/DequantizeLinear (the axis attribute)
NECK = "neck"


@dataclass(frozen=True)
class Int8Options:
    """How the INT8 graphs are made.

    sequences / frames: calibration sequences and tracked frames per sequence (each frame is one search crop;
    each sequence one template crop). keep: backbone stages (names from :func:`backbone_stages`, or ``neck``)
    kept in FP32; None (the default): the first stage, the stem that reads the raw 0..255 pixels (on the
    reference SiamRPN it alone holds most of the INT8 error: 1.5 % of the 2.1 % relative error of ``cls``,
    and the teacher-forced gate went from 97.4 % to 100 % of frames with it in FP32); ``()``: every stage.
    sensitivity: measure every stage alone (one quantization per stage, on the main search
    graph). method: ``minmax`` (the calibration's min and max) or ``percentile`` (99.999th percentile of
    ``|x|``). reduce_range: weights in 7 bits (-64..63). On x86 CPUs without VNNI (AVX2, AVX-512F) both
    onnxruntime and OpenVINO multiply int8 pairs with ``vpmaddubsw``, whose 16-bit sums saturate with full-range
    weights: measured on an AVX2 CPU with the reference SiamRPN, full range gave 64 % relative error on
    ``cls``, 7 bits 2 %. Full range (``reduce_range=False``) is for VNNI/AMX CPUs and TensorRT.
    activations: ``s8`` (int8, symmetric, zero point 0: what TensorRT takes) or ``u8`` (uint8 with a zero point:
    after a ReLU all 256 levels are used instead of 128; onnxruntime and OpenVINO only)."""

    sequences: int = 6
    frames: int = 12
    keep: tuple[str, ...] | None = None
    sensitivity: bool = True
    method: str = "minmax"
    reduce_range: bool = True
    activations: str = "s8"

    def key(self) -> dict[str, Any]:
        """What the calibration ranges depend on (``keep``, ``sensitivity`` and ``reduce_range`` do not)."""
        return {"sequences": self.sequences, "frames": self.frames, "method": self.method,
                "seed": CALIBRATION_SEED, "version": 1,
                # percentile ranges are made symmetric while calibrating (min/max ones when quantizing)
                "symmetric_ranges": self.activations == "s8" if self.method == "percentile" else None}


def import_quantization() -> Any:
    try:
        from onnxruntime import quantization
    except ImportError:
        raise DependencyError("INT8 export needs onnxruntime's quantization tools: pip install onnxruntime") \
            from None
    return quantization


# ---------------------------------------------------------------------------------------------- stages
def _scope_rest(name: str) -> str | None:
    for scope in FP16_SCOPES:
        if name.startswith(scope):
            return name[len(scope):]
    return None


def _is_neck(name: str) -> bool:
    return name.startswith(("/net/neck/", "/neck/"))


def backbone_stages(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Stage name -> node names, in graph order, for every backbone/neck node of ``model`` (see the module
    docstring for how stages are named)."""
    nodes = [n for n in model.graph.node if _scope_rest(n.name) is not None]
    backbone = [n for n in nodes if not _is_neck(n.name)]
    depth = 1
    first = {(_scope_rest(n.name) or "").split("/")[0] for n in backbone if n.op_type == "Conv"}
    if len(first) <= 1:
        depth = 2  # one sequential container (AlexNet's ``features``): its children are the stages
    stages: dict[str, list[str]] = {}
    current: str | None = None
    for node in nodes:
        if _is_neck(node.name):
            stages.setdefault(NECK, []).append(node.name)
            continue
        parts = (_scope_rest(node.name) or "").split("/")
        name = parts[min(depth, len(parts) - 1) - 1] if len(parts) > 1 else parts[0]
        if node.op_type == "Conv" or current is None:
            current = name
        stages.setdefault(current, []).append(node.name)
    return stages


def check_keep(stages: Iterable[str], keep: Sequence[str]) -> None:
    """Refuse ``keep`` entries that name no stage of this model."""
    known = list(stages)
    unknown = [k for k in keep if k not in known]
    if unknown:
        raise ExportError(f"--int8-keep {','.join(unknown)}: no such backbone stage in this model (stages: "
                          f"{', '.join(known)})")


def resolve_keep(model: onnx.ModelProto, keep: Sequence[str] | None) -> tuple[str, ...]:
    """``keep`` as stage names: None is the first backbone stage (the stem), checked against ``model``."""
    stages = backbone_stages(model)
    if keep is None:
        return tuple(list(stages)[:1])
    check_keep(stages, keep)
    return tuple(keep)


def int8_nodes(model: onnx.ModelProto, keep: Sequence[str] | None = ()) -> list[str]:
    """The nodes to quantize: every backbone/neck node outside the ``keep`` stages (None: the first stage)."""
    stages = backbone_stages(model)
    if not stages:
        return []
    keep = resolve_keep(model, keep)
    return [n for stage, names in stages.items() if stage not in keep for n in names]


# ---------------------------------------------------------------------------------------------- calibration
class _Reader:
    """An onnxruntime ``CalibrationDataReader`` over a list of feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.feeds = feeds
        self._it = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self.feeds)

    def __len__(self) -> int:
        return len(self.feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._it = iter(self.feeds[start_index:end_index])


def _resize_blob(blob: np.ndarray, side: int) -> np.ndarray:
    import cv2

    out = [cv2.resize(np.ascontiguousarray(b.transpose(1, 2, 0)), (side, side), interpolation=cv2.INTER_LINEAR)
           for b in blob]
    return np.ascontiguousarray(np.stack(out).transpose(0, 3, 1, 2), np.float32)


def calibration_feeds(loaded: Any, folder: str, options: Int8Options) -> dict[str, list[dict[str, np.ndarray]]]:
    """Graph name -> calibration feeds, recorded while the FP32 export (onnxruntime) tracks
    ``options.sequences`` generated photo sequences of ``options.frames`` frames (480x360)."""
    from ..engine.base import Engine, SearchOutput
    from ..engine.onnxruntime_engine import OnnxRuntimeEngine
    from ..runtime.trackers import make_tracker
    from ..synthetic.photos import photo_sequence, training_photos

    manifest = read_manifest(folder, verify=False)
    inner = OnnxRuntimeEngine(folder, manifest, "fp32")
    templates: list[np.ndarray] = []
    searches: list[tuple[np.ndarray, list[np.ndarray]]] = []

    class Recorder(Engine):
        backend, precision, device = inner.backend, "fp32", "cpu"
        exemplar_size = inner.exemplar_size
        head_outputs = inner.head_outputs

        def _template(self, z: np.ndarray) -> Any:
            templates.append(z.copy())
            kernels = inner._template(z)
            self.kernels_np = [np.asarray(k.numpy() if hasattr(k, "numpy") else k, np.float32) for k in kernels]
            return kernels

        def _search(self, x: np.ndarray, kernels: Any) -> SearchOutput:
            searches.append((x.copy(), self.kernels_np))
            return inner._search(x, kernels)

        def refine(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
            return inner.refine(extras, cell)

        def mask_at(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
            return inner.mask_at(extras, cell)

    recorder = Recorder()
    tracker = make_tracker(recorder, loaded.preset.track, loaded.preset.name)
    photos = training_photos()
    for k in range(options.sequences):
        seq = photo_sequence(CALIBRATION_SEED + k, options.frames + 1, photos=photos)
        tracker.init(seq.frames[0], tuple(float(v) for v in seq.boxes[0]))
        for frame in seq.frames[1:]:
            tracker.track(frame)
    inner.close()
    feeds: dict[str, list[dict[str, np.ndarray]]] = {}
    exemplar = manifest.exemplar_size
    feeds["template"] = ([{"template": z} for z in templates]
                         + [{"template": _resize_blob(x[:1], exemplar)} for x, _ in searches])
    kernel_names = manifest.kernel_names("fp32")
    for size, graph in manifest.search_graphs("fp32").items():
        rows = []
        for x, kernels in searches:
            crop = x if x.shape[-1] == size else _resize_blob(x, size)
            rows.append({"search": crop, **dict(zip(kernel_names, kernels))})
        feeds[graph.name] = rows
    return feeds


def _cache_key(graph_sha: str, options: Int8Options) -> str:
    data = json.dumps({"graph_sha256": graph_sha, **options.key()}, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def cache_path(folder: str, graph_name: str, graph_sha: str, options: Int8Options) -> str:
    """Where the calibration ranges of ``graph_name`` live in an export folder."""
    return os.path.join(folder, CALIBRATION_DIR, f"{graph_name}-{_cache_key(graph_sha, options)}.json")


def _quantize(src: str, dst: str, nodes: list[str], feeds: list[dict[str, np.ndarray]] | None, cache: str,
              options: Int8Options) -> None:
    q = import_quantization()
    if options.activations not in ("s8", "u8"):
        raise ExportError(f"INT8 activations must be s8 or u8, got '{options.activations}'")
    symmetric = options.activations == "s8"
    extra: dict[str, Any] = {"ActivationSymmetric": symmetric, "WeightSymmetric": True}
    if feeds:  # ranges merged over chunks of a few crops: every intermediate tensor of a chunk is held at once
        extra["CalibStridedMinMax"] = max(d for d in range(1, 9) if len(feeds) % d == 0)
    method = q.CalibrationMethod.MinMax
    if options.method == "percentile":
        method = q.CalibrationMethod.Percentile
        extra.update(CalibPercentile=99.999, CalibTensorRangeSymmetric=symmetric)
    elif options.method != "minmax":
        raise ExportError(f"INT8 calibration method must be minmax or percentile, got '{options.method}'")
    quant_log = logging.getLogger()
    level = quant_log.level
    quant_log.setLevel(logging.ERROR)  # the quantizer's advice (pre-processing) on the root logger
    try:
        q.quantize_static(src, dst, _Reader(feeds) if feeds is not None else None, quant_format=q.QuantFormat.QDQ,
                          per_channel=True, reduce_range=options.reduce_range,
                          activation_type=q.QuantType.QInt8 if symmetric else q.QuantType.QUInt8,
                          weight_type=q.QuantType.QInt8, nodes_to_quantize=nodes, calibrate_method=method,
                          extra_options=extra, calibration_cache_path=cache)
    finally:
        quant_log.setLevel(level)


def strip_boundary_qdq(model: onnx.ModelProto, quantized: Iterable[str]) -> int:
    """Take the FP32 nodes (correlation, heads) off the Q/DQ pairs the quantizer puts on the quantized region's
    outputs: a node outside ``quantized`` that reads ``DequantizeLinear(QuantizeLinear(t))`` reads ``t``
    itself, and pairs left without readers are removed. Returns how many inputs were rewired. In place."""
    chosen = set(quantized)
    made_by = {o: n for n in model.graph.node for o in n.output}
    rewired = 0
    for node in model.graph.node:
        if node.name in chosen or node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for i, name in enumerate(node.input):
            dq = made_by.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = made_by.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                continue  # a weight's DQ (an int8 initializer): not the activation boundary
            node.input[i] = q.input[0]
            rewired += 1
    while True:  # drop Q/DQ nodes nobody reads any more
        used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
        dead = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                and not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            model.graph.node.remove(n)
    used = {i for n in model.graph.node for i in n.input}
    for init in [i for i in model.graph.initializer if i.name not in used]:
        model.graph.initializer.remove(init)
    return rewired


@dataclass
class Int8Graph:
    """One written INT8 graph: file name, quantized node names, the others (FP32)."""

    file: str
    quantized: list[str]
    fp32_nodes: list[str]


def write_int8_graphs(loaded: Any, folder: str, graphs: Sequence[Any], options: Int8Options,
                      previous: str | None = None) -> tuple[dict[str, Int8Graph], dict[str, Any]]:
    """Write ``<graph>_int8.onnx`` for every FP32 graph of ``graphs`` (manifest GraphFile entries) in
    ``folder``; returns ``({graph name: Int8Graph}, info)`` where info holds the calibration and sensitivity
    report. Calibration ranges are taken from ``folder`` or ``previous`` (an earlier export of the same
    destination) when their key matches, else measured and stored in ``folder``."""
    from .exporter import MAX_IR_VERSION

    opset = max((o.version for o in onnx.load(os.path.join(folder, graphs[0].file)).opset_import
                 if o.domain in ("", "ai.onnx")), default=0)
    if opset < MIN_INT8_OPSET:
        raise ExportError(f"INT8 export needs opset >= {MIN_INT8_OPSET} (per-channel QuantizeLinear), got --opset "
                          f"{opset}; pass --opset {MIN_INT8_OPSET} or higher")
    os.makedirs(os.path.join(folder, CALIBRATION_DIR), exist_ok=True)
    # the calibration is keyed by the graph and its shared weights file (the graph file alone keeps its bytes
    # when only the weights change)
    manifest = read_manifest(folder, verify=False)
    identity = {g.name: manifest.content_sha256(g) for g in graphs}
    feeds: dict[str, list[dict[str, np.ndarray]]] | None = None
    out: dict[str, Int8Graph] = {}
    reused: list[str] = []
    bits = "7-bit range (reduce_range)" if options.reduce_range else "full range"
    activations = "int8 symmetric" if options.activations == "s8" else "uint8 asymmetric"
    info: dict[str, Any] = {"library": "onnxruntime.quantization.quantize_static (QDQ)", "weights":
                            f"int8 symmetric per output channel, {bits}",
                            "activations": f"{activations}, {options.method}",
                            "calibration": {**options.key(), "data": "photo sequences on the training photographs, "
                                            "tracked by the FP32 export"}}
    for graph in graphs:
        src = os.path.join(folder, graph.file)
        model = onnx.load(src)
        dst_name = f"{graph.name}_int8.onnx"
        dst = os.path.join(folder, dst_name)
        stages = backbone_stages(model)
        if graph.role in ("template", "search"):
            info["keep"] = list(resolve_keep(model, options.keep))
        nodes = int8_nodes(model, options.keep)
        if not nodes:  # refine / mask_head: nothing of the backbone, the FP32 graph as it is
            shutil.copyfile(src, dst)
            out[graph.name] = Int8Graph(dst_name, [], [n.name for n in model.graph.node])
            continue
        cache = cache_path(folder, graph.name, identity[graph.name], options)
        if not os.path.isfile(cache) and previous:
            old = cache_path(previous, graph.name, identity[graph.name], options)
            if os.path.isfile(old):
                shutil.copyfile(old, cache)
        if os.path.isfile(cache):
            reused.append(graph.name)
        elif feeds is None:
            log.info("calibrating INT8 ranges on %d sequences x %d frames", options.sequences, options.frames)
            feeds = calibration_feeds(loaded, folder, options)
        _quantize(src, dst, nodes, None if os.path.isfile(cache) else feeds[graph.name], cache, options)
        quantized = onnx.load(dst)
        strip_boundary_qdq(quantized, nodes)
        quantized.ir_version = min(quantized.ir_version, MAX_IR_VERSION)
        try:
            onnx.checker.check_model(quantized, full_check=True)
        except onnx.checker.ValidationError as err:
            raise ExportError(f"{dst_name} fails onnx.checker: {str(err).splitlines()[0]}") from None
        onnx.save(quantized, dst)
        chosen = set(nodes)
        out[graph.name] = Int8Graph(dst_name, nodes, [n.name for n in model.graph.node if n.name not in chosen])
        if graph.role == "search" and graph.name == "search":
            info["stages"] = {k: len(v) for k, v in stages.items()}
    info["calibration_reused"] = reused
    if options.sensitivity:
        search = next(g for g in graphs if g.name == "search")
        if feeds is None:
            feeds = calibration_feeds(loaded, folder, Int8Options(sequences=1, frames=8))
        info["sensitivity"] = sensitivity(folder, search, feeds["search"][:8], options, identity["search"])
    return out, info


def _run_all(path: str, feeds: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return [dict(zip(names, session.run(None, f))) for f in feeds]


def _relative_errors(ref: list[dict[str, np.ndarray]], got: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """Output name -> max over samples of ``max|got - ref| / max|ref|``."""
    out: dict[str, float] = {}
    for r, g in zip(ref, got):
        for name in r:
            scale = float(np.abs(r[name]).max()) or 1.0
            out[name] = max(out.get(name, 0.0), float(np.abs(r[name] - g[name]).max()) / scale)
    return out


def sensitivity(folder: str, search: Any, feeds: list[dict[str, np.ndarray]], options: Int8Options,
                identity: str | None = None) -> dict[str, dict[str, float]]:
    """Stage -> {search output: relative error} with only that stage in INT8 (``"as exported"``: every stage
    but the kept ones), on ``feeds``; uses the stored calibration ranges (keyed by ``identity``, the graph's
    content sha256: :meth:`~siamdeploy.manifest.ExportManifest.content_sha256`; default its file's sha256)."""
    import tempfile

    src = os.path.join(folder, search.file)
    model = onnx.load(src)
    stages = backbone_stages(model)
    cache = cache_path(folder, search.name, identity or search.sha256, options)
    ref = _run_all(src, feeds)
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [(stage, names) for stage, names in stages.items()]
        runs.append(("as exported", int8_nodes(model, options.keep)))
        for stage, names in runs:
            dst = os.path.join(tmp, f"{stage}.onnx")
            _quantize(src, dst, names, None, cache, options)
            model_q = onnx.load(dst)
            strip_boundary_qdq(model_q, names)
            onnx.save(model_q, dst)
            out[stage] = _relative_errors(ref, _run_all(dst, feeds))
    return out


def sensitivity_lines(report: dict[str, dict[str, float]]) -> list[str]:
    """One line per stage: the largest relative output error with only that stage in INT8."""
    lines = []
    for stage, errors in report.items():
        worst = max(errors.values()) if errors else 0.0
        detail = ", ".join(f"{k} {v:.3f}" for k, v in errors.items())
        lines.append(f"{stage:<14} max rel. error {worst:.4f} ({detail})")
    return lines
