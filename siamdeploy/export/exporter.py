"""Export a checkpoint to split ONNX graphs + manifest, validated against PyTorch.

Everything is written to a temporary folder beside the target and renamed into place only when export
and validation succeeded, so a failure leaves nothing half-written.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import shutil
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from ..errors import DependencyError, ExportError

try:
    import onnx
except ImportError:  # the CLI turns this into one line
    raise DependencyError("ONNX export needs onnx and onnxruntime: pip install 'siamdeploy[onnx]'") from None

from .. import __version__
from ..checkpoint import LoadedModel
from ..families import family_of
from ..fsutil import check_export_destination, make_temp_dir, replace_dir, sweep_stale_temp_dirs
from ..manifest import (BATCHED_ROLES, CheckpointInfo, ExportManifest, GraphFile, InputInfo, TensorInfo,
                        WeightsFile, is_export_folder, sha256_file, write_manifest)
from .fp16 import convert_mixed_fp16
from .graphs import DEFAULT_BUCKETS  # noqa: F401 - re-exported
from .graphs import GraphSpec, TensorSpec, check_buckets, plan_graphs, search_sizes
from .int8 import Int8Options
from .opset import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, check_opset  # noqa: F401 - re-exported
from .weights import SharedWeights, save_shared

log = logging.getLogger(__name__)

# onnxruntime 1.31 reads IR version <= 11 (onnx 1.23's make_model writes 14: docs/export.md#onnx-ir-version)
MAX_IR_VERSION = 10


# --precision -> the graph precisions written (fp32 always: the reference and the INT8 calibration source)
EXPORT_PRECISIONS = {"fp32": ("fp32",), "fp16": ("fp32", "fp16"), "both": ("fp32", "fp16"),
                     "int8": ("fp32", "int8"), "all": ("fp32", "fp16", "int8")}


def export_precision_for(precisions: set[str]) -> str:
    """The smallest ``--precision`` whose graphs include every precision in ``precisions``."""
    for name in ("fp32", "both", "int8", "all"):
        if precisions <= set(EXPORT_PRECISIONS[name]):
            return name
    raise ExportError(f"no export writes {', '.join(sorted(precisions))} graphs (fp32, fp16, int8 only)")


@dataclass
class ExportResult:
    """Where the export went and what validation measured (per graph and precision); ``accuracy``: the
    accuracy-gate data written to ``accuracy.json`` (None when not measured); ``int8``: calibration and
    per-stage sensitivity of the INT8 graphs (None without them)."""

    folder: str
    manifest: ExportManifest
    report: list[str]
    accuracy: dict | None = None
    int8: dict | None = None


def _input_description(loaded: LoadedModel) -> InputInfo:
    return InputInfo(colour=str(loaded.preset.track.colour), range="0..255 float32, NCHW",
                     normalisation=loaded.layout.note or "none")


def _tensors(specs: tuple[TensorSpec, ...]) -> tuple[TensorInfo, ...]:
    return tuple(TensorInfo(t.name, t.shape) for t in specs)


def _export_graph(spec: GraphSpec, module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: str,
                  opset: int, metadata: dict[str, str]) -> onnx.ModelProto:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, path, input_names=[t.name for t in spec.inputs],
                          output_names=[t.name for t in spec.outputs], opset_version=opset, dynamo=False,
                          do_constant_folding=True)
    model = onnx.load(path)
    model.ir_version = min(model.ir_version, MAX_IR_VERSION)
    for key, value in {**metadata, "graph": spec.name}.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    check(model, spec)
    declared = [(t.name, tuple(t.shape)) for t in (*spec.inputs, *spec.outputs)]
    written = [(v.name, tuple(d.dim_value for d in v.type.tensor_type.shape.dim))
               for v in (*model.graph.input, *model.graph.output)]
    if written != declared:
        raise ExportError(f"{spec.filename}: the exported graph's inputs/outputs {written} differ from the planned "
                          f"{declared}")
    return model


def _weights_entries(files: Iterable[SharedWeights]) -> tuple[WeightsFile, ...]:
    """Manifest entries of the weights files that hold a tensor (an empty one is removed)."""
    out = []
    for weights in files:
        if not weights.written:
            os.remove(weights.path)
            continue
        log.info("%s: %d tensors, %.1f MiB, referenced %d times by the %s graphs", weights.file, weights.written,
                 weights.size / 2**20, weights.references, weights.precision)
        out.append(WeightsFile(weights.file, weights.precision, sha256_file(weights.path),
                               os.path.getsize(weights.path)))
    return tuple(out)


def check(model: onnx.ModelProto, spec: GraphSpec) -> None:
    """onnx.checker with full shape inference, static shapes on every declared input/output, and for
    search graphs: every correlation Conv takes its weight from a graph input (not an initializer)."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"{spec.filename} fails onnx.checker: {str(err).splitlines()[0]}") from None
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    for value in list(inferred.graph.input) + list(inferred.graph.output):
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        if any(d <= 0 for d in dims):
            raise ExportError(f"{spec.filename}: '{value.name}' has a dynamic shape {dims}; shapes must be static")
    if spec.role in ("search", "search_batched"):
        kernel_inputs = {t.name for t in spec.inputs[1:]}
        convs = [n for n in model.graph.node
                 if n.op_type == "Conv" and len(n.input) > 1 and n.input[1] in kernel_inputs]
        if len(convs) < len(kernel_inputs) - (1 if "mask_kernel" in kernel_inputs else 0):
            raise ExportError(f"{spec.filename}: the correlation is not a Conv fed by the kernel inputs")


