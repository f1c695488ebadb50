"""The OpenVINO backend: fp32 boxes against the upstream traces, onnxruntime and torch (0.05 px); bf16 only where
the CPU has it, never chosen by ``auto``, never a silent downgrade; kernels kept as OpenVINO tensors; the
compiled-model cache; threads; device names.

Every case that compiles a graph is skipped (with the reason) where openvino is not installed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import siamdeploy
from siamdeploy.backends import registry
from siamdeploy.backends.registry import LoadRequest, auto_order, configurations, get_backend, load_engine
from siamdeploy.errors import ConfigError, DependencyError, EngineError

from . import test_upstream_traces as replay

# Cases whose export is also tracked by onnxruntime and torch in the default run; the rest (SiamMask, the
# long-term 831 search, ResNet-50, DaSiamRPN-BIG, haooozi's input normalisation, ...) run with -m slow.
DEFAULT_CASES = {"alex", "dasiamrpn_vot", "siamfc"}
_EXPORTS: dict[str, tuple[str, str, dict]] = {}


@pytest.fixture
def ov():
    return pytest.importorskip("openvino", reason="openvino is not installed (pip install 'siamdeploy[openvino]')")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    """Compiled models and on-the-fly exports of this module go to a temporary cache."""
    monkeypatch.setenv("SIAMDEPLOY_CACHE", str(tmp_path_factory.getbasetemp() / "openvino_cache"))


@pytest.fixture(scope="module")
def trace_export(tmp_path_factory):
    """``trace_export(trace path) -> (export folder, checkpoint, trace)``: the trace's weights written in the
    upstream code base's key names and exported once per module."""
    from siamdeploy.checkpoint import load_model
    from siamdeploy.export.exporter import export_model

    def make(path: str) -> tuple[str, str, dict]:
        if path not in _EXPORTS:
            with open(path, encoding="utf-8") as fh:
                trace = json.load(fh)
            root = tmp_path_factory.mktemp(trace["case"])
            ckpt, load_args = replay._checkpoint(trace, root)  # the trace's weights, as the replay loads them
            folder = str(root / "export")
            export_model(load_model(ckpt, **load_args), folder, validate=False, progress=False)
            _EXPORTS[path] = (folder, ckpt, {**trace, "load_args": load_args})
        return _EXPORTS[path]

    return make


def _case(path: str) -> pytest.param:
    name = os.path.splitext(os.path.basename(path))[0]
    return pytest.param(path, id=name, marks=[] if name in DEFAULT_CASES else [pytest.mark.slow])


def _track(tracker, trace: dict, frames: int | None = None) -> tuple[np.ndarray, list]:
    """Boxes and polygons of the trace's sequence (its first ``frames`` tracked frames; None: all)."""
    seq = replay._sequence(trace["sequence"])
    assert np.allclose(seq.boxes[0], trace["init"]), "generated sequence changed: regenerate the traces"
    tracker.init(seq.frames[0], trace["init"])
    results = [tracker.track(frame) for frame in seq.frames[1:1 + min(len(trace["boxes"]), frames or 10**9)]]
    return np.array([r.bbox for r in results], np.float64), [r.polygon for r in results]


@pytest.mark.parametrize("trace_path", [_case(p) for p in replay.TRACES])
def test_fp32_matches_upstream_onnxruntime_and_torch(trace_path: str, trace_export, ov) -> None:
    folder, ckpt, trace = trace_export(trace_path)
    tracker = siamdeploy.load_tracker(folder, backend="openvino", precision="fp32")
    assert tracker.engine.precision == "fp32" and "inference precision f32" in tracker.engine.describe()
    for compiled in tracker.engine._compiled.values():  # what OpenVINO reports running, not what was asked
        assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    boxes, polygons = _track(tracker, trace)
    expected = np.asarray(trace["boxes"], np.float64)
    err = np.abs(boxes - expected).max(axis=1)
    assert err.max() <= replay.TOLERANCE_PX, f"frame {int(err.argmax()) + 1}: {err.max():.4f} px from upstream"
    for i, polygon in enumerate(trace.get("polygons") or []):
        iou = replay._polygon_iou(polygons[i], polygon)
        assert iou >= 0.95, f"frame {i + 1}: polygon IoU {iou:.3f} with upstream"
    others = {"onnxruntime": siamdeploy.load_tracker(folder, backend="onnxruntime"),
              "torch": siamdeploy.load_tracker(ckpt, backend="torch", device="cpu", **trace["load_args"])}
    for name, other in others.items():  # eager torch on a CPU is slow: its first 12 frames
        theirs = _track(other, trace, 12 if name == "torch" else None)[0]
        delta = float(np.abs(theirs - boxes[:len(theirs)]).max())
        assert delta <= replay.TOLERANCE_PX, f"openvino fp32 is {delta:.4f} px from {name}"
    print(f"{trace['case']} (openvino fp32): {len(expected)} frames, worst |delta| to upstream {err.max():.2e} px")


