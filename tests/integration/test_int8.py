"""INT8 exports: Q/DQ graphs on the backbone only, calibration cache, stages kept in FP32, onnxruntime and
OpenVINO running them, the refusals, and the accuracy gate recorded in ``accuracy.json`` and reported.

The export here is a random-weight AlexNet with a few calibration crops and a short gate (fast on 2 cores);
random weights give flat score maps, so the gate's verdict is recorded, not asserted (it is asserted on the
shipped reference model in ``test_reference_models.py``)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest

import siamdeploy
from siamdeploy.backends.registry import LoadRequest, load_engine
from siamdeploy.compare import ACCURACY_GATE, compare_boxes
from siamdeploy.errors import ConfigError, ExportError, SiamDeployError
from siamdeploy.export import accuracy as gate
from siamdeploy.export import int8 as I
from siamdeploy.export.exporter import export_model, export_precision_for
from siamdeploy.manifest import read_manifest
from siamdeploy.synthetic import generate_sequence

PRESET = "siamrpn_alex_dwxcorr"
OPTIONS = I.Int8Options(sequences=2, frames=4)
_STATE: dict[str, object] = {}


@pytest.fixture(scope="module")
def int8_export(random_checkpoint, tmp_path_factory):
    """(folder, checkpoint, ExportResult) of an int8 export (fp32 + int8, validated, gated on 1 x 8 frames)."""
    if "result" not in _STATE:
        from siamdeploy.checkpoint import load_model

        ckpt = random_checkpoint(PRESET)
        folder = str(tmp_path_factory.mktemp("int8") / "export")
        _STATE["result"] = export_model(load_model(ckpt, preset=PRESET), folder, precision="int8", progress=False,
                                        int8=OPTIONS, gate_sequences=1, gate_frames=8)
        _STATE["folder"], _STATE["ckpt"] = folder, ckpt
    return _STATE["folder"], _STATE["ckpt"], _STATE["result"]


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in model.graph.node for o in n.output}


def test_manifest_lists_int8_graphs_and_calibration_cache(int8_export) -> None:
    folder, _, result = int8_export
    m = read_manifest(folder)
    assert m.precisions == ("fp32", "int8")
    for name in ("template", "search"):
        g = m.graph(name, "int8")
        assert g.file == f"{name}_int8.onnx" and g.reduced_nodes > 0
        head = "/rpn_head/" if name == "search" else "/conv_kernel/"
        assert any(n.startswith(head) for n in g.fp32_nodes)  # heads listed as FP32
        assert [n for n in g.fp32_nodes if n.startswith("/backbone/")] == [  # the stem, FP32 by default
            "/backbone/features/features.0/Conv", "/backbone/features/features.2/MaxPool",
            "/backbone/features/features.3/Relu"]
    caches = os.listdir(os.path.join(folder, I.CALIBRATION_DIR))
    assert sorted(c.split("-")[0] for c in caches) == ["search", "template"]
    assert result.int8["stages"] == {"features.0": 3, "features.4": 3, "features.8": 2, "features.11": 2,
                                     "features.14": 1}
    assert result.int8["keep"] == ["features.0"]  # the stem stays FP32 by default
    sens = result.int8["sensitivity"]
    assert set(sens) == set(result.int8["stages"]) | {"as exported"}
    assert all(0 < v < 10 for errors in sens.values() for v in errors.values())


def test_qdq_on_backbone_convs_none_on_correlation_or_heads(int8_export) -> None:
    folder, _, _ = int8_export
    for name in ("template", "search"):
        model = onnx.load(os.path.join(folder, f"{name}_int8.onnx"))
        made_by = _producers(model)
        inits = {i.name: i for i in model.graph.initializer}
        kinds = {n.op_type for n in model.graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= kinds
        for node in model.graph.node:
            if node.op_type != "Conv":
                continue
            feeders = [made_by[i].op_type if i in made_by else "graph input/initializer" for i in node.input[:2]]
            if node.name.startswith("/backbone/") and node.name != "/backbone/features/features.0/Conv":
                assert feeders == ["DequantizeLinear", "DequantizeLinear"], (node.name, feeders)
                weight_dq = made_by[node.input[1]]
                scale = onnx.numpy_helper.to_array(inits[weight_dq.input[1]])
                zero = onnx.numpy_helper.to_array(inits[weight_dq.input[2]])
                assert scale.ndim == 1 and scale.size > 1 and not zero.any()  # per channel, symmetric
            else:  # correlation and heads: FP32 inputs, weights and the template's kernels untouched
                assert "DequantizeLinear" not in feeders, (node.name, feeders)
        for node in model.graph.node:
            if node.op_type == "QuantizeLinear":
                zero = onnx.numpy_helper.to_array(inits[node.input[2]])
                assert zero.dtype == np.int8 and not zero.any()  # symmetric int8 activations (TensorRT's form)
        kernel_inputs = {i.name for i in model.graph.input} - {"search", "template"}
        for node in model.graph.node:
            assert not (node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.input[0] in kernel_inputs)


def _track(folder: str, backend: str, precision: str) -> np.ndarray:
    tracker = siamdeploy.load_tracker(folder, backend=backend, device="cpu", precision=precision)
    seq = generate_sequence(seed=3, num_frames=4, size=(320, 240))
    tracker.init(seq.frames[0], seq.boxes[0])
    boxes = np.array([tracker.track(f).bbox for f in seq.frames[1:]])
    assert tracker.engine.precision == precision
    return boxes


def test_onnxruntime_runs_int8(int8_export) -> None:
    folder, _, _ = int8_export
    boxes = _track(folder, "onnxruntime", "int8")
    assert np.isfinite(boxes).all() and (boxes[:, 2:] > 0).all()


def test_openvino_runs_int8(int8_export) -> None:
    pytest.importorskip("openvino", reason="openvino is not installed (pip install 'siamdeploy[openvino]')")
    folder, _, _ = int8_export
    engine, _ = load_engine("openvino", LoadRequest(folder, precision="int8"))
    assert engine.precision == "int8" and sum(engine.int8_ops.values()) > 0 and "int8" in engine.describe()
    engine.close()
    boxes = _track(folder, "openvino", "int8")
    assert np.isfinite(boxes).all()


def test_int8_agrees_with_quantized_reference_not_fp32_exactly(int8_export) -> None:
    """The int8 graph really computes something else than fp32 (the Q/DQ nodes are not no-ops), by less than
    the outputs' scale."""
    folder, _, result = int8_export
    rel = result.accuracy["results"]["onnxruntime cpu int8"]["tensor_max_rel"]
    assert set(rel) >= {"search.cls", "search.loc", "template.cls_kernel0"}
    assert all(1e-4 < v < 1.0 for v in rel.values()), rel