def export_model(loaded: LoadedModel, out_dir: str, precision: str = "fp32", opset: int = DEFAULT_OPSET,
                 validate: bool = True, progress: bool = True, overwrite: bool = True,
                 buckets: tuple[int, ...] | list[int] = (1,), int8: Int8Options | None = None, gate: bool = True,
                 gate_sequences: int = 3, gate_frames: int = 40) -> ExportResult:
    """Write ``template.onnx``, ``search*.onnx`` [, ``refine.onnx`` | ``mask_head.onnx``], one shared weights file
    per precision (``weights_fp32.bin``, ...: the graphs' initializers as ONNX external data,
    docs/export.md#shared-weights-file) and ``manifest.json`` into ``out_dir`` (replacing an earlier export
    there only on success).

    ``out_dir`` must not exist, or be an existing siamdeploy export folder (replaced only with
    ``overwrite=True``); a file or any other folder is refused with :class:`ExportError` before any work.
    precision: ``fp32`` | ``fp16`` | ``both`` | ``int8`` | ``all`` (:data:`EXPORT_PRECISIONS`; fp16 =
    backbone/neck in FP16, int8 = backbone/neck in INT8 Q/DQ (``int8`` options: :class:`Int8Options`), the
    rest FP32; the FP32 graphs are always written as the reference). opset: ONNX opset,
    :data:`MIN_OPSET`..:data:`MAX_OPSET` (13 or more with int8).
    With ``validate`` and ``gate``, every reduced precision is teacher-forced against torch FP32 on
    ``gate_sequences`` generated sequences of ``gate_frames`` frames and the result written to
    ``accuracy.json`` (:mod:`siamdeploy.export.accuracy`); missing the gate does not fail the export.
    buckets: targets per call to write batched graphs for (docs/multi_target.md#batched-graphs; the default
    ``(1,)``: single-target graphs only, as exports before buckets; ``python -m siamdeploy.export`` writes
    :data:`DEFAULT_BUCKETS` unless told otherwise).
    Raises :class:`ExportError` when validation fails.
    """
    if precision not in EXPORT_PRECISIONS:
        raise ExportError(f"precision must be {', '.join(EXPORT_PRECISIONS)}, got '{precision}'")
    if gate_sequences < 1 or gate_frames < 2:
        raise ExportError(f"the accuracy gate needs at least 1 sequence of 2 frames, got {gate_sequences} x "
                          f"{gate_frames}")
    check_opset(opset)
    buckets = check_buckets(buckets)
    if "int8" in EXPORT_PRECISIONS[precision] and opset < 13:
        raise ExportError(f"INT8 export needs opset 13 or more (per-channel QuantizeLinear), got {opset}; pass "
                          "--opset 13 or higher")
    preset = loaded.preset
    check_export_destination(out_dir, force=overwrite)
    out_dir = os.path.abspath(out_dir)
    source = os.path.realpath(loaded.path)
    if source.startswith(os.path.realpath(out_dir).rstrip(os.sep) + os.sep):
        raise ExportError(f"the checkpoint '{loaded.path}' lies inside the export destination '{out_dir}'; "
                          "replacing it would delete the checkpoint: pass another --out")
    parent = os.path.dirname(out_dir)
    name = os.path.basename(out_dir)
    os.makedirs(parent, exist_ok=True)
    for stale in sweep_stale_temp_dirs(parent, name):
        log.info("removed %s, left by an export that was killed", stale)
    tmp = make_temp_dir(parent, name)
    try:
        ckpt_sha = sha256_file(loaded.path)
        metadata = {"siamdeploy_version": __version__, "preset": preset.name, "family": preset.track.tracker,
                    "input_colour": preset.track.colour, "input_range": "0..255",
                    "checkpoint_sha256": ckpt_sha}
        plans = plan_graphs(loaded.net, preset, buckets)
        graphs: list[GraphFile] = []
        variants = list(EXPORT_PRECISIONS[precision])
        # every graph of a precision keeps its large initializers in that precision's one weights file
        # (docs/export.md#shared-weights-file): the bucket graphs repeat the single-target graphs' weights
        shared = {p: SharedWeights(tmp, p) for p in variants if p != "int8"}
        for index, (spec, module, args) in enumerate(plans, start=1):
            if progress:
                log.info("exporting %s (%d/%d)", spec.filename, index, len(plans))
            path = os.path.join(tmp, spec.filename)
            model = _export_graph(spec, module, args, path, opset, metadata)
            half = convert_mixed_fp16(model) if "fp16" in variants else None  # from the inline FP32 weights
            entry = GraphFile(name=spec.name, role=spec.role, precision="fp32", file=spec.filename,
                              sha256="", inputs=_tensors(spec.inputs), outputs=_tensors(spec.outputs),
                              instance_size=spec.instance_size, targets=spec.targets,
                              weights=save_shared(model, path, shared["fp32"]))
            graphs.append(dataclasses.replace(entry, sha256=sha256_file(path)))
            if half is not None:
                half_model, fp16_nodes, fp32_nodes = half
                half_path = os.path.join(tmp, f"{spec.name}_fp16.onnx")
                graphs.append(dataclasses.replace(entry, precision="fp16", file=os.path.basename(half_path),
                                                  weights=save_shared(half_model, half_path, shared["fp16"]),
                                                  sha256=sha256_file(half_path), fp32_nodes=tuple(fp32_nodes),
                                                  reduced_nodes=len(fp16_nodes)))
            del model, half
        weights = _weights_entries(shared.values())
        p = preset.track
        from ..runtime.anchors import anchor_shapes  # numpy only
        sizes = search_sizes(preset)
        anchored = family_of(p).anchored
        extras = {"exemplar_size": p.exemplar_size, "instance_sizes": sizes, "stride": p.stride,
                  "score_sizes": [p.score_size(s) for s in sizes] if anchored else None,
                  "buckets": list(buckets),
                  "anchors": ({"ratios": list(p.ratios), "scales": list(p.scales),
                               "shapes_wh": anchor_shapes(p.stride, p.ratios, p.scales).tolist()}
                              if anchored else None)}
        manifest = ExportManifest(
            siamdeploy_version=__version__,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            preset=preset, input=_input_description(loaded),
            checkpoint=CheckpointInfo(os.path.basename(loaded.path), ckpt_sha, loaded.layout.name),
            opset=opset, graphs=tuple(graphs), extras=extras, weights=weights)
        write_manifest(tmp, manifest)
        int8_info = None
        if "int8" in variants:
            from .int8 import write_int8_graphs

            previous = out_dir if is_export_folder(out_dir) else None
            # single-target graphs only: the calibration crops are one target's; int8 multi-target runs fall
            # back to one call per target (docs/multi_target.md#precisions)
            fp32_graphs = [g for g in graphs if g.precision == "fp32" and g.role not in BATCHED_ROLES]
            written, int8_info = write_int8_graphs(loaded, tmp, fp32_graphs, int8 or Int8Options(), previous)
            shared_int8 = SharedWeights(tmp, "int8")
            for entry in fp32_graphs:
                q = written[entry.name]
                q_path = os.path.join(tmp, q.file)
                # onnx.load reads the weights a graph references (refine_int8 is the FP32 graph as it is)
                uses = save_shared(onnx.load(q_path), q_path, shared_int8)
                graphs.append(dataclasses.replace(entry, precision="int8", file=q.file, sha256=sha256_file(q_path),
                                                  fp32_nodes=tuple(q.fp32_nodes), reduced_nodes=len(q.quantized),
                                                  weights=uses))
            manifest = dataclasses.replace(manifest, graphs=tuple(graphs), weights=(
                *manifest.weights, *_weights_entries([shared_int8])), extras={**manifest.extras, "int8": int8_info})
            write_manifest(tmp, manifest)
        report: list[str] = []
        accuracy = None
        if validate:
            from .validate import validate_export
            relative: dict[str, dict[str, float]] = {}
            report = validate_export(loaded, tmp, variants, relative)
            manifest = manifest.with_validation(report)
            if gate and len(variants) > 1:
                from .accuracy import ACCURACY_FILE, measure_gate, write_accuracy

                if progress:
                    log.info("measuring the accuracy gate of %s against torch FP32", ", ".join(variants[1:]))
                accuracy = measure_gate(loaded, tmp, variants, gate_sequences, gate_frames, relative)
                write_accuracy(tmp, accuracy)
                summary = {name: entry["passed"] for name, entry in accuracy["results"].items()}
                manifest = dataclasses.replace(manifest, extras={**manifest.extras, "accuracy_gate": {
                    "file": ACCURACY_FILE, "passed": summary}})
            write_manifest(tmp, manifest)
        replace_dir(tmp, out_dir, replaceable=is_export_folder, keep_existing=not overwrite)
        return ExportResult(out_dir, manifest, report, accuracy, int8_info)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
