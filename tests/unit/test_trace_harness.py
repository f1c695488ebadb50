"""The trace harness in tools/upstream_traces without the upstream code: its case table agrees with the
committed traces, its upstream-format checkpoints read back to the same weights through siamdeploy's layout
table, and its outside shims behave as the Python 2 / OpenCV 4 semantics they stand in for."""
from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest
import torch

from siamdeploy.checkpoint.layouts import fold_rgb_normalisation
from siamdeploy.models.siamese import SiameseNet
from siamdeploy.presets import get_preset
from tools.upstream_traces import shims
from siamdeploy.reference import reference_model
from tools.upstream_traces.__main__ import case_weights
from tools.upstream_traces.cases import CASES, UPSTREAM, Case
from tools.upstream_traces.checkpoints import round_trip_error, unfold_rgb_normalisation, upstream_checkpoint
from tools.upstream_traces.compare import compare

TRACE_DIR = os.path.join(os.path.dirname(__file__), "..", "data", "upstream_traces")


def _committed() -> dict[str, dict]:
    out = {}
    for path in sorted(glob.glob(os.path.join(TRACE_DIR, "*.json"))):
        with open(path, encoding="utf-8") as fh:
            out[os.path.splitext(os.path.basename(path))[0]] = json.load(fh)
    return out


def test_every_committed_trace_has_a_case_with_its_inputs() -> None:
    committed = _committed()
    assert sorted(committed) == sorted(c.name for c in CASES)
    for case in CASES:
        trace = committed[case.name]
        assert (trace["preset"], trace["model_seed"], trace["sequence"]) == \
            (case.preset, case.model_seed, case.sequence()), case.name
        assert trace.get("weights", "random") == case.weights, case.name
        assert (trace["upstream"]["repo"], trace["upstream"]["commit"]) == UPSTREAM[case.codebase], case.name
        assert trace.get("rejected_seeds", []) == [r.as_json() for r in case.rejected_seeds], case.name


def test_case_rows_name_their_weights_and_frames() -> None:
    ref = next(c for c in CASES if c.weights == "reference" and c.codebase == "pysot")
    assert ref.model_seed is None and ref.sequence()["frames"] == "photos"
    assert "frames" not in next(c for c in CASES if c.name == "alex").sequence()
    with pytest.raises(ValueError, match="model_seed"):
        Case("x", "pysot", "siamrpn_alex_dwxcorr", 1, 2, 3, weights="reference")
    with pytest.raises(ValueError, match="frames one of"):
        Case("x", "pysot", "siamrpn_alex_dwxcorr", 1, 2, 3, frames="video")
    with pytest.raises(ValueError, match="target_size"):
        Case("x", "pysot", "siamrpn_alex_dwxcorr", None, 2, 3, target_size=(9, 9), weights="reference",
             frames="photos")


@pytest.mark.parametrize("preset", ["siamrpn_alex_dwxcorr", "siamfc"])
def test_reference_weights_are_the_shipped_checkpoint_in_float32(preset: str) -> None:
    case = next(c for c in CASES if c.weights == "reference" and c.preset == preset)
    state = case_weights(case)
    raw = torch.load(reference_model(preset).checkpoint, map_location="cpu")
    assert set(raw) == set(state)
    for key, value in raw.items():
        if key.endswith("num_batches_tracked"):  # a training counter; siamdeploy's loader does not keep it
            continue
        assert state[key].dtype == (torch.float32 if value.is_floating_point() else value.dtype), key
        assert torch.equal(state[key], value.to(state[key].dtype)), key
    assert round_trip_error(state, upstream_checkpoint(preset, state)) == 0.0


@pytest.mark.parametrize("preset", ["dasiamrpn_vot", "siamrpn_siamtrackers", "siamrpn_haooozi", "siammask_base",
                                    "siamrpn_alex_dwxcorr", "siamfc"])
def test_upstream_checkpoint_reads_back_to_the_same_weights(preset: str) -> None:
    torch.manual_seed(0)
    state = SiameseNet(get_preset(preset).model).state_dict()
    written = upstream_checkpoint(preset, state)
    keys = list(written.get("model", written))
    assert round_trip_error(state, written) < 1e-4
    if get_preset(preset).source == "dasiamrpn":
        assert not any(k.endswith("num_batches_tracked") for k in keys)
    if get_preset(preset).source in ("dasiamrpn", "siamtrackers", "haooozi"):
        assert any(k.startswith("featureExtract.") for k in keys) and not any(k.startswith("backbone") for k in keys)


def test_unfold_inverts_siamdeploys_fold() -> None:
    gen = torch.Generator().manual_seed(1)
    state = {"featureExtract.0.weight": torch.randn(8, 3, 5, 5, generator=gen),
             "featureExtract.0.bias": torch.randn(8, generator=gen)}
    unfolded = unfold_rgb_normalisation(state)
    assert not torch.allclose(unfolded["featureExtract.0.weight"], state["featureExtract.0.weight"])
    back = fold_rgb_normalisation(unfolded, key="featureExtract.0")
    for key, value in state.items():
        assert torch.allclose(back[key], value, atol=1e-4, rtol=1e-5), key


def test_python2_semantics() -> None:
    assert [shims.python2_round(v) for v in (0.5, 1.5, 2.5, -0.5, -2.5, 2.4999)] == [1.0, 2.0, 3.0, -1.0, -3.0, 2.0]
    assert isinstance(shims.python2_round(3), float)
    assert shims.Python2Int(19) / 2 == 9 and -(shims.Python2Int(19) / 2) * 8 == -72
    assert shims.Python2Int(19) / 2.0 == 9.5


def test_opencv4_facade_takes_the_two_value_branch_and_records_contours() -> None:
    import cv2

    facade = shims.OpenCV4Facade(cv2)
    assert facade.__version__[-5] == "4" and facade.resize is cv2.resize
    mask = np.zeros((40, 40), np.uint8)
    mask[5:25, 10:30] = 1
    contours, _ = facade.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    assert len(facade.last_contours) == len(contours) == 1
    assert cv2.contourArea(facade.last_contours[0]) == pytest.approx(19 * 19)


def test_call_recorder_and_stubs() -> None:
    recorder = shims.CallRecorder(np, ("argmax",))
    assert recorder.argmax(np.array([1.0, 5.0, 2.0])) == 1 and recorder.last["argmax"] == 1
    assert recorder.zeros is np.zeros
    module = shims.stub_module("_harness_stub_test", region=None)
    with pytest.raises(RuntimeError, match="stand-in"):
        module.region()


def test_compare_reports_differences() -> None:
    old = {"case": "x", "preset": "p", "model_seed": 1, "sequence": {"seed": 2}, "init": [0, 0, 4, 4],
           "boxes": [[1.0, 2.0, 3.0, 4.0]], "scores": [0.5], "polygons": None, "lost": [True]}
    same = compare(json.loads(json.dumps(old)), old)
    assert same.within({"boxes": 0.0, "scores": 0.0, "polygons": 0.0})
    moved = dict(old, boxes=[[1.0, 2.01, 3.0, 4.0]], lost=[False])
    diff = compare(moved, old)
    assert diff.max_abs["boxes"] == pytest.approx(0.01) and diff.mismatched == ("lost",)
    assert not diff.within({"boxes": 1.0, "scores": 1.0, "polygons": 1.0})
