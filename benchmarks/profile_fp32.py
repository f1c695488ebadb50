"""Where the FP32 frame time goes, per stage, and what session settings change, side by side in one process.

    python benchmarks/profile_fp32.py --preset siamrpn_r50_l234_dwxcorr --frames 8
    python benchmarks/profile_fp32.py --variants ort ort+nospin ort+t1 ov ov+throughput --frames 8

For one preset (a seeded random-weight model exported once, fp32): every variant tracks the same 640x480
frames, interleaved frame by frame, and the script prints per variant the frame p50, the engine p50 and the
rest (the runtime's own work), each as a ratio to the first variant; then the runtime's stages per call
(crop, blob, decode: score, boxes, penalty, selection; ms) and onnxruntime's own profile of the search graph
(time per operator type, and per backbone stage / neck / head), which says whether anything but the
convolutions costs time.

Variants: ``ort`` (the onnxruntime engine as shipped); ``ort+OPT+OPT...`` rebuilds its sessions with
``nospin`` / ``spin`` (``session.intra_op.allow_spinning`` 0 / 1), ``noarena`` (no CPU memory arena),
``tN`` (N intra-op threads), ``ext`` (graph optimisation EXTENDED instead of ALL); ``ov`` (the OpenVINO
engine as shipped: LATENCY hint, one stream, all physical cores), ``ov+throughput`` (THROUGHPUT hint, OpenVINO
picks the streams), ``ov+tN`` (N threads).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from siamdeploy.presets import get_preset  # noqa: E402
from siamdeploy.runtime.trackers import make_tracker, rpn  # noqa: E402
from siamdeploy.synthetic import generate_sequence  # noqa: E402

STAGES: dict[str, list[float]] = collections.defaultdict(list)


def _wrap_stage(name: str, stage: str) -> None:
    """Time every call of ``rpn.<name>`` (the tracker module's own reference) under ``stage``."""
    fn = getattr(rpn, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        STAGES[stage].append((time.perf_counter() - t0) * 1000)
        return out

    setattr(rpn, name, timed)


def export(preset: str, workdir: str) -> str:
    """A seeded random-weight model of ``preset`` exported (fp32) into ``workdir``; returns the folder."""
    import torch

    from siamdeploy.checkpoint import load_model
    from siamdeploy.export.exporter import export_model
    from siamdeploy.models.random_init import random_model

    ckpt = os.path.join(workdir, "model.pth")
    torch.save(random_model(get_preset(preset), seed=0).state_dict(), ckpt)
    folder = os.path.join(workdir, "export")
    export_model(load_model(ckpt, preset=preset), folder, precision="fp32", validate=False, progress=False)
    return folder


def make_engine(variant: str, folder: str) -> Any:
    """The engine a variant names (see the module docstring)."""
    from siamdeploy.manifest import graph_path, read_manifest

    manifest = read_manifest(folder)
    base, *opts = variant.split("+")
    if base == "ov":
        from siamdeploy.engine import openvino_engine as ove

        threads = next((int(o[1:]) for o in opts if o[:1] == "t" and o[1:].isdigit()), None)
        engine = ove.OpenVINOEngine(folder, manifest, num_threads=threads)
        if "throughput" in opts:  # recompile with OpenVINO's THROUGHPUT hint (it picks the streams)
            for graph in manifest.graphs_for("fp32"):
                compiled = ove.core().compile_model(graph_path(folder, graph), "CPU", {
                    "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "THROUGHPUT"})
                engine._compiled[graph.name] = compiled
                engine._requests[graph.name] = compiled.create_infer_request()
        return engine
    if base != "ort":
        raise SystemExit(f"unknown variant '{variant}' (ort[+opt...] or ov[+opt...])")
    import onnxruntime as ort

    from siamdeploy.engine.onnxruntime_engine import OnnxRuntimeEngine

    engine = OnnxRuntimeEngine(folder, manifest)
    if not opts:
        return engine
    options = ort.SessionOptions()
    options.log_severity_level = 3
    for opt in opts:
        if opt in ("nospin", "spin"):
            options.add_session_config_entry("session.intra_op.allow_spinning", "0" if opt == "nospin" else "1")
        elif opt == "noarena":
            options.enable_cpu_mem_arena = False
        elif opt == "ext":
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        elif opt.startswith("t") and opt[1:].isdigit():
            options.intra_op_num_threads = int(opt[1:])
        else:
            raise SystemExit(f"unknown onnxruntime option '{opt}' in '{variant}'")
    for graph in manifest.graphs_for("fp32"):
        engine.sessions[graph.name] = ort.InferenceSession(graph_path(folder, graph), options,
                                                           providers=["CPUExecutionProvider"])
    return engine


def ort_op_profile(folder: str, runs: int = 3) -> list[str]:
    """onnxruntime's profiler on the search graph: ms per run by operator type and by network part."""
    import onnxruntime as ort

    from siamdeploy.manifest import graph_path, read_manifest

    manifest = read_manifest(folder)
    search = next(g for g in manifest.graphs_for("fp32") if g.role == "search")
    template = next(g for g in manifest.graphs_for("fp32") if g.role == "template")
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = os.path.join(tmp, "search")
        session = ort.InferenceSession(graph_path(folder, search), options, providers=["CPUExecutionProvider"])
        t_session = ort.InferenceSession(graph_path(folder, template), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        z = rng.uniform(0, 255, (1, 3, manifest.exemplar_size, manifest.exemplar_size)).astype(np.float32)
        kernels = t_session.run(None, {"template": z})
        feeds: dict[str, Any] = dict(zip([o.name for o in t_session.get_outputs()], kernels))
        shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
        feeds[session.get_inputs()[0].name] = rng.uniform(0, 255, shape).astype(np.float32)
        feeds = {i.name: feeds[i.name] for i in session.get_inputs()}
        session.run(None, feeds)  # warm-up, also profiled: dropped below
        for _ in range(runs):
            session.run(None, feeds)
        with open(session.end_profiling(), encoding="utf-8") as fh:
            events = json.load(fh)
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    per_run = len(nodes) // (runs + 1)
    nodes = nodes[per_run:]  # without the warm-up run
    by_op: dict[str, float] = collections.defaultdict(float)
    by_part: dict[str, float] = collections.defaultdict(float)
    for e in nodes:
        by_op[e["args"].get("op_name", "?")] += e["dur"] / 1000 / runs
        parts = e["name"].split("/")
        part = "/".join(parts[1:3]) if len(parts) > 2 and parts[1] in ("backbone", "rpn_head") else (
            parts[1] if len(parts) > 1 else "other")
        by_part[part] += e["dur"] / 1000 / runs
    total = sum(by_op.values())
    lines = [f"onnxruntime profile of {search.file} ({runs} runs): {total:.1f} ms per run in operators"]
    lines += [f"  {op:<28}{ms:10.2f} ms {100 * ms / total:6.1f} %" for op, ms in
              sorted(by_op.items(), key=lambda kv: -kv[1])]
    lines.append("  by network part:")
    lines += [f"  {part:<28}{ms:10.2f} ms {100 * ms / total:6.1f} %" for part, ms in
              sorted(by_part.items(), key=lambda kv: -kv[1])[:12]]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="siamrpn_r50_l234_dwxcorr")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--variants", nargs="+", default=["ort", "ort+nospin", "ort+noarena", "ov"])
    ap.add_argument("--export", default=None, help="an existing fp32 export folder of --preset (skips exporting)")
    args = ap.parse_args()
    preset = get_preset(args.preset)
    for name, stage in (("square_crop", "crop"), ("float_crop", "crop"), ("to_blob", "blob"),
                        ("foreground_scores", "decode: scores"), ("decode_boxes", "decode: boxes"),
                        ("size_penalty", "decode: penalty"), ("select_best", "decode: selection")):
        _wrap_stage(name, stage)
    with tempfile.TemporaryDirectory() as workdir:
        folder = args.export or export(args.preset, workdir)
        seq = generate_sequence(seed=1, num_frames=args.frames + args.warmup + 1, size=(640, 480))
        engine_ms: dict[str, list[float]] = {v: [] for v in args.variants}
        trackers = {}
        for variant in args.variants:
            engine = make_engine(variant, folder)
            inner = engine._search

            def timed(x: np.ndarray, kernels: Any, inner: Any = inner, variant: str = variant) -> Any:
                t0 = time.perf_counter()
                out = inner(x, kernels)
                engine_ms[variant].append((time.perf_counter() - t0) * 1000)
                return out

            engine._search = timed  # type: ignore[method-assign]
            trackers[variant] = make_tracker(engine, preset.track, preset.name)
            trackers[variant].init(seq.frames[0], seq.boxes[0])
        frame_ms: dict[str, list[float]] = {v: [] for v in args.variants}
        for i, frame in enumerate(seq.frames[1:]):
            for k in range(len(args.variants)):
                variant = args.variants[(i + k) % len(args.variants)]
                t0 = time.perf_counter()
                trackers[variant].track(frame)
                frame_ms[variant].append((time.perf_counter() - t0) * 1000)
        w = args.warmup
        p50 = {v: float(np.median(frame_ms[v][w:])) for v in args.variants}
        print(f"{args.preset}: {args.frames} frames after {w} warm-up, variants interleaved (ms p50)")
        print(f"{'variant':<22}{'frame':>10}{'engine':>10}{'rest':>8}{'ratio':>8}")
        for v in args.variants:
            eng = float(np.median(engine_ms[v][w:]))
            rest = float(np.median(np.subtract(frame_ms[v][w:], engine_ms[v][w:])))
            print(f"{v:<22}{p50[v]:10.2f}{eng:10.2f}{rest:8.2f}{p50[args.variants[0]] / p50[v]:8.3f}")
        print("runtime stages per call (ms, p50 / p90):")
        for stage, values in STAGES.items():
            p50_ms, p90_ms = np.percentile(values, 50), np.percentile(values, 90)
            print(f"  {stage:<20}{p50_ms:8.3f}{p90_ms:8.3f}  ({len(values)} calls)")
        print("\n".join(ort_op_profile(folder)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
