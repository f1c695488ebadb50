"""Several targets per call on a CUDA GPU.

- The multi-target benchmark's check at N = 32 targets, batched vs 32 single calls, for every CUDA
  configuration of the backend registry whose engine batches (goal: >= 10x), TensorRT included.
- TensorRT's bucket plans (one template and one search plan per bucket, docs/multi_target.md): batched
  outputs equal single calls within the TensorRT FP16 tolerance (``siamdeploy.compare.TOLERANCES``), with
  kernels from the batched template plan and from single ``template()`` calls (device-to-device kernel
  stacks), also through CUDA graphs and for SiamMask's refine; ``load_multi_tracker(backend="tensorrt")``
  runs one engine call per frame for 4 targets, teacher-forced boxes as 4 single trackers within the table's
  ``min_iou``.

Skips without a CUDA GPU (and names why each configuration cannot run); the TensorRT tests skip without
tensorrt + cuda-python. Written without a GPU: these have not run yet.
"""
from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

from siamdeploy.backends import configurations
from siamdeploy.compare import OutputComparison, compare_boxes, tolerance
from siamdeploy.tensorrt import cache as trt_cache
from siamdeploy.tensorrt.device import probe

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CUDA_CONFIGS = [c for c in configurations() if c.device.startswith("cuda") and c.precision == "fp32"]
TRT_OK, TRT_WHY = probe()
needs_trt = pytest.mark.skipif(not TRT_OK, reason=f"needs tensorrt + cuda-python and a CUDA GPU ({TRT_WHY})")
TARGETS = 4


