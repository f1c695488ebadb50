"""Accuracy of every available backend on a benchmark folder, and its agreement with the PyTorch FP32 tracker.

    python benchmarks/accuracy.py                                   # reference SiamRPN, held-out photo scenes
    python benchmarks/accuracy.py --preset siamfc                   # reference SiamFC
    python benchmarks/accuracy.py --model model.pth --config config.yaml --dataset otb --root data/OTB100

Backends: torch CPU FP32 (the reference), torch CPU FP16 (the whole network ``half()``; where it runs and
fits the time budget), and every other (backend, device, precision) of the backend registry that runs here
(onnxruntime FP32/FP16/INT8 and OpenVINO FP32/BF16/INT8 from one export folder, CUDA and TensorRT where
present); configurations that cannot run here (BF16 on a CPU without it, ...) are listed with the reason. Per backend:

- the benchmark metrics (OTB success AUC / precision; LaSOT adds normalized precision; GOT-10k AO / SR);
- agreement with the reference, **free-running**: each tracker follows its own predictions; per-frame IoU
  with the reference's box (small numeric differences can compound until the trackers part ways);
- agreement, **teacher-forced**: before every ``track()`` call the backend's tracker gets the reference
  tracker's state before that frame (``tracker.set_state(state)``, the whole state value: centre, size, crop
  size, the long-term lost flag, SiamFC's crop sides; ``siamdeploy.compare.teacher_force``), so each frame
  measures one step of numeric difference: IoU, centre distance (px) and score difference against the
  reference's output.

Default model: the shipped reference model of ``--preset`` (``siamdeploy.reference_model``; SiamRPN AlexNet
unless ``--preset siamfc``), trained on generated scenes: its score maps are peaked, so the metrics and the
agreement columns both mean something (``--random-weights`` runs a seeded random-weight model instead).
Default data: held-out generated photo scenes written as an OTB-layout folder (3 sequences x 40 frames,
480x360, exact ground truth; ``--data textures`` for the procedural-texture generator at ``--size``).
Prints a table and writes JSON (machine, versions, what ran and what was skipped, with reasons).
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
from collections.abc import Callable
from typing import Any

import numpy as np

try:
    from siamdeploy import load_tracker
    from siamdeploy.compare import ACCURACY_GATE, compare_boxes, teacher_force
    from siamdeploy.errors import SiamDeployError
    from siamdeploy.eval.datasets import BenchmarkSequence, load_dataset
    from siamdeploy.eval.generate import generate_benchmark
    from siamdeploy.eval.runner import HEADLINE, compute_metrics
    from siamdeploy.presets import get_preset
    from siamdeploy.runtime import Tracker
    from siamdeploy.runtime.trackers.state import TrackerState
except ImportError as err:  # pragma: no cover - a checkout that was never installed
    sys.exit(f"error: cannot import siamdeploy ({err}); install it first: pip install -e '.[onnx,dev,bench]'")

log = logging.getLogger("accuracy")
# ---------------------------------------------------------------------------------------------- backends
def half_torch_tracker(ckpt: str, preset: str | None, config: str | None, device: str) -> Tracker:
    """A tracker over the whole torch network converted to FP16 (inputs cast to half, outputs back to float32).
    The torch engine's own ``precision="fp16"`` (backbone and neck only) needs CUDA; this is the CPU probe."""
    import torch

    from siamdeploy.checkpoint import load_model
    from siamdeploy.engine.base import SearchOutput
    from siamdeploy.engine.torch_engine import TorchEngine
    from siamdeploy.runtime import make_tracker

    class HalfTorchEngine(TorchEngine):
        precision = "fp16"

        def __init__(self, net: Any, dev: str) -> None:
            super().__init__(net, dev)
            self.net = self.net.half()
            self.precision = "fp16"

        def _tensor(self, arr: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(arr).to(self.device).half()

        def _search(self, x: np.ndarray, kernels: Any) -> SearchOutput:
            out = super()._search(x, kernels)
            return SearchOutput({k: v.astype(np.float32) for k, v in out.outputs.items()}, out.extras)

    loaded = load_model(ckpt, config=config, preset=preset)
    engine = HalfTorchEngine(loaded.net, device)
    return make_tracker(engine, loaded.preset.track, loaded.preset.name)


def backends(ckpt: str, preset: str | None, config: str | None, workdir: str, wanted: set[str] | None
             ) -> tuple[list[tuple[str, Callable[[], Tracker]]], list[tuple[str, str]]]:
    """(label, factory) for every registered (backend, device, precision) that can run here, the reference
    (torch cpu fp32) first, and (label, reason) for the rest. torch gets the checkpoint, every other backend one
    export folder with all the precisions the export writes."""
    from siamdeploy.backends.registry import configurations
    from siamdeploy.checkpoint import load_model
    from siamdeploy.export.exporter import export_model

    run: list[tuple[str, Callable[[], Tracker]]] = []
    skipped: list[tuple[str, str]] = []

    def add(label: str, factory: Callable[[], Tracker]) -> None:
        if wanted is None or label in wanted or not run:
            run.append((label, factory))
        else:
            skipped.append((label, "not selected (--backends)"))

    add("torch cpu fp32", lambda: load_tracker(ckpt, config=config, preset=preset, backend="torch", device="cpu"))
    add("torch cpu fp16 (whole network)", lambda: half_torch_tracker(ckpt, preset, config, "cpu"))
    folder = os.path.join(workdir, "export")
    try:
        from siamdeploy.export.int8 import Int8Options

        # fp32 + fp16 + int8 (INT8: calibrated on tracked generated sequences, the stem kept in FP32)
        export_model(load_model(ckpt, config=config, preset=preset), folder, precision="all", validate=False,
                     progress=False, int8=Int8Options(sensitivity=False))
    except SiamDeployError as err:
        folder = ""
        skipped.append(("export folder", f"export failed: {err}"))
    for conf in configurations():
        if conf.label == "torch cpu fp32":
            continue
        if not conf.ok:
            skipped.append((conf.label, conf.why))
        elif conf.backend.takes_checkpoint and not conf.backend.takes_export:
            add(conf.label, lambda c=conf: load_tracker(ckpt, config=config, preset=preset, backend=c.backend.name,
                                                        device=c.device, precision=c.precision))
        elif folder:  # engines (TensorRT) are built, or taken from the cache, on first load
            add(conf.label, lambda c=conf: load_tracker(folder, backend=c.backend.name, device=c.device,
                                                        precision=c.precision))
    return run, skipped


# ---------------------------------------------------------------------------------------------- runs
def run_free(tracker: Tracker, frames: list[np.ndarray], init: np.ndarray, record: bool = False
             ) -> tuple[np.ndarray, np.ndarray, list[float], list[TrackerState]]:
    """Free-running pass: (boxes, scores, seconds per tracked frame, states before each frame if ``record``)."""
    tracker.init(frames[0], tuple(float(v) for v in init))
    boxes, scores, times, states = [np.asarray(init, np.float64)], [np.nan], [], []
    for frame in frames[1:]:
        if record:
            states.append(tracker.state)
        t0 = time.perf_counter()
        result = tracker.track(frame)
        times.append(time.perf_counter() - t0)
        boxes.append(np.asarray(result.bbox, np.float64))
        scores.append(result.score)
    return np.stack(boxes), np.asarray(scores), times, states


def run_forced(tracker: Tracker, frames: list[np.ndarray], init: np.ndarray, states: list[TrackerState]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Teacher-forced pass: the reference's state before each frame is set before each ``track()``."""
    steps = teacher_force(tracker, frames, tuple(float(v) for v in init), states)
    boxes = [np.asarray(init, np.float64)] + [np.asarray(s.result.bbox, np.float64) for s in steps]
    return np.stack(boxes), np.asarray([np.nan] + [s.result.score for s in steps])


def agreement(boxes: list[np.ndarray], ref: list[np.ndarray], scores: list[np.ndarray] | None = None,
              ref_scores: list[np.ndarray] | None = None) -> dict[str, float]:
    """IoU / centre distance / score difference against the reference over all tracked frames (not frame 1)."""
    a = np.concatenate([b[1:] for b in boxes])
    r = np.concatenate([b[1:] for b in ref])
    boxes_agree = compare_boxes(a, r)
    out: dict[str, float] = boxes_agree.summary()
    verdict = ACCURACY_GATE.check(boxes_agree)
    out["fraction_iou_ge_gate"] = verdict.fraction
    out["gate_passed"] = verdict.passed
    if scores is not None and ref_scores is not None:
        d = np.abs(np.concatenate([s[1:] for s in scores]) - np.concatenate([s[1:] for s in ref_scores]))
        out["score_abs_max"] = float(d.max())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", help="preset id; default: siamrpn_alex_dwxcorr without --model, detected "
                                     "from --model otherwise")
    ap.add_argument("--model", help="checkpoint; default: the reference model of --preset")
    ap.add_argument("--random-weights", action="store_true",
                    help="without --model: a seeded random-weight model of --preset instead of the reference")
    ap.add_argument("--data", default="photos", choices=("photos", "textures"),
                    help="generated data without --root: held-out photo scenes (default) or procedural textures")
    ap.add_argument("--config", help="pysot config.yaml of --model")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights and of the generated data")
    ap.add_argument("--dataset", default="otb", choices=("otb", "lasot", "got10k"), help="layout of --root")
    ap.add_argument("--root", help="benchmark folder; default: generate one (OTB layout)")
    ap.add_argument("--sequences", type=int, default=3, help="generated sequences (default 3)")
    ap.add_argument("--frames", type=int, default=40, help="frames per generated sequence (default 40)")
    ap.add_argument("--size", default="320x240", help="generated frame size (default 320x240)")
    ap.add_argument("--backends", nargs="+", metavar="LABEL",
                    help="run only these backends, e.g. 'onnxruntime cpu fp16' (the reference always runs)")
    ap.add_argument("--max-backend-seconds", type=float, default=600.0,
                    help="skip a backend whose estimated run time (from a one-frame probe) exceeds this")
    ap.add_argument("--json", default="benchmarks/results/accuracy.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    import onnx
    import torch

    versions = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                "onnx": onnx.__version__}
    try:
        import onnxruntime
        versions["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    try:
        with tempfile.TemporaryDirectory() as workdir:
            return _run(args, workdir, versions)
    except SiamDeployError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, workdir: str, versions: dict[str, str]) -> int:
    import torch

    preset = args.preset
    if args.model:
        ckpt, model_note = args.model, f"checkpoint {os.path.abspath(args.model)}"
    elif not args.random_weights:
        from siamdeploy.reference import reference_model

        ref = reference_model(preset or "siamrpn_alex_dwxcorr")
        ckpt, preset, args.config = ref.checkpoint, (None if ref.config else ref.preset), ref.config
        args.preset = ref.preset
        model_note = (f"reference model {ref.preset} ({ref.checkpoint}; trained on generated scenes by "
                      "scripts/train_reference.py)")
    else:
        from siamdeploy.models.random_init import random_model

        preset = preset or "siamrpn_alex_dwxcorr"
        args.preset = preset
        ckpt = os.path.join(workdir, f"{args.preset}_random_seed{args.seed}.pth")
        torch.save(random_model(get_preset(args.preset), seed=args.seed).state_dict(), ckpt)
        model_note = (f"seeded random weights (random_model(get_preset('{args.preset}'), seed={args.seed}), "
                      "calibrated BatchNorm): the metrics do not measure tracker quality, the agreement does")
    print(f"model: {model_note}")
    if args.root:
        dataset = load_dataset(args.dataset, args.root)
        data_note = f"{args.dataset} folder {os.path.abspath(args.root)}"
    elif args.data == "photos":
        root = _photo_benchmark(os.path.join(workdir, "data"), args.sequences, args.frames, args.seed)
        dataset = load_dataset("otb", root)
        data_note = (f"held-out generated photo scenes, OTB layout: {args.sequences} sequences x {args.frames} "
                     f"frames, 480x360, seeds {3000 + args.seed}.. (siamdeploy.synthetic.photos)")
    else:
        w, h = (int(v) for v in args.size.lower().split("x"))
        root, _ = generate_benchmark(os.path.join(workdir, "data"), "otb", args.sequences, args.frames, (w, h),
                                     seed=args.seed)
        dataset = load_dataset("otb", root)
        data_note = (f"generated OTB layout: {args.sequences} sequences x {args.frames} frames, {w}x{h}, seed "
                     f"{args.seed} (python -m siamdeploy.eval.generate)")
    print(f"data: {data_note}")
    seqs: list[BenchmarkSequence] = dataset.sequences
    frames = {s.name: [s.frame(i) for i in range(len(s))] for s in seqs}
    tracked_frames = sum(len(s) - 1 for s in seqs)

    wanted = set(args.backends) if args.backends else None
    runnable, skipped = backends(ckpt, preset, args.config, workdir, wanted)
    rows: dict[str, dict[str, Any]] = {}
    ref: dict[str, Any] = {}
    for index, (label, factory) in enumerate(runnable):
        try:
            tracker = factory()
            if index > 0:   # probe one frame: does it run, and does it fit the time budget?
                first = seqs[0]
                tracker.init(frames[first.name][0], tuple(float(v) for v in first.boxes[0]))
                t0 = time.perf_counter()
                tracker.track(frames[first.name][min(1, len(first) - 1)])
                estimate = (time.perf_counter() - t0) * tracked_frames * 2
                if estimate > args.max_backend_seconds:
                    skipped.append((label, f"runs, but would take ~{estimate:.0f} s here (one frame "
                                           f"{estimate / tracked_frames / 2:.2f} s; --max-backend-seconds "
                                           f"{args.max_backend_seconds:.0f})"))
                    continue
        except Exception as err:  # noqa: BLE001 - a backend that cannot run is reported, not fatal
            if index == 0:
                raise
            skipped.append((label, f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"))
            continue
        print(f"running {label} ...", flush=True)
        free, free_scores, times, states_all = [], [], [], []
        for s in seqs:
            b, sc, t, st = run_free(tracker, frames[s.name], s.boxes[0], record=index == 0)
            free.append(b)
            free_scores.append(sc)
            times += t
            states_all.append(st)
        engine = tracker.engine
        row: dict[str, Any] = {"backend": engine.backend, "device": engine.device, "precision": engine.precision,
                               "ms_per_frame": 1000.0 * float(np.mean(times)),
                               "metrics": compute_metrics(dataset.kind, seqs, free)}
        if index == 0:
            ref = {"boxes": free, "scores": free_scores, "states": states_all}
            row["reference"] = True
        else:
            forced, forced_scores = [], []
            for s, states in zip(seqs, ref["states"]):
                b, sc = run_forced(tracker, frames[s.name], s.boxes[0], states)
                forced.append(b)
                forced_scores.append(sc)
            row["free_running"] = agreement(free, ref["boxes"])
            row["teacher_forced"] = agreement(forced, ref["boxes"], forced_scores, ref["scores"])
        if index == 0:
            row["free_running"] = agreement(free, free)
            row["teacher_forced"] = agreement(free, free, free_scores, free_scores)
        rows[label] = row

    _print_table(dataset.kind, rows, skipped)
    machine = {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
               "torch_threads": torch.get_num_threads(),
               "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    out = {"machine": machine, "versions": versions, "model": model_note, "preset": args.preset,
           "data": data_note, "sequences": [s.name for s in seqs], "tracked_frames": tracked_frames,
           "results": rows, "skipped": dict(skipped)}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=2)
    print(f"\nwrote {args.json}")
    return 0


def _photo_benchmark(out: str, sequences: int, frames: int, seed: int) -> str:
    """Held-out photo sequences (seeds ``3000 + seed ..``) written as an OTB folder; returns its root."""
    from siamdeploy.eval.generate import GeneratedSequence, write_layout
    from siamdeploy.synthetic.photos import heldout_photos, photo_sequence

    photos = heldout_photos()
    seqs = []
    for k in range(sequences):
        s = photo_sequence(3000 + seed + k, frames, photos=photos)
        x, y, w, h = s.boxes.T
        poly = np.stack([x, y, x + w - 1, y, x + w - 1, y + h - 1, x, y + h - 1], axis=1)
        n = len(s.frames)
        seqs.append(GeneratedSequence(s.name, s.frames, s.boxes, poly, np.ones(n), np.zeros(n, bool),
                                      np.zeros(n, bool), (), "photos"))
    return write_layout(seqs, out, "otb")


def _print_table(kind: str, rows: dict[str, dict[str, Any]], skipped: list[tuple[str, str]]) -> None:
    headline = HEADLINE[kind][:2]
    width = max([len("backend")] + [len(k) + 6 for k in rows] + [len(k) for k, _ in skipped]) + 2
    print(f"\n{'backend':<{width}}{'ran':>24}" + "".join(f"{t:>16}" for _, t in headline)
          + f"{'free IoU mean/min':>20}{'forced IoU mean/min':>22}{'forced <0.5':>12}{'gate':>12}"
          f"{'forced max dc px':>18}"
          f"{'forced max dscore':>19}{'ms/frame':>10}")
    for label, r in rows.items():
        ran = f"{r['backend']} {r['device']} {r['precision']}"
        cells = "".join(f"{r['metrics'][k]:>16.3f}" for k, _ in headline)
        fr, tf = r["free_running"], r["teacher_forced"]
        name = label + (" (ref)" if r.get("reference") else "")
        print(f"{name:<{width}}{ran:>24}{cells}{fr['iou_mean']:>13.4f}/{fr['iou_min']:.4f}"
              f"{tf['iou_mean']:>15.5f}/{tf['iou_min']:.5f}{tf['frames_iou_below_0.5']:>12d}"
              f"{('ok ' if tf['gate_passed'] else 'MISS ') + format(tf['fraction_iou_ge_gate'], '.1%'):>12}"
              f"{tf['centre_px_max']:>18.4f}"
              f"{tf.get('score_abs_max', 0.0):>19.2e}{r['ms_per_frame']:>10.1f}")
    for label, reason in skipped:
        print(f"{label:<{width}}skipped: {reason}")
    print("free: each backend follows its own boxes; forced: the reference tracker's state is copied in before "
          "every frame (one step of numeric difference); <0.5: frames with IoU < 0.5 (a different peak chosen); "
          f"gate: share of forced frames at IoU >= {ACCURACY_GATE.min_iou} (needs {ACCURACY_GATE.min_fraction:.0%}). "
          "IoU / centre distance / score against torch cpu fp32.")


if __name__ == "__main__":
    sys.exit(main())
