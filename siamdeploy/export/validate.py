"""Post-export validation: onnxruntime against PyTorch on real and random crops, per tensor, plus one
tracked frame through the real runtime with each engine. All mismatches are collected, then raised once."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..synthetic.sequence import generate_sequence
from ..checkpoint import LoadedModel
from ..errors import ExportError
from ..eval.metrics import iou
from ..runtime.trackers import make_tracker
from .graphs import search_batch, search_sizes

# |onnx - torch| <= atol + rtol * max|torch|, per tensor. FP16 is loose on purpose: with seeded random
# weights the deepest MobileNetV2 level differs by ~15% of max|ref| after an FP16 backbone, and torch's own
# half precision on the same split differs by more (measured). The FP16 gate that matters is the tracked box.
TOLERANCE = {"fp32": (1e-4, 1e-4), "fp16": (5e-2, 2e-1)}
# one tracked frame: max box difference (px) for fp32, IoU for fp16
BOX_TOLERANCE_PX = 0.05
FP16_MIN_IOU = 0.9


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    if hasattr(value, "numpy"):
        return value.numpy()
    return np.asarray(value)


def _compare(name: str, ref: np.ndarray, got: np.ndarray, precision: str, report: list[str],
             failures: list[str]) -> None:
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    if ref.shape != got.shape:
        failures.append(f"{name}: shape {got.shape}, torch {ref.shape}")
        return
    err = float(np.abs(ref - got).max()) if ref.size else 0.0
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    atol, rtol = TOLERANCE[precision]
    limit = atol + rtol * scale
    report.append(f"{precision} {name}: max|d| {err:.2e} (max|ref| {scale:.2e}, limit {limit:.2e})")
    if not np.isfinite(got).all() or err > limit:
        failures.append(f"{name} max|d| {err:.3g} > {limit:.3g}")


def _crops(loaded: LoadedModel) -> list[tuple[str, np.ndarray, dict[int, np.ndarray]]]:
    """(label, template blob, {search size: search blob}) for a real frame and for uniform noise."""
    from ..runtime.crop import round_by_rule, square_crop, to_blob, truncated_fill

    p = loaded.preset.track
    seq = generate_sequence(seed=0, num_frames=2, size=(480, 360))
    x, y, w, h = seq.boxes[0]
    centre = (x + (w - 1) / 2, y + (h - 1) / 2)
    context = p.context_amount * (w + h)
    s_z = float(np.sqrt((w + context) * (h + context)))
    fill = truncated_fill(seq.frames[0].mean(axis=(0, 1)))
    rgb = p.colour == "rgb"
    z = to_blob([square_crop(seq.frames[0], centre, round(s_z), p.exemplar_size, fill, "floor_half_up")], rgb)
    batch = search_batch(loaded.preset)
    real = {}
    for size in search_sizes(loaded.preset):
        side = round_by_rule(s_z * size / p.exemplar_size, "half_even")
        patches = [square_crop(seq.frames[1], centre, side + 8 * k, size, fill, "floor_half_up") for k in range(batch)]
        real[size] = to_blob(patches, rgb)
    rng = np.random.default_rng(0)
    noise_z = rng.uniform(0, 255, z.shape).astype(np.float32)
    noise = {s: rng.uniform(0, 255, b.shape).astype(np.float32) for s, b in real.items()}
    return [("real crops", z, real), ("random crops", noise_z, noise)]


def validate_export(loaded: LoadedModel, folder: str, precisions: list[str]) -> list[str]:
    """Compare every graph of ``folder`` with the torch model; returns report lines, raises on mismatch."""
    from ..engine.onnxruntime_engine import OnnxRuntimeEngine
    from ..engine.torch_engine import TorchEngine

    reference = TorchEngine(loaded.net, "cpu")
    report: list[str] = []
    failures: list[str] = []
    for precision in precisions:
        engine = OnnxRuntimeEngine(folder, precision, "cpu", verify=False)
        for label, z, searches in _crops(loaded):
            ref_k = reference.template(z)
            got_k = engine.template(z)
            for name, a, b in zip(engine.kernel_names, ref_k, got_k):
                _compare(f"template.{name} ({label})", _numpy(a), _numpy(b), precision, report, failures)
            for size, x in searches.items():
                ref = reference.search(x, ref_k)
                got = engine.search(x, got_k)
                graph = engine.search_by_size[size]
                for name in ref.outputs:
                    _compare(f"{graph}.{name} ({label})", ref.outputs[name], got.outputs[name], precision, report,
                             failures)
                if ref.extras:
                    n = ref.outputs["cls"].shape[-1]
                    cell = (n // 2, n // 2)
                    if "refine" in engine.sessions:
                        _compare(f"refine.mask_logits ({label})", reference.refine(ref.extras, cell),
                                 engine.refine(got.extras, cell), precision, report, failures)
                    if "mask_head" in engine.sessions:
                        _compare(f"mask_head.mask_logits ({label})", reference.mask_at(ref.extras, cell),
                                 engine.mask_at(got.extras, cell), precision, report, failures)
        _check_one_frame(loaded, reference, engine, precision, report, failures)
    if failures:
        raise ExportError(f"export validation failed against PyTorch: {'; '.join(failures)}")
    return report


def _check_one_frame(loaded: LoadedModel, reference: Any, engine: Any, precision: str, report: list[str],
                     failures: list[str]) -> None:
    """Init on frame 0 and track frame 1 with both engines through the real runtime; compare the boxes."""
    seq = generate_sequence(seed=0, num_frames=2, size=(480, 360))
    boxes = []
    for eng in (reference, engine):
        tracker = make_tracker(eng, loaded.preset.track, loaded.preset.name)
        tracker.init(seq.frames[0], seq.boxes[0])
        boxes.append(np.asarray(tracker.track(seq.frames[1]).bbox))
    diff = float(np.abs(boxes[0] - boxes[1]).max())
    overlap = float(iou(boxes[0], boxes[1])[0])
    report.append(f"{precision} tracked box: max|d| {diff:.2e} px, IoU {overlap:.4f}")
    if precision == "fp32" and diff > BOX_TOLERANCE_PX:
        failures.append(f"fp32 tracked box differs by {diff:.3g} px (> {BOX_TOLERANCE_PX})")
    if precision == "fp16" and overlap < FP16_MIN_IOU:
        failures.append(f"fp16 tracked box IoU {overlap:.3f} < {FP16_MIN_IOU}")
