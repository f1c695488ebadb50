"""TensorRT on a real GPU: engines for every model family, built from exports of seeded random models.

Skipped (with the reason) unless ``tensorrt`` and ``cuda-python`` import and a CUDA GPU is present; written
to run unchanged on a user's GPU machine: ``pytest tests/gpu`` (the ResNet-50 / MobileNet families are
marked slow: ``pytest tests/gpu -m ""`` runs them too).

Checked per family:
- FP16 engines agree with PyTorch FP32 per output (kernels, heads, refine / mask head) within
  ``|d| <= atol + rtol * max|torch|`` (``siamdeploy.compare.TOLERANCES``), and the layers meant to stay FP32
  really do;
- FP32 engines agree with PyTorch FP32 within the same table's TensorRT FP32 entry;
- teacher-forced tracking: before every frame the TensorRT tracker gets the PyTorch tracker's state, so each
  frame compares one step; per-frame box IoU at least the table's ``min_iou``;
- the CUDA-graph path gives the same numbers as the plain path;
- the engine cache is reused (no rebuild), the export CLI's --engine and backend='tensorrt' / 'auto' work.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from siamdeploy.compare import OutputComparison, compare_boxes, teacher_force, tolerance
from siamdeploy.tensorrt import cache as trt_cache
from siamdeploy.tensorrt.device import probe

AVAILABLE, WHY = probe()
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not AVAILABLE, reason=f"needs tensorrt + cuda-python and a CUDA GPU ({WHY})")]

FAST = ["siamrpn_alex_dwxcorr", "dasiamrpn_vot", "siamfc"]
SLOW = ["siamrpn_mobilev2_l234_dwxcorr", "siamrpn_r50_l234_dwxcorr", "siammask_r50_l3", "siammask_base",
        "siamrpn_r50_l234_dwxcorr_lt", "dasiamrpn_big", "siamrpn_haooozi"]
FAMILIES = FAST + [pytest.param(p, marks=pytest.mark.slow) for p in SLOW]
_EXPORTS: dict[str, tuple[str, object]] = {}


@pytest.fixture(scope="module")
def engine_root(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("engines"))


@pytest.fixture(scope="module")
def exported(random_checkpoint, tmp_path_factory):
    """``exported(preset) -> (export folder with fp32 + fp16 graphs, LoadedModel)``, once per module."""
    from siamdeploy.checkpoint import load_model
    from siamdeploy.export.exporter import export_model

    def make(preset: str):
        if preset not in _EXPORTS:
            loaded = load_model(random_checkpoint(preset), preset=preset)
            folder = str(tmp_path_factory.mktemp("export") / preset)
            export_model(loaded, folder, precision="both", validate=False, progress=False)
            _EXPORTS[preset] = (folder, loaded)
        return _EXPORTS[preset]

    return make


def _engine(folder: str, root: str, precision: str = "fp16", cuda_graph: bool = False):
    from siamdeploy.tensorrt import load_engine

    return load_engine(folder, precision=precision, cache_root=root, cuda_graph=cuda_graph)


def _torch_cpu(loaded):
    import copy

    from siamdeploy.engine.torch_engine import TorchEngine

    return TorchEngine(copy.deepcopy(loaded.net), "cpu")


def _outputs_agree(loaded, engine, precision: str) -> None:
    from siamdeploy.export.validate import _crops

    reference = _torch_cpu(loaded)
    outputs = OutputComparison.for_backend("tensorrt", precision, reference="torch")
    for label, z, searches in _crops(loaded):
        ref_k, got_k = reference.template(z), engine.template(z)
        for size, x in searches.items():
            ref, got = reference.search(x, ref_k), engine.search(x, got_k)
            for name in ref.outputs:
                outputs.add(f"search{size}.{name} ({label})", ref.outputs[name], got.outputs[name])
            if ref.extras:
                n = ref.outputs["cls"].shape[-1]
                for cell in ((n // 2, n // 2), (2, n - 3)):
                    if "refine" in engine.plans:
                        outputs.add(f"refine {cell} ({label})", reference.refine(ref.extras, cell),
                                    engine.refine(got.extras, cell))
                    if "mask_head" in engine.plans:
                        outputs.add(f"mask_head {cell} ({label})", reference.mask_at(ref.extras, cell),
                                    engine.mask_at(got.extras, cell))
    outputs.check(engine.describe())


@pytest.mark.parametrize("preset", FAMILIES)
def test_fp16_engine_matches_torch(preset: str, exported, engine_root) -> None:
    folder, loaded = exported(preset)
    engine = _engine(folder, engine_root, "fp16")
    side = engine.entry.sidecar
    assert engine.precision == "fp16", f"no FP16 layer in the engines: {side.get('precision_summary')}"
    assert side["precision_counts"]["fp16"] > 0 and side["precision_summary"].startswith("fp16 layers")
    for graph, info in side["layer_precision"].items():
        assert info["detailed"], f"{graph}: layer precisions not inspectable"
        assert not info["pinned_not_fp32"], f"{graph}: FP32 layers ran in FP16: {info['pinned_not_fp32'][:5]}"
    _outputs_agree(loaded, engine, "fp16")


@pytest.mark.parametrize("preset", FAMILIES)
def test_fp32_engine_matches_torch(preset: str, exported, engine_root) -> None:
    folder, loaded = exported(preset)
    engine = _engine(folder, engine_root, "fp32")
    assert engine.precision == "fp32" and engine.entry.sidecar["precision_counts"]["fp16"] == 0
    _outputs_agree(loaded, engine, "fp32")


@pytest.mark.parametrize("preset", FAMILIES)
def test_teacher_forced_boxes(preset: str, exported, engine_root) -> None:
    """Each frame, the TensorRT FP16 tracker starts from the PyTorch FP32 tracker's state; IoU per frame at
    least the table's min_iou."""
    from siamdeploy.runtime import make_tracker
    from siamdeploy.synthetic import generate_sequence

    folder, loaded = exported(preset)
    p = loaded.preset
    ref = make_tracker(_torch_cpu(loaded), p.track, p.name)
    trt = make_tracker(_engine(folder, engine_root, "fp16"), p.track, p.name)
    seq = generate_sequence(seed=11, num_frames=25, size=(480, 360))
    steps = teacher_force(trt, seq.frames, seq.boxes[0], ref)
    assert len(steps) == len(seq.frames) - 1
    agreement = compare_boxes([s.result.bbox for s in steps], [s.reference.bbox for s in steps])
    failures = agreement.failures(tolerance("tensorrt", "fp16"), first_frame=1)
    assert not failures, f"{failures}; per-frame IoU {np.round(agreement.iou, 3).tolist()}"