def test_gate_recorded_in_sidecar_and_manifest(int8_export) -> None:
    folder, _, result = int8_export
    data = gate.read_accuracy(folder)
    assert data is not None and data == json.loads(json.dumps(result.accuracy))
    entry = data["results"]["onnxruntime cpu int8"]
    assert entry["frames"] == 7 and entry["min_iou"] == 0.95 and entry["min_fraction"] == 0.99
    assert entry["passed"] == (entry["fraction_iou_ok"] >= 0.99)
    assert ("MISSES" in entry["line"]) != entry["passed"]
    assert data["data"]["seeds"] == [gate.GATE_SEED] and "flat" in data["note"]
    assert "openvino cpu bf16" in data["results"] or "openvino cpu bf16" in data["not_measured"]
    extras = read_manifest(folder).extras["accuracy_gate"]
    assert extras["file"] == "accuracy.json" and extras["passed"]["onnxruntime cpu int8"] == entry["passed"]


def test_gate_decision() -> None:
    good = np.tile([10.0, 10.0, 50.0, 50.0], (100, 1))
    one_off = good.copy()
    one_off[0] = [40.0, 40.0, 50.0, 50.0]
    assert ACCURACY_GATE.check(compare_boxes(one_off, good)).passed  # 99 of 100
    two_off = one_off.copy()
    two_off[1] = [40.0, 40.0, 50.0, 50.0]
    verdict = ACCURACY_GATE.check(compare_boxes(two_off, good))
    assert not verdict.passed and verdict.good == 98 and "MISSES" in verdict.line()


