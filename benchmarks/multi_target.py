"""Several targets per frame: one batched engine call vs one call per target, per backend, in one process.

    python benchmarks/multi_target.py --presets siamrpn_alex_dwxcorr --targets 1,2,3,4,5,8,12,16 --frames 9

For each preset: a seeded random-weight model (latency does not depend on the weight values), exported once
with the default batch buckets (1, 2, 4, 8, 16, 32; ``--buckets``), so target counts between buckets (3, 5,
12) run the way a user's export runs them. For every (backend, device, precision) of the backend registry
that runs here and every target count N: N targets tracked through the same frames by a ``MultiTracker``
(``search_many``: one call per bucket the engine's batch policy picks) and by N single-target trackers on
the same engine (N ``search`` calls per frame). The two alternate frame by frame, the order flipping every
frame, after a warm-up frame, so a noisy machine's load falls on both alike; the gain is the median of the
per-frame ratios single / batched (N = 1 is the control: its gain should read 1.00). Reported per row:
per-frame latency p50/p90 (ms, all targets), throughput in target-frames per second, the gain, engine calls
per frame, and the runtime's own work per target (crop, blob, decode; ms).

The runtime section (``--runtime-only`` to run it alone, ``--no-runtime`` to skip it) drives the same trackers
over an engine that returns fixed outputs at no cost, so only the runtime's work is timed: per target the
crop (cut + resize), the blob (uint8 crop -> float32 rows of the batched input) and the decode (scores, boxes,
penalties, selection, state update), and the cost of one extra target (frame time at N = 16 minus N = 1,
over 15). Writes ``multi_target.json`` (machine, library versions and the load average included),
``multi_target.png`` and prints a table.

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
    warms up); returns per-frame ms for both modes, throughput, gain (median of the per-frame ratios),
    engine calls per frame, per-target runtime ms."""
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
    ratios = [one / many for one, many in zip(single_ms, batched_ms)]  # the two runs of one frame, back to back
    return {"targets": count, "batched_ms": b, "single_ms": s,
            "batched_target_fps": count * 1000 / b["p50"], "single_target_fps": count * 1000 / s["p50"],
            "gain": float(np.median(ratios)), "gain_of_medians": s["p50"] / b["p50"],
            "calls_per_frame": float(np.mean(calls)), "runtime_ms_per_target": _pct(runtime_ms)}


