"""The shipped reference models track held-out generated photo sequences, and their FP16 ONNX export agrees
with torch FP32 frame by frame (teacher-forced). Random weights fail both checks; trained weights that
tracked only by luck, or a decode / penalty / precision regression, fail them too."""
from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

import siamdeploy
from siamdeploy.eval.metrics import iou, success_auc
from siamdeploy.reference import REFERENCE_MODELS, reference_model
from siamdeploy.synthetic.photos import heldout_photos, photo_sequence

SEEDS = (2000, 2001, 2002)       # held-out photographs, seeds neither the training nor the demo uses
FRAMES = 80
MIN_SUCCESS = 0.45
FP16_MIN_IOU, FP16_MIN_FRACTION = 0.95, 0.99

# Teacher forcing: the tracker state copied from the reference tracker before each frame. All of it goes
# through these two functions (RPN loops: centre, size, crop_wh; SiamFC: centre, target_sz, z_sz, x_sz).
_STATE = ("centre", "size", "crop_wh", "target_sz", "z_sz", "x_sz")


def read_state(tracker: Any) -> dict[str, Any]:
    return {k: copy.deepcopy(getattr(tracker, k)) for k in _STATE if hasattr(tracker, k)}


def force_state(tracker: Any, state: dict[str, Any]) -> None:
    for k, v in state.items():
        setattr(tracker, k, copy.deepcopy(v))


@pytest.fixture(scope="module")
def sequences():  # noqa: ANN201
    photos = heldout_photos()
    return [photo_sequence(seed, FRAMES, photos=photos) for seed in SEEDS]


def _track(tracker: Any, seq: Any, states: list[dict[str, Any]] | None = None,
           record: list[dict[str, Any]] | None = None) -> np.ndarray:
    tracker.init(seq.frames[0], tuple(float(v) for v in seq.boxes[0]))
    boxes = [seq.boxes[0]]
    for i, frame in enumerate(seq.frames[1:]):
        if record is not None:
            record.append(read_state(tracker))
        if states is not None:
            force_state(tracker, states[i])
        boxes.append(np.asarray(tracker.track(frame).bbox, np.float64))
    return np.asarray(boxes)


def test_reference_model_record() -> None:
    for name in REFERENCE_MODELS:
        ref = reference_model(name)
        assert ref.preset == name and ref.checkpoint.endswith(".pth")
        assert (ref.config is not None) == (name == "siamrpn_alex_dwxcorr")
    with pytest.raises(siamdeploy.ConfigError, match="available: siamrpn_alex_dwxcorr, siamfc"):
        reference_model("siamrpn_r50_l234_dwxcorr")


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_reference_model_tracks_heldout_sequences(name: str, sequences) -> None:
    ref = reference_model(name)
    tracker = siamdeploy.load_tracker(ref.checkpoint, device="cpu", **ref.load_args())
    scores = [success_auc(_track(tracker, seq), seq.boxes) for seq in sequences]
    assert np.mean(scores) >= MIN_SUCCESS, f"{name}: success per sequence {np.round(scores, 3)}"


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_fp16_onnx_agrees_with_torch_fp32_teacher_forced(name: str, sequences, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from siamdeploy.checkpoint import load_model
    from siamdeploy.export.exporter import export_model

    ref = reference_model(name)
    folder = str(tmp_path / "export")
    export_model(load_model(ref.checkpoint, **ref.load_args()), folder, precision="fp16", progress=False,
                 gate=False)  # this test teacher-forces itself, on its own sequences
    torch_tracker = siamdeploy.load_tracker(ref.checkpoint, device="cpu", **ref.load_args())
    ort_tracker = siamdeploy.load_tracker(folder, backend="onnxruntime", device="cpu", precision="fp16")
    ious = []
    for seq in sequences[:2]:
        states: list[dict[str, Any]] = []
        ref_boxes = _track(torch_tracker, seq, record=states)
        forced = _track(ort_tracker, seq, states=states)
        ious.append(iou(forced[1:], ref_boxes[1:]))
    ious_all = np.concatenate(ious)
    fraction = float(np.mean(ious_all >= FP16_MIN_IOU))
    assert fraction >= FP16_MIN_FRACTION, \
        f"{name}: {fraction:.3f} of frames IoU >= {FP16_MIN_IOU}, min {ious_all.min():.3f}"