def _fake_sidecar(folder: str, passed: bool) -> None:
    os.makedirs(folder, exist_ok=True)
    entry = {"passed": passed, "line": ("passes" if passed else "MISSES") + " the accuracy gate: ..."}
    gate.write_accuracy(folder, {"format": gate.FORMAT, "note": gate.FLAT_NOTE,
                                 "results": {"onnxruntime cpu int8": entry}, "not_measured": {}})


def test_failing_gate_is_reported_loudly(tmp_path, capsys) -> None:
    _fake_sidecar(str(tmp_path / "bad"), passed=False)
    notes = gate.gate_notes(str(tmp_path / "bad"), "onnxruntime", "int8", "cpu")
    assert len(notes) == 1 and notes[0].startswith("WARNING") and "MISSED" in notes[0]
    _fake_sidecar(str(tmp_path / "good"), passed=True)
    assert gate.gate_notes(str(tmp_path / "good"), "onnxruntime", "int8")[0].startswith("accuracy gate")
    assert gate.gate_notes(str(tmp_path / "good"), "onnxruntime", "fp32") == []
    assert "no accuracy-gate measurement" in gate.gate_notes(str(tmp_path / "good"), "openvino", "int8")[0]
    from siamdeploy.export.__main__ import _print_gate

    class Result:
        accuracy = {"gate": {"what": ACCURACY_GATE.describe()}, "reference": "torch cpu fp32",
                    "data": {"seeds": [1], "frames_per_sequence": 8}, "note": gate.FLAT_NOTE,
                    "results": {"onnxruntime cpu int8": {"passed": False, "line": "MISSES the accuracy gate: x"}},
                    "not_measured": {"openvino cpu bf16": "no bf16 here"}}

    _print_gate(Result())
    out = capsys.readouterr().out
    assert "!!! onnxruntime cpu int8 MISSED the accuracy gate" in out and "not measured: no bf16 here" in out


