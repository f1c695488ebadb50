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

All rows of a preset run interleaved: every tracker is set up first, then each frame goes to each tracker in
turn (the order rotating per frame), so load on a shared machine falls on every row alike.

    python benchmarks/latency.py --upstream /path/to/pysot --presets siamrpn_alex_dwxcorr siamrpn_r50_l234_dwxcorr

``--upstream PATH`` adds a row for STVIR/pysot's own tracker from the user's checkout (``ModelBuilder`` +
``build_tracker`` with the checkout's ``experiments/<preset>/config.yaml``, the same random weights written as a
pysot checkpoint, the same frames), for the presets pysot has; every other row then also gets its speed-up over
that row (upstream frame p50 / row frame p50). The upstream row's search time is its ``model.track`` call (plus
``model.mask_refine`` for SiamMask, as the engines' refine is added to theirs); its runtime overhead the rest of
``tracker.track`` (crops, decode, mask post-processing), as for the others.
The checkout is imported through the shims of ``tools/upstream_traces`` (numpy 2 aliases, ``F.upsample``,
OpenCV 4's ``findContours``); nothing in it is changed. Needs ``yacs`` (``pip install -e '.[traces]'``).
"""
from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import platform
import sys
import tempfile
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # siamdeploy, tools

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

    # SiamMask's mask branch is network time too: added to the frame's search time, so that the runtime overhead
    # column is the runtime's own work only
    def refine(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
        return self._added(self.inner.refine, extras, cell)

    def mask_at(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
        return self._added(self.inner.mask_at, extras, cell)

    def _added(self, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args)
        if self.sync:
            self.sync()
        if self.search_ms:
            self.search_ms[-1] += (time.perf_counter() - t0) * 1000
        return out


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


UPSTREAM_LABEL = "upstream pysot (torch fp32, cpu)"


class UpstreamPysot:
    """STVIR/pysot's tracker from a checkout, timed like :class:`TimedEngine`: ``template_ms`` / ``search_ms``
    are its ``model.template`` / ``model.track`` calls (the network), the rest of ``track`` is its runtime.

    checkout: the pysot repository root (``pysot/`` and ``experiments/`` in it); preset_name: a pysot preset
    whose experiment folder the checkout has; state: the float32 state dict in pysot's key names; workdir: a
    scratch folder for the checkpoint and the stripped config. pysot keeps one global config, so one instance
    at a time is live (the next one resets it).
    """

    backend, device, precision = "upstream pysot", "cpu", "fp32"

    def __init__(self, checkout: str, preset_name: str, state: dict[str, Any], workdir: str) -> None:
        import torch

        from tools.upstream_traces import shims
        from tools.upstream_traces.checkpoints import upstream_checkpoint
        from tools.upstream_traces.runners.pysot import _stripped_config

        shims.restore_numpy_aliases()
        shims.upsample_as_interpolate()
        if checkout not in sys.path:
            sys.path.insert(0, checkout)
        from pysot.core.config import cfg
        from pysot.models.model_builder import ModelBuilder
        from pysot.tracker.tracker_builder import build_tracker

        global _PYSOT_DEFAULTS
        if _PYSOT_DEFAULTS is None:
            _PYSOT_DEFAULTS = cfg.clone()
        cfg.defrost()
        for key in [k for k in cfg if k not in _PYSOT_DEFAULTS]:  # forget the previous preset's experiment
            del cfg[key]
        for key, value in _PYSOT_DEFAULTS.items():  # (a merge would keep its extra KWARGS keys)
            cfg[key] = value.clone() if hasattr(value, "clone") else value
        config = os.path.join(workdir, f"pysot_{preset_name}.yaml")
        _stripped_config(upstream_experiment(checkout, preset_name), config)
        cfg.merge_from_file(config)
        cfg.CUDA = False
        ckpt = os.path.join(workdir, f"pysot_{preset_name}.pth")
        torch.save(upstream_checkpoint(preset_name, state), ckpt)
        model = ModelBuilder()
        model.load_state_dict(torch.load(ckpt, map_location="cpu"), strict=True)
        model.eval()
        self.template_ms: list[float] = []
        self.search_ms: list[float] = []
        model.template = self._timed(model.template, self.template_ms)  # the tracker calls self.model.<fn>
        model.track = self._timed(model.track, self.search_ms)
        if hasattr(model, "mask_refine"):  # SiamMask's refine: network time of the same frame, as for the engines
            model.mask_refine = self._added(model.mask_refine, self.search_ms)
        self.model = model
        self.tracker = build_tracker(model)
        if cfg.MASK.MASK:
            import cv2
            from pysot.tracker import siammask_tracker
            siammask_tracker.cv2 = shims.OpenCV4Facade(cv2)  # type: ignore[attr-defined]
        self._torch = torch

    @staticmethod
    def _timed(fn: Any, store: list[float]) -> Any:
        def timed(*args: Any) -> Any:
            t0 = time.perf_counter()
            out = fn(*args)
            store.append((time.perf_counter() - t0) * 1000)
            return out
        return timed

    @staticmethod
    def _added(fn: Any, store: list[float]) -> Any:
        def timed(*args: Any) -> Any:
            t0 = time.perf_counter()
            out = fn(*args)
            if store:
                store[-1] += (time.perf_counter() - t0) * 1000
            return out
        return timed

    def init(self, frame: np.ndarray, box: Any) -> None:
        with self._torch.no_grad():
            self.tracker.init(frame, [float(v) for v in box])

    def track(self, frame: np.ndarray) -> Any:
        with self._torch.no_grad():
            return self.tracker.track(frame)


_PYSOT_DEFAULTS: Any = None


def upstream_experiment(checkout: str, preset_name: str) -> str:
    """The checkout's ``experiments/<preset>/config.yaml`` (pysot names its experiments as siamdeploy's
    pysot presets)."""
    return os.path.join(checkout, "experiments", preset_name, "config.yaml")


def upstream_skip_reason(checkout: str, preset_name: str) -> str:
    """Why the upstream row cannot run for ``preset_name`` ('' when it can)."""
    if get_preset(preset_name).source != "pysot":
        return f"{preset_name} is not a pysot preset (the upstream row runs STVIR/pysot's tracker)"
    if not os.path.isfile(upstream_experiment(checkout, preset_name)):
        return f"the checkout has no experiments/{preset_name}/config.yaml"
    return ""


class _Row:
    """One tracker being measured: its frame times and where its template/search times are kept."""

    def __init__(self, label: str, tracker: Any, timed: Any, info: tuple[str, str, str]) -> None:
        self.label, self.tracker, self.timed, self.info = label, tracker, timed, info
        self.frame_ms: list[float] = []


def _summary(row: _Row, warmup: int) -> dict[str, Any]:
    frame_ms = row.frame_ms[warmup:]
    search = row.timed.search_ms[warmup:]
    overhead = [f - s for f, s in zip(frame_ms, search)]
    backend, device, precision = row.info
    return {"backend": backend, "device": device, "precision": precision,
            "template_ms": _pct(row.timed.template_ms[1:] or row.timed.template_ms), "search_ms": _pct(search),
            "runtime_overhead_ms": _pct(overhead), "frame_ms": _pct(frame_ms),
            "fps": 1000.0 / float(np.mean(frame_ms))}


def measure_interleaved(preset_name: str, factories: list[tuple[str, Any]], frames: int, warmup: int,
                        upstream: Any = None) -> dict[str, dict[str, Any]]:
    """Every engine of ``factories`` (label, factory) and the optional ``upstream`` tracker (a zero-argument
    callable returning an :class:`UpstreamPysot`) on the same 640x480 frames, frame by frame in turn (the
    order rotating each frame). Returns label -> ``{template_ms, search_ms, runtime_overhead_ms, frame_ms:
    {p50, p90, p99, mean, n} (ms), fps, backend, device, precision}``; ``warmup`` frames are left out."""
    preset = get_preset(preset_name)
    seq = generate_sequence(seed=1, num_frames=frames + warmup + 1, size=(640, 480))
    rows: list[_Row] = []
    syncs: dict[str, Any] = {}
    for label, factory in factories:
        inner = factory()
        sync = None
        if inner.device.startswith("cuda") and inner.backend == "torch":
            import torch
            sync = torch.cuda.synchronize
        engine = TimedEngine(inner, sync)
        rows.append(_Row(label, make_tracker(engine, preset.track, preset.name), engine,
                         (inner.backend, inner.device, inner.precision)))
        syncs[label] = sync
    if upstream is not None:
        up = upstream()
        rows.append(_Row(UPSTREAM_LABEL, up, up, (up.backend, up.device, up.precision)))
    for row in rows:
        row.tracker.init(seq.frames[0], seq.boxes[0])
    for i, frame in enumerate(seq.frames[1:]):
        for k in range(len(rows)):
            row = rows[(i + k) % len(rows)]
            t0 = time.perf_counter()
            row.tracker.track(frame)
            if syncs.get(row.label):
                syncs[row.label]()
            row.frame_ms.append((time.perf_counter() - t0) * 1000)
    for _ in range(max(3, warmup)):  # template timing: a few repeated inits
        for row in rows:
            row.tracker.init(seq.frames[0], seq.boxes[0])
    out = {row.label: _summary(row, warmup) for row in rows}
    for row in rows:
        close = getattr(row.timed, "inner", None)
        if close is not None:
            close.close()
    return out


def speedups(rows: dict[str, dict[str, Any]]) -> dict[str, float]:
    """label -> upstream frame p50 / that row's frame p50 (empty without an upstream row)."""
    if UPSTREAM_LABEL not in rows:
        return {}
    ref = rows[UPSTREAM_LABEL]["frame_ms"]["p50"]
    return {label: ref / r["frame_ms"]["p50"] for label, r in rows.items() if label != UPSTREAM_LABEL}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["siamrpn_alex_dwxcorr", "siamrpn_mobilev2_l234_dwxcorr",
                                                      "siamrpn_r50_l234_dwxcorr"])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--json", default="benchmarks/results/latency.json")
    ap.add_argument("--skip-cpu", action="store_true", help="leave out the CPU backends (a GPU machine's check)")
    ap.add_argument("--upstream", metavar="PATH", default=None,
                    help="a STVIR/pysot checkout: add its own tracker as a row, interleaved, and print every row's "
                         "speed-up over it (end to end per frame, p50)")
    ap.add_argument("--only", nargs="+", default=None, metavar="LABEL",
                    help="run only the rows whose label contains one of these words (e.g. onnxruntime openvino)")
    args = ap.parse_args()
    if args.upstream is not None:
        args.upstream = os.path.abspath(args.upstream)
        if not os.path.isfile(os.path.join(args.upstream, "pysot", "core", "config.py")):
            ap.error(f"--upstream {args.upstream}: not a STVIR/pysot checkout (no pysot/core/config.py in it)")
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
            if args.only:
                skipped += [(label, "--only") for label, _ in runnable if not any(w in label for w in args.only)]
                runnable = [(label, make) for label, make in runnable if any(w in label for w in args.only)]
            upstream: Any = None
            if args.upstream is not None:
                why = upstream_skip_reason(args.upstream, preset)
                if why:
                    skipped.append((UPSTREAM_LABEL, why))
                else:
                    # the random weights engines_for saved for this preset
                    state = torch.load(os.path.join(workdir, f"{preset}.pth"), map_location="cpu", weights_only=True)
                    upstream = functools.partial(UpstreamPysot, args.upstream, preset, state, workdir)
            rows = measure_interleaved(preset, runnable, args.frames, args.warmup, upstream)
            ratios = speedups(rows)
            results["presets"][preset] = {"results": rows, "skipped": dict(skipped)}
            if ratios:
                results["presets"][preset]["speedup_vs_upstream"] = ratios
            print(f"\n{preset} (640x480 frames, {args.frames} frames after {args.warmup} warm-up, rows interleaved; "
                  "ms p50 / p90 / p99)")
            print("\n".join(format_table(rows)))
            for label, reason in skipped:
                print(f"{label:<24}skipped: {reason}")
            if ratios:
                print(f"speed-up over {UPSTREAM_LABEL}, end to end per frame (p50):")
                for label, ratio in ratios.items():
                    print(f"  {label:<40} x{ratio:.2f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=2)
    chart = plot(results, os.path.splitext(args.json)[0] + ".png")
    print(f"\nwrote {args.json}" + (f" and {chart}" if chart else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
