"""The accuracy gate of reduced precisions, measured at export and kept in ``accuracy.json`` beside the
manifest (docs/export.md#accuracy-gate).

Every reduced precision the export holds (fp16 and int8 on onnxruntime CPU; OpenVINO int8 and bf16 where
OpenVINO runs them here) is teacher-forced against the torch FP32 tracker on generated photo sequences
(held-out photographs, seeds :data:`GATE_SEED`..): before each frame it gets the torch tracker's state, so
every frame measures one step of numeric difference. The gate is
:data:`siamdeploy.compare.ACCURACY_GATE` (IoU >= 0.95 on >= 99 % of frames). A precision that misses it stays
usable; the exporter and the run summary say so.

Reading the sidecar (:func:`read_accuracy`, :func:`gate_notes`) needs neither torch nor onnxruntime.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

ACCURACY_FILE = "accuracy.json"
FORMAT = "siamdeploy-accuracy"
GATE_SEED = 5000   # held-out photo sequences; INT8 calibration uses other seeds on the training photographs
FLAT_NOTE = ("meaningful on trained weights: a random-weight model's score maps are flat, so any perturbation "
             "can move the argmax and fail frames that a trained model keeps")


def label(backend: str, precision: str, device: str = "cpu") -> str:
    return f"{backend} {device} {precision}"


# ---------------------------------------------------------------------------------------------- measuring
def _candidates(folder: str, precisions: Sequence[str]) -> tuple[list[tuple[str, Any]], dict[str, str]]:
    """(label, engine factory) for each reduced precision to gate, and label -> why not measured."""
    from ..manifest import read_manifest

    manifest = read_manifest(folder, verify=False)
    run: list[tuple[str, Any]] = []
    skipped: dict[str, str] = {}
    for precision in precisions:
        if precision == "fp32":
            continue

        def ort(p: str = precision) -> Any:
            from ..engine.onnxruntime_engine import OnnxRuntimeEngine

            return OnnxRuntimeEngine(folder, manifest, p)

        run.append((label("onnxruntime", precision), ort))
    ov_precisions = [p for p in ("bf16", "int8") if p == "bf16" or p in precisions]
    try:
        import openvino  # noqa: F401
        from ..engine import openvino_engine as ove
    except ImportError:
        for p in ov_precisions:
            skipped[label("openvino", p)] = "openvino is not installed"
        return run, skipped
    for p in ov_precisions:
        ok, why = ove.check_precision("cpu", p)
        if not ok:
            skipped[label("openvino", p)] = why
            continue

        def ov(p: str = p) -> Any:
            return ove.OpenVINOEngine(folder, manifest, precision=p, num_threads=ove.threads_from_env())

        run.append((label("openvino", p), ov))
    return run, skipped


def measure_gate(loaded: Any, folder: str, precisions: Sequence[str], sequences: int = 3, frames: int = 40,
                 tensors: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """Teacher-force every reduced precision of ``folder`` against torch FP32 on ``sequences`` generated photo
    sequences of ``frames`` frames; returns the sidecar's data (see :func:`write_accuracy`).

    ``tensors``: per precision, tensor name -> max relative error from the export's validation (recorded)."""
    import numpy as np

    from ..compare import ACCURACY_GATE, compare_boxes, teacher_force
    from ..engine.torch_engine import TorchEngine
    from ..runtime.trackers import make_tracker
    from ..synthetic.photos import heldout_photos, photo_sequence

    preset = loaded.preset
    photos = heldout_photos()
    seqs = [photo_sequence(GATE_SEED + k, frames, photos=photos) for k in range(sequences)]
    reference = make_tracker(TorchEngine(loaded.net, "cpu"), preset.track, preset.name)
    states, ref_boxes, ref_scores = [], [], []
    for seq in seqs:
        init = tuple(float(v) for v in seq.boxes[0])
        reference.init(seq.frames[0], init)
        seq_states, boxes, scores = [], [], []
        for frame in seq.frames[1:]:
            seq_states.append(reference.state)
            result = reference.track(frame)
            boxes.append(result.bbox)
            scores.append(result.score)
        states.append(seq_states)
        ref_boxes.append(np.asarray(boxes, np.float64))
        ref_scores.append(np.asarray(scores, np.float64))
    run, skipped = _candidates(folder, precisions)
    results: dict[str, Any] = {}
    for name, factory in run:
        try:
            engine = factory()
        except Exception as err:  # noqa: BLE001 - reported in the sidecar, the export goes on
            skipped[name] = f"did not load: {str(err).splitlines()[0][:200]}"
            continue
        tracker = make_tracker(engine, preset.track, preset.name)
        boxes, scores = [], []
        for seq, seq_states in zip(seqs, states):
            steps = teacher_force(tracker, seq.frames, tuple(float(v) for v in seq.boxes[0]), seq_states)
            boxes.append(np.asarray([s.result.bbox for s in steps], np.float64))
            scores.append(np.asarray([s.result.score for s in steps], np.float64))
        engine.close()
        agreement = compare_boxes(np.concatenate(boxes), np.concatenate(ref_boxes))
        gate = ACCURACY_GATE.check(agreement)
        precision = name.split()[-1]
        entry = {**gate.to_dict(), "line": gate.line(), "centre_px_max": float(agreement.centre_px.max()),
                 "score_abs_max": float(np.abs(np.concatenate(scores) - np.concatenate(ref_scores)).max())}
        if tensors and name.startswith("onnxruntime") and precision in tensors:
            entry["tensor_max_rel"] = tensors[precision]
        results[name] = entry
    all_scores = np.concatenate(ref_scores)
    return {"format": FORMAT, "gate": {"min_iou": ACCURACY_GATE.min_iou, "min_fraction": ACCURACY_GATE.min_fraction,
                                       "what": ACCURACY_GATE.describe()},
            "reference": "torch cpu fp32", "data": {"kind": "generated photo sequences (held-out photographs)",
                                                    "seeds": [GATE_SEED + k for k in range(sequences)],
                                                    "frames_per_sequence": frames, "size": [480, 360]},
            "reference_score": {"mean": float(all_scores.mean()), "min": float(all_scores.min())},
            "note": FLAT_NOTE, "results": results, "not_measured": skipped}