def test_run_summary_reports_the_gate(int8_export, tmp_path) -> None:
    folder, _, _ = int8_export
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(siamdeploy.__file__))}
    proc = subprocess.run([sys.executable, "-m", "siamdeploy.run", "demo", "--frames", "3", "--model", folder,
                           "--backend", "onnxruntime", "--precision", "int8", "--no-display", "--save", "none",
                           "--out", str(tmp_path / "run"), "-q"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    passed = gate.read_accuracy(folder)["results"]["onnxruntime cpu int8"]["passed"]
    if passed:
        assert "accuracy gate (onnxruntime int8, at export): passes" in proc.stdout
    else:
        assert "WARNING: onnxruntime int8 MISSED the accuracy gate at export" in proc.stdout


def test_keep_stage_and_calibration_cache_reuse(int8_export, tmp_path) -> None:
    from siamdeploy.checkpoint import load_model

    folder, ckpt, _ = int8_export
    copy = str(tmp_path / "copy")
    shutil.copytree(folder, copy)
    fp32 = read_manifest(copy).graphs_for("fp32")
    options = I.Int8Options(sequences=OPTIONS.sequences, frames=OPTIONS.frames, keep=("features.0", "features.4"),
                            sensitivity=False)
    written, info = I.write_int8_graphs(load_model(ckpt, preset=PRESET), copy, fp32, options)
    assert sorted(info["calibration_reused"]) == ["search", "template"]  # the stored ranges, no calibration
    model = onnx.load(os.path.join(copy, written["search"].file))
    made_by = _producers(model)
    convs = {n.name: n for n in model.graph.node if n.op_type == "Conv"}
    for kept in ("/backbone/features/features.0/Conv", "/backbone/features/features.4/Conv"):
        assert all(made_by.get(i) is None or made_by[i].op_type != "DequantizeLinear" for i in convs[kept].input)
        assert kept in written["search"].fp32_nodes
    assert made_by[convs["/backbone/features/features.8/Conv"].input[1]].op_type == "DequantizeLinear"
    with pytest.raises(ExportError, match=r"--int8-keep layer9: no such backbone stage.*features\.0"):
        I.write_int8_graphs(load_model(ckpt, preset=PRESET), copy, fp32, I.Int8Options(keep=("layer9",)))


def test_backbone_stage_names() -> None:
    from onnx import helper

    def graph(names: list[tuple[str, str]]) -> onnx.ModelProto:
        nodes = [helper.make_node(op, [], [f"o{i}"], name=n) for i, (n, op) in enumerate(names)]
        return helper.make_model(helper.make_graph(nodes, "g", [], []))

    r50 = graph([("/backbone/conv1/Conv", "Conv"), ("/backbone/relu/Relu", "Relu"),
                 ("/backbone/maxpool/MaxPool", "MaxPool"), ("/backbone/layer1/layer1.0/conv1/Conv", "Conv"),
                 ("/backbone/layer2/layer2.0/conv1/Conv", "Conv"), ("/neck/downsample2/Conv", "Conv"),
                 ("/rpn_head/Conv", "Conv")])
    assert {k: len(v) for k, v in I.backbone_stages(r50).items()} == {"conv1": 3, "layer1": 1, "layer2": 1,
                                                                      "neck": 1}
    assert "/rpn_head/Conv" not in I.int8_nodes(r50) and "/neck/downsample2/Conv" in I.int8_nodes(r50)
    assert I.resolve_keep(r50, None) == ("conv1",)
    assert "/backbone/conv1/Conv" in I.int8_nodes(r50) and "/backbone/conv1/Conv" not in I.int8_nodes(r50, None)
    assert I.int8_nodes(r50, keep=("neck", "conv1")) == ["/backbone/layer1/layer1.0/conv1/Conv",
                                                         "/backbone/layer2/layer2.0/conv1/Conv"]


def test_export_precision_union() -> None:
    assert export_precision_for({"int8"}) == "int8"
    assert export_precision_for({"fp16", "fp32"}) == "both"
    assert export_precision_for({"int8", "fp16"}) == "all"
    from siamdeploy.export.cache import _export_precision

    assert _export_precision("int8", ("fp32", "fp16")) == "all"
    assert _export_precision("fp16", ("fp32",)) == "both"


# ---------------------------------------------------------------- refusals
def test_int8_from_an_export_without_int8_graphs_is_refused(random_checkpoint, tmp_path) -> None:
    from siamdeploy.checkpoint import load_model

    folder = str(tmp_path / "fp32")
    export_model(load_model(random_checkpoint(PRESET), preset=PRESET), folder, validate=False, progress=False)
    for backend in ("onnxruntime", "openvino"):
        if backend == "openvino" and not _has("openvino"):
            continue
        with pytest.raises(SiamDeployError, match=r"has no int8 graphs \(has: fp32\); re-export with .*--precision "
                                                  r"int8"):
            siamdeploy.load_tracker(folder, backend=backend, precision="int8")
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(siamdeploy.__file__))}
    proc = subprocess.run([sys.executable, "-m", "siamdeploy.run", "demo", "--frames", "2", "--model", folder,
                           "--backend", "onnxruntime", "--precision", "int8", "--no-display", "--save", "none",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no int8 graphs" in lines[0], proc.stderr


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_int8_refusals(random_checkpoint, tmp_path) -> None:
    from siamdeploy.checkpoint import load_model

    with pytest.raises(ConfigError, match="INT8 .* on the CPU only"):
        load_engine("onnxruntime", LoadRequest(random_checkpoint(PRESET), preset=PRESET, device="cuda:0",
                                               precision="int8"))
    with pytest.raises(ExportError, match="opset 13 or more"):
        export_model(load_model(random_checkpoint(PRESET), preset=PRESET), str(tmp_path / "e"), precision="int8",
                     opset=12)
    assert not os.path.exists(tmp_path / "e")
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(siamdeploy.__file__))}
    proc = subprocess.run([sys.executable, "-m", "siamdeploy.export", random_checkpoint(PRESET), "--preset", PRESET,
                           "--precision", "fp16", "--int8-keep", "features.0", "--out", str(tmp_path / "x")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1 and "--int8-keep applies to INT8 graphs" in proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if ln.strip()]) == 1


