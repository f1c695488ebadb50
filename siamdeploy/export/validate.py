"""Post-export validation: onnxruntime against PyTorch on real and random crops, per tensor, plus one
tracked frame through the real runtime with each engine. All mismatches are collected, then raised once."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..checkpoint import LoadedModel
from ..compare import OutputComparison, compare_boxes, tolerance
from ..errors import ExportError
from ..runtime.trackers import make_tracker
from ..synthetic.sequence import generate_sequence
from .graphs import search_batch, search_sizes


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


def validate_export(loaded: LoadedModel, folder: str, precisions: list[str],
                    relative: dict[str, dict[str, float]] | None = None) -> list[str]:
    """Compare every graph of ``folder`` with the torch model; returns report lines, raises on mismatch.

    ``relative``: when given, filled with precision -> tensor -> ``max|d| / max|ref|`` (largest over crops)."""
    from ..engine.onnxruntime_engine import OnnxRuntimeEngine
    from ..engine.torch_engine import TorchEngine
    from ..manifest import read_manifest

    reference = TorchEngine(loaded.net, "cpu")
    report: list[str] = []
    failures: list[str] = []
    for precision in precisions:
        engine = OnnxRuntimeEngine(folder, read_manifest(folder, verify=False), precision)
        outputs = OutputComparison.for_backend("onnxruntime", precision, reference="torch")
        for label, z, searches in _crops(loaded):
            ref_k = reference.template(z)
            got_k = engine.template(z)
            for name, a, b in zip(engine.kernel_names, ref_k, got_k):
                outputs.add(f"template.{name} ({label})", a, b)
            for size, x in searches.items():
                ref = reference.search(x, ref_k)
                got = engine.search(x, got_k)
                graph = engine.search_by_size[size]
                for name in ref.outputs:
                    outputs.add(f"{graph}.{name} ({label})", ref.outputs[name], got.outputs[name])
                if ref.extras:
                    n = ref.outputs["cls"].shape[-1]
                    cell = (n // 2, n // 2)
                    if "refine" in engine.sessions:
                        outputs.add(f"refine.mask_logits ({label})", reference.refine(ref.extras, cell),
                                    engine.refine(got.extras, cell))
                    if "mask_head" in engine.sessions:
                        outputs.add(f"mask_head.mask_logits ({label})", reference.mask_at(ref.extras, cell),
                                    engine.mask_at(got.extras, cell))
        _check_batched(reference, engine, _crops(loaded), outputs)
        report += [f"{precision} {line}" for line in outputs.report]
        if relative is not None:
            rel = relative.setdefault(precision, {})
            for diff in outputs.diffs:
                key = diff.name.rsplit(" (", 1)[0]
                rel[key] = max(rel.get(key, 0.0), diff.max_rel)
        failures += outputs.failures
        _check_one_frame(loaded, reference, engine, precision, report, failures)
    if failures:
        raise ExportError(f"export validation failed against PyTorch: {'; '.join(failures)}")
    return report


def _check_batched(reference: Any, engine: Any, crops: list[tuple[str, np.ndarray, dict[int, np.ndarray]]],
                   outputs: OutputComparison) -> None:
    """The smallest bucket graphs (two targets: the real and the random crops in one call) against torch's
    single-target outputs; the larger buckets are the same graph with another group count."""
    if len(engine.buckets) < 2:
        return
    zs = [z for _, z, _ in crops]
    ref_k = [reference.template(z) for z in zs]
    got_k = engine.template_many(zs)
    for t, (label, _, searches) in enumerate(crops):
        for size in searches:
            ref = reference.search(searches[size], ref_k[t])
            many = engine.search_many([s[size] for _, _, s in crops], got_k)
            got = many[t]
            for name in ref.outputs:
                outputs.add(f"search bucket {engine.buckets[1]} {size}.{name} ({label})", ref.outputs[name],
                            got.outputs[name])
            for head in ("refine", "mask_head"):  # SiamMask: the mask bucket graph over the same targets
                if ref.extras and len(engine.mask_buckets(head)) > 1:
                    n = ref.outputs["cls"].shape[-1]
                    cells = [(n // 2, n // 2), (n // 2 - 1, n // 2 + 1)][:len(many)]
                    run = engine.refine_many if head == "refine" else engine.mask_at_many
                    single = reference.refine if head == "refine" else reference.mask_at
                    outputs.add(f"{head} bucket {engine.mask_buckets(head)[1]} ({label})",
                                single(ref.extras, cells[t]), run([o.extras for o in many], cells)[t])


def _check_one_frame(loaded: LoadedModel, reference: Any, engine: Any, precision: str, report: list[str],
                     failures: list[str]) -> None:
    """Init on frame 0 and track frame 1 with both engines through the real runtime; compare the boxes."""
    seq = generate_sequence(seed=0, num_frames=2, size=(480, 360))
    boxes = []
    for eng in (reference, engine):
        tracker = make_tracker(eng, loaded.preset.track, loaded.preset.name)
        tracker.init(seq.frames[0], seq.boxes[0])
        boxes.append(np.asarray(tracker.track(seq.frames[1]).bbox))
    agreement = compare_boxes(boxes[1], boxes[0])
    report.append(f"{precision} tracked box: max|d| {agreement.max_px[0]:.2e} px, IoU {agreement.iou[0]:.4f}")
    failures += [f"{precision} tracked {msg}" for msg in agreement.failures(tolerance("onnxruntime", precision), 1)]
