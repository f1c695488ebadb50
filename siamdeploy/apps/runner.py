"""The run loop behind ``python -m siamdeploy.run``: source -> tracker(s) -> sinks (results files, annotated
video, window), timed per stage, with a summary (latency percentiles and, where the source has ground
truth, the success score).

:func:`run_frames` is the loop; a sink is anything with ``write(frame_result)`` and ``close()``
(:class:`ResultsSink`, :class:`VideoSink`, :class:`WindowSink`), so adding an output is one class.
:func:`run_tracking` wires the usual sinks from paths.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from ..errors import InputError, SiamDeployError
from ..eval.metrics import iou, success_auc
from ..runtime import Tracker, TrackResult
from ..runtime.batch import track_together
from .display import TkDisplay
from .draw import COLOURS, draw_result, draw_text
from .sources import Source

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


# ---------------------------------------------------------------- bounded statistics

class LatencyStats:
    """Count, mean, min, max and percentiles of one stage's latencies in constant memory.

    Values (milliseconds) go into logarithmic bins 1 % wide from 1 microsecond to 1000 s, so a percentile is
    exact to within 1 % whatever the run length (a list per frame would grow ~0.45 MB per 1000 frames)."""

    LOW_MS = 1e-3
    RATIO = 1.01
    BINS = int(math.ceil(math.log(1e6 / 1e-3) / math.log(1.01))) + 2

    def __init__(self) -> None:
        self.counts = np.zeros(self.BINS, np.int64)
        self.count = 0
        self.total = 0.0
        self.low = math.inf
        self.high = -math.inf

    def add(self, ms: float) -> None:
        """Record one latency in milliseconds."""
        self.count += 1
        self.total += ms
        self.low = min(self.low, ms)
        self.high = max(self.high, ms)
        if ms <= self.LOW_MS:
            index = 0
        else:
            index = min(self.BINS - 1, 1 + int(math.log(ms / self.LOW_MS) / math.log(self.RATIO)))
        self.counts[index] += 1

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100) in milliseconds: the geometric centre of its bin, clamped to the
        observed min/max (so a single value, or all-equal values, come back exactly)."""
        if not self.count:
            return math.nan
        rank = max(1, int(math.ceil(q / 100.0 * self.count)))
        index = int(np.searchsorted(np.cumsum(self.counts), rank))
        value = self.LOW_MS if index == 0 else self.LOW_MS * self.RATIO ** (index - 0.5)
        return float(min(max(value, self.low), self.high))


class StageTimer:
    """Per-stage :class:`LatencyStats`, in the order stages were first seen."""

    def __init__(self) -> None:
        self.stages: dict[str, LatencyStats] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.stages.setdefault(stage, LatencyStats()).add(seconds * 1000.0)


@dataclass
class Summary:
    """What a run did. Latencies in milliseconds per frame (all targets), as bounded statistics."""

    frames: int = 0
    backend: str = ""
    preset: str = ""
    timer: StageTimer = field(default_factory=StageTimer)
    success: float | None = None
    mean_iou: float | None = None
    results_paths: list[str] = field(default_factory=list)
    video_path: str | None = None
    interrupted: bool = False
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    targets: int = 1
    engine_calls: int = 0  # Engine.search_calls over the tracked frames (all targets of a frame in one call)

    def add(self, stage: str, seconds: float) -> None:
        self.timer.add(stage, seconds)

    @property
    def stage_ms(self) -> dict[str, LatencyStats]:
        return self.timer.stages

    def lines(self) -> list[str]:
        out = [f"frames: {self.frames}   preset: {self.preset}   backend: {self.backend}   "
               "per-frame stage latency:"]
        for stage, stats in self.timer.stages.items():
            out.append(f"  {stage:<12} p50 {stats.percentile(50):8.2f} ms   p90 {stats.percentile(90):8.2f} ms"
                       f"   p99 {stats.percentile(99):8.2f} ms")
        total = self.timer.stages.get("frame")
        if total is not None and total.count:
            out.append(f"  throughput {1000.0 / max(total.mean, 1e-9):.1f} FPS end to end")
        tracked = self.timer.stages.get("track")
        if tracked is not None and tracked.count:
            out.append(f"engine calls per frame: {self.engine_calls / tracked.count:.2f} ({self.targets} "
                       f"target{'s' if self.targets != 1 else ''})")
        if self.success is not None:
            out.append(f"success score (OTB AUC) against ground truth: {self.success:.3f}   mean IoU: "
                       f"{self.mean_iou:.3f}")
        for path in self.results_paths:
            out.append(f"results: {path}")
        if self.video_path:
            out.append(f"annotated video: {self.video_path}")
        out.extend(f"note: {note}" for note in self.notes)
        if self.interrupted:
            out.append("stopped early (interrupted); results up to the last frame are saved")
        if self.error:
            out.append(f"stopped early: {self.error}; results up to the last good frame are saved")
        return out