@pytest.fixture
def alex(trace_export) -> str:
    return trace_export(os.path.join(replay.TRACE_DIR, "alex.json"))[0]


def _pretend_capabilities(monkeypatch, caps: tuple[str, ...]) -> None:
    from siamdeploy.engine import openvino_engine

    monkeypatch.setattr(openvino_engine, "device_capabilities", lambda device: caps)


def _has_bf16() -> bool:
    try:
        import openvino

        return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except ImportError:
        return False


def test_bf16_refused_on_a_cpu_without_it(alex, monkeypatch, ov) -> None:
    from siamdeploy.engine.openvino_engine import OpenVINOEngine
    from siamdeploy.manifest import read_manifest

    _pretend_capabilities(monkeypatch, ("FP32", "INT8", "EXPORT_IMPORT"))
    with pytest.raises(ConfigError, match=r"cannot run bf16 on 'cpu': .*has no bf16 support.*use precision='fp32'"):
        load_engine("openvino", LoadRequest(alex, precision="bf16"))
    with pytest.raises(ConfigError, match="has no bf16 support"):  # the engine checks too, when built directly
        OpenVINOEngine(alex, read_manifest(alex), precision="bf16")
    conf = {c.label: c for c in configurations()}["openvino cpu bf16"]
    assert not conf.ok and "no bf16 support" in conf.why  # the benchmark lists it as skipped, with the reason
    assert load_engine("openvino", LoadRequest(alex))[0].precision == "fp32"  # fp32 is unaffected


@pytest.mark.skipif(_has_bf16(), reason="this CPU has bf16: OpenVINO honours the bf16 hint here")
def test_bf16_is_never_a_silent_downgrade(alex, monkeypatch, ov) -> None:
    """The capability probe says yes but the CPU cannot: OpenVINO compiles in f32 without a word; the engine reads
    the compiled precision back and refuses."""
    _pretend_capabilities(monkeypatch, ("FP32", "BF16"))
    with pytest.raises(EngineError, match="inference precision fp32 although bf16 was asked"):
        load_engine("openvino", LoadRequest(alex, precision="bf16"))


@pytest.mark.skipif(not _has_bf16(), reason="this CPU has no bf16 (OpenVINO's OPTIMIZATION_CAPABILITIES lack BF16)")
def test_bf16_runs_where_the_cpu_has_it(alex, ov) -> None:
    rng = np.random.default_rng(0)
    z = rng.uniform(0, 255, (1, 3, 127, 127)).astype(np.float32)
    x = rng.uniform(0, 255, (1, 3, 287, 287)).astype(np.float32)
    fp32, _ = load_engine("openvino", LoadRequest(alex, precision="fp32"))
    bf16, _ = load_engine("openvino", LoadRequest(alex, precision="bf16"))
    assert bf16.precision == "bf16" and "inference precision bf16" in bf16.describe()
    a, b = fp32.search(x, fp32.template(z)).outputs, bf16.search(x, bf16.template(z)).outputs
    for name in a:
        rel = float(np.abs(a[name] - b[name]).max() / np.abs(a[name]).max())
        assert 0 < rel < 0.1, f"{name}: bf16 relative error {rel:.2e}"  # 0: the hint did nothing


def test_auto_never_picks_openvino_bf16(alex, monkeypatch, ov) -> None:
    _pretend_capabilities(monkeypatch, ("FP32", "BF16"))
    with pytest.raises(EngineError, match="openvino \\(cpu\\): bf16 is opt-in here: ask for backend='openvino'"):
        load_engine("auto", LoadRequest(alex, precision="bf16"))
    order = [b.name for b in auto_order()]
    assert order.index("onnxruntime") < order.index("openvino") < order.index("torch")
    assert load_engine("auto", LoadRequest(alex, device="cpu"))[0].backend == "onnxruntime"


