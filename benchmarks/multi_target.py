"""Several targets per frame: one batched engine call vs one call per target, per backend, in one process.

    python benchmarks/multi_target.py --presets siamrpn_alex_dwxcorr --targets 1,2,4,8,16,32 --frames 5

For each preset: a seeded random-weight model (latency does not depend on the weight values), exported once
with batch buckets for the target counts asked. For every (backend, device, precision) of the backend
registry that runs here and every target count N: N targets tracked through the same frames by a
``MultiTracker`` (one ``search_many`` per frame) and by N single-target trackers on the same engine (N
``search`` calls per frame), the two interleaved frame by frame after a warm-up frame. Reported per row:
per-frame latency p50/p90 (ms, all targets), throughput in target-frames per second, the gain (single /
batched frame time), engine calls per frame, and the runtime's own work per target (crop + decode, ms).
Writes ``multi_target.json`` (machine and library versions included), ``multi_target.png`` and prints a table.

``--check N --min-gain G`` exits 1 unless every backend's gain at N targets is at least G (the GPU test runs
it with N = 32, G = 10); ``--check-never-slower`` exits 1 when a batched row is slower than its single row
by more than the noise allowance (``--noise``, default 10 %).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from siamdeploy.presets import get_preset  # noqa: E402
from siamdeploy.synthetic import generate_sequence  # noqa: E402

FRAME_SIZE = (640, 480)


def target_boxes(count: int, frame_size: tuple[int, int] = FRAME_SIZE) -> list[tuple[float, float, float, float]]:
    """``count`` boxes ``(x, y, w, h)`` (frame pixels) spread over a grid of the frame."""
    width, height = frame_size
    cols = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / cols))
    cell_w, cell_h = width / cols, height / rows
    boxes = []
    for i in range(count):
        r, c = divmod(i, cols)
        w, h = min(60.0, cell_w * 0.5), min(50.0, cell_h * 0.5)
        boxes.append((c * cell_w + (cell_w - w) / 2, r * cell_h + (cell_h - h) / 2, w, h))
    return boxes


def _pct(values: list[float]) -> dict[str, float]:
    v = np.asarray(values, np.float64)
    return {"p50": float(np.percentile(v, 50)), "p90": float(np.percentile(v, 90)), "mean": float(v.mean()),
            "n": int(v.size)}


def measure(engine: Any, params: Any, name: str, count: int, frames: list[np.ndarray]) -> dict[str, Any]:
    """Batched vs single calls for ``count`` targets over ``frames`` (the first one initialises, the second
    warms up); returns per-frame ms for both modes, throughput, gain, engine calls per frame, per-target
    runtime ms."""
    from siamdeploy.families import make_tracker
    from siamdeploy.runtime.multi import MultiTracker

    boxes = target_boxes(count)
    multi = MultiTracker(engine, lambda: make_tracker(engine, params, name), max_targets=count)
    multi.init(frames[0], boxes)
    singles = [make_tracker(engine, params, name) for _ in boxes]
    for tracker, box in zip(singles, boxes):
        tracker.init(frames[0], box)
    batched_ms: list[float] = []
    single_ms: list[float] = []
    runtime_ms: list[float] = []
    calls: list[int] = []
    for index, frame in enumerate(frames[1:]):
        order = ("batched", "single") if index % 2 == 0 else ("single", "batched")
        for mode in order:  # interleaved: drift in machine load hits both modes alike
            before = engine.search_calls
            t0 = time.perf_counter()
            if mode == "batched":
                multi.track(frame)
            else:
                for tracker in singles:
                    tracker.track(frame)
            took = (time.perf_counter() - t0) * 1000
            if index == 0:
                continue  # warm-up frame (bucket sessions are made on first use)
            if mode == "batched":
                batched_ms.append(took)
                calls.append(engine.search_calls - before)
                runtime_ms.append((multi.timings.get("preprocess", 0.0) + multi.timings.get("postprocess", 0.0))
                                  * 1000 / count)
            else:
                single_ms.append(took)
    b, s = _pct(batched_ms), _pct(single_ms)
    return {"targets": count, "batched_ms": b, "single_ms": s,
            "batched_target_fps": count * 1000 / b["mean"], "single_target_fps": count * 1000 / s["mean"],
            "gain": s["mean"] / b["mean"], "calls_per_frame": float(np.mean(calls)),
            "runtime_ms_per_target": _pct(runtime_ms)}


def engines_for(preset_name: str, workdir: str, buckets: tuple[int, ...], only: list[str] | None,
                skip_cpu: bool = False) -> tuple[list[tuple[str, Any]], list[tuple[str, str]]]:
    """(label, factory) for every registered configuration that runs here (``only``: labels or backend names
    to keep; ``skip_cpu``: GPU rows only), and (label, reason) for those that cannot."""
    import torch

    from siamdeploy.backends.registry import LoadRequest, configurations, load_engine
    from siamdeploy.checkpoint import load_model
    from siamdeploy.errors import SiamDeployError
    from siamdeploy.export.exporter import export_model
    from siamdeploy.models.random_init import random_model

    confs = [c for c in configurations() if (only is None or c.label in only or c.backend.name in only)
             and not (skip_cpu and c.device == "cpu")]
    ckpt = os.path.join(workdir, f"{preset_name}.pth")
    torch.save(random_model(get_preset(preset_name), seed=0).state_dict(), ckpt)
    folder = os.path.join(workdir, f"export_{preset_name}")
    half = any(c.ok and c.precision == "fp16" and c.backend.takes_export for c in confs)
    export_model(load_model(ckpt, preset=preset_name), folder, precision="both" if half else "fp32",
                 validate=False, progress=False, buckets=buckets)
    runnable: list[tuple[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    for conf in confs:
        if not conf.ok:
            skipped.append((conf.label, conf.why))
            continue
        path, preset = (ckpt, preset_name) if conf.backend.takes_checkpoint and not conf.backend.takes_export \
            else (folder, None)
        request = LoadRequest(path, preset=preset, device=conf.device, precision=conf.precision, buckets=buckets)
        try:
            load_engine(conf.backend.name, request)[0].close()
        except SiamDeployError as err:
            skipped.append((conf.label, str(err)))
            continue
        runnable.append((conf.label, lambda n=conf.backend.name, r=request: load_engine(n, r)[0]))
    return runnable, skipped


def format_table(rows: list[dict[str, Any]]) -> list[str]:
    """One line per (preset, backend, N): frame p50 batched / single (ms), target-frames/s both ways, gain,
    calls per frame, runtime per target (ms)."""
    head = (f"{'preset':<22}{'backend':<26}{'N':>4}{'batched p50':>13}{'single p50':>12}{'batched t-f/s':>15}"
            f"{'single t-f/s':>14}{'gain':>7}{'calls':>7}{'rt/target':>11}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['preset']:<22}{r['backend']:<26}{r['targets']:>4}{r['batched_ms']['p50']:>13.2f}"
                     f"{r['single_ms']['p50']:>12.2f}{r['batched_target_fps']:>15.1f}{r['single_target_fps']:>14.1f}"
                     f"{r['gain']:>7.2f}{r['calls_per_frame']:>7.1f}{r['runtime_ms_per_target']['p50']:>11.3f}")
    return lines


def plot(rows: list[dict[str, Any]], path: str) -> str | None:
    """Target-frames per second against N, batched (solid) and single (dashed), per preset and backend."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logging.warning("matplotlib is not installed: no plot (pip install 'siamdeploy[bench]')")
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    keys = sorted({(r["preset"], r["backend"]) for r in rows})
    for i, key in enumerate(keys):
        sel = sorted((r for r in rows if (r["preset"], r["backend"]) == key), key=lambda r: r["targets"])
        n = [r["targets"] for r in sel]
        colour = f"C{i % 10}"
        ax.plot(n, [r["batched_target_fps"] for r in sel], "-o", color=colour, label=f"{key[1]} {key[0]} batched")
        ax.plot(n, [r["single_target_fps"] for r in sel], "--x", color=colour, label=f"{key[1]} {key[0]} single")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("targets per frame (N)")
    ax.set_ylabel("target-frames per second")
    ax.set_title("one batched call per frame vs N single calls")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def environment() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                            "processor": platform.processor(), "cpus": os.cpu_count()}
    for module in ("torch", "onnxruntime", "openvino", "tensorrt", "numpy", "cv2"):
        try:
            info[module] = __import__(module).__version__
        except Exception:  # noqa: BLE001 - not installed (or broken): recorded as absent
            info[module] = None
    try:
        import torch

        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["cuda"] = None
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", nargs="+", default=["siamrpn_alex_dwxcorr"])
    ap.add_argument("--targets", default="1,2,4,8,16,32", help="target counts N (default 1,2,4,8,16,32)")
    ap.add_argument("--frames", type=int, default=5, help="tracked frames per N (after one warm-up frame)")
    ap.add_argument("--backends", nargs="*", default=None,
                    help="configuration labels or backend names to run (default: every one that runs here)")
    ap.add_argument("--skip-cpu", action="store_true", help="GPU rows only")
    ap.add_argument("--out", default="runs/multi_target", help="folder for multi_target.json and .png")
    ap.add_argument("--check", type=int, default=None, metavar="N", help="target count whose gain --min-gain checks")
    ap.add_argument("--min-gain", type=float, default=1.0)
    ap.add_argument("--check-never-slower", action="store_true",
                    help="exit 1 when a batched row is slower than single calls beyond --noise")
    ap.add_argument("--noise", type=float, default=0.10, help="relative noise allowance of --check-never-slower")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    counts = sorted({int(v) for v in args.targets.split(",") if v.strip()})
    if not counts or counts[0] < 1 or args.frames < 1:
        ap.error("--targets must be positive integers and --frames at least 1")
    if args.check is not None and args.check not in counts:
        counts = sorted({*counts, args.check})
    buckets = tuple(sorted({1, *[c for c in counts if c <= 32]}))  # every N has its bucket (more than 32: split)
    os.makedirs(args.out, exist_ok=True)
    rows: list[dict[str, Any]] = []
    skipped_all: dict[str, str] = {}
    from siamdeploy.families import family_of  # noqa: F401 - the registry is imported before tracking

    with tempfile.TemporaryDirectory() as work:
        for preset_name in args.presets:
            preset = get_preset(preset_name)
            seq = generate_sequence(seed=7, num_frames=args.frames + 2, size=FRAME_SIZE)
            runnable, skipped = engines_for(preset_name, work, buckets, args.backends, args.skip_cpu)
            skipped_all.update(skipped)
            for label, factory in runnable:
                engine = factory()
                try:
                    for count in counts:
                        row = measure(engine, preset.track, preset_name, count, seq.frames)
                        row.update(preset=preset_name, backend=label, engine=engine.describe(),
                                   buckets=list(engine.buckets))
                        rows.append(row)
                        print(format_table([row])[-1], flush=True)
                finally:
                    engine.close()
    print()
    print("\n".join(format_table(rows)))
    for label, why in skipped_all.items():
        print(f"skipped {label}: {why}")
    result = {"environment": environment(), "frames": args.frames, "targets": counts, "buckets": list(buckets),
              "rows": rows, "skipped": skipped_all}
    with open(os.path.join(args.out, "multi_target.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    png = plot(rows, os.path.join(args.out, "multi_target.png"))
    print(f"wrote {os.path.join(args.out, 'multi_target.json')}" + (f" and {png}" if png else ""))
    status = 0
    if args.check is not None:
        checked = [r for r in rows if r["targets"] == args.check]
        if not checked:
            print(f"check: no backend ran N = {args.check}")
            status = 1
        for r in checked:
            if r["buckets"] == [1]:
                print(f"check {r['backend']} N={args.check}: not checked, this engine runs one call per target")
                continue
            ok = r["gain"] >= args.min_gain
            print(f"check {r['backend']} N={args.check}: gain {r['gain']:.2f}x (goal >= {args.min_gain:g}x) "
                  f"{'ok' if ok else 'FAILED'}")
            status |= 0 if ok else 1
    if args.check_never_slower:
        for r in rows:
            if r["targets"] > 1 and r["batched_ms"]["mean"] > r["single_ms"]["mean"] * (1 + args.noise):
                print(f"slower: {r['backend']} N={r['targets']} batched {r['batched_ms']['mean']:.2f} ms vs single "
                      f"{r['single_ms']['mean']:.2f} ms")
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
