"""The run loop's parts: bounded latency statistics, results files with a constant column count, sinks,
predictions kept only where there is ground truth, non-finite weights and engine outputs refused."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from siamdeploy.apps.runner import (FrameResult, LatencyStats, ResultsSink, Summary, box_polygon, format_result,
                                    parse_box, run_frames)
from siamdeploy.checkpoint import read_state_dict
from siamdeploy.engine.base import Engine, SearchOutput
from siamdeploy.errors import CheckpointError, EngineError, InputError
from siamdeploy.presets import get_preset
from siamdeploy.runtime import TrackResult, make_tracker


def test_latency_stats_percentiles_and_constant_memory() -> None:
    rng = np.random.default_rng(0)
    values = rng.lognormal(mean=1.0, sigma=0.6, size=20_000)
    stats = LatencyStats()
    size_before = sys.getsizeof(stats.counts) + stats.counts.nbytes
    for v in values:
        stats.add(float(v))
    assert sys.getsizeof(stats.counts) + stats.counts.nbytes == size_before, "memory does not grow with frames"
    assert stats.count == len(values) and stats.mean == pytest.approx(values.mean())
    for q in (50, 90, 99):
        assert stats.percentile(q) == pytest.approx(np.percentile(values, q), rel=0.015)
    one = LatencyStats()
    one.add(3.25)
    assert one.percentile(50) == 3.25 and one.percentile(99) == 3.25
    assert np.isnan(LatencyStats().percentile(50))


def test_summary_lines_from_bounded_stats() -> None:
    summary = Summary(frames=3, backend="torch", preset="p")
    for ms in (10.0, 20.0, 30.0):
        summary.add("frame", ms / 1000.0)
    text = "\n".join(summary.lines())
    assert "frame" in text and "FPS end to end" in text
    assert not any(isinstance(v, list) for v in vars(summary.timer.stages["frame"]).values())


def test_mask_results_have_twelve_columns_every_line(tmp_path) -> None:
    path = str(tmp_path / "r.txt")
    sink = ResultsSink([path], polygons=True)
    frame = np.zeros((8, 8, 3), np.uint8)
    sink.write(FrameResult(0, frame, [TrackResult(bbox=(10.0, 20.0, 30.0, 40.0), score=1.0)], None))
    poly = np.array([[11, 21], [41, 22], [40, 61], [10, 60]], np.float64)
    sink.write(FrameResult(1, frame, [TrackResult(bbox=(10.0, 21.0, 31.0, 40.0), score=0.9, polygon=poly)], None))
    sink.close()
    table = np.loadtxt(path, delimiter=",")
    assert table.shape == (2, 12)
    np.testing.assert_allclose(table[0, 4:].reshape(4, 2), box_polygon((10, 20, 30, 40)))
    np.testing.assert_allclose(table[1, 4:].reshape(4, 2), poly)
    assert format_result(TrackResult(bbox=(1.0, 2.0, 3.0, 4.0), score=1.0), polygon=False) == \
        "1.0000,2.0000,3.0000,4.0000"


def test_parse_box_rejects_non_finite_and_clips_echo() -> None:
    assert parse_box("-5,10,20,30") == (-5.0, 10.0, 20.0, 30.0)
    with pytest.raises(InputError, match="finite"):
        parse_box("nan,1,2,3")
    with pytest.raises(InputError) as err:
        parse_box("1," * 50_000)
    assert len(str(err.value)) < 300


class _ConstantEngine(Engine):
    """A SiamFC engine double: a fixed response, or NaN from frame ``nan_from`` on."""

    backend = "fake"

    def __init__(self, nan_from: int | None = None) -> None:
        self.calls, self.nan_from = 0, nan_from

    def _template(self, z: np.ndarray) -> object:
        return "kernels"

    def _search(self, x: np.ndarray, kernels: object) -> SearchOutput:
        self.calls += 1
        response = np.zeros((x.shape[0], 1, 17, 17), np.float32)
        response[:, :, 8, 8] = 1.0
        if self.nan_from is not None and self.calls >= self.nan_from:
            response[0, 0, 3, 3] = np.nan
        return SearchOutput({"response": response})


class _ListSink:
    needs_canvas = False

    def __init__(self) -> None:
        self.items: list[FrameResult] = []

    def write(self, item: FrameResult) -> None:
        self.items.append(item)

    def close(self) -> None:
        pass


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(n)]


def test_run_frames_keeps_predictions_only_where_there_is_ground_truth() -> None:
    frames = _frames(6)
    tracker = make_tracker(_ConstantEngine(), get_preset("siamfc").track, "siamfc")
    box = (60.0, 40.0, 30.0, 30.0)
    tracker.init(frames[0], box)
    sink, summary = _ListSink(), Summary()
    gt = np.tile(box, (3, 1))  # ground truth for the first three frames only
    predictions = run_frames(iter(frames[1:]), frames[0], [tracker], [box], [sink], summary, gt)
    assert summary.frames == 6 and len(sink.items) == 6 and summary.error is None
    assert len(predictions) == 3
    assert summary.timer.stages["frame"].count == 5


def test_non_finite_engine_output_ends_the_run_naming_the_output() -> None:
    frames = _frames(5)
    engine = _ConstantEngine(nan_from=3)
    tracker = make_tracker(engine, get_preset("siamfc").track, "siamfc")
    box = (60.0, 40.0, 30.0, 30.0)
    tracker.init(frames[0], box)
    summary = Summary()
    run_frames(iter(frames[1:]), frames[0], [tracker], [box], [_ListSink()], summary)
    assert summary.error is not None and "'response'" in summary.error and "NaN" in summary.error
    assert summary.frames == 3
    with pytest.raises(EngineError, match="'response'"):
        engine.search(np.zeros((3, 3, 255, 255), np.float32), "kernels")


def test_non_finite_checkpoint_is_refused_naming_the_tensors(tmp_path) -> None:
    state = {"features.0.weight": torch.ones(4, 3, 3, 3), "features.0.bias": torch.zeros(4),
             "head.weight": torch.ones(2, 4)}
    state["features.0.bias"][1] = float("nan")
    state["head.weight"][0, 0] = float("inf")
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    message = str(err.value)
    assert "features.0.bias" in message and "head.weight" in message and "features.0.weight" not in message
    assert "\n" not in message


class _ScriptedDisplay:
    """A window double: ``show`` returns the scripted keys in turn; ``select_box`` returns ``box``."""

    def __init__(self, keys: list[str | None], box: tuple[float, float, float, float]) -> None:
        self.keys, self.box, self.shown, self.selected = list(keys), box, 0, 0

    def show(self, canvas: np.ndarray) -> str | None:
        self.shown += 1
        return self.keys.pop(0) if self.keys else None

    def select_box(self, frame: np.ndarray) -> tuple[float, float, float, float]:
        self.selected += 1
        return self.box


def test_window_keys_pause_reselect_quit() -> None:
    from siamdeploy.apps.runner import WindowSink

    frames = _frames(8)
    tracker = make_tracker(_ConstantEngine(), get_preset("siamfc").track, "siamfc")
    box = (60.0, 40.0, 30.0, 30.0)
    tracker.init(frames[0], box)
    # frame 0: nothing; frame 1: space (pause), held for one show, space resumes; frame 2: r; frame 3: q
    display = _ScriptedDisplay([None, "space", None, "space", "r", "q"], (10.0, 10.0, 20.0, 20.0))
    summary = Summary()
    run_frames(iter(frames[1:]), frames[0], [tracker], [box], [WindowSink(display)], summary, display=display)
    assert summary.interrupted and summary.frames == 4
    assert display.selected == 1 and display.shown == 6
    assert "draw" in summary.timer.stages, "the window gets an annotated canvas"


def test_random_bytes_are_not_a_checkpoint(tmp_path) -> None:
    path = tmp_path / "model.pth"
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    assert "is not a checkpoint" in str(err.value) and "weights_only" not in str(err.value)
