"""SiamMask's masks take the batch: ``Engine.refine_many`` / ``mask_at_many`` equal the single-target
``refine`` / ``mask_at`` (FP32, within 1e-4) on torch, onnxruntime and OpenVINO, and several SiamMask targets
tracked together run one mask call per frame with the polygons of each tracker alone.

Random weights are enough: the check is equality between the batched and the single path."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import siamdeploy
from siamdeploy.checkpoint import load_model
from siamdeploy.engine.torch_engine import TorchEngine
from siamdeploy.families import make_tracker
from siamdeploy.models import SiameseNet
from siamdeploy.presets import get_preset
from siamdeploy.synthetic import generate_sequence

TOL = 1e-4
# target cells on SiamMask's 25x25 score grid: corners (the crops reach into the padding) and the middle
CELLS = [(0, 0), (24, 24), (12, 12), (3, 20), (20, 3)]


def _extras(rng: np.random.Generator, count: int) -> list[dict[str, np.ndarray]]:
    """Search features of ``count`` targets, shaped as a 255 search gives them (f0/f1/f2: ResNet-50 levels 0-2,
    mask_corr: the mask head's depthwise correlation), float32 of order one."""
    shapes = {"f0": (1, 64, 125, 125), "f1": (1, 256, 63, 63), "f2": (1, 512, 31, 31), "mask_corr": (1, 256, 25, 25)}
    return [{k: rng.normal(0, 1, s).astype(np.float32) for k, s in shapes.items()} for _ in range(count)]


def _check_many(engine, extras, head: str) -> None:
    """``count`` targets in one call (or one per bucket) equal one call per target, within TOL."""
    single = engine.refine if head == "refine" else engine.mask_at
    many = engine.refine_many if head == "refine" else engine.mask_at_many
    want = [single(e, c) for e, c in zip(extras, CELLS)]
    before = engine.refine_calls
    got = many(extras, CELLS[:len(extras)])
    assert engine.refine_calls - before == 1
    assert len(got) == len(extras)
    shape = (127, 127) if head == "refine" else (63, 63)
    for a, b in zip(got, want):
        assert a.shape == b.shape == shape and a.dtype == np.float32
        assert float(np.abs(a - b).max()) <= TOL * max(1.0, float(np.abs(b).max()))
    assert float(np.abs(want[0] - want[1]).max()) > 1e-2  # the targets differ: a mix-up would show


@pytest.mark.parametrize("preset, head", [("siammask_r50_l3", "refine"), ("siammask_base", "mask_head")])
def test_torch_masks_many_equal_single(preset: str, head: str) -> None:
    torch.manual_seed(0)
    engine = TorchEngine(SiameseNet(get_preset(preset).model), "cpu")
    extras = [{k: torch.from_numpy(v) for k, v in e.items()} for e in _extras(np.random.default_rng(1), 5)]
    _check_many(engine, extras, head)


def test_mask_bucket_graphs_planned(tmp_path) -> None:
    """One refine (mask head) graph per bucket, static shapes with B rows; the FP16 conversion keeps them FP32."""
    from siamdeploy.export.exporter import _export_graph
    from siamdeploy.export.fp16 import convert_mixed_fp16
    from siamdeploy.export.graphs import TensorSpec, _mask_plans

    # the search outputs SiamMask's mask graphs are cut from (255 search, 25x25 score map)
    search = (TensorSpec("mask_corr", (1, 256, 25, 25)), TensorSpec("f0", (1, 64, 125, 125)),
              TensorSpec("f1", (1, 256, 63, 63)), TensorSpec("f2", (1, 512, 31, 31)))
    for preset, name in (("siammask_r50_l3", "refine"), ("siammask_base", "mask_head")):
        net = SiameseNet(get_preset(preset).model).eval()
        plans = {spec.name: (spec, module, args) for spec, module, args in
                 _mask_plans(net, get_preset(preset), search, (1, 2, 4))}
        assert set(plans) == {name, f"{name}_b2", f"{name}_b4"}
        single = plans[name][0]
        assert single.role == name and single.targets == 1
        for bucket in (2, 4):
            spec, module, args = plans[f"{name}_b{bucket}"]
            assert spec.role == f"{name}_batched" and spec.targets == bucket
            tensors = spec.inputs + spec.outputs
            assert [t.shape[0] for t in tensors] == [bucket] * len(tensors)
            assert [t.shape[1:] for t in tensors] == [t.shape[1:] for t in single.inputs + single.outputs]
            assert [tuple(a.shape) for a in args] == [t.shape for t in spec.inputs]
        spec, module, args = plans[f"{name}_b2"]
        model = _export_graph(spec, module, args, str(tmp_path / spec.filename), 17, {})
        _, fp16_nodes, fp32_nodes = convert_mixed_fp16(model)
        assert fp16_nodes == [] and fp32_nodes  # the mask graphs have no backbone or neck: all FP32


# ---- an export folder with mask buckets, on onnxruntime (and OpenVINO where installed). A ResNet-50 export
# with buckets takes minutes on a 2-core CPU: these run with -m slow.
@pytest.fixture(scope="module")
def mask_export(tmp_path_factory: pytest.TempPathFactory, random_checkpoint) -> str:
    from siamdeploy.export.exporter import export_model

    folder = str(tmp_path_factory.mktemp("mask_buckets") / "siammask")
    export_model(load_model(random_checkpoint("siammask_r50_l3"), preset="siammask_r50_l3"), folder, progress=False,
                 buckets=(1, 2, 4), validate=True, gate=False)
    return folder


def _backends() -> list[str]:
    names = ["onnxruntime"]
    try:
        import openvino  # noqa: F401

        names.append("openvino")
    except ImportError:
        pass
    return names


@pytest.mark.slow
def test_manifest_lists_refine_buckets(mask_export: str) -> None:
    from siamdeploy.manifest import read_manifest

    manifest = read_manifest(mask_export)
    assert set(manifest.batched_graphs("refine")) == {(None, 2), (None, 4)}
    graph = manifest.graph("refine_b4")
    assert graph.role == "refine_batched" and graph.targets == 4
    assert graph.inputs[0].shape == (4, 64, 61, 61) and graph.outputs[0].shape == (4, 1, 127, 127)
    assert "refine_b4" not in {g.name for g in manifest.graphs_for("fp32")}  # single-target graphs only
    assert any("refine bucket 2" in line for line in manifest.validation)  # validated against torch


@pytest.mark.slow
@pytest.mark.parametrize("backend", _backends())
def test_refine_bucket_graphs_equal_single(backend: str, mask_export: str) -> None:
    tracker = siamdeploy.load_tracker(mask_export, backend=backend)
    engine = tracker.engine
    assert engine.mask_buckets("refine") == (1, 2, 4)
    _check_many(engine, _extras(np.random.default_rng(2), 3), "refine")  # 3 targets: the 4-bucket, padded
    # 5 targets: a 4-bucket call and a single one
    extras = _extras(np.random.default_rng(3), 5)
    before = engine.refine_calls
    got = engine.refine_many(extras, CELLS)
    assert engine.refine_calls - before == 2
    for e, c, g in zip(extras, CELLS, got):
        want = engine.refine(e, c)
        assert float(np.abs(g - want).max()) <= TOL * max(1.0, float(np.abs(want).max()))
    tracker.close()


@pytest.mark.slow
@pytest.mark.parametrize("backend", _backends())
def test_masks_tracked_together_equal_alone(backend: str, mask_export: str) -> None:
    """3 SiamMask targets through a MultiTracker: one search call and one refine call per frame, boxes and
    polygons equal to each target's single tracker (1e-3 px), and the batched features really are cropped per
    target (every target's polygon differs)."""
    multi = siamdeploy.load_multi_tracker(mask_export, backend=backend)
    reference = siamdeploy.load_tracker(mask_export, backend=backend)
    seq = generate_sequence(seed=11, num_frames=2, size=(256, 192))
    boxes = [tuple(float(v) for v in seq.boxes[0]), (20.0, 30.0, 50.0, 40.0), (160.0, 100.0, 60.0, 50.0)]
    ids = multi.init(seq.frames[0], boxes)
    singles = []
    for box in boxes:
        single = make_tracker(reference.engine, reference.params, "single")
        single.init(seq.frames[0], box)
        singles.append(single)
    engine = multi.engine
    searches, refines = engine.search_calls, engine.refine_calls
    results = multi.track(seq.frames[1])
    assert (engine.search_calls - searches, engine.refine_calls - refines) == (1, 1)
    polygons = []
    for target, single in zip(ids, singles):
        alone = single.track(seq.frames[1])
        got = results[target]
        assert np.abs(np.subtract(got.bbox, alone.bbox)).max() <= 1e-3
        assert got.polygon is not None and alone.polygon is not None
        assert np.abs(got.polygon - alone.polygon).max() <= 1e-3
        assert got.mask is not None and alone.mask is not None
        assert np.abs(got.mask - alone.mask).max() <= 1e-4
        polygons.append(got.polygon)
    assert min(np.abs(polygons[i] - polygons[j]).max() for i, j in ((0, 1), (0, 2), (1, 2))) > 1
    multi.close()
    reference.close()