def test_checkpoint_loads_int8_without_prior_export(random_checkpoint, tmp_path, monkeypatch) -> None:
    """``load_tracker(ckpt, backend=..., precision="int8")`` exports into the cache (here with few crops)."""
    import functools

    from siamdeploy.export import exporter

    monkeypatch.setenv("SIAMDEPLOY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(exporter, "export_model", functools.partial(exporter.export_model, int8=OPTIONS,
                                                                     gate_sequences=1, gate_frames=3))
    backends = ["onnxruntime"] + (["openvino"] if _has("openvino") else [])
    for backend in backends:
        tracker = siamdeploy.load_tracker(random_checkpoint(PRESET), preset=PRESET, backend=backend,
                                          precision="int8")
        assert tracker.engine.precision == "int8"
        assert "exports" in tracker.engine.folder and read_manifest(tracker.engine.folder).precisions == (
            "fp32", "int8")


def test_tensorrt_input_folds_int32_biases(int8_export, tmp_path) -> None:
    """The TensorRT INT8 build parses the Q/DQ graph with its int32 biases folded to float32; the folded graph
    computes the same outputs (onnxruntime), and keeps every activation/weight Q/DQ pair."""
    import onnxruntime as ort

    from siamdeploy.tensorrt.qdq import tensorrt_int8_onnx

    folder, _, _ = int8_export
    src = os.path.join(folder, "search_int8.onnx")
    folded = tensorrt_int8_onnx(src, str(tmp_path))
    assert folded != src
    a, b = onnx.load(src), onnx.load(folded)
    dq = [n for n in a.graph.node if n.op_type == "DequantizeLinear"]
    int32 = {i.name for i in a.graph.initializer if i.data_type == onnx.TensorProto.INT32} & {n.input[0] for n in dq}
    assert int32  # the biases
    assert sum(1 for n in b.graph.node if n.op_type == "DequantizeLinear") == len(dq) - len(int32)
    assert not any(i.data_type == onnx.TensorProto.INT32 for i in b.graph.initializer)
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.uniform(0, 1 if i.name != "search" else 255, [d.dim_value for d in
                                                                       i.type.tensor_type.shape.dim]).astype(np.float32)
             for i in a.graph.input}
    outs = [ort.InferenceSession(p, providers=["CPUExecutionProvider"]).run(None, feeds) for p in (src, folded)]
    for x, y in zip(*outs):
        assert np.abs(x - y).max() <= 1e-3 * np.abs(x).max()


@pytest.mark.slow
def test_reference_siamrpn_int8_passes_the_gate(tmp_path) -> None:
    """On the shipped reference SiamRPN (peaked score maps) the default INT8 export passes the gate on
    onnxruntime (and OpenVINO where installed)."""
    from siamdeploy.checkpoint import load_model
    from siamdeploy.reference import reference_model

    ref = reference_model("siamrpn_alex_dwxcorr")
    result = export_model(load_model(ref.checkpoint, **ref.load_args()), str(tmp_path / "e"), precision="int8",
                          progress=False, int8=I.Int8Options(sensitivity=False))
    entries = result.accuracy["results"]
    assert entries["onnxruntime cpu int8"]["passed"], entries["onnxruntime cpu int8"]["line"]
    if "openvino cpu int8" in entries:
        assert entries["openvino cpu int8"]["passed"], entries["openvino cpu int8"]["line"]
