"""Latency of the template and search steps per backend, side by side in one process.

    python benchmarks/latency.py --presets siamrpn_alex_dwxcorr siamrpn_r50_l234_dwxcorr --frames 30

For each preset: a seeded random-weight model (calibrated BatchNorm; latency does not depend on the weight
values), exported once to ONNX (fp32, fp16 and int8 graphs). Backends: every (backend, device, precision)
of the registry that runs here: torch (CPU, and CUDA when present), onnxruntime CPU fp32/fp16/int8 (and
CUDA when onnxruntime-gpu is installed), OpenVINO fp32/int8 (bf16 where the CPU has it). Per backend:
template time, search-engine time, the runtime's own work per frame (crop + decode + selection, measured
around the engine call), end-to-end
frame time; p50/p90/p99 in ms after warm-up. Prints a table and writes JSON (machine and library versions
included). Backends that cannot run here are listed with the reason.
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

from siamdeploy.synthetic import generate_sequence  # noqa: E402
from siamdeploy.engine.base import Engine, SearchOutput  # noqa: E402
from siamdeploy.presets import get_preset  # noqa: E402
from siamdeploy.runtime.trackers import make_tracker  # noqa: E402


TABLE_GROUPS = (("search_ms", "search"), ("runtime_overhead_ms", "runtime overhead"), ("frame_ms", "frame"))


def format_table(rows: dict[str, dict[str, Any]]) -> list[str]:
    """Header lines and one line per backend, every header over its own column: label, template p50,
    p50/p90/p99 of search, runtime overhead and frame (ms), FPS. All lines have the same width.

    ``rows``: backend label -> ``{"template_ms" | "search_ms" | "runtime_overhead_ms" | "frame_ms":
    {"p50", "p90", "p99"} in ms, "fps": float}``."""
    label_w = max([len("backend")] + [len(k) for k in rows]) + 2
    values = [r[key][q] for r in rows.values() for key in ("template_ms",) + tuple(k for k, _ in TABLE_GROUPS)
              for q in ("p50", "p90", "p99")]
    num = max([8] + [len(f"{v:.2f}") + 1 for v in values])  # columns widen rather than run together
    gap = 2
    group_w = 3 * num
    top = f"{'':<{label_w}}{'template':>{num + 2}}" + "".join(f"{'':<{gap}}{title:^{group_w}}" for _, title in
                                                               TABLE_GROUPS) + f"{'':>{num}}"
    quantiles = "".join(f"{q:>{num}}" for q in ("p50", "p90", "p99"))
    sub = (f"{'backend':<{label_w}}{'p50':>{num + 2}}" + "".join(f"{'':<{gap}}" + quantiles for _ in TABLE_GROUPS)
           + f"{'FPS':>{num}}")
    lines = [top, sub, "-" * len(sub)]
    for label, r in rows.items():
        cells = "".join(f"{'':<{gap}}" + "".join(f"{r[key][q]:{num}.2f}" for q in ("p50", "p90", "p99"))
                        for key, _ in TABLE_GROUPS)
        lines.append(f"{label:<{label_w}}{r['template_ms']['p50']:{num + 2}.2f}{cells}{r['fps']:{num}.1f}")
    return lines


class TimedEngine(Engine):
    """Wraps an engine and records how long each template/search call takes (with device sync)."""

    def __init__(self, inner: Engine, sync: Any = None) -> None:
        self.inner, self.sync = inner, sync
        self.backend, self.precision, self.device = inner.backend, inner.precision, inner.device
        self.exemplar_size = inner.exemplar_size
        self.template_ms: list[float] = []
        self.search_ms: list[float] = []

    def _timed(self, fn: Any, store: list[float], *args: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args)
        if self.sync:
            self.sync()
        store.append((time.perf_counter() - t0) * 1000)
        return out

    def _template(self, z: np.ndarray) -> Any:
        return self._timed(self.inner._template, self.template_ms, z)

    def _search(self, x: np.ndarray, kernels: Any) -> SearchOutput:
        return self._timed(self.inner._search, self.search_ms, x, kernels)

    def refine(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
        return self.inner.refine(extras, cell)

    def mask_at(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
        return self.inner.mask_at(extras, cell)


def _pct(values: list[float]) -> dict[str, float]:
    v = np.asarray(values)
    return {"p50": float(np.percentile(v, 50)), "p90": float(np.percentile(v, 90)),
            "p99": float(np.percentile(v, 99)), "mean": float(v.mean()), "n": int(v.size)}


def engines_for(preset_name: str, workdir: str) -> tuple[list[tuple[str, Any]], list[tuple[str, str]]]:
    """(label, factory) for every registered (backend, device, precision) that can run here, and (label, reason)
    for those that cannot. torch gets the checkpoint, the other backends one export folder (all precisions)."""
    import torch

    from siamdeploy.checkpoint import load_model
    from siamdeploy.backends.registry import LoadRequest, configurations, load_engine
    from siamdeploy.engine.torch_engine import TorchEngine
    from siamdeploy.errors import SiamDeployError
    from siamdeploy.export.exporter import export_model
    from siamdeploy.models.random_init import random_model

    ckpt = os.path.join(workdir, f"{preset_name}.pth")
    torch.save(random_model(get_preset(preset_name), seed=0).state_dict(), ckpt)
    folder = os.path.join(workdir, f"export_{preset_name}")
    from siamdeploy.export.int8 import Int8Options

    # fp32 + fp16 + int8 (calibrated on a few tracked sequences: latency does not depend on the ranges)
    export_model(load_model(ckpt, preset=preset_name), folder, precision="all", validate=False, progress=False,
                 int8=Int8Options(sequences=2, frames=6, sensitivity=False))
    runnable: list[tuple[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    for conf in configurations():
        if not conf.ok:
            skipped.append((conf.label, conf.why))
            continue
        path, preset = (ckpt, preset_name) if conf.backend.takes_checkpoint and not conf.backend.takes_export \
            else (folder, None)
        request = LoadRequest(path, preset=preset, device=conf.device, precision=conf.precision)
        try:  # load once here so that what cannot load is listed with its reason, not a traceback
            load_engine(conf.backend.name, request)[0].close()
        except SiamDeployError as err:
            skipped.append((conf.label, str(err)))
            continue
        runnable.append((conf.label, lambda n=conf.backend.name, r=request: load_engine(n, r)[0]))
        if conf.backend.name == "torch" and conf.precision == "fp16":  # the CUDA-graph variant of the same engine
            runnable.append((f"{conf.label} graph", lambda: TorchEngine(load_model(ckpt, preset=preset_name).net,
                                                                        "cuda", precision="fp16", cuda_graph=True)))
    return runnable, skipped


def plot(results: dict[str, Any], path: str) -> str | None:
    """Grouped bars of the p50 search and runtime-overhead times per backend and preset (needs matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no chart: matplotlib is not installed (pip install 'siamdeploy[bench]')")
        return None
    presets = list(results["presets"])
    fig, axes = plt.subplots(1, len(presets), figsize=(5 * len(presets), 4), squeeze=False)
    for ax, preset in zip(axes[0], presets):
        rows = results["presets"][preset]["results"]
        labels = list(rows)
        search = [rows[k]["search_ms"]["p50"] for k in labels]
        overhead = [rows[k]["runtime_overhead_ms"]["p50"] for k in labels]
        ax.barh(labels, search, label="engine (search) p50")
        ax.barh(labels, overhead, left=search, label="runtime overhead p50")
        ax.set_xlabel("ms per frame")
        ax.set_title(preset, fontsize=9)
        ax.invert_yaxis()
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"siamdeploy latency on {results['machine']['processor'] or results['machine']['platform']}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def measure(preset_name: str, factory: Any, frames: int, warmup: int) -> dict[str, Any]:
    preset = get_preset(preset_name)
    inner = factory()
    sync = None
    if inner.device.startswith("cuda") and inner.backend == "torch":
        import torch
        sync = torch.cuda.synchronize
    engine = TimedEngine(inner, sync)
    seq = generate_sequence(seed=1, num_frames=frames + warmup + 1, size=(640, 480))
    tracker = make_tracker(engine, preset.track, preset.name)
    tracker.init(seq.frames[0], seq.boxes[0])
    frame_ms = []
    for i, frame in enumerate(seq.frames[1:]):
        t0 = time.perf_counter()
        tracker.track(frame)
        elapsed = (time.perf_counter() - t0) * 1000
        if i >= warmup:
            frame_ms.append(elapsed)
    search = engine.search_ms[warmup:]
    overhead = [f - s for f, s in zip(frame_ms, search)]
    for _ in range(max(3, warmup)):  # template timing: a few repeated inits
        tracker.init(seq.frames[0], seq.boxes[0])
    return {"backend": inner.backend, "device": inner.device, "precision": inner.precision,
            "template_ms": _pct(engine.template_ms[1:] or engine.template_ms), "search_ms": _pct(search),
            "runtime_overhead_ms": _pct(overhead), "frame_ms": _pct(frame_ms),
            "fps": 1000.0 / float(np.mean(frame_ms))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["siamrpn_alex_dwxcorr", "siamrpn_mobilev2_l234_dwxcorr",
                                                      "siamrpn_r50_l234_dwxcorr"])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--json", default="benchmarks/results/latency.json")
    ap.add_argument("--skip-cpu", action="store_true", help="leave out the CPU backends (a GPU machine's check)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import onnx
    import torch

    versions = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                "onnx": onnx.__version__}
    try:
        import onnxruntime
        versions["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    results: dict[str, Any] = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                                           "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
                               "versions": versions, "frames": args.frames, "warmup": args.warmup, "presets": {}}
    with tempfile.TemporaryDirectory() as workdir:
        for preset in args.presets:
            runnable, skipped = engines_for(preset, workdir)
            if args.skip_cpu:
                skipped += [(label, "--skip-cpu") for label, _ in runnable if " cpu " in f" {label} "]
                runnable = [(label, make) for label, make in runnable if " cpu " not in f" {label} "]
            rows = {label: measure(preset, factory, args.frames, args.warmup) for label, factory in runnable}
            results["presets"][preset] = {"results": rows, "skipped": dict(skipped)}
            print(f"\n{preset} (640x480 frames, {args.frames} frames after {args.warmup} warm-up; ms p50 / p90 / p99)")
            print("\n".join(format_table(rows)))
            for label, reason in skipped:
                print(f"{label:<24}skipped: {reason}")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=2)
    chart = plot(results, os.path.splitext(args.json)[0] + ".png")
    print(f"\nwrote {args.json}" + (f" and {chart}" if chart else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
