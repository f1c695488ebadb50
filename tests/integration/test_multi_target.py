"""Several targets in one engine call: every target of a MultiTracker equals an independent single-target
tracker (FP32, within 1e-3 px) on every family, with one engine call per frame (per search size).

Random weights are enough here: the check is equality between the batched and the single path, not accuracy.
The networks are made in memory (seeded random weights, calibrated BatchNorm); the long-term family runs
on an AlexNet network with a smaller lost-target search so the default run stays short.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import numpy as np
import pytest
import torch

import siamdeploy
from siamdeploy.checkpoint import load_model
from siamdeploy.engine.base import Engine, bucket_chunks
from siamdeploy.engine.torch_engine import TorchEngine
from siamdeploy.errors import ExportError, InputError
from siamdeploy.families import make_tracker
from siamdeploy.models.random_init import random_model
from siamdeploy.presets import Preset, get_preset
from siamdeploy.runtime.multi import MultiTracker
from siamdeploy.runtime.trackers.base import Tracker
from siamdeploy.synthetic import generate_sequence

TOL_PX = 1e-3


def _preset(name: str) -> Preset:
    if name == "alex_lt":  # the long-term loop on an AlexNet network, lost targets searching 415-pixel crops
        base = get_preset("siamrpn_alex_dwxcorr")
        track = dataclasses.replace(base.track, tracker="siamrpn_lt", lost_instance_size=415)
        return dataclasses.replace(base, name="alex_lt", track=track)
    return get_preset(name)


_NETS: dict[str, torch.nn.Module] = {}


def _engine(name: str) -> TorchEngine:
    if name not in _NETS:
        _NETS[name] = random_model(_preset(name))
    return TorchEngine(_NETS[name], "cpu")  # type: ignore[arg-type]


def _boxes(seq, count: int) -> list[tuple[float, float, float, float]]:
    x, y, w, h = seq.boxes[0]
    others = [(40.0, 50.0, 50.0, 40.0), (200.0, 120.0, 60.0, 50.0), (250.0, 30.0, 35.0, 60.0),
              (x + 20, y + 10, w, h), (10.0, 150.0, 70.0, 60.0)]
    return [tuple(float(v) for v in seq.boxes[0])] + others[:count - 1]  # type: ignore[misc]


def _compare(engine: Engine, new_single: Callable[[], Tracker], count: int, frames: int, size=(320, 240),
             lost: tuple[int, ...] = ()) -> tuple[float, list[int]]:
    """Track ``count`` targets with a MultiTracker on ``engine`` and with single trackers; returns the worst box
    difference (px) and the engine calls per tracked frame."""
    seq = generate_sequence(seed=11, num_frames=frames + 1, size=size)
    boxes = _boxes(seq, count)
    multi = MultiTracker(engine, lambda: make_tracker(engine, new_single().params, "multi"), max_targets=count)
    ids = multi.init(seq.frames[0], boxes)
    singles = []
    for box in boxes:
        single = new_single()
        single.init(seq.frames[0], box)
        singles.append(single)
    for i in lost:  # put some targets into the long-term loop's lost mode: their 831-style search
        state = dataclasses.replace(multi.tracker(ids[i]).state, lost=True)
        multi.tracker(ids[i]).set_state(state)
        singles[i].set_state(dataclasses.replace(singles[i].state, lost=True))
    worst = 0.0
    calls = []
    for frame in seq.frames[1:]:
        before = engine.search_calls
        results = multi.track(frame)
        calls.append(engine.search_calls - before)
        assert list(results) == ids
        for target, single in zip(ids, singles):
            alone = single.track(frame)
            got = results[target]
            worst = max(worst, float(np.abs(np.subtract(got.bbox, alone.bbox)).max()))
            assert abs(got.score - alone.score) < 1e-4
            if alone.polygon is not None:
                assert got.polygon is not None
                worst = max(worst, float(np.abs(got.polygon - alone.polygon).max()))
    return worst, calls


@pytest.mark.parametrize("name", ["siamrpn_alex_dwxcorr", "dasiamrpn_vot", "siamfc"])
def test_batched_equals_single_torch(name: str) -> None:
    engine = _engine(name)
    reference = _engine(name)  # a separate engine: the single trackers' calls are not counted
    frames = 2 if name == "siamrpn_alex_dwxcorr" else 1
    worst, calls = _compare(engine, lambda: make_tracker(reference, _preset(name).track, name), count=3,
                            frames=frames)
    assert worst <= TOL_PX
    assert calls == [1] * frames


def test_long_term_lost_targets_batched_among_themselves() -> None:
    engine, reference = _engine("alex_lt"), _engine("alex_lt")
    track = _preset("alex_lt").track
    worst, calls = _compare(engine, lambda: make_tracker(reference, track, "lt"), count=4, frames=1, lost=(1, 3))
    assert worst <= TOL_PX
    assert calls[0] == 2  # one call for the normal search, one for the two lost targets' larger search


@pytest.mark.slow  # ResNet-50: about a minute on a 2-core CPU
def test_siammask_batched_equals_single_torch() -> None:
    engine, reference = _engine("siammask_r50_l3"), _engine("siammask_r50_l3")
    track = _preset("siammask_r50_l3").track
    worst, calls = _compare(engine, lambda: make_tracker(reference, track, "mask"), count=2, frames=1,
                            size=(256, 192))
    assert worst <= TOL_PX
    assert calls == [1]


def test_batched_template_equals_single() -> None:
    engine = _engine("dasiamrpn_vot")
    rng = np.random.default_rng(0)
    zs = [rng.uniform(0, 255, (1, 3, 127, 127)).astype(np.float32) for _ in range(3)]
    many = engine.template_many(zs)
    for z, kernels in zip(zs, many):
        for a, b in zip(kernels, engine.template(z)):
            assert a.shape == b.shape
            assert float((a - b).abs().max()) <= 1e-4 * max(1.0, float(b.abs().max()))


def test_bucket_chunks() -> None:
    assert bucket_chunks(5, (1, 2, 4, 8)) == [(0, 5, 8)]
    assert bucket_chunks(40, (1, 2, 4, 8, 16, 32)) == [(0, 32, 32), (32, 40, 8)]
    assert bucket_chunks(3, (1,)) == [(0, 1, 1), (1, 2, 1), (2, 3, 1)]
    assert bucket_chunks(0, (1, 2)) == []


def test_multi_tracker_targets_and_errors() -> None:
    engine = _engine("siamrpn_alex_dwxcorr")
    track = _preset("siamrpn_alex_dwxcorr").track
    seq = generate_sequence(seed=2, num_frames=3, size=(320, 240))
    multi = MultiTracker(engine, lambda: make_tracker(engine, track, "alex"), max_targets=3)
    assert multi.track(seq.frames[1]) == {}
    ids = multi.init(seq.frames[0], _boxes(seq, 2))
    assert ids == [0, 1] and len(multi) == 2
    added = multi.add(seq.frames[0], (100, 100, 40, 40))
    assert added == 2 and multi.ids == [0, 1, 2]
    with pytest.raises(InputError, match="max_targets"):
        multi.add(seq.frames[0], (10, 10, 20, 20))
    multi.remove(1)
    assert multi.ids == [0, 2] and set(multi.states) == {0, 2}
    with pytest.raises(InputError, match="no target with id 1"):
        multi.remove(1)
    assert set(multi.track(seq.frames[1])) == {0, 2}
    with pytest.raises(InputError, match="max_targets"):
        multi.init(seq.frames[0], _boxes(seq, 4))
    with pytest.raises(InputError):  # a box outside the frame; the targets held stay as they were
        multi.init(seq.frames[0], [(10, 10, 20, 20), (5000, 5000, 20, 20)])
    assert multi.ids == [0, 2]
    again = multi.init(seq.frames[0], _boxes(seq, 1))
    assert again == [3]  # ids are never reused
    with pytest.raises(InputError, match="max_targets"):
        MultiTracker(engine, lambda: make_tracker(engine, track, "alex"), max_targets=0)


def test_load_multi_tracker_checkpoint_torch(random_checkpoint) -> None:
    path = random_checkpoint("siamrpn_alex_dwxcorr")
    seq = generate_sequence(seed=4, num_frames=3, size=(320, 240))
    with siamdeploy.load_multi_tracker(path, preset="siamrpn_alex_dwxcorr", max_targets=4) as multi:
        ids = multi.init(seq.frames[0], _boxes(seq, 3))
        before = multi.engine.search_calls
        out = multi.track(seq.frames[1])
        assert multi.engine.search_calls - before == 1
        assert sorted(out) == ids
    with pytest.raises(InputError, match="max_targets"):
        siamdeploy.load_multi_tracker(path, max_targets=1000)


# ---- export folders: bucket graphs on onnxruntime (and OpenVINO where installed)
@pytest.fixture(scope="module")
def bucket_exports(tmp_path_factory: pytest.TempPathFactory, random_checkpoint) -> dict[str, str]:
    from siamdeploy.export.exporter import export_model

    root = tmp_path_factory.mktemp("buckets")
    out = {}
    for name in ("siamrpn_alex_dwxcorr", "siamfc"):  # the first validated (bucket 2 against torch), with FP16
        folder = str(root / name)
        export_model(load_model(random_checkpoint(name), preset=name), folder, progress=False, buckets=(1, 2, 4),
                     precision="both" if name == "siamrpn_alex_dwxcorr" else "fp32",
                     validate=name == "siamrpn_alex_dwxcorr")
        out[name] = folder
    plain = str(root / "plain")
    export_model(load_model(random_checkpoint("siamrpn_alex_dwxcorr"), preset="siamrpn_alex_dwxcorr"), plain,
                 validate=False, progress=False)
    out["plain"] = plain
    return out


def _backends() -> list[str]:
    names = ["onnxruntime"]
    try:
        import openvino  # noqa: F401

        names.append("openvino")
    except ImportError:
        pass
    return names


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("name", ["siamrpn_alex_dwxcorr", "siamfc"])
def test_bucket_graphs_equal_single(name: str, backend: str, bucket_exports: dict[str, str]) -> None:
    folder = bucket_exports[name]
    multi = siamdeploy.load_multi_tracker(folder, backend=backend)
    assert multi.engine.buckets == (1, 2, 4)
    reference = siamdeploy.load_tracker(folder, backend=backend)
    new_single = lambda: make_tracker(reference.engine, reference.params, name)  # noqa: E731
    assert multi.engine.batch_policy == "split"  # a CPU engine: N split exactly into buckets
    worst, calls = _compare(multi.engine, new_single, count=3, frames=1)
    assert worst <= TOL_PX and calls == [2]  # 3 targets: 2 + 1, nothing padded
    multi.engine.batch_policy = "pad"
    worst, calls = _compare(multi.engine, new_single, count=3, frames=1)
    assert worst <= TOL_PX and calls == [1]  # 3 targets: the 4-bucket, padded
    worst, calls = _compare(multi.engine, new_single, count=5, frames=1)
    assert worst <= TOL_PX and calls == [2]  # 5 targets: 4 + 1


def test_fp16_bucket_graphs(bucket_exports: dict[str, str]) -> None:
    from siamdeploy.manifest import read_manifest

    folder = bucket_exports["siamrpn_alex_dwxcorr"]
    manifest = read_manifest(folder)
    assert set(manifest.batched_graphs("search", "fp16")) == {(287, 2), (287, 4)}
    assert manifest.buckets("fp16") == (1, 2, 4)
    multi = siamdeploy.load_multi_tracker(folder, backend="onnxruntime", precision="fp16")
    multi.engine.batch_policy = "pad"  # the 4-bucket graph, padded (a CPU engine would split 3 = 2 + 1)
    reference = siamdeploy.load_tracker(folder, backend="onnxruntime", precision="fp16")
    worst, calls = _compare(multi.engine, lambda: make_tracker(reference.engine, reference.params, "f"), count=3,
                            frames=2)
    assert calls == [1, 1]
    assert worst <= 0.05  # FP16 backbone: the batched and single graphs round differently, not by much


def test_export_without_buckets_falls_back(bucket_exports: dict[str, str]) -> None:
    from siamdeploy.manifest import read_manifest

    folder = bucket_exports["plain"]
    manifest = read_manifest(folder)
    assert manifest.buckets() == (1,) and not manifest.batched_graphs("search")
    multi = siamdeploy.load_multi_tracker(folder, backend="onnxruntime")
    reference = siamdeploy.load_tracker(folder, backend="onnxruntime")
    worst, calls = _compare(multi.engine, lambda: make_tracker(reference.engine, reference.params, "p"), count=3,
                            frames=1)
    assert worst <= TOL_PX and calls == [3]  # one call per target


def test_manifest_bucket_fields_checked(bucket_exports: dict[str, str], tmp_path) -> None:
    import json
    import shutil

    from siamdeploy.manifest import read_manifest

    folder = str(tmp_path / "copy")
    shutil.copytree(bucket_exports["siamfc"], folder)
    manifest = read_manifest(folder)
    graph = manifest.graph("search_b4")
    assert graph.role == "search_batched" and graph.targets == 4
    assert graph.inputs[0].shape == (4 * 3, 3, 255, 255)  # 4 targets x 3 scales, target-major
    path = os.path.join(folder, "manifest.json")
    with open(path) as fh:
        data = json.load(fh)
    data["graphs"]["search_b4"]["fp32"]["targets"] = 1
    with open(path, "w") as fh:
        json.dump(data, fh)
    with pytest.raises(ExportError, match="targets"):
        read_manifest(folder)


def test_export_cli_buckets_refused(tmp_path, random_checkpoint) -> None:
    from siamdeploy.export.__main__ import main

    assert main([random_checkpoint("siamfc"), "--out", str(tmp_path / "e"), "--buckets", "1,x"]) == 1
    assert main([random_checkpoint("siamfc"), "--out", str(tmp_path / "e"), "--buckets", "0,2"]) == 1
    assert not os.path.exists(tmp_path / "e")


def test_tensorrt_view_keeps_bucket_graphs(bucket_exports: dict[str, str]) -> None:
    """TensorRT builds one plan per bucket graph: its manifest view of an export with buckets lists the bucket
    graphs with their target counts, from the typed manifest and from the JSON alike; restricted to no
    bucket it is exactly the single-target graphs; the FP16 build plan has one plan per graph."""
    import json

    from siamdeploy.manifest import read_manifest
    from siamdeploy.tensorrt.cache import select_sources
    from siamdeploy.tensorrt.manifest_view import as_view

    folder = bucket_exports["siamrpn_alex_dwxcorr"]
    with open(os.path.join(folder, "manifest.json")) as fh:
        data = json.load(fh)
    for view in (as_view(read_manifest(folder)), as_view(data)):
        assert set(view.graphs) == {"template", "search", "template_b2", "search_b2", "template_b4", "search_b4"}
        assert set(view.restricted(()).graphs) == {"template", "search"}
        assert view.buckets() == (2, 4) and view.targets("template_b4") == 4 and view.targets("search") == 1
        plan = select_sources(view, "fp16", "strong")
        assert {n: v.get("targets", 1) for n, v in plan.items()} == {
            "template": 1, "search": 1, "template_b2": 2, "search_b2": 2, "template_b4": 4, "search_b4": 4}
        assert all(v["file"].endswith("_fp16.onnx") for v in plan.values())


def test_run_cli_several_targets_one_call_per_frame(tmp_path, random_checkpoint) -> None:
    """``python -m siamdeploy.run`` with two ``--init``: one engine call per frame in the summary, and each
    target's results file equals a run with that target alone."""
    import subprocess
    import sys

    import cv2

    video = str(tmp_path / "in.avi")
    seq = generate_sequence(seed=4, num_frames=4, size=(320, 240))
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for frame in seq.frames:
        writer.write(frame)
    writer.release()
    inits = ["100,80,40,40", "10,10,30,30"]

    def run(out: str, *boxes: str) -> str:
        args = [sys.executable, "-m", "siamdeploy.run", video, "--model", random_checkpoint("siamrpn_alex_dwxcorr"),
                "--out", str(tmp_path / out), "--save", "none", "-q"]
        for box in boxes:
            args += ["--init", box]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    stdout = run("both", *inits)
    assert "engine calls per frame: 1.00 (2 targets)" in stdout
    for i, box in enumerate(inits):
        assert "engine calls per frame: 1.00 (1 target)" in run(f"alone{i}", box)
        together = np.loadtxt(tmp_path / "both" / f"results_target{i}.txt", delimiter=",")
        alone = np.loadtxt(tmp_path / f"alone{i}" / "results.txt", delimiter=",")
        assert np.abs(together - alone).max() <= 2e-3  # results files hold 4 decimals