def _benchmark():  # noqa: ANN202 - the benchmark module
    spec = importlib.util.spec_from_file_location("multi_target", os.path.join(ROOT, "benchmarks", "multi_target.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("conf", CUDA_CONFIGS, ids=[c.label for c in CUDA_CONFIGS])
def test_batched_gain_at_32_targets(conf, tmp_path, monkeypatch) -> None:
    if not conf.ok:
        pytest.skip(conf.why)
    if conf.backend.name == "tensorrt" and not os.environ.get(trt_cache.ENV_ROOT):
        monkeypatch.setenv(trt_cache.ENV_ROOT, str(tmp_path / "engines"))  # not ./engines of the checkout
    status = _benchmark().main(["--targets", "1,8,32", "--frames", "10", "--backends", conf.label, "--skip-cpu",
                                "--check", "32", "--min-gain", "10", "--out", str(tmp_path)])
    with open(tmp_path / "multi_target.json") as fh:
        rows = json.load(fh)["rows"]
    row = next(r for r in rows if r["targets"] == 32)
    assert row["calls_per_frame"] == 1.0, f"{conf.label}: {row['calls_per_frame']} engine calls per frame"
    assert status == 0, f"{conf.label}: gain at 32 targets {row['gain']:.2f}x, goal >= 10x"


# ================================================================================================ TensorRT buckets
_EXPORTS: dict[str, tuple[str, object]] = {}


@pytest.fixture(scope="module")
def engine_root(tmp_path_factory) -> str:
    return os.environ.get(trt_cache.ENV_ROOT) or str(tmp_path_factory.mktemp("engines"))


@pytest.fixture(scope="module")
def bucket_export(random_checkpoint, tmp_path_factory):
    """``bucket_export(preset) -> (export folder with fp32 + fp16 graphs and the 4-target bucket, LoadedModel)``."""
    from siamdeploy.checkpoint import load_model
    from siamdeploy.export.exporter import export_model

    def make(preset: str):
        if preset not in _EXPORTS:
            loaded = load_model(random_checkpoint(preset), preset=preset)
            folder = str(tmp_path_factory.mktemp("export") / f"{preset}-b{TARGETS}")
            export_model(loaded, folder, precision="both", validate=False, progress=False, buckets=(1, TARGETS))
            _EXPORTS[preset] = (folder, loaded)
        return _EXPORTS[preset]

    return make


def _targets_crops(loaded, count: int):  # noqa: ANN001, ANN202 - (template blobs, search blobs)
    """``count`` different template and search crops: the real crops of the export check, shifted in
    brightness per target, so each target's kernels and outputs differ."""
    from siamdeploy.export.validate import _crops

    (_, z, searches), _ = _crops(loaded)
    size = min(searches)
    zs = [np.clip(z + 9.0 * i, 0, 255).astype(np.float32) for i in range(count)]
    xs = [np.clip(searches[size] - 7.0 * i, 0, 255).astype(np.float32) for i in range(count)]
    return zs, xs


@needs_trt
@pytest.mark.gpu
@pytest.mark.parametrize("preset", ["siamrpn_alex_dwxcorr", "siamfc",
                                    pytest.param("siammask_r50_l3", marks=pytest.mark.slow)])
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_tensorrt_batched_equals_single(preset: str, cuda_graph: bool, bucket_export, engine_root) -> None:
    from siamdeploy.tensorrt import load_engine

    folder, loaded = bucket_export(preset)
    engine = load_engine(folder, precision="fp16", cache_root=engine_root, cuda_graph=cuda_graph)
    assert engine.buckets == (1, TARGETS) and engine.entry.buckets == (TARGETS,), engine.describe()
    zs, xs = _targets_crops(loaded, TARGETS - 1)  # 3 targets: the 4-bucket padded by one row
    singles_k = [engine.template(z) for z in zs]
    singles = [engine.search(x, k) for x, k in zip(xs, singles_k)]
    batched_k = engine.template_many(zs)
    check = OutputComparison.for_backend("tensorrt", "fp16", reference="TensorRT single calls")
    for frame in range(3):  # frame 0 runs plainly, then the CUDA graph of each kernel stack replays
        for label, kernels in (("batched template", batched_k), ("single templates", singles_k)):
            calls = engine.search_calls
            outs = engine.search_many(xs, kernels)
            assert engine.search_calls == calls + 1
            for i, (got, ref) in enumerate(zip(outs, singles)):
                for name in ref.outputs:
                    check.add(f"{label} target {i} {name} (frame {frame})", ref.outputs[name], got.outputs[name])
                if "refine" in engine.plans and frame == 0:
                    n = ref.outputs["cls"].shape[-1]
                    # a single search (another plan: the bucket call's extras stay valid) for target i's mask
                    single_mask = engine.refine(engine.search(xs[i], singles_k[i]).extras, (n // 2, n // 2))
                    check.add(f"{label} target {i} refine", single_mask, engine.refine(got.extras, (n // 2, n // 2)))
    check.check(engine.describe())
    if cuda_graph:
        assert engine.cuda_graph_active, engine.describe()
        bucket_plan = engine.plans[engine._bucket_plans[(xs[0].shape[-1], TARGETS)]]
        assert len(bucket_plan.graphs) == 2  # one per kernel stack
    engine.close()


@needs_trt
@pytest.mark.gpu
def test_tensorrt_multi_tracker_one_call_per_frame(bucket_export, engine_root, monkeypatch) -> None:
    """load_multi_tracker on TensorRT: one engine call per frame for 4 targets; each frame starts every single
    tracker from the multi tracker's state of that target (teacher-forced), boxes IoU >= the FP16 min_iou."""
    import siamdeploy
    from siamdeploy.synthetic import generate_sequence

    folder, _ = bucket_export("siamrpn_alex_dwxcorr")
    monkeypatch.setenv(trt_cache.ENV_ROOT, engine_root)
    seq = generate_sequence(seed=8, num_frames=12, size=(640, 480))
    x, y, w, h = seq.boxes[0]
    boxes = [seq.boxes[0], (x + 60, y + 20, w, h), (30.0, 40.0, 50.0, 60.0), (400.0, 300.0, 70.0, 45.0)]
    mt = siamdeploy.load_multi_tracker(folder, backend="tensorrt", precision="fp16", max_targets=TARGETS)
    assert mt.engine.backend == "tensorrt" and TARGETS in mt.engine.buckets, mt.engine.describe()
    singles = [siamdeploy.load_tracker(folder, backend="tensorrt", precision="fp16") for _ in boxes]
    ids = mt.init(seq.frames[0], boxes)
    for tracker, box in zip(singles, boxes):
        tracker.init(seq.frames[0], box)
    got: list[list[tuple]] = [[] for _ in boxes]
    want: list[list[tuple]] = [[] for _ in boxes]
    for frame in seq.frames[1:]:
        states = mt.states
        calls = mt.engine.search_calls
        results = mt.track(frame)
        assert mt.engine.search_calls == calls + 1, "one engine call per frame for all targets"
        for k, (target, tracker) in enumerate(zip(ids, singles)):
            tracker.set_state(states[target])
            want[k].append(tracker.track(frame).bbox)
            got[k].append(results[target].bbox)
    gate = tolerance("tensorrt", "fp16")
    for k in range(len(boxes)):
        agreement = compare_boxes(got[k], want[k])
        failures = agreement.failures(gate, first_frame=1)
        assert not failures, f"target {k}: {failures}; IoU {np.round(agreement.iou, 3).tolist()}"
    mt.close()
    for tracker in singles:
        tracker.close()