def write_accuracy(folder: str, data: dict[str, Any]) -> str:
    """Write ``accuracy.json`` into ``folder``; returns its path."""
    path = os.path.join(folder, ACCURACY_FILE)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    return path


# ---------------------------------------------------------------------------------------------- reading
def read_accuracy(folder: str) -> dict[str, Any] | None:
    """The export's ``accuracy.json``, or None when it has none (or it is unreadable)."""
    try:
        with open(os.path.join(folder, ACCURACY_FILE), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def summary_lines(data: dict[str, Any]) -> list[str]:
    """What the exporter prints: one line per gated configuration (a miss in capitals), then the rest."""
    lines = []
    for name, entry in data.get("results", {}).items():
        line = str(entry.get("line", ""))
        lines.append(f"  {name:<22} {line}" if entry.get("passed") else f"  !!! {name:<18} {line}")
    for name, why in data.get("not_measured", {}).items():
        lines.append(f"  {name:<22} not measured: {why}")
    return lines


def gate_notes(folder: str | None, backend: str, precision: str, device: str = "cpu") -> list[str]:
    """Lines for a run summary about ``backend``/``precision`` on export ``folder``: a loud warning when it
    missed the gate at export, a short line when it passed, a note when reduced and never measured."""
    if precision == "fp32" or not folder:
        return []
    data = read_accuracy(folder)
    entry = (data or {}).get("results", {}).get(label(backend, precision, device))
    if entry is None:
        return [f"note: {backend} {precision} has no accuracy-gate measurement in {folder} (the gate is "
                f"measured on CPU at export); its boxes may differ from FP32"]
    if entry.get("passed"):
        return [f"accuracy gate ({backend} {precision}, at export): {entry.get('line', 'passed')}"]
    return [f"WARNING: {backend} {precision} MISSED the accuracy gate at export: {entry.get('line', '')}. The "
            f"boxes can differ from FP32; use precision fp32 where they must agree ({data.get('note', '')})"]
