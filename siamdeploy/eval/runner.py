"""Run a tracker over a benchmark folder: one-pass (OTB, LaSOT, GOT-10k) or supervised (VOT), then write the
toolkit result files, the metrics (table + JSON) and the plots.

The loops take any object with ``init(frame, box)`` and ``track(frame) -> TrackResult`` (a
:class:`siamdeploy.runtime.Tracker`), so they run the same for every backend.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from ..errors import InputError
from . import metrics as M
from .datasets import BenchmarkSequence, Dataset, load_dataset
from .writers import write_got10k_results, write_otb_results, write_vot_results

log = logging.getLogger(__name__)


class TrackerLike(Protocol):
    def init(self, frame: np.ndarray, box: Sequence[float]) -> None: ...

    def track(self, frame: np.ndarray) -> Any: ...


# ---------------------------------------------------------------------------------------------- loops
def run_ope(tracker: TrackerLike, seq: BenchmarkSequence) -> tuple[np.ndarray, list[float]]:
    """One-pass evaluation: init on frame 1 with its ground truth, track every later frame.

    Returns ``(boxes (T, 4) 0-based, seconds per frame)``; the first box is the initial box."""
    init = seq.boxes[0]
    if not np.all(np.isfinite(init)):
        raise InputError(f"sequence '{seq.name}' has no ground-truth box on its first frame")
    boxes = np.zeros((len(seq), 4))
    times = []
    for i in range(len(seq)):
        frame = seq.frame(i)
        t0 = time.perf_counter()
        if i == 0:
            tracker.init(frame, tuple(float(v) for v in init))
            boxes[0] = init
        else:
            boxes[i] = tracker.track(frame).bbox
        times.append(time.perf_counter() - t0)
    return boxes, times


def run_supervised(tracker: TrackerLike, seq: BenchmarkSequence, skip: int = M.VOT_SKIP_FRAMES
                   ) -> tuple[list[Any], list[float]]:
    """VOT supervised ("baseline") protocol, as pysot's test loop runs it.

    Frame f == next init: ``init`` with the frame's ground truth (the area-preserving box for polygons),
    entry ``1``. Later frames: ``track``; the overlap of the prediction (SiamMask: its polygon) with the
    ground truth, both clipped to the image, is computed **continuously** (not rasterised); ``<= 0`` (or NaN)
    is a failure, entry ``2``, and the next init is ``skip`` frames later; frames in between are entry ``0``
    and are neither read nor tracked. A ground truth that cannot initialise (no area, outside the image) is
    skipped (``0``) and the next frame is tried. Returns ``(trajectory, seconds per frame, NaN when not
    tracked)``."""
    regions = seq.regions()
    size = seq.image_size
    trajectory: list[Any] = []
    times: list[float] = []
    next_init = 0
    for i in range(len(seq)):
        if i < next_init:
            trajectory.append(M.VOT_SKIP)
            times.append(float("nan"))
            continue
        frame = seq.frame(i)
        t0 = time.perf_counter()
        if i == next_init:
            try:
                tracker.init(frame, tuple(float(v) for v in seq.boxes[i]))
            except InputError as err:
                log.info("%s: cannot initialise on frame %d (%s); trying the next frame", seq.name, i + 1, err)
                trajectory.append(M.VOT_SKIP)
                times.append(float("nan"))
                next_init = i + 1
                continue
            trajectory.append(M.VOT_INIT)
        else:
            result = tracker.track(frame)
            polygon = getattr(result, "polygon", None)
            region = (np.asarray(polygon, np.float64).reshape(-1) if polygon is not None
                      else np.asarray(result.bbox, np.float64))
            overlap = M.region_overlap(region, regions[i], size)
            if overlap > 0:
                trajectory.append(region)
            else:
                trajectory.append(M.VOT_FAILURE)
                next_init = i + skip
        times.append(time.perf_counter() - t0)
    return trajectory, times


# ---------------------------------------------------------------------------------------------- metrics
def compute_metrics(kind: str, sequences: Sequence[BenchmarkSequence], results: Sequence[Any],
                    vot_year: int = 2018, eao_range: tuple[int, int] | None = None) -> dict[str, Any] | None:
    """Metrics of ``kind`` for per-sequence results (boxes for OPE, trajectories for VOT). Sequences without
    ground truth after the first frame (GOT-10k test) are left out; None if none has any.

    Everything is computed in the annotation files' own coordinates (0-based boxes shifted by each
    sequence's ``origin``): IoU and centre error do not change, but GOT-10k's image clipping does."""
    pairs = [(s, r) for s, r in zip(sequences, results) if s.has_groundtruth]
    if not pairs:
        return None
    seqs = [s for s, _ in pairs]
    names = [s.name for s in seqs]
    if kind == "vot":
        gts = [s.regions() for s in seqs]
        return M.vot_metrics([r for _, r in pairs], gts, [s.image_size for s in seqs], names, year=vot_year,
                             eao_range=eao_range)
    shift = [np.array([s.origin, s.origin, 0, 0], np.float64) for s in seqs]
    preds = [np.asarray(r, np.float64) + d for (_, r), d in zip(pairs, shift)]
    gts = [s.boxes + d for s, d in zip(seqs, shift)]
    # frames with a NaN ground-truth row are absent frames: OTB and LaSOT keep them in the denominator and
    # never count them as a success (IoU 0, no centre), GOT-10k leaves them out like cover == 0
    if kind == "otb":
        return M.otb_metrics(preds, gts, names)
    if kind == "lasot":
        return M.lasot_metrics(preds, gts, [s.absent | s.unknown_frames for s in seqs], names)
    if kind == "got10k":
        covers = [np.where(s.unknown_frames, 0, s.cover if s.cover is not None else (~s.absent).astype(int))
                  for s in seqs]
        return M.got10k_metrics(preds, gts, covers, [s.image_size for s in seqs], names)
    raise ValueError(f"unknown dataset kind '{kind}'")


HEADLINE = {
    "otb": [("success_auc", "success AUC"), ("precision_20px", "precision@20px"), ("success_rate_50", "SR@0.5")],
    "lasot": [("success_auc", "success AUC"), ("precision_20px", "precision@20px"),
              ("norm_precision_at_0.20", "norm. prec.@0.20"), ("norm_precision_auc_0_0.5", "norm. prec. mean 0..0.5")],
    "got10k": [("ao", "AO"), ("sr_0.50", "SR0.50"), ("sr_0.75", "SR0.75")],
    "vot": [("accuracy", "accuracy"), ("failures", "failures"), ("failures_per_100_frames", "failures/100 fr"),
            ("eao", "EAO")],
}


def format_table(kind: str, rows: dict[str, dict[str, Any]]) -> str:
    """A fixed-width table: one row per tracker, the headline metrics of ``kind`` plus frames and FPS."""
    columns = HEADLINE[kind]
    label_w = max([len("tracker")] + [len(k) for k in rows]) + 2
    head = f"{'tracker':<{label_w}}" + "".join(f"{title:>{max(len(title), 8) + 2}}" for _, title in columns)
    head += f"{'seqs':>6}{'frames':>8}{'FPS':>8}"
    lines = [head, "-" * len(head)]
    for name, report in rows.items():
        metrics = report.get("metrics") or {}
        cells = []
        for key, title in columns:
            value = metrics.get(key)
            width = max(len(title), 8) + 2
            if value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append(f"{'n/a':>{width}}")
            elif isinstance(value, int):
                cells.append(f"{value:>{width}d}")
            else:
                cells.append(f"{value:>{width}.3f}")
        lines.append(f"{name:<{label_w}}" + "".join(cells) + f"{report.get('sequences', 0):>6}"
                     f"{report.get('frames', 0):>8}{report.get('fps', float('nan')):>8.1f}")
    if kind == "vot":
        rng = next((r["metrics"].get("eao_range") for r in rows.values() if r.get("metrics")), None)
        if rng:
            lines.append(f"EAO over sequence lengths {rng[0]}-{rng[1]}; n/a when every sequence is shorter "
                         f"than {rng[0]} frames (use --eao-range for short sequences)")
    if kind == "lasot":
        lines.append("norm. prec.@0.20: normalized precision at threshold 0.20; "
                     "mean 0..0.5: its mean over the 51 thresholds 0, 0.01, .., 0.50")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- driver
def evaluate_tracker(dataset: Dataset, tracker: TrackerLike, name: str, out_dir: str | None = None,
                     vot_year: int = 2018, eao_range: tuple[int, int] | None = None, plots: bool = True,
                     sequences: Sequence[str] | None = None) -> dict[str, Any]:
    """Track every sequence of ``dataset`` (or those named in ``sequences``), write the toolkit result files
    under ``out_dir`` and return the report (metrics, timing, paths). Writes ``metrics.json``,
    ``metrics.txt`` and, with ``plots``, PNG plots there too."""
    seqs = select_sequences(dataset, sequences)
    results, all_times = [], []
    for index, seq in enumerate(seqs, start=1):
        t0 = time.perf_counter()
        if dataset.kind == "vot":
            result, times = run_supervised(tracker, seq)
            fails = len(M.vot_failures(result))
            detail = f"{fails} failure{'s' if fails != 1 else ''}"
        else:
            result, times = run_ope(tracker, seq)
            detail = ""
        results.append(result)
        all_times.append(times)
        log.info("[%d/%d] %s: %d frames in %.1f s %s", index, len(seqs), seq.name, len(seq),
                 time.perf_counter() - t0, detail)
        if out_dir:
            _write_result(dataset.kind, out_dir, seq, result, times)
    tracked = np.array([t for ts in all_times for t in ts if np.isfinite(t)])
    report: dict[str, Any] = {
        "tracker": name, "dataset": dataset.kind, "root": dataset.root, "sequences": len(seqs),
        "frames": int(sum(len(s) for s in seqs)),
        "fps": float(len(tracked) / tracked.sum()) if tracked.size and tracked.sum() > 0 else float("nan"),
        "metrics": compute_metrics(dataset.kind, seqs, results, vot_year, eao_range),
    }
    if report["metrics"] is None:
        report["note"] = "no ground truth after the first frame (GOT-10k test subset?): results written, not scored"
    elif dataset.kind != "vot":
        unknown = {s.name: int(s.unknown_frames[1:].sum()) for s in seqs if s.has_groundtruth}
        unknown = {k: v for k, v in unknown.items() if v}
        if unknown:
            shown = ", ".join(f"{k} ({v})" for k, v in list(unknown.items())[:5])
            report["note"] = (f"{sum(unknown.values())} frame(s) have no ground truth (NaN rows) in "
                              f"{len(unknown)} sequence(s): {shown}{' ...' if len(unknown) > 5 else ''}; "
                              "scored as absent frames")
    if out_dir:
        report["results_dir"] = os.path.abspath(out_dir)
        table = format_table(dataset.kind, {name: report})
        with open(os.path.join(out_dir, "metrics.json"), "w", encoding="utf-8") as fh:
            json.dump(_clean(report), fh, indent=2, default=_json_default, allow_nan=False)
        with open(os.path.join(out_dir, "metrics.txt"), "w", encoding="utf-8") as fh:
            fh.write(table + "\n")
        if plots and report["metrics"] is not None:
            report["plots"] = write_plots(dataset.kind, {name: report["metrics"]}, out_dir)
    return report


def select_sequences(dataset: Dataset, names: Sequence[str] | None) -> list[BenchmarkSequence]:
    """The sequences called ``names`` (all when None), or an :class:`InputError` naming the unknown ones."""
    if not names:
        return list(dataset.sequences)
    known = {s.name: s for s in dataset.sequences}
    missing = [n for n in names if n not in known]
    if missing:
        raise InputError(f"unknown sequence(s) {', '.join(missing)}; the dataset has: "
                         f"{', '.join(list(known)[:12])}{' ...' if len(known) > 12 else ''}")
    return [known[n] for n in names]


def write_plots(kind: str, metrics_by_tracker: dict[str, dict[str, Any]], out_dir: str) -> list[str]:
    """The plots of ``kind`` for one or more trackers' metrics, as PNG files in ``out_dir``."""
    from . import plots as P

    paths = []
    if kind == "vot":
        curves = {k: m["expected_overlap"] for k, m in metrics_by_tracker.items()}
        eao = {k: m["eao"] for k, m in metrics_by_tracker.items()}
        rng = next(iter(metrics_by_tracker.values()))["eao_range"]
        paths.append(P.expected_overlap_plot(os.path.join(out_dir, "expected_overlap.png"), curves, eao, tuple(rng)))
        return paths
    title = {"otb": "OTB", "lasot": "LaSOT", "got10k": "GOT-10k"}[kind]
    paths.append(P.success_plot(os.path.join(out_dir, "success.png"),
                                {k: m["success_curve"] for k, m in metrics_by_tracker.items()},
                                f"Success plot of OPE on {title}"))
    if kind in ("otb", "lasot"):
        paths.append(P.precision_plot(os.path.join(out_dir, "precision.png"),
                                      {k: m["precision_curve"] for k, m in metrics_by_tracker.items()},
                                      f"Precision plot of OPE on {title}"))
    if kind == "lasot":
        paths.append(P.normalized_precision_plot(os.path.join(out_dir, "norm_precision.png"),
                                                 {k: m["norm_precision_curve"] for k, m in metrics_by_tracker.items()},
                                                 f"Normalized precision plot of OPE on {title}"))
    return paths