def parse_box(text: str) -> Box:
    """``"x,y,w,h"`` -> floats; a malformed string is an :class:`InputError`."""
    from ..cli import clip

    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InputError(f"--init must be x,y,w,h (four finite numbers), got '{clip(text)}'")
    return values  # type: ignore[return-value]


# ---------------------------------------------------------------- sinks

@dataclass
class FrameResult:
    """One frame through the loop: its index, the frame, every target's result, the ground truth box
    (or None) and, once drawn, the annotated canvas."""

    index: int
    frame: np.ndarray
    results: list[TrackResult]
    truth: np.ndarray | None
    canvas: np.ndarray | None = None


class Sink(Protocol):
    """An output of the run loop. ``needs_canvas``: the loop draws the annotated frame for it.
    ``write`` may return a window command (``quit``, ``pause``, ``reselect``) or None."""

    needs_canvas: bool

    def write(self, item: FrameResult) -> str | None: ...

    def close(self) -> None: ...


def box_polygon(box: Sequence[float]) -> np.ndarray:
    """The ``(4, 2)`` corners of an axis-aligned ``(x, y, w, h)`` box, clockwise from the top-left."""
    x, y, w, h = (float(v) for v in box)
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)


def format_result(result: TrackResult, polygon: bool) -> str:
    """``x,y,w,h`` (4 decimals), plus the 8 polygon numbers when ``polygon``: every line of a results file
    has the same column count, so ``np.loadtxt(path, delimiter=",")`` reads it. A result without a polygon
    (frame 0, the init box) gets the corners of its box."""
    values = list(result.bbox)
    if polygon:
        poly = result.polygon if result.polygon is not None else box_polygon(result.bbox)
        values += list(np.asarray(poly, np.float64).reshape(-1))
    return ",".join(f"{float(v):.4f}" for v in values)


class ResultsSink:
    """One results file per target (``results.txt`` or ``results_target<i>.txt``), one line per frame,
    flushed every frame so nothing is lost on Ctrl-C or a crash. Files are created on the first write."""

    needs_canvas = False

    def __init__(self, paths: list[str], polygons: bool) -> None:
        self.paths = paths
        self.polygons = polygons
        self.handles: list = []

    def write(self, item: FrameResult) -> None:
        if not self.handles:
            for path in self.paths:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
                self.handles.append(open(path, "w", encoding="utf-8"))
        for path, fh, res in zip(self.paths, self.handles, item.results):
            try:
                fh.write(format_result(res, self.polygons) + "\n")
                fh.flush()
            except OSError as err:  # a full disk: name the file
                raise OSError(err.errno, err.strerror, path) from None

    def close(self) -> None:
        first: OSError | None = None
        for path, fh in zip(self.paths, self.handles):
            try:
                fh.close()
            except OSError as err:
                first = first or OSError(err.errno, err.strerror, path)
        self.handles = []
        if first is not None:
            raise first


class VideoSink:
    """The annotated video (mp4v), opened on the first frame at that frame's size; later frames of another
    size are resized to it. ``timer`` gets the ``write`` stage."""

    needs_canvas = True

    def __init__(self, path: str, fps: float, timer: StageTimer) -> None:
        self.path, self.fps, self.timer = path, fps, timer
        self.writer: cv2.VideoWriter | None = None
        self.size = (0, 0)

    def write(self, item: FrameResult) -> None:
        canvas = item.canvas if item.canvas is not None else item.frame
        if self.writer is None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self.size = (canvas.shape[1], canvas.shape[0])
            self.writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
            if not self.writer.isOpened():
                self.writer = None
                w, h = self.size
                if min(w, h) < 2:
                    raise InputError(f"the frames are {w}x{h} pixels, too small for a video; pass --save none "
                                     "(or frames of at least 2x2)")
                raise InputError(f"OpenCV cannot open video '{self.path}' for {w}x{h} frames; use a .mp4 or .avi "
                                 "path, or --save none")
        if (canvas.shape[1], canvas.shape[0]) != self.size:  # frame size changed mid-stream
            canvas = cv2.resize(canvas, self.size)
        t0 = time.perf_counter()
        self.writer.write(canvas)
        self.timer.add("write", time.perf_counter() - t0)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


class WindowSink:
    """The Tk window: shows each annotated frame and turns keys into commands (q/Esc quit, space pause,
    r re-select)."""

    needs_canvas = True
    KEYS = {"q": "quit", "Escape": "quit", "space": "pause", "r": "reselect"}

    def __init__(self, display: TkDisplay) -> None:
        self.display = display

    def write(self, item: FrameResult) -> str | None:
        return self.KEYS.get(self.display.show(item.canvas if item.canvas is not None else item.frame) or "")

    def close(self) -> None:
        pass


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
            filled = int(30 * min(done, self.total) / self.total)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} frames")
        else:
            sys.stderr.write(f"\r{done} frames")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