class FixedOutputs:
    """Stands in for a network: every search returns the same outputs at no cost (a score peak at the centre
    cell, no box offset, so the targets keep their place), to time the runtime's own work."""

    def __init__(self, params: Any) -> None:
        from siamdeploy.families import family_of

        p = params
        if not family_of(p).anchored:
            side = (p.instance_size - p.exemplar_size) // p.stride + 1
            grid = np.linspace(-1, 1, side, dtype=np.float32) ** 2
            response = -(grid[:, None] + grid[None, :])
            self.outputs = {"response": np.repeat(response[None, None], family_of(p).search_batch(p), 0)}
        else:
            n = p.score_size(p.instance_size)
            grid = np.linspace(-2, 2, n, dtype=np.float32) ** 2
            logits = np.zeros((1, 2 * p.anchor_num, n, n), np.float32)
            logits[0, p.anchor_num:] = -(grid[:, None] + grid[None, :])
            self.outputs = {"cls": logits, "loc": np.zeros((1, 4 * p.anchor_num, n, n), np.float32)}

    def engine(self) -> Any:
        from siamdeploy.engine.base import Engine, SearchOutput, pad_rows

        outputs = self.outputs

        class Fixed(Engine):
            backend = "fixed-outputs"
            buckets = (1, 2, 4, 8, 16, 32)
            batch_policy = "split"
            head_outputs = tuple(outputs)

            def search_buckets(self, x: np.ndarray) -> tuple[int, ...]:
                return self.buckets

            def _template(self, z: np.ndarray) -> Any:
                return ()

            def _search(self, x: np.ndarray, kernels: Any) -> SearchOutput:
                return SearchOutput({k: v.copy() for k, v in outputs.items()})

            def _search_batch(self, xs: Any, kernels: Any, bucket: int) -> list[SearchOutput]:
                pad_rows(xs, bucket)  # what a real engine does with its input
                return [self._search(x, k) for x, k in zip(xs, kernels)]

            def refine(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
                return np.zeros((127, 127), np.float32)

            def mask_at(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
                return np.zeros((63, 63), np.float32)

        return Fixed()


def runtime_costs(params: Any, name: str, frames: list[np.ndarray], rounds: int = 30,
                  many: int = 16) -> dict[str, float]:
    """The runtime's own work per target (ms, medians over ``rounds`` frames, the network replaced by fixed
    outputs): ``crop``, ``blob``, ``decode`` per target at N = ``many``, and ``per_extra_target``: (frame time
    at N = ``many`` - frame time at N = 1) / (``many`` - 1), the two alternating frame by frame."""
    from siamdeploy.families import make_tracker
    from siamdeploy.runtime.multi import MultiTracker

    engine = FixedOutputs(params).engine()
    multis = {}
    for count in (1, many):
        multis[count] = MultiTracker(engine, lambda: make_tracker(engine, params, name), max_targets=count)
        multis[count].init(frames[0], target_boxes(count))
    frame_ms: dict[int, list[float]] = {1: [], many: []}
    parts: dict[str, list[float]] = {"crop": [], "blob": [], "decode": []}
    trackers = list(multis[many]._trackers.values())
    for index in range(rounds + 1):
        frame = frames[1 + index % (len(frames) - 1)]
        for count in ((1, many) if index % 2 == 0 else (many, 1)):
            t0 = time.perf_counter()
            multis[count].track(frame)
            if index:
                frame_ms[count].append((time.perf_counter() - t0) * 1000)
        # the same work by stages, on the N-target trackers' current states (their states are restored after)
        states = [t.state for t in trackers]
        t0 = time.perf_counter()
        requests = [t.prepare(frame, blob=False) for t in trackers]
        t1 = time.perf_counter()
        batch = engine.search_input(len(requests), requests[0].crops, requests[0].size)
        for row, request in zip(batch, requests):
            request.write_blob(row)
        t2 = time.perf_counter()
        outs = engine.search_many(batch, [t.kernels for t in trackers])
        t3 = time.perf_counter()
        for tracker, request, out in zip(trackers, requests, outs):
            tracker.conclude(request, out)
        t4 = time.perf_counter()
        for tracker, state in zip(trackers, states):
            tracker.set_state(state)
        if index:
            for key, took in (("crop", t1 - t0), ("blob", t2 - t1), ("decode", t4 - t3)):
                parts[key].append(took * 1000 / many)
    result = {key: float(np.median(v)) for key, v in parts.items()}
    result["total"] = result["crop"] + result["blob"] + result["decode"]
    result["per_extra_target"] = (float(np.median(frame_ms[many])) - float(np.median(frame_ms[1]))) / (many - 1)
    result["frame_ms_1"] = float(np.median(frame_ms[1]))
    result[f"frame_ms_{many}"] = float(np.median(frame_ms[many]))
    return result


def format_runtime(rows: list[dict[str, Any]]) -> list[str]:
    head = (f"{'preset':<26}{'crop':>8}{'blob':>8}{'decode':>8}{'total':>8}{'per extra target':>18}"
            f"{'frame N=1':>11}{'frame N=16':>12}   (ms)")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['preset']:<26}{r['crop']:>8.3f}{r['blob']:>8.3f}{r['decode']:>8.3f}{r['total']:>8.3f}"
                     f"{r['per_extra_target']:>18.3f}{r['frame_ms_1']:>11.3f}"
                     f"{r.get('frame_ms_16', float('nan')):>12.3f}")
    return lines


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
    """One line per (preset, backend, N): frame p50 batched / single (ms), target-frames/s both ways, gain
    (median per-frame ratio single / batched), calls per frame, runtime per target (ms)."""
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
    ap.add_argument("--targets", default="1,2,3,4,5,8,12,16,32",
                    help="target counts N (default 1,2,3,4,5,8,12,16,32; N = 1 is the control)")
    ap.add_argument("--buckets", default="1,2,4,8,16,32", help="batch buckets of the export (default 1,2,4,8,16,32)")
    ap.add_argument("--frames", type=int, default=5, help="tracked frames per N (after one warm-up frame)")
    ap.add_argument("--runtime-only", action="store_true", help="only the runtime section (no network runs)")
    ap.add_argument("--no-runtime", action="store_true", help="skip the runtime section")
    ap.add_argument("--runtime-rounds", type=int, default=40, help="frames the runtime section times")
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
    try:
        buckets = tuple(sorted({1, *(int(v) for v in args.buckets.split(",") if v.strip())}))
    except ValueError:
        ap.error("--buckets must be positive integers, e.g. 1,2,4,8,16,32")
    if buckets[0] < 1:
        ap.error("--buckets must be positive integers, e.g. 1,2,4,8,16,32")
    os.makedirs(args.out, exist_ok=True)
    rows: list[dict[str, Any]] = []
    runtime_rows: list[dict[str, Any]] = []
    skipped_all: dict[str, str] = {}
    load_before = os.getloadavg()
    print(f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} on {os.cpu_count()} CPUs",
          flush=True)
    from siamdeploy.families import family_of  # noqa: F401 - the registry is imported before tracking

    with tempfile.TemporaryDirectory() as work:
        for preset_name in args.presets:
            preset = get_preset(preset_name)
            seq = generate_sequence(seed=7, num_frames=args.frames + 2, size=FRAME_SIZE)
            if not args.no_runtime:
                costs = runtime_costs(preset.track, preset_name, seq.frames, rounds=args.runtime_rounds)
                runtime_rows.append({"preset": preset_name, **costs})
                print(format_runtime(runtime_rows[-1:])[-1], flush=True)
            if args.runtime_only:
                continue
            runnable, skipped = engines_for(preset_name, work, buckets, args.backends, args.skip_cpu)
            skipped_all.update(skipped)
            for label, factory in runnable:
                engine = factory()
                try:
                    for count in counts:
                        row = measure(engine, preset.track, preset_name, count, seq.frames)
                        row.update(preset=preset_name, backend=label, engine=engine.describe(),
                                   buckets=list(engine.buckets), policy=engine.batch_policy)
                        rows.append(row)
                        print(format_table([row])[-1], flush=True)
                finally:
                    engine.close()
    load_after = os.getloadavg()
    print()
    if runtime_rows:
        print("runtime work per target (fixed network outputs, N = 16):")
        print("\n".join(format_runtime(runtime_rows)))
        print()
    if rows:
        print("\n".join(format_table(rows)))
    print(f"load average at the start {load_before[0]:.2f}, at the end {load_after[0]:.2f} (1-minute)")
    for label, why in skipped_all.items():
        print(f"skipped {label}: {why}")
    result = {"environment": environment(), "frames": args.frames, "targets": counts, "buckets": list(buckets),
              "load_average": {"start": list(load_before), "end": list(load_after)},
              "runtime": runtime_rows, "rows": rows, "skipped": skipped_all}
    with open(os.path.join(args.out, "multi_target.json"), "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    png = plot(rows, os.path.join(args.out, "multi_target.png")) if rows else None
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
            if r["targets"] > 1 and r["gain"] * (1 + args.noise) < 1.0:
                print(f"slower: {r['backend']} N={r['targets']} batched {r['batched_ms']['p50']:.2f} ms vs single "
                      f"{r['single_ms']['p50']:.2f} ms (median per-frame gain {r['gain']:.2f})")
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