def _write_result(kind: str, out_dir: str, seq: BenchmarkSequence, result: Any, times: list[float]) -> None:
    if kind == "vot":
        write_vot_results(out_dir, seq.name, result, times, origin=seq.origin)
    elif kind == "got10k":
        write_got10k_results(out_dir, seq.name, result, times, origin=seq.origin)
    else:
        write_otb_results(out_dir, seq.name, result, origin=seq.origin)


def _clean(obj: Any) -> Any:
    """The report with NaN/inf as None (strict JSON) and numpy values as Python ones."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def evaluate(dataset: str, root: str, model: str, config: str | None = None, preset: str | None = None,
             backend: str = "torch", precision: str | None = None, device: str | None = None, out: str | None = None,
             name: str | None = None, subset: str | None = None, vot_year: int = 2018,
             eao_range: tuple[int, int] | None = None, plots: bool = True, sequences: Sequence[str] | None = None,
             allow_unsafe_pickle: bool = False) -> dict[str, Any]:
    """Read the benchmark folder, load the tracker with :func:`siamdeploy.load_tracker` and evaluate it.

    Results go to ``out`` (default ``results/<dataset>/<name>``); ``name`` defaults to
    ``<model file stem>_<backend>_<precision>`` of the engine that actually runs."""
    from ..api import load_tracker

    data = load_dataset(dataset, root, subset)   # fail on a bad folder before loading a model
    select_sequences(data, sequences)
    if plots:
        from .plots import require_matplotlib

        require_matplotlib()
    if vot_year not in M.EAO_RANGES and eao_range is None:
        raise InputError(f"--vot-year must be one of {', '.join(str(y) for y in M.EAO_RANGES)}")
    if eao_range is not None and not (1 <= eao_range[0] <= eao_range[1]):
        raise InputError(f"--eao-range LOW HIGH needs 1 <= LOW <= HIGH, got {eao_range[0]} {eao_range[1]}")
    tracker = load_tracker(model, config=config, preset=preset, backend=backend, device=device,
                           allow_unsafe_pickle=allow_unsafe_pickle, precision=precision)
    engine = getattr(tracker, "engine", None)
    ran_backend = getattr(engine, "backend", backend)
    ran_precision = getattr(engine, "precision", precision or "fp32")
    if name is None:
        stem = os.path.splitext(os.path.basename(os.path.normpath(model)))[0]
        name = f"{stem}_{ran_backend}_{ran_precision}"
    out_dir = out or os.path.join("results", dataset, name)
    os.makedirs(out_dir, exist_ok=True)
    report = evaluate_tracker(data, tracker, name, out_dir, vot_year, eao_range, plots, sequences)
    report["model"] = os.path.abspath(model)
    report["backend"] = ran_backend
    report["precision"] = ran_precision
    report["device"] = getattr(engine, "device", None)
    report["preset"] = getattr(tracker, "name", None)
    with open(os.path.join(out_dir, "metrics.json"), "w", encoding="utf-8") as fh:
        json.dump(_clean(report), fh, indent=2, default=_json_default, allow_nan=False)
    return report