# ---------------------------------------------------------------- the loop

def _annotate(item: FrameResult, backend: str, fps_line: str) -> np.ndarray:
    canvas = item.frame
    for i, res in enumerate(item.results):
        canvas = draw_result(canvas, res, COLOURS[i % len(COLOURS)], item.truth if i == 0 else None)
    draw_text(canvas, [f"frame {item.index}  score {item.results[0].score:.3f}", fps_line or backend])
    return canvas


def _paused(display: TkDisplay | None, canvas: np.ndarray) -> str:
    """Hold the last frame until space (resume) or q/Esc (quit)."""
    while display is not None:
        key = display.show(canvas)
        if key in ("q", "Escape"):
            return "quit"
        if key == "space":
            return "resume"
        time.sleep(0.02)
    return "resume"


def run_frames(frames: Iterator[np.ndarray], first: np.ndarray, trackers: list[Tracker], inits: list[Box],
               sinks: list[Sink], summary: Summary, ground_truth: np.ndarray | None = None,
               display: TkDisplay | None = None, progress: _Progress | None = None) -> list[Box]:
    """Frame 0 (``first``) reports the init boxes; every later frame of ``frames`` is tracked by every
    tracker and handed to each sink. Stages timed into ``summary``: read, track, preprocess, engine,
    postprocess, draw, write, frame. Returns the first target's boxes on the frames that have ground truth.

    Ends at the end of the stream, on a window's quit, on Ctrl-C/SIGTERM (``summary.interrupted``), or
    on a :class:`SiamDeployError` from the source or a tracker (``summary.error``); sinks are closed by
    the caller.
    """
    gt_len = 0 if ground_truth is None else len(ground_truth)
    predictions: list[Box] = []
    canvas_needed = any(s.needs_canvas for s in sinks)
    index = -1
    frame: np.ndarray | None = first
    try:
        while True:
            t_read = time.perf_counter()
            if index >= 0:
                try:
                    frame = next(frames, None)
                except SiamDeployError as err:
                    summary.error = str(err)
                    break
                if frame is None:
                    break
            index += 1
            engine_s = 0.0
            t0 = time.perf_counter()
            truth = ground_truth[index] if index < gt_len else None
            if index == 0:
                results = [TrackResult(bbox=tuple(float(v) for v in b), score=1.0) for b in inits]
            else:
                summary.add("read", t0 - t_read)
                engines = list({id(t.engine): t.engine for t in trackers}.values())
                together = len(trackers) > 1 and len(engines) == 1 and all(isinstance(t, Tracker) for t in trackers)
                calls = sum(e.search_calls for e in engines)
                try:
                    # several targets on one engine: one batched search per search size (track_together);
                    # trackers of a server each send their own request
                    results = (track_together(trackers, [frame] * len(trackers)) if together
                               else [t.track(frame) for t in trackers])
                except SiamDeployError as err:
                    summary.error = f"frame {index}: {err}"
                    break
                took = time.perf_counter() - t0
                summary.add("track", took)
                summary.engine_calls += sum(e.search_calls for e in engines) - calls
                stages = {stage: sum(t.timings.get(stage, 0.0) for t in trackers)
                          for stage in ("preprocess", "engine", "postprocess")}
                if len(trackers) > 1:  # the shared call is timed by none of the trackers
                    stages["engine"] = max(stages["engine"], took - stages["preprocess"] - stages["postprocess"])
                for stage, seconds in stages.items():
                    summary.add(stage, seconds)
                engine_s = stages["engine"]
            if truth is not None:
                predictions.append(tuple(float(v) for v in results[0].bbox))  # type: ignore[arg-type]
            item = FrameResult(index, frame, results, truth)
            if canvas_needed:
                t1 = time.perf_counter()
                fps_line = (f"{summary.backend}  {1.0 / max(t1 - t_read, 1e-9):.1f} FPS end to end, "
                            f"{1.0 / max(engine_s, 1e-9):.1f} FPS engine") if index else ""
                item.canvas = _annotate(item, summary.backend, fps_line)
                summary.add("draw", time.perf_counter() - t1)
            with _signals_held():  # the results file, the video and the count agree on every frame
                commands = [sink.write(item) for sink in sinks]
                if index > 0:
                    summary.add("frame", time.perf_counter() - t_read)
                summary.frames = index + 1
            if progress is not None:
                progress.update(index + 1)
            if "quit" in commands:
                summary.interrupted = True
                break
            if "pause" in commands and _paused(display, item.canvas if item.canvas is not None else frame) == "quit":
                summary.interrupted = True
                break
            if "reselect" in commands and display is not None:
                box = display.select_box(frame)
                if box is not None:
                    trackers[0].init(frame, box)
                    log.info("target re-selected at frame %d: %s", index, box)
    except KeyboardInterrupt:  # Ctrl-C, and SIGTERM delivered as one by the CLI
        summary.interrupted = True
        raise
    return predictions


