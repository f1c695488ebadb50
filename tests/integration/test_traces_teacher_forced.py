"""Teacher-forced parity with the upstream traces through onnxruntime, every code base.

For each recorded frame the onnxruntime tracker first gets the state behind the box the upstream tracker
reported for the previous frame (``tracker.state_for_box``; the long-term case also gets the recorded lost
flag), then tracks the frame; its box must match the upstream box of that frame. Unlike a free-running replay,
an error cannot compound, so every frame tests one step of the exported graphs plus the runtime loop.

Default run: one trace per upstream code base (pysot, DaSiamRPN, siamfc-pytorch, foolwood/SiamMask,
haooozi/SiamRPN, HonglinChu/SiamTrackers); the other traces are marked slow.
"""
from __future__ import annotations

import glob
import json
import os

import cv2
import numpy as np
import pytest
import torch

import siamdeploy
from siamdeploy.compare import TRACE_BOX_PX, TRACE_POLYGON_MIN_IOU, compare_boxes, teacher_force
from siamdeploy.models.random_init import random_model
from siamdeploy.presets import get_preset
from siamdeploy.synthetic import generate_sequence

from ..conftest import upstream_state_dict

TRACE_DIR = os.path.join(os.path.dirname(__file__), "..", "data", "upstream_traces")
# the random-weight traces (the reference-model traces, ref_*.json, are replayed by test_upstream_traces.py)
TRACES = sorted(p for p in glob.glob(os.path.join(TRACE_DIR, "*.json")) if not os.path.basename(p).startswith("ref_"))
# one trace per code base in the default run
DEFAULT = {"alex", "dasiamrpn_vot", "siamfc", "mask_base", "haooozi", "siamtrackers"}
# |onnxruntime score - upstream score| per frame (the scores are softmax probabilities in [0, 1])
SCORE_TOLERANCE = 1e-3


def _case(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _polygon_iou(a: np.ndarray, b: np.ndarray) -> float:
    a = cv2.convexHull(np.asarray(a, np.float32).reshape(4, 2)).reshape(-1, 2)
    b = cv2.convexHull(np.asarray(b, np.float32).reshape(4, 2)).reshape(-1, 2)
    inter, _ = cv2.intersectConvexConvex(a, b)
    union = cv2.contourArea(a) + cv2.contourArea(b) - inter
    return float(inter / union) if union > 0 else 1.0


def test_every_code_base_has_a_default_case() -> None:
    sources = {get_preset(json.load(open(p, encoding="utf-8"))["preset"]).source for p in TRACES
               if _case(p) in DEFAULT}
    everything = {get_preset(json.load(open(p, encoding="utf-8"))["preset"]).source for p in TRACES}
    assert sources == everything and len(sources) >= 6, (sources, everything)


@pytest.mark.parametrize("trace_path", [pytest.param(p, id=_case(p), marks=[] if _case(p) in DEFAULT
                                                     else [pytest.mark.slow]) for p in TRACES])
def test_teacher_forced_onnxruntime_matches_upstream(trace_path: str, tmp_path) -> None:
    from siamdeploy.checkpoint import load_model
    from siamdeploy.export.exporter import export_model

    with open(trace_path, encoding="utf-8") as fh:
        trace = json.load(fh)
    preset = trace["preset"]
    args = trace["sequence"]
    seq = generate_sequence(seed=args["seed"], num_frames=args["num_frames"], size=tuple(args["size"]),
                            **({"target_size": tuple(args["target_size"])} if "target_size" in args else {}))
    assert np.allclose(seq.boxes[0], trace["init"]), "generated sequence changed: regenerate the traces"
    ckpt = tmp_path / "checkpoint.pth"
    torch.save(upstream_state_dict(preset, random_model(get_preset(preset), seed=trace["model_seed"]).state_dict()),
               ckpt)
    folder = str(tmp_path / "export")
    export_model(load_model(str(ckpt), preset=preset), folder, validate=False, progress=False)
    tracker = siamdeploy.load_tracker(folder, backend="onnxruntime")

    expected = np.asarray(trace["boxes"], np.float64)
    fields = [{"lost": bool(v)} for v in trace["lost"]] if trace.get("lost") else None
    steps = teacher_force(tracker, seq.frames, trace["init"], expected, fields=fields)
    assert len(steps) == len(expected)
    got = np.asarray([s.result.bbox for s in steps])
    agreement = compare_boxes(got, expected)
    bad = [f"frame {i + 1}: {got[i].tolist()} vs upstream {expected[i].tolist()}"
           for i in np.flatnonzero(~(agreement.max_px <= TRACE_BOX_PX))]
    assert not bad, f"{len(bad)} frames off by more than {TRACE_BOX_PX} px: {bad[:3]}"
    scores = trace.get("scores") or []
    for i, (step, score) in enumerate(zip(steps, scores)):
        if score is not None:
            assert abs(step.result.score - score) <= SCORE_TOLERANCE, f"frame {i + 1}: score {step.result.score}"
    if trace.get("polygons"):
        overlaps = [_polygon_iou(s.result.polygon, p) for s, p in zip(steps, trace["polygons"])]
        assert min(overlaps) >= TRACE_POLYGON_MIN_IOU, np.round(overlaps, 3).tolist()
    print(f"{trace['case']} (onnxruntime, teacher-forced): {len(steps)} frames, worst |delta| "
          f"{agreement.max_px.max():.2e} px")