def test_kernels_stay_openvino_tensors_and_targets_share_one_engine(alex, ov) -> None:
    engine, _ = load_engine("openvino", LoadRequest(alex))
    rng = np.random.default_rng(1)
    z1, z2 = (rng.uniform(0, 255, (1, 3, 127, 127)).astype(np.float32) for _ in range(2))
    x = rng.uniform(0, 255, (1, 3, 287, 287)).astype(np.float32)
    k1 = engine.template(z1)
    alone = engine.search(x, k1).outputs["cls"]
    k2 = engine.template(z2)  # a second target: must not overwrite the first one's kernels
    assert all(isinstance(k, ov.Tensor) for k in k1 + k2)
    other = engine.search(x, k2).outputs["cls"]
    again = engine.search(x, k1).outputs["cls"]
    assert np.array_equal(again, alone) and not np.allclose(other, alone)
    ort, _ = load_engine("onnxruntime", LoadRequest(alex))
    reference = ort.search(x, ort.template(z2)).outputs["cls"]
    assert np.abs(other - reference).max() <= 1e-4 * np.abs(reference).max()
    engine.close()
    with pytest.raises(EngineError, match="closed"):
        engine.search(x, k1)


def test_compiled_models_are_cached(alex, tmp_path, ov) -> None:
    from siamdeploy.engine.openvino_engine import OpenVINOEngine
    from siamdeploy.manifest import read_manifest

    cache = str(tmp_path / "compiled")
    first = OpenVINOEngine(alex, read_manifest(alex), cache_dir=cache)
    assert not any(first.from_cache.values()) and os.listdir(cache)
    second = OpenVINOEngine(alex, read_manifest(alex), cache_dir=cache)
    assert second.from_cache == {"template": True, "search": True} and "from cache" in second.describe()
    print(f"compile {first.compile_s:.2f} s, from the cache {second.compile_s:.2f} s")
    engine, _ = load_engine("openvino", LoadRequest(alex))  # the backend's default: under the siamdeploy cache
    assert engine.cache_dir == os.path.join(os.environ["SIAMDEPLOY_CACHE"], "openvino")


def test_threads(alex, monkeypatch, ov) -> None:
    from siamdeploy.engine.openvino_engine import ENV_THREADS, physical_cores

    assert load_engine("openvino", LoadRequest(alex))[0].threads == physical_cores()
    monkeypatch.setenv(ENV_THREADS, "1")
    engine, _ = load_engine("openvino", LoadRequest(alex))
    assert engine.threads == 1 and "1 threads" in engine.describe()
    monkeypatch.setenv(ENV_THREADS, "many")
    with pytest.raises(ConfigError, match=f"{ENV_THREADS}='many' must be a positive number"):
        load_engine("openvino", LoadRequest(alex))


def test_device_names(monkeypatch, ov) -> None:
    from siamdeploy.engine import openvino_engine as ove

    monkeypatch.setattr(ove, "available_devices", lambda: ["CPU", "GPU.0", "GPU.1", "NPU"])
    assert [ove.openvino_device(d) for d in ("cpu", "gpu", "gpu:0", "gpu:1", "npu")] == \
        ["CPU", "GPU.0", "GPU.0", "GPU.1", "NPU"]
    assert ove.is_available("GPU.1") and not ove.is_available("GPU.2")
    monkeypatch.setattr(ove, "available_devices", lambda: ["CPU", "GPU"])
    assert ove.openvino_device("gpu:0") == "GPU" and ove.is_available("GPU.0")
    with pytest.raises(ConfigError, match="not one of cpu, gpu"):
        ove.openvino_device("cuda:0")
    ok, why = get_backend("openvino").probe("npu")
    assert not ok and "sees no NPU device here (has: CPU, GPU)" in why
    with pytest.raises(ConfigError, match="runs on cpu, gpu, npu, not 'cuda:0'"):
        load_engine("openvino", LoadRequest("model.pth", device="cuda:0"))


def test_missing_openvino_names_the_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    ok, why = get_backend("openvino").probe("cpu")
    assert not ok and "pip install 'siamdeploy[openvino]'" in why
    with pytest.raises(DependencyError, match=r"pip install 'siamdeploy\[openvino\]'"):
        load_engine("openvino", LoadRequest("model.pth"))
    assert "openvino" in registry.backend_names()  # listed in --backend choices either way


@pytest.mark.skipif(_has_bf16(), reason="this CPU has bf16")
def test_cli_bf16_without_bf16_is_one_line_exit_1(alex, ov) -> None:
    proc = subprocess.run([sys.executable, "-m", "siamdeploy.run", "demo", "--model", alex, "--backend", "openvino",
                           "--precision", "bf16", "--no-display", "--save", "none"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "has no bf16 support" in lines[0], proc.stderr[-2000:]
