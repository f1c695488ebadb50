"""ONNX export -> onnxruntime round trip on seeded random-weight models (calibrated BatchNorm), the manifest,
refusal of tampered exports, the FP16 precision split, and the export CLI."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto

import siamdeploy
from siamdeploy.synthetic import generate_sequence
from siamdeploy.checkpoint import load_model
from siamdeploy.errors import ExportError
from siamdeploy.export.exporter import export_model

FAST = ["siamrpn_alex_dwxcorr", "dasiamrpn_vot", "siamfc"]
SLOW = ["siamrpn_mobilev2_l234_dwxcorr", "siamrpn_r50_l234_dwxcorr", "siammask_r50_l3", "siammask_base",
        "siamrpn_r50_l234_dwxcorr_lt", "dasiamrpn_big", "siamrpn_haooozi"]
_EXPORTS: dict[str, str] = {}


@pytest.fixture(scope="module")
def exported(random_checkpoint, tmp_path_factory):
    """``exported(preset) -> folder`` with fp32 and fp16 graphs, validated (once per module)."""

    def make(preset: str) -> str:
        if preset not in _EXPORTS:
            folder = str(tmp_path_factory.mktemp("export") / preset)
            export_model(load_model(random_checkpoint(preset), preset=preset), folder, precision="both",
                         progress=False, gate=False)  # the gate has its own tests (test_int8.py)
            _EXPORTS[preset] = folder
        return _EXPORTS[preset]

    return make


def _round_trip(preset: str, folder: str, random_checkpoint) -> None:
    seq = generate_sequence(seed=9, num_frames=6, size=(320, 240))
    boxes = {}
    for backend, path in (("torch", random_checkpoint(preset)), ("onnxruntime", folder)):
        tracker = siamdeploy.load_tracker(path, backend=backend, preset=preset if backend == "torch" else None,
                                          device="cpu")
        tracker.init(seq.frames[0], seq.boxes[0])
        boxes[backend] = np.array([tracker.track(f).bbox for f in seq.frames[1:]])
    assert np.abs(boxes["torch"] - boxes["onnxruntime"]).max() <= 0.05


@pytest.mark.parametrize("preset", FAST)
def test_export_round_trip(preset: str, exported, random_checkpoint) -> None:
    _round_trip(preset, exported(preset), random_checkpoint)


@pytest.mark.slow
@pytest.mark.parametrize("preset", SLOW)
def test_export_round_trip_slow(preset: str, exported, random_checkpoint) -> None:
    _round_trip(preset, exported(preset), random_checkpoint)


def test_manifest_contents(exported) -> None:
    folder = exported("siamrpn_alex_dwxcorr")
    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    assert manifest["family"] == "siamrpn" and manifest["preset"]["name"] == "siamrpn_alex_dwxcorr"
    assert manifest["input"]["colour"] == "bgr" and manifest["exemplar_size"] == 127
    assert manifest["instance_sizes"] == [287] and manifest["score_sizes"] == [21] and manifest["stride"] == 8
    assert manifest["anchors"]["shapes_wh"] == [[104, 32], [88, 40], [64, 64], [40, 80], [32, 96]]
    assert manifest["preset"]["track"]["penalty_k"] == 0.16
    assert len(manifest["checkpoint"]["sha256"]) == 64 and manifest["opset"] == 17
    search = manifest["graphs"]["search"]["fp32"]
    assert [t["name"] for t in search["inputs"]] == ["search", "cls_kernel0", "loc_kernel0"]
    assert search["inputs"][0]["shape"] == [1, 3, 287, 287]
    assert {t["name"]: t["shape"] for t in search["outputs"]} == {"cls": [1, 10, 21, 21], "loc": [1, 20, 21, 21]}
    meta = {p.key: p.value for p in onnx.load(os.path.join(folder, "search.onnx")).metadata_props}
    assert meta["preset"] == "siamrpn_alex_dwxcorr" and meta["input_colour"] == "bgr"
    assert any("tracked box" in line for line in manifest["validation"])


def test_search_graph_correlation_is_conv_fed_by_graph_input(exported) -> None:
    model = onnx.load(os.path.join(exported("dasiamrpn_vot"), "search.onnx"))
    inputs = {i.name for i in model.graph.input}
    inits = {i.name for i in model.graph.initializer}
    fed = [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in inputs]
    assert {n.input[1] for n in fed} == {"cls_kernel0", "loc_kernel0"}
    assert not ({"cls_kernel0", "loc_kernel0"} & inits)


def test_fp16_keeps_correlation_and_heads_fp32(exported) -> None:
    folder = exported("siamrpn_alex_dwxcorr")
    entry = json.load(open(os.path.join(folder, "manifest.json")))["graphs"]["search"]["fp16"]
    model = onnx.shape_inference.infer_shapes(onnx.load(os.path.join(folder, entry["file"])))
    types = {v.name: v.type.tensor_type.elem_type for v in
             list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
    types.update({i.name: i.data_type for i in model.graph.initializer})
    nodes = {n.name: n for n in model.graph.node}
    for name in entry["fp32_nodes"]:  # every node the manifest lists as FP32 computes in FP32
        node = nodes[name]
        assert all(types.get(i, TensorProto.FLOAT) == TensorProto.FLOAT for i in node.input if i), name
    backbone = [n for n in model.graph.node if n.name.startswith("/backbone/") and n.op_type == "Conv"]
    assert backbone and all(types[n.input[1]] == TensorProto.FLOAT16 for n in backbone)
    io = list(model.graph.input) + list(model.graph.output)
    assert all(v.type.tensor_type.elem_type == TensorProto.FLOAT for v in io)
    assert "/rpn_head/cls/Conv" in entry["fp32_nodes"] and "/rpn_head/cls/head/head.3/Conv" in entry["fp32_nodes"]


def test_tampered_export_is_refused(exported, tmp_path) -> None:
    folder = str(tmp_path / "copy")
    shutil.copytree(exported("siamfc"), folder)
    with open(os.path.join(folder, "search.onnx"), "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ExportError, match="changed after export"):
        siamdeploy.load_tracker(folder, backend="onnxruntime")


def test_failed_validation_leaves_nothing(random_checkpoint, tmp_path, monkeypatch) -> None:
    from siamdeploy import compare
    monkeypatch.setitem(compare.TOLERANCES, ("onnxruntime", "fp32"), compare.Tolerance(0.0, 0.0, box_px=0.0))
    out = tmp_path / "out"
    with pytest.raises(ExportError, match="validation failed"):
        export_model(load_model(random_checkpoint("siamfc"), preset="siamfc"), str(out), progress=False)
    assert os.listdir(tmp_path) == [], "no output folder and no temporary folder may remain"


def test_export_cli(random_checkpoint, tmp_path) -> None:
    out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "siamdeploy.export", random_checkpoint("siamfc"), "--out", str(out),
                           "--buckets", "1"], capture_output=True, text=True, timeout=600)  # single-target graphs
    assert proc.returncode == 0, proc.stderr
    assert "next: python -m siamdeploy.run" in proc.stdout
    assert sorted(os.listdir(out)) == ["manifest.json", "search.onnx", "template.onnx", "weights_fp32.bin"]
    assert "weights_fp32.bin" in proc.stdout and "shared by 2 graphs" in proc.stdout
    bad = tmp_path / "bad.pth"
    bad.write_text("nope")
    proc = subprocess.run([sys.executable, "-m", "siamdeploy.export", str(bad)], capture_output=True, text=True,
                          timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and proc.stderr.startswith("error:")


def test_onnxruntime_kernels_bound_once_per_target(exported) -> None:
    """The search binding keeps a target's kernels between frames and rebinds them when another target's kernels
    come in: alternating two targets on one engine gives what each gives on an engine of its own."""
    from siamdeploy.engine.onnxruntime_engine import OnnxRuntimeEngine
    from siamdeploy.manifest import read_manifest

    folder = exported("siamrpn_alex_dwxcorr")
    shared = OnnxRuntimeEngine(folder, read_manifest(folder))
    rng = np.random.default_rng(5)
    zs = [rng.uniform(0, 255, (1, 3, 127, 127)).astype(np.float32) for _ in range(2)]
    xs = [rng.uniform(0, 255, (1, 3, 287, 287)).astype(np.float32) for _ in range(3)]
    kernels = [shared.template(z) for z in zs]
    alone = []
    for z in zs:
        own = OnnxRuntimeEngine(folder, read_manifest(folder))
        k = own.template(z)
        alone.append([own.search(x, k).outputs["cls"] for x in xs])
    for i, x in enumerate(xs):
        for t in (0, 1, 0):
            got = shared.search(x, kernels[t]).outputs["cls"]
            np.testing.assert_array_equal(got, alone[t][i])
    first = shared.search(xs[0], kernels[0]).outputs["cls"]
    second = shared.search(xs[1], kernels[0]).outputs["cls"]
    assert not np.array_equal(first, second), "each frame's search crop is bound anew"
    np.testing.assert_array_equal(first, alone[0][0])  # an output array is not overwritten by the next run