def results_paths(results_path: str, targets: int) -> list[str]:
    """``results.txt`` for one target, ``results_target<i>.txt`` for several."""
    if targets == 1:
        return [results_path]
    stem, ext = os.path.splitext(results_path)
    return [f"{stem}_target{i}{ext}" for i in range(targets)]


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold Ctrl-C / SIGTERM while one frame is written to every sink, then deliver them: an interrupted run
    never has a frame in the results file that its video or its summary lacks."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, lambda signum, _frame: pending.append(signum))
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        for signum in pending:
            handler = old[signum]
            if callable(handler):
                handler(signum, None)
            else:  # default or ignored disposition: let the system act on it as it would have
                os.kill(os.getpid(), signum)


def run_tracking(source: Source, new_tracker: Callable[[], Tracker], inits: list[Box],
                 results_path: str | None, video_path: str | None, progress: bool = True,
                 display: TkDisplay | None = None) -> Summary:
    """Track every target of ``inits`` through ``source``; frame 0 initialises. Writes results as it goes.

    new_tracker: makes one tracker per target (they share one engine). With no ``inits`` the user selects
    the target on the first frame in ``display``. Keys in the window: q/Esc quit, r re-select, space pause.
    A source or tracker that fails mid-stream (unreadable image, lost camera, a non-finite engine output)
    ends the run cleanly: the summary records the error and everything up to the last good frame is saved.
    Ctrl-C (and SIGTERM through the CLI) also ends it cleanly: outputs are closed, the summary says
    ``interrupted``, and the interrupt is re-raised for the caller to set the exit code once it has
    printed the summary (``summary`` is attached to the exception as ``err.summary``).
    """
    frames = iter(source.frames)
    try:
        first = next(frames, None)  # an unreadable first frame raises InputError here
        if first is None:
            raise InputError(f"source '{source.name}' has no frames")
        if not inits and display is not None:
            box = display.select_box(first)
            if box is None:
                raise InputError("no target selected; drag a box on the first frame or pass --init x,y,w,h")
            inits = [box]
        trackers = [new_tracker() for _ in inits]
        summary = Summary(backend=trackers[0].engine.describe(), preset=trackers[0].name, targets=len(trackers))
        t0 = time.perf_counter()
        # a bad init box fails here, before any output file exists; one template call for all targets
        if all(isinstance(t, Tracker) and t.engine is trackers[0].engine for t in trackers):
            blobs = [tracker.init_prepare(first, box) for tracker, box in zip(trackers, inits)]
            for tracker, kernels in zip(trackers, trackers[0].engine.template_many(blobs)):
                tracker.init_finish(kernels)
        else:  # trackers on a server: each opens its own stream
            for tracker, box in zip(trackers, inits):
                tracker.init(first, box)
        summary.add("init", time.perf_counter() - t0)
    except BaseException:
        source.close()
        raise
    from ..runtime.trackers.mask import MaskTracker

    sinks: list[Sink] = []
    if results_path:
        paths = results_paths(results_path, len(trackers))
        polygons = isinstance(trackers[0], MaskTracker) or bool(getattr(trackers[0], "reports_polygon", False))
        sinks.append(ResultsSink(paths, polygons=polygons))
        summary.results_paths = paths
    video = VideoSink(video_path, source.fps, summary.timer) if video_path else None
    if video is not None:
        sinks.append(video)
    if display is not None:
        sinks.append(WindowSink(display))
    bar = _Progress(source.length, progress and display is None)
    predictions: list[Box] = []
    try:
        predictions = run_frames(frames, first, trackers, inits, sinks, summary, source.ground_truth, display, bar)
    except KeyboardInterrupt as err:
        err.summary = summary  # type: ignore[attr-defined]
        raise
    finally:
        bar.close()
        close_error: OSError | None = None
        for sink in sinks:  # close every sink even when one fails (a full disk on the last flush)
            try:
                sink.close()
            except OSError as err:
                close_error = close_error or err
        if video is not None and video.writer is not None:
            summary.video_path = video_path
        source.close()
        if source.length and not summary.interrupted and summary.error is None and summary.frames < source.length:
            summary.notes.append(f"the source ended after {summary.frames} of the {source.length} frames it "
                                 "announced (a truncated or partly unreadable file?)")
        if source.ground_truth is not None and predictions:
            gt = np.asarray(source.ground_truth[:len(predictions)], np.float64)
            summary.success = success_auc(np.asarray(predictions), gt)
            summary.mean_iou = float(iou(np.asarray(predictions), gt).mean())
    if close_error is not None:
        raise close_error
    return summary