def test_secondary_search_sizes_get_small_buckets_only(monkeypatch) -> None:
    """The long-term lost search (a secondary search size) gets bucket graphs up to SECONDARY_MAX_BUCKET."""
    from siamdeploy.export import graphs

    monkeypatch.setattr(graphs, "SECONDARY_MAX_BUCKET", 2)
    net = _NETS.get("alex_lt") or _engine("alex_lt").net
    plans = graphs.plan_graphs(net, _preset("alex_lt"), buckets=(1, 2, 3))  # type: ignore[arg-type]
    names = {spec.name: spec for spec, _, _ in plans}
    assert {"search", "search_415", "search_b2", "search_415_b2", "search_b3", "template_b3"} <= set(names)
    assert "search_415_b3" not in names
    assert names["search_415_b2"].inputs[0].shape == (2, 3, 415, 415)
    assert names["template_b3"].outputs[0].shape[0] == 3 * names["template"].outputs[0].shape[0]


def test_openvino_reads_non_contiguous_inputs(bucket_exports: dict[str, str]) -> None:
    """OpenVINO's shared-memory input tensors do not keep their numpy arrays alive: an input that is not
    contiguous (as SiamMask's cropped refine inputs are) is copied, and that copy must outlive the inference."""
    pytest.importorskip("openvino", reason="openvino is not installed (pip install 'siamdeploy[openvino]')")
    tracker = siamdeploy.load_tracker(bucket_exports["siamfc"], backend="openvino")
    engine = tracker.engine
    rng = np.random.default_rng(5)
    kernels = engine.template(rng.uniform(0, 255, (1, 3, 127, 127)).astype(np.float32))
    x = rng.uniform(0, 255, (3, 3, 255, 255)).astype(np.float32)
    view = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # NCHW over NHWC memory
    assert not view.flags.c_contiguous and np.array_equal(view, x)
    want = engine.search(x, kernels).outputs["response"]
    for _ in range(3):  # freed memory is reused by the next allocations: repeat to give a stale read a chance
        got = engine.search(view, kernels).outputs["response"]
        np.testing.assert_array_equal(got, want)
        ran = engine._infer("search", {"search": view, **dict(zip(engine.kernel_names,
                                                                  [np.asarray(k.data) for k in kernels]))})
        np.testing.assert_array_equal(ran["response"], want)
    tracker.close()