@pytest.mark.parametrize("preset", FAST + [pytest.param("siammask_r50_l3", marks=pytest.mark.slow),
                                           pytest.param("siamrpn_r50_l234_dwxcorr_lt", marks=pytest.mark.slow)])
def test_cuda_graph_same_as_plain(preset: str, exported, engine_root) -> None:
    from siamdeploy.export.validate import _crops

    folder, loaded = exported(preset)
    plain, graph = _engine(folder, engine_root), _engine(folder, engine_root, cuda_graph=True)
    for label, z, searches in _crops(loaded):
        kp, kg = plain.template(z), graph.template(z)
        for _ in range(3):  # warm-up frame, then graph replays
            for x in searches.values():
                a, b = plain.search(x, kp), graph.search(x, kg)
                for name in a.outputs:  # same plan, same inputs, same kernels: bit-identical
                    np.testing.assert_array_equal(a.outputs[name], b.outputs[name], err_msg=f"{name} ({label})")
                if "refine" in plain.plans:
                    n = a.outputs["cls"].shape[-1]
                    np.testing.assert_array_equal(plain.refine(a.extras, (n // 2, n // 2)),
                                                  graph.refine(b.extras, (n // 2, n // 2)))
    assert graph.cuda_graph_active, graph.describe()
    assert all(plan.graphs for plan in graph.plans.values() if plan.role == "search")


def test_engine_cache_is_reused(exported, engine_root) -> None:
    from siamdeploy.tensorrt import load_engine

    folder, _ = exported("siamfc")
    first = _engine(folder, engine_root)
    created = first.entry.sidecar["created"]
    again = load_engine(folder, cache_root=engine_root, rebuild=False)  # would raise if it had to build
    assert again.entry.path == first.entry.path and again.entry.sidecar["created"] == created
    assert os.path.isfile(first.entry.sidecar["timing_cache"])
    assert not [n for n in os.listdir(os.path.dirname(first.entry.path)) if n.endswith(".lock") or ".tmp-" in n]


def test_export_cli_builds_engines(exported, tmp_path) -> None:
    folder, _ = exported("siamfc")
    root = str(tmp_path / "engines")
    proc = subprocess.run([sys.executable, "-m", "siamdeploy.export", folder, "--engine", "--engine-dir", root,
                           "--workspace-mb", "512"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "fp16 layers" in proc.stdout and "template.engine" in proc.stdout
    entry = os.path.join(root, os.path.basename(folder))
    assert len(os.listdir(entry)) == 1 and trt_cache.read_sidecar(os.path.join(entry, os.listdir(entry)[0]))


def test_load_tracker_tensorrt_and_auto(exported, engine_root, monkeypatch) -> None:
    import siamdeploy
    from siamdeploy.synthetic import generate_sequence

    folder, _ = exported("siamrpn_alex_dwxcorr")
    monkeypatch.setenv(trt_cache.ENV_ROOT, engine_root)
    seq = generate_sequence(seed=2, num_frames=5, size=(320, 240))
    for backend in ("tensorrt", "auto"):
        tracker = siamdeploy.load_tracker(folder, backend=backend)
        assert tracker.engine.backend == "tensorrt" and tracker.engine.precision == "fp16"
        tracker.init(seq.frames[0], seq.boxes[0])
        boxes = [tracker.track(f).bbox for f in seq.frames[1:]]
        assert np.isfinite(boxes).all()
