"""The run loop behind ``python -m siamdeploy.run``: source -> tracker(s) -> results file, annotated video,
summary with latency percentiles and, when the source has ground truth, the success score."""
from __future__ import annotations

import itertools
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..errors import InputError
from ..eval.metrics import iou, success_auc
from ..runtime import Tracker, TrackResult
from .display import TkDisplay
from .draw import COLOURS, draw_result, draw_text
from .sources import Source

log = logging.getLogger(__name__)


@dataclass
class Summary:
    """What a run did. Latencies in milliseconds per frame (all targets)."""

    frames: int = 0
    backend: str = ""
    preset: str = ""
    stage_ms: dict[str, list[float]] = field(default_factory=dict)
    success: float | None = None
    mean_iou: float | None = None
    results_paths: list[str] = field(default_factory=list)
    video_path: str | None = None
    interrupted: bool = False
    error: str | None = None

    def add(self, stage: str, seconds: float) -> None:
        self.stage_ms.setdefault(stage, []).append(seconds * 1000.0)

    def lines(self) -> list[str]:
        out = [f"frames: {self.frames}   preset: {self.preset}   backend: {self.backend}   "
               "per-frame stage latency:"]
        for stage, values in self.stage_ms.items():
            v = np.asarray(values)
            out.append(f"  {stage:<12} p50 {np.percentile(v, 50):8.2f} ms   p90 {np.percentile(v, 90):8.2f} ms"
                       f"   p99 {np.percentile(v, 99):8.2f} ms")
        total = self.stage_ms.get("frame")
        if total:
            out.append(f"  throughput {1000.0 / max(np.mean(total), 1e-9):.1f} FPS end to end")
        if self.success is not None:
            out.append(f"success score (OTB AUC) against ground truth: {self.success:.3f}   mean IoU: "
                       f"{self.mean_iou:.3f}")
        for path in self.results_paths:
            out.append(f"results: {path}")
        if self.video_path:
            out.append(f"annotated video: {self.video_path}")
        if self.interrupted:
            out.append("stopped early (interrupted); results up to the last frame are saved")
        if self.error:
            out.append(f"stopped early: {self.error}; results up to the last good frame are saved")
        return out


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"x,y,w,h"`` -> floats; a malformed string is an :class:`InputError`."""
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise InputError(f"--init must be x,y,w,h (four numbers), got '{text}'")
    return values  # type: ignore[return-value]


def _format(result: TrackResult) -> str:
    values = list(result.bbox)
    if result.polygon is not None:
        values += list(np.asarray(result.polygon).reshape(-1))
    return ",".join(f"{float(v):.4f}" for v in values)


class _Progress:
    """A one-line progress bar on stderr for headless runs over files."""

    def __init__(self, total: int | None, enabled: bool) -> None:
        self.total, self.enabled, self.last = total, enabled, 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.5:
            return
        self.last = now
        if self.total:
            filled = int(30 * done / self.total)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} frames")
        else:
            sys.stderr.write(f"\r{done} frames")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def run_tracking(source: Source, new_tracker: Callable[[], Tracker], inits: list[tuple[float, float, float, float]],
                 results_path: str | None, video_path: str | None, progress: bool = True,
                 display: TkDisplay | None = None) -> Summary:
    """Track every target of ``inits`` through ``source``; frame 0 initialises. Writes results as it goes.

    new_tracker: makes one tracker per target (they share one engine). With no ``inits`` the user selects
    the target on the first frame in ``display``. Keys in the window: q/Esc quit, r re-select, space pause.
    A source that fails mid-stream (unreadable image, lost camera) ends the run cleanly: the summary records
    the error and everything up to the last good frame is saved.
    """
    frames = iter(source.frames)
    try:
        first = next(frames, None)
    except InputError:
        source.close()
        raise
    if first is None:
        source.close()
        raise InputError(f"source '{source.name}' has no frames")
    if not inits and display is not None:
        box = display.select_box(first)
        if box is None:
            source.close()
            raise InputError("no target selected; drag a box on the first frame or pass --init x,y,w,h")
        inits = [box]
    trackers = [new_tracker() for _ in inits]
    summary = Summary(backend=trackers[0].engine.describe(), preset=trackers[0].name)
    t0 = time.perf_counter()
    try:  # a bad init box fails here, before any output file exists
        for tracker, box in zip(trackers, inits):
            tracker.init(first, box)
    except BaseException:
        source.close()
        raise
    summary.add("init", time.perf_counter() - t0)
    handles = []
    if results_path:
        os.makedirs(os.path.dirname(os.path.abspath(results_path)), exist_ok=True)
        stem, ext = os.path.splitext(results_path)
        paths = [results_path] if len(trackers) == 1 else [f"{stem}_target{i}{ext}" for i in range(len(trackers))]
        handles = [open(p, "w", encoding="utf-8") for p in paths]
        summary.results_paths = paths
    writer = None
    video_size = (0, 0)
    bar = _Progress(source.length, progress and display is None)
    predictions: list[tuple[float, float, float, float]] = []
    paused = False
    try:
        stream = itertools.chain([first], frames)
        index = -1
        frame = canvas = first
        while True:
            t_read = time.perf_counter()
            if not paused:
                try:
                    frame = next(stream, None)
                except InputError as err:
                    summary.error = str(err)
                    break
                if frame is None:
                    break
                index += 1
            t0 = time.perf_counter()
            if paused:
                key = display.show(canvas) if display is not None else None
                paused = key not in ("space", "q", "Escape")
                if key in ("q", "Escape"):
                    summary.interrupted = True
                    break
                time.sleep(0.02)
                continue
            if index > 0:
                summary.add("read", t0 - t_read)
            truth = source.ground_truth[index] if source.ground_truth is not None and index < len(
                source.ground_truth) else None
            if index == 0:
                results = [TrackResult(bbox=tuple(float(v) for v in b), score=1.0) for b in inits]
            else:
                results = [tracker.track(frame) for tracker in trackers]
                summary.add("track", time.perf_counter() - t0)
                for stage in ("preprocess", "engine", "postprocess"):
                    summary.add(stage, sum(t.timings.get(stage, 0.0) for t in trackers))
            for fh, res in zip(handles, results):
                fh.write(_format(res) + "\n")
                fh.flush()
            t1 = time.perf_counter()
            predictions.append(results[0].bbox)
            if video_path or display is not None:
                canvas = frame
                for i, res in enumerate(results):
                    canvas = draw_result(canvas, res, COLOURS[i % len(COLOURS)], truth if i == 0 else None)
                engine_s = sum(t.timings.get("engine", 0.0) for t in trackers)
                draw_text(canvas, [f"frame {index}  score {results[0].score:.3f}",
                                   f"{summary.backend}  {1.0 / max(t1 - t_read, 1e-9):.1f} FPS end to end, "
                                   f"{1.0 / max(engine_s, 1e-9):.1f} FPS engine" if index else summary.backend])
                t2 = time.perf_counter()
                summary.add("draw", t2 - t1)
            if video_path:
                if writer is None:
                    os.makedirs(os.path.dirname(os.path.abspath(video_path)), exist_ok=True)
                    video_size = (canvas.shape[1], canvas.shape[0])
                    writer = cv2.VideoWriter(video_path, cv2.VideoWriter_fourcc(*"mp4v"), source.fps, video_size)
                    if not writer.isOpened():
                        raise InputError(f"cannot write video '{video_path}'; use a .mp4 or .avi path in a "
                                         "writable folder")
                if (canvas.shape[1], canvas.shape[0]) != video_size:  # frame size changed mid-stream
                    canvas_out = cv2.resize(canvas, video_size)
                else:
                    canvas_out = canvas
                t3 = time.perf_counter()
                writer.write(canvas_out)
                summary.add("write", time.perf_counter() - t3)
            if index > 0:
                summary.add("frame", time.perf_counter() - t_read)
            summary.frames = index + 1
            bar.update(index + 1)
            if display is not None:
                key = display.show(canvas)
                if key in ("q", "Escape"):
                    summary.interrupted = True
                    break
                if key == "space":
                    paused = True
                elif key == "r":
                    box = display.select_box(frame)
                    if box is not None:
                        trackers[0].init(frame, box)
                        log.info("target re-selected at frame %d: %s", index, box)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        bar.close()
        for fh in handles:
            fh.close()
        if writer is not None:
            writer.release()
            summary.video_path = video_path
        source.close()
    if source.ground_truth is not None and predictions:
        gt = source.ground_truth[:len(predictions)]
        summary.success = success_auc(np.asarray(predictions), gt)
        summary.mean_iou = float(iou(np.asarray(predictions), gt).mean())
    return summary
