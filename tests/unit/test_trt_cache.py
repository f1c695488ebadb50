"""CPU tests of the TensorRT path: the engine cache (key, sidecar, staleness, atomic build, the cross-process
build lock), the builder's pure helpers (versions, typing, layer pinning, inspector parsing), the one-line
missing-package errors, ``backend='auto'``, and the TensorRT engine's buffer/binding/graph logic run over a
fake ``tensorrt`` + ``cuda-python`` (numpy memory, onnxruntime doing the maths).

Nothing here needs TensorRT or a GPU; the real thing is tested by tests/gpu/test_tensorrt.py.
"""
from __future__ import annotations

import ctypes
import enum
import importlib.util
import json
import logging
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

import siamdeploy
from siamdeploy.tensorrt import build as trt_build_mod
from siamdeploy.tensorrt import cache as trt_cache
from siamdeploy.tensorrt import device as trt_device
from siamdeploy.tensorrt import inspection, network, versions
from siamdeploy.tensorrt.cache import EngineTarget, Stale
from siamdeploy.errors import DependencyError, EngineError, InputError

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


# ================================================================================================ cache
def _target(tmp_path, **changes) -> EngineTarget:
    values = dict(export_name="siamfc-1234abcd", gpu_name="NVIDIA GeForce RTX 4090", compute_capability="8.9",
                  trt_version="10.13.0.35", precision="fp16",
                  onnx={"template": {"file": "template_fp16.onnx", "sha256": "a" * 64},
                        "search": {"file": "search_fp16.onnx", "sha256": "b" * 64}},
                  options={"typing": "strong", "workspace_mb": None, "tf32": False},
                  export_folder=str(tmp_path / "export" / "siamfc-1234abcd"))
    values.update(changes)
    return EngineTarget(**values)


class FakeBuilder:
    """The build callable: writes one small plan per graph and counts its calls (in a file, across processes)."""

    def __init__(self, log_path: str, delay: float = 0.0, fail: bool = False) -> None:
        self.log_path, self.delay, self.fail = log_path, delay, fail

    def __call__(self, tmp: str) -> dict:
        with open(self.log_path, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(self.delay)
        if self.fail:
            raise EngineError("fake build failure")
        engines = {}
        for name in ("template", "search"):
            with open(os.path.join(tmp, f"{name}.engine"), "wb") as fh:
                fh.write(f"plan {name} {os.getpid()}".encode())
            engines[name] = f"{name}.engine"
        return {"engines": engines, "precision_summary": "fp16 layers 3 / fp32 layers 2"}

    @property
    def calls(self) -> int:
        if not os.path.exists(self.log_path):
            return 0
        return len(open(self.log_path).read().split())


def test_key_and_dir(tmp_path) -> None:
    target = _target(tmp_path)
    assert target.key == "nvidia-geforce-rtx-4090-sm89-trt10.13.0-fp16"
    assert trt_cache.entry_dir("engines", target) == os.path.join("engines", "siamfc-1234abcd", target.key)
    assert trt_cache.gpu_slug("NVIDIA H100 80GB HBM3", "9.0") == "nvidia-h100-80gb-hbm3-sm90"
    assert _target(tmp_path, precision="fp32").key.endswith("-fp32")


def test_default_root(monkeypatch) -> None:
    monkeypatch.delenv(trt_cache.ENV_ROOT, raising=False)
    assert trt_cache.default_root() == "engines"
    monkeypatch.setenv(trt_cache.ENV_ROOT, "/somewhere/engines")
    assert trt_cache.default_root() == "/somewhere/engines"


def test_select_sources() -> None:
    graphs = {"template": {"fp32": {"file": "template.onnx", "sha256": "1"},
                           "fp16": {"file": "template_fp16.onnx", "sha256": "2", "fp32_nodes": []}}}
    manifest = {"graphs": graphs}
    assert trt_cache.select_sources(manifest, "fp16", "strong") == {
        "template": {"file": "template_fp16.onnx", "sha256": "2"}}
    assert trt_cache.select_sources(manifest, "fp16", "weak") == {
        "template": {"file": "template.onnx", "sha256": "1", "pin_sha256": "2"}}
    assert trt_cache.select_sources(manifest, "fp32", "strong") == {
        "template": {"file": "template.onnx", "sha256": "1"}}
    with pytest.raises(EngineError, match="no FP16 graphs"):
        trt_cache.select_sources({"graphs": {"template": {"fp32": graphs["template"]["fp32"]}}}, "fp16", "strong")


def test_build_writes_sidecar_and_reuses(tmp_path) -> None:
    root, target = str(tmp_path / "engines"), _target(tmp_path)
    builder = FakeBuilder(str(tmp_path / "calls"))
    entry = trt_cache.get_or_build(root, target, builder)
    assert builder.calls == 1 and entry.path == trt_cache.entry_dir(root, target)
    side = json.load(open(os.path.join(entry.path, trt_cache.SIDECAR)))
    assert side["format"] == trt_cache.SIDECAR_FORMAT and side["tensorrt_version"] == "10.13.0.35"
    assert side["gpu"] == {"name": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9"}
    assert side["precision"] == "fp16" and side["onnx"]["search"]["sha256"] == "b" * 64
    assert side["options"] == {"typing": "strong", "workspace_mb": None, "tf32": False}
    assert side["siamdeploy_version"] == siamdeploy.__version__ and side["created"]
    assert side["precision_summary"] == "fp16 layers 3 / fp32 layers 2"
    assert set(side["engines"]) == {"template", "search"} and len(side["engines"]["search"]["sha256"]) == 64
    assert sorted(os.listdir(os.path.dirname(entry.path))) == [target.key]  # no temp folder, no lock left
    again = trt_cache.get_or_build(root, target, builder)
    assert builder.calls == 1 and again.path == entry.path
    assert again.engines["search"] == os.path.join(entry.path, "search.engine")


def _edit_sidecar(path: str, **changes) -> None:
    file = os.path.join(path, trt_cache.SIDECAR)
    side = json.load(open(file))
    for key, value in changes.items():
        side[key] = value
    json.dump(side, open(file, "w"))


@pytest.mark.parametrize("case", ["gpu", "tensorrt", "onnx", "options", "corrupt"])
def test_stale_entry_is_rebuilt_or_refused(tmp_path, case: str) -> None:
    root, target = str(tmp_path / "engines"), _target(tmp_path)
    builder = FakeBuilder(str(tmp_path / "calls"))
    path = trt_cache.get_or_build(root, target, builder).path
    if case == "gpu":  # e.g. an engines folder copied from another machine with a same-slug GPU
        _edit_sidecar(path, gpu={"name": "NVIDIA GeForce RTX 4090 D", "compute_capability": "8.9"})
        want = "built for NVIDIA GeForce RTX 4090 D"
    elif case == "tensorrt":  # same folder (10.13.0), other build of TensorRT
        _edit_sidecar(path, tensorrt_version="10.13.0.34")
        want = "TensorRT 10.13.0.34, this is TensorRT 10.13.0.35"
    elif case == "onnx":  # the export was redone: new ONNX hash
        target = _target(tmp_path, onnx={**target.onnx, "search": {"file": "search_fp16.onnx", "sha256": "c" * 64}})
        want = "search_fp16.onnx changed"
    elif case == "options":
        target = _target(tmp_path, options={"typing": "strong", "workspace_mb": 512, "tf32": False})
        want = "options"
    else:
        with open(os.path.join(path, "search.engine"), "ab") as fh:
            fh.write(b"!")
        want = "changed after it was built"
    stale = trt_cache.lookup(root, target)
    assert isinstance(stale, Stale) and stale.reason == case and want in stale.detail
    with pytest.raises(EngineError, match="stale TensorRT engines") as info:
        trt_cache.get_or_build(root, target, builder, rebuild=False)
    assert want in str(info.value) and "\n" not in str(info.value) and "--engine" in str(info.value)
    assert builder.calls == 1
    entry = trt_cache.get_or_build(root, target, builder)
    assert builder.calls == 2 and isinstance(trt_cache.lookup(root, target), trt_cache.CacheEntry)
    assert entry.path == path and not [n for n in os.listdir(os.path.dirname(path)) if n != target.key]


def test_missing_entry_refused_without_rebuild(tmp_path) -> None:
    with pytest.raises(EngineError, match="no TensorRT engines built yet.*--engine"):
        trt_cache.get_or_build(str(tmp_path / "engines"), _target(tmp_path), FakeBuilder(str(tmp_path / "c")),
                               rebuild=False)


def test_failed_build_leaves_nothing(tmp_path) -> None:
    root, target = str(tmp_path / "engines"), _target(tmp_path)
    with pytest.raises(EngineError, match="fake build failure"):
        trt_cache.get_or_build(root, target, FakeBuilder(str(tmp_path / "calls"), fail=True))
    assert os.listdir(os.path.join(root, target.export_name)) == []


def test_build_must_write_every_plan(tmp_path) -> None:
    def partial(tmp: str) -> dict:
        open(os.path.join(tmp, "template.engine"), "wb").write(b"x")
        return {"engines": {"template": "template.engine"}}

    with pytest.raises(EngineError, match="no plan for search"):
        trt_cache.get_or_build(str(tmp_path / "e"), _target(tmp_path), partial)


def _build_in_child(root: str, target_json: str, log_path: str, out_path: str) -> None:
    target = EngineTarget(**json.loads(target_json))
    entry = trt_cache.get_or_build(root, target, FakeBuilder(log_path, delay=1.0), poll_s=0.05)
    with open(out_path, "w") as fh:
        json.dump({"path": entry.path, "pid": os.getpid()}, fh)


def test_concurrent_builds_build_once(tmp_path) -> None:
    """Two processes ask for the same entry at once: one builds, the other waits on the lock and reuses it."""
    root, target = str(tmp_path / "engines"), _target(tmp_path)
    spec = json.dumps({**target.__dict__, "onnx": dict(target.onnx), "options": dict(target.options)})
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    procs = [ctx.Process(target=_build_in_child, args=(root, spec, str(tmp_path / "calls"), str(tmp_path / f"out{i}")))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    outs = [json.load(open(tmp_path / f"out{i}")) for i in range(2)]
    assert outs[0]["path"] == outs[1]["path"] == trt_cache.entry_dir(root, target)
    assert FakeBuilder(str(tmp_path / "calls")).calls == 1, "the second process must reuse, not rebuild"
    assert isinstance(trt_cache.lookup(root, target), trt_cache.CacheEntry)
    assert sorted(os.listdir(os.path.join(root, target.export_name))) == [target.key]


def _write_lock(path: str, pid: int, host: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    json.dump({"pid": pid, "host": host, "token": "t", "created": "earlier"}, open(path, "w"))


def test_lock_of_dead_process_is_broken(tmp_path, caplog) -> None:
    root, target = str(tmp_path / "engines"), _target(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_lock(trt_cache.entry_dir(root, target) + ".lock", dead.pid, socket.gethostname())
    builder = FakeBuilder(str(tmp_path / "calls"))
    with caplog.at_level(logging.WARNING, logger="siamdeploy.locking"):
        trt_cache.get_or_build(root, target, builder, wait_s=5)
    assert builder.calls == 1 and "removing stale lock" in caplog.text


def test_old_lock_from_another_host_is_broken(tmp_path) -> None:
    root, target = str(tmp_path / "engines"), _target(tmp_path)
    lock = trt_cache.entry_dir(root, target) + ".lock"
    _write_lock(lock, 1, "some-other-host")
    os.utime(lock, (time.time() - 7200, time.time() - 7200))
    builder = FakeBuilder(str(tmp_path / "calls"))
    trt_cache.get_or_build(root, target, builder, stale_lock_s=3600, wait_s=5)
    assert builder.calls == 1 and not os.path.exists(lock)


def test_live_lock_times_out(tmp_path) -> None:
    root, target = str(tmp_path / "engines"), _target(tmp_path)
    _write_lock(trt_cache.entry_dir(root, target) + ".lock", os.getpid(), socket.gethostname())
    with pytest.raises(EngineError, match="waiting for another process"):
        trt_cache.get_or_build(root, target, FakeBuilder(str(tmp_path / "calls")), wait_s=0.3, poll_s=0.05)


# ================================================================================================ builder helpers
def test_versions_and_typing() -> None:
    assert versions.parse_version("10.13.0.35") == (10, 13, 0) and versions.parse_version("8.6") == (8, 6, 0)
    with pytest.raises(EngineError, match="runtime tensor.*8.5"):
        versions.check_version((8, 4, 3))
    versions.check_version((8, 5, 2))
    assert versions.resolve_typing((8, 6, 1)) == "weak" and versions.resolve_typing((10, 3, 0)) == "strong"
    assert versions.resolve_typing((11, 4, 0)) == "strong" and versions.resolve_typing((10, 3, 0), "weak") == "weak"
    with pytest.raises(EngineError, match="removed BuilderFlag.FP16"):
        versions.resolve_typing((11, 0, 0), "weak")
    with pytest.raises(EngineError, match="9.1"):
        versions.resolve_typing((8, 6, 1), "strong")
    opts = network.BuildOptions(workspace_mb=256).resolved((10, 13, 0), "fp16")
    assert opts == {"typing": "strong", "workspace_mb": 256, "tf32": False}
    assert trt_device.device_index(None) == 0 and trt_device.device_index("cuda:1") == 1
    with pytest.raises(EngineError, match="cuda or cuda:N"):
        trt_device.device_index("cpu")


def test_pinned_layers_follow_onnx_node_names() -> None:
    fp32 = ["/rpn_head/cls/Conv", "/rpn_head/cls/head/head.3/Conv", "/Softmax"]
    layers = ["/backbone/features/features.0/Conv", "/rpn_head/cls/Conv", "/rpn_head/cls/Conv_1",
              "/rpn_head/cls/head/head.3/Conv", "/neck/downsample/Conv_2", "/Softmax_12", "Cast_x__to_fp32"]
    assert network.pinned_layers(layers, fp32) == ["/rpn_head/cls/Conv", "/rpn_head/cls/Conv_1",
                                                    "/rpn_head/cls/head/head.3/Conv", "/Softmax_12"]
    assert network.node_of("/rpn_head/cls/Conv_1_2", set(fp32)) == "/rpn_head/cls/Conv"


def test_tensor_precision_strings() -> None:
    tp = inspection.tensor_precision
    assert tp("Row major linear FP16 format") == "fp16" and tp("Half") == "fp16"
    assert tp("Row major linear FP32") == "fp32" and tp("Float") == "fp32"
    assert tp("Channel major FP16 format where channel % 8 == 0") == "fp16"
    assert tp("Row major linear Int32") is None and tp("") is None and tp("BFloat16") == "bf16"


def _inspector_json() -> str:
    def tensor(fmt: str) -> dict:
        return {"Name": "t", "Location": "Device", "Dimensions": [1, 8, 4, 4], "Format/Datatype": fmt}

    layers = [
        {"Name": "/backbone/features/features.0/Conv + /backbone/features/features.2/Relu",
         "LayerType": "CaskConvolution",
         "Inputs": [tensor("Row major linear FP16 format")], "Outputs": [tensor("Row major linear FP16 format")]},
        {"Name": "Reformatting CopyNode for Input Tensor 0 to /rpn_head/cls/Conv", "LayerType": "Reformat",
         "Inputs": [tensor("Row major linear FP16 format")], "Outputs": [tensor("Row major linear FP32")]},
        {"Name": "/rpn_head/cls/Conv", "LayerType": "CaskConvolution",
         "Inputs": [tensor("Row major linear FP32"), tensor("Row major linear FP32")], "Outputs": [tensor("Float")]},
        {"Name": "/rpn_head/cls/head/head.3/Conv", "LayerType": "CaskConvolution",
         "Inputs": [tensor("Half")], "Outputs": [tensor("Half")]},  # meant FP32 but ran FP16
        {"Name": "shape arithmetic", "LayerType": "Shape", "Inputs": [], "Outputs": [tensor("Int64")]},
    ]
    return json.dumps({"Layers": layers, "Bindings": ["search", "cls"]})


def test_layer_precisions_from_inspector() -> None:
    info = inspection.layer_precisions(_inspector_json(), ["/rpn_head/cls/Conv", "/rpn_head/cls/head/head.3/Conv"])
    assert info["counts"] == {"fp16": 2, "fp32": 1, "mixed": 1, "other": 1}
    assert info["summary"].startswith("fp16 layers 2 / fp32 layers 1") and info["detailed"]
    assert info["pinned_not_fp32"] == ["/rpn_head/cls/head/head.3/Conv"]
    names_only = inspection.layer_precisions(json.dumps({"Layers": ["a", "b"]}))
    assert not names_only["detailed"] and "not inspectable" in names_only["summary"]
    side = {"layer_precision": {"search": info, "template": info}}
    assert inspection.realised_precision(side) == "fp16"
    fp32_only = inspection.layer_precisions(json.dumps({"Layers": [json.loads(_inspector_json())["Layers"][2]]}))
    assert inspection.realised_precision({"layer_precision": {"search": fp32_only}}) == "fp32"
    assert inspection.realised_precision({"layer_precision": {"search": names_only}}) == "unverified"


# ================================================================================================ missing packages
pytestmark_no_trt = pytest.mark.skipif(HAVE_TRT, reason="tensorrt is installed here: nothing is missing")


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("INFO")]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    return lines[0]


@pytestmark_no_trt
@pytest.mark.parametrize("what", ["export folder", "checkpoint"])
def test_export_engine_without_tensorrt_is_one_line(tmp_path, what: str) -> None:
    if what == "export folder":
        (tmp_path / "exp").mkdir()
        (tmp_path / "exp" / "manifest.json").write_text("{}")
        arg = str(tmp_path / "exp")
    else:
        arg = str(tmp_path / "model.pth")  # not even read: the dependency check comes first
    proc = subprocess.run([sys.executable, "-m", "siamdeploy.export", arg, "--engine"], capture_output=True,
                          text=True, timeout=120, cwd=str(tmp_path))
    line = _one_line_error(proc)
    assert "'tensorrt'" in line and "pip install tensorrt cuda-python" in line
    assert not (tmp_path / "engines").exists() and not (tmp_path / "export").exists()


@pytest.mark.parametrize("argv, want", [
    (["--engine-buckets", "1,2"], "--engine-buckets applies to TensorRT engines; add --engine"),
    (["--engine", "--engine-buckets", "2,8", "--buckets", "1,2,4"], "asks for buckets the export will not have"),
    (["--engine", "--engine-buckets", "two"], "comma-separated integers"),
])
def test_engine_buckets_flag_is_checked_first(tmp_path, capsys, argv: list, want: str) -> None:
    """--engine-buckets mistakes are one line, before TensorRT is looked for or the checkpoint read."""
    from siamdeploy.export.__main__ import main

    assert main([str(tmp_path / "model.pth"), *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and want in err and "\n" not in err
    assert not os.listdir(tmp_path)


@pytestmark_no_trt
def test_backend_tensorrt_without_tensorrt(tmp_path) -> None:
    with pytest.raises(DependencyError) as info:
        siamdeploy.load_tracker(str(tmp_path / "model.pth"), backend="tensorrt")
    message = str(info.value)
    assert "\n" not in message and "pip install tensorrt cuda-python" in message and "'tensorrt'" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # raised "from None"
    # the same through a process boundary that handles SiamDeployError like every siamdeploy CLI does
    script = ("import sys, siamdeploy\n"
              "try:\n    siamdeploy.load_tracker(sys.argv[1], backend='tensorrt')\n"
              "except siamdeploy.SiamDeployError as err:\n    print(f'error: {err}', file=sys.stderr); sys.exit(1)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model.pth")], capture_output=True,
                          text=True, timeout=120, cwd=str(tmp_path))
    assert "pip install tensorrt cuda-python" in _one_line_error(proc)
    assert not os.path.exists(tmp_path / "model.pth")  # failed before touching the checkpoint


def test_missing_cuda_python_is_one_line(monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_cuda(name, *args, **kwargs):  # noqa: ANN001, ANN202
        if name == "cuda" or name.startswith("cuda."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cuda)
    with pytest.raises(DependencyError, match=r"'cuda-python'.*pip install tensorrt cuda-python") as info:
        trt_device.import_cudart()
    assert "\n" not in str(info.value)


def test_probe_says_why() -> None:
    ok, why = trt_device.probe()
    if not HAVE_TRT:
        assert not ok and "tensorrt" in why


# ================================================================================================ fake TensorRT
OK = 0


class FakeStream:
    def __init__(self) -> None:
        self.capture: list | None = None

    def __int__(self) -> int:
        return id(self)


class FakeCudart:
    """cuda-python's runtime API over host memory: 'device' buffers are numpy arrays, copies are memmove."""

    class cudaError_t(enum.IntEnum):
        cudaSuccess = 0
        cudaErrorInvalidValue = 1

    class cudaMemcpyKind(enum.IntEnum):
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2
        cudaMemcpyDeviceToDevice = 3

    class cudaStreamCaptureMode(enum.IntEnum):
        cudaStreamCaptureModeGlobal = 0
        cudaStreamCaptureModeThreadLocal = 1

    def __init__(self) -> None:
        self.device: dict[int, np.ndarray] = {}
        self.host: dict[int, np.ndarray] = {}
        self.streams: dict[int, FakeStream] = {}
        self.launches = 0
        self.captures = 0
        self.d2d = 0  # device-to-device copies

    def _alloc(self, store: dict, nbytes: int) -> tuple:
        buf = np.full(nbytes, 0xAB, np.uint8)  # garbage, like real cudaMalloc
        store[buf.ctypes.data] = buf
        return OK, buf.ctypes.data

    def cudaMalloc(self, nbytes):  # noqa: N802, ANN001, ANN201
        return self._alloc(self.device, nbytes)

    def cudaMallocHost(self, nbytes):  # noqa: N802, ANN001, ANN201
        return self._alloc(self.host, nbytes)

    def cudaFree(self, ptr):  # noqa: N802, ANN001, ANN201
        del self.device[ptr]
        return (OK,)

    def cudaFreeHost(self, ptr):  # noqa: N802, ANN001, ANN201
        del self.host[ptr]
        return (OK,)

    def is_device(self, ptr: int, nbytes: int) -> bool:
        return ptr in self.device and self.device[ptr].nbytes >= nbytes

    def within_device(self, ptr: int, nbytes: int) -> bool:
        """[ptr, ptr + nbytes) lies inside one device buffer (pointers into a buffer, as the kernel stacks use)."""
        return any(base <= ptr and ptr + nbytes <= base + buf.nbytes for base, buf in self.device.items())

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):  # noqa: N802, ANN001, ANN201
        assert self.streams[int(stream)].capture is None, "copies are not captured"
        if kind == self.cudaMemcpyKind.cudaMemcpyDeviceToDevice:
            assert self.within_device(dst, nbytes) and self.within_device(src, nbytes), "D2D must stay on the device"
            self.d2d += 1
        elif kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice:
            assert self.is_device(dst, nbytes) and not self.is_device(src, 0), "H2D must go host -> device buffer"
        else:
            assert self.is_device(src, nbytes) and not self.is_device(dst, 0), "D2H must go device buffer -> host"
        ctypes.memmove(dst, src, nbytes)
        return (OK,)

    def cudaStreamCreate(self):  # noqa: N802, ANN201
        stream = FakeStream()
        self.streams[int(stream)] = stream
        return OK, stream

    def cudaStreamSynchronize(self, stream):  # noqa: N802, ANN001, ANN201
        assert int(stream) in self.streams
        return (OK,)

    def cudaStreamDestroy(self, stream):  # noqa: N802, ANN001, ANN201
        del self.streams[int(stream)]
        return (OK,)

    def cudaSetDevice(self, index):  # noqa: N802, ANN001, ANN201
        return (OK,)

    def cudaGetDeviceCount(self):  # noqa: N802, ANN201
        return OK, 1

    def cudaGetDeviceProperties(self, index):  # noqa: N802, ANN001, ANN201
        return OK, SimpleNamespace(name=b"Fake GPU 9000\0\0\0", major=8, minor=9)

    def cudaGetErrorString(self, err):  # noqa: N802, ANN001, ANN201
        return OK, b"fake error"

    def cudaStreamBeginCapture(self, stream, mode):  # noqa: N802, ANN001, ANN201
        stream.capture = []
        return (OK,)

    def cudaStreamEndCapture(self, stream):  # noqa: N802, ANN001, ANN201
        ops, stream.capture = stream.capture, None
        self.captures += 1
        return OK, SimpleNamespace(ops=ops)

    def cudaGraphInstantiate(self, graph, flags):  # noqa: N802, ANN001, ANN201
        return OK, SimpleNamespace(ops=list(graph.ops))

    def cudaGraphLaunch(self, graph_exec, stream):  # noqa: N802, ANN001, ANN201
        self.launches += 1
        for op in graph_exec.ops:
            op()
        return (OK,)

    def cudaGraphDestroy(self, graph):  # noqa: N802, ANN001, ANN201
        return (OK,)

    def cudaGraphExecDestroy(self, graph_exec):  # noqa: N802, ANN001, ANN201
        return (OK,)


class FakeTrt:
    """The slice of the ``tensorrt`` module the engine uses; a plan is ``{"onnx": path}`` run by onnxruntime."""

    __version__ = "10.8.0.43"

    class TensorIOMode(enum.Enum):
        INPUT = 0
        OUTPUT = 1

    class ILogger:
        class Severity(enum.Enum):
            INTERNAL_ERROR = 0
            ERROR = 1
            WARNING = 2
            INFO = 3
            VERBOSE = 4

        def __init__(self) -> None:
            pass

    def __init__(self, cudart: FakeCudart) -> None:
        self.cudart = cudart
        self.executions = 0

    @staticmethod
    def nptype(dtype: str) -> type:
        return {"float32": np.float32}[dtype]

    def Runtime(self, logger):  # noqa: N802, ANN001, ANN201
        fake = self

        class Runtime:
            def deserialize_cuda_engine(self, data: bytes) -> FakeEngine:
                return FakeEngine(json.loads(data)["onnx"], fake)

        return Runtime()


class FakeEngine:
    def __init__(self, onnx_path: str, trt: FakeTrt) -> None:
        import onnxruntime

        self.trt = trt
        self.session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        self.io = [(i.name, FakeTrt.TensorIOMode.INPUT, tuple(i.shape)) for i in self.session.get_inputs()]
        self.io += [(o.name, FakeTrt.TensorIOMode.OUTPUT, tuple(o.shape)) for o in self.session.get_outputs()]

    @property
    def num_io_tensors(self) -> int:
        return len(self.io)

    def get_tensor_name(self, i: int) -> str:
        return self.io[i][0]

    def _find(self, name: str) -> tuple:
        return next(t for t in self.io if t[0] == name)

    def get_tensor_shape(self, name: str) -> list[int]:
        return list(self._find(name)[2])

    def get_tensor_dtype(self, name: str) -> str:
        return "float32"

    def get_tensor_mode(self, name: str) -> FakeTrt.TensorIOMode:
        return self._find(name)[1]

    def create_execution_context(self) -> FakeContext:
        return FakeContext(self)


class FakeContext:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine = engine
        self.addresses: dict[str, int] = {}

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        assert isinstance(ptr, int)
        self.engine._find(name)
        self.addresses[name] = ptr
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        cudart = self.engine.trt.cudart
        stream = cudart.streams[stream_handle]
        addresses = dict(self.addresses)  # a graph keeps the addresses it was captured with
        engine = self.engine

        def run() -> None:
            feeds = {}
            for name, mode, shape in engine.io:
                nbytes = int(np.prod(shape)) * 4
                assert cudart.is_device(addresses[name], nbytes), f"{name} is not bound to a device buffer"
                if mode == FakeTrt.TensorIOMode.INPUT:
                    raw = (ctypes.c_uint8 * nbytes).from_address(addresses[name])
                    feeds[name] = np.frombuffer(raw, np.float32).reshape(shape).copy()
            outs = engine.session.run(None, feeds)
            produced = [t for t in engine.io if t[1] == FakeTrt.TensorIOMode.OUTPUT]
            for (name, _mode, _shape), value in zip(produced, outs):
                value = np.ascontiguousarray(value, np.float32)
                ctypes.memmove(addresses[name], value.ctypes.data, value.nbytes)
            engine.trt.executions += 1

        if stream.capture is not None:
            stream.capture.append(run)
        else:
            run()
        return True


def _tiny_export(folder: str, mask: bool = False, buckets: tuple[int, ...] = ()) -> str:
    """A hand-made export folder with SiamFC's signature (template 127 -> kernel; search 3x255 + kernel ->
    response 3x1x17x17) built from pooling and one correlation Conv, so onnxruntime runs it in microseconds.
    ``mask``: the search graph also returns f0/f1/f2/mask_corr and a refine graph exists (SiamMask-shaped).
    ``buckets`` (with ``mask``): bucket graphs ``template_b{B}`` / ``search_b{B}`` as the exporter writes them
    (the batch folded into a grouped correlation, rows target-major)."""
    import onnx
    from onnx import TensorProto, helper

    from siamdeploy.manifest import FORMAT, FORMAT_VERSION, preset_to_dict, sha256_file
    from siamdeploy.presets import get_preset

    os.makedirs(folder, exist_ok=True)

    def _info(v: onnx.ValueInfoProto) -> dict:
        return {"name": v.name, "shape": [d.dim_value for d in v.type.tensor_type.shape.dim]}

    def value(name: str, shape: tuple) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))

    def pool(src: str, dst: str, k: int, s: int) -> onnx.NodeProto:
        return helper.make_node("AveragePool", [src], [dst], kernel_shape=[k, k], strides=[s, s], name=f"/{dst}/Pool")

    def save(name: str, nodes: list, inputs: list, outputs: list, inits: list = (), targets: int = 1) -> dict:
        graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        role = name.split("_")[0] + ("_batched" if targets > 1 else "")
        entry = {"role": role, "instance_size": 255 if role.startswith("search") else None,
                 "inputs": [_info(i) for i in inputs], "outputs": [_info(o) for o in outputs]}
        if targets > 1:
            entry["targets"] = targets
        variants = {}
        for precision, file in (("fp32", f"{name}.onnx"), ("fp16", f"{name}_fp16.onnx")):
            onnx.save(model, os.path.join(folder, file))
            variants[precision] = {**entry, "file": file, "precision": precision,
                                   "sha256": sha256_file(os.path.join(folder, file))}
        variants["fp16"]["fp32_nodes"] = ["/response/Conv"]
        return variants

    graphs = {"template": save("template", [pool("template", "kernel", 8, 8)], [value("template", (1, 3, 127, 127))],
                               [value("kernel", (1, 3, 15, 15))])}
    batch = 1 if mask else 3
    nodes = [pool("search", "feat", 8, 8),
             helper.make_node("Conv", ["feat", "kernel"], ["response"], name="/response/Conv")]
    outputs = [value("response", (batch, 1, 17, 17))]
    if mask:
        nodes[1] = helper.make_node("Conv", ["feat", "kernel"], ["mask_corr"], name="/response/Conv")
        nodes += [helper.make_node("Neg", ["mask_corr"], ["response"], name="/neg"),
                  pool("search", "f0", 7, 2), pool("search", "f1", 5, 4), pool("search", "f2", 15, 8)]
        outputs += [value("mask_corr", (1, 1, 17, 17)), value("f0", (1, 3, 125, 125)), value("f1", (1, 3, 63, 63)),
                    value("f2", (1, 3, 31, 31))]
    graphs["search"] = save("search", nodes, [value("search", (batch, 3, 255, 255)), value("kernel", (1, 3, 15, 15))],
                            outputs)
    assert mask or not buckets, "bucket graphs of the tiny export: SiamMask-shaped (one search row per target)"
    for b in buckets:
        graphs[f"template_b{b}"] = save(f"template_b{b}", [pool("template", "kernel", 8, 8)],
                                        [value("template", (b, 3, 127, 127))], [value("kernel", (b, 3, 15, 15))],
                                        targets=b)
        fold = helper.make_tensor("fold", TensorProto.INT64, [4], [1, 3 * b, 31, 31])
        unfold = helper.make_tensor("unfold", TensorProto.INT64, [4], [b, 1, 17, 17])
        nodes = [pool("search", "feat", 8, 8), helper.make_node("Reshape", ["feat", "fold"], ["feat_b"], name="/fold"),
                 helper.make_node("Conv", ["feat_b", "kernel"], ["corr_b"], group=b, name="/response/Conv"),
                 helper.make_node("Reshape", ["corr_b", "unfold"], ["mask_corr"], name="/unfold"),
                 helper.make_node("Neg", ["mask_corr"], ["response"], name="/neg"),
                 pool("search", "f0", 7, 2), pool("search", "f1", 5, 4), pool("search", "f2", 15, 8)]
        outputs = [value("response", (b, 1, 17, 17)), value("mask_corr", (b, 1, 17, 17)),
                   value("f0", (b, 3, 125, 125)), value("f1", (b, 3, 63, 63)), value("f2", (b, 3, 31, 31))]
        graphs[f"search_b{b}"] = save(f"search_b{b}", nodes, [value("search", (b, 3, 255, 255)),
                                                             value("kernel", (b, 3, 15, 15))],
                                      outputs, [fold, unfold], targets=b)
    if mask:
        sizes = helper.make_tensor("sizes", TensorProto.INT64, [4], [1, 1, 127, 127])
        nodes = []
        for p in ("p0", "p1", "p2"):
            nodes += [helper.make_node("ReduceMean", [p], [f"{p}_m"], axes=[1], keepdims=1, name=f"/{p}/Mean"),
                      helper.make_node("Resize", [f"{p}_m", "", "", "sizes"], [f"{p}_r"], mode="nearest",
                                       name=f"/{p}/Resize")]
        nodes += [helper.make_node("Add", ["p0_r", "p1_r"], ["a"], name="/a"),
                  helper.make_node("Sub", ["a", "p2_r"], ["b"], name="/b"),
                  helper.make_node("Mul", ["b", "p3"], ["mask_logits"], name="/mask")]
        graphs["refine"] = save("refine", nodes, [value("p0", (1, 3, 61, 61)), value("p1", (1, 3, 31, 31)),
                                                  value("p2", (1, 3, 15, 15)), value("p3", (1, 1, 1, 1))],
                                [value("mask_logits", (1, 1, 127, 127))], [sizes])
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "siamdeploy_version": siamdeploy.__version__,
                "family": "siamfc", "preset": preset_to_dict(get_preset("siamfc")), "precisions": ["fp32", "fp16"],
                "opset": 17, "input": {"colour": "rgb"}, "checkpoint": {}, "graphs": graphs}
    with open(os.path.join(folder, "manifest.json"), "w") as fh:
        json.dump(manifest, fh)
    return folder


@pytest.fixture(scope="module")
def siamfc_export(tmp_path_factory) -> str:
    return _tiny_export(str(tmp_path_factory.mktemp("trt_fake") / "tiny-siamfc"))


@pytest.fixture
def fake_trt(monkeypatch):
    cudart = FakeCudart()
    trt = FakeTrt(cudart)
    monkeypatch.setattr(trt_device, "import_tensorrt", lambda: trt)
    monkeypatch.setattr(trt_device, "import_cudart", lambda: cudart)
    return trt, cudart


def _fake_entry(folder: str, root: str, precision: str = "fp16", buckets=None) -> trt_cache.CacheEntry:  # noqa: ANN001
    """A cache entry exactly where ensure_engines() looks for it, with fake plans (paths of the ONNX graphs)."""
    from siamdeploy.manifest import read_manifest

    manifest = read_manifest(folder)
    version = versions.parse_version(FakeTrt.__version__)
    options = network.BuildOptions().resolved(version, precision)
    gpu = trt_device.GpuInfo(0, "Fake GPU 9000", "8.9")
    target = trt_build_mod.engine_target(folder, manifest, gpu, FakeTrt.__version__, precision, options, buckets)
    info = inspection.layer_precisions(_inspector_json())

    def build(tmp: str) -> dict:
        engines = {}
        for name, source in target.onnx.items():
            with open(os.path.join(tmp, f"{name}.engine"), "w") as fh:
                json.dump({"onnx": os.path.join(folder, source["file"])}, fh)
            engines[name] = f"{name}.engine"
        return {"engines": engines, "layer_precision": {n: info for n in engines},
                "precision_summary": "fp16 layers 4 / fp32 layers 2"}

    return trt_cache.get_or_build(root, target, build)


def _track(engine_or_tracker, seq, n: int = 5) -> np.ndarray:
    from siamdeploy.presets import get_preset
    from siamdeploy.runtime import make_tracker

    tracker = engine_or_tracker
    if not hasattr(engine_or_tracker, "track"):
        preset = get_preset("siamfc")
        tracker = make_tracker(engine_or_tracker, preset.track, preset.name)
        tracker.init(seq.frames[0], seq.boxes[0])
    return np.array([tracker.track(f).bbox for f in seq.frames[1:n + 1]])


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_fake_tensorrt_engine_matches_onnxruntime(siamfc_export, fake_trt, tmp_path, cuda_graph: bool) -> None:
    """The full public path (load_engine(folder) -> ensure_engines -> lookup -> TensorRTEngine) over the fake: every
    tensor bound to device buffers, kernels shared by address, same numbers as the onnxruntime engine."""
    from siamdeploy.synthetic import generate_sequence
    from siamdeploy.engine.onnxruntime_engine import OnnxRuntimeEngine
    from siamdeploy.manifest import read_manifest
    from siamdeploy.tensorrt import load_engine

    trt, cudart = fake_trt
    root = str(tmp_path / "engines")
    _fake_entry(siamfc_export, root)
    engine = load_engine(siamfc_export, precision="fp16", cache_root=root, rebuild=False, cuda_graph=cuda_graph)
    assert engine.precision == "fp16" and "fp16 layers 4 / fp32 layers 2" in engine.describe()
    reference = OnnxRuntimeEngine(siamfc_export, read_manifest(siamfc_export), precision="fp16")
    rng = np.random.default_rng(0)
    z = rng.uniform(0, 255, (1, 3, 127, 127)).astype(np.float32)
    x = rng.uniform(0, 255, (3, 3, 255, 255)).astype(np.float32)
    kernels = engine.template(z)
    ref_k = reference.template(z)
    for _ in range(3):
        out = engine.search(x, kernels)
        np.testing.assert_array_equal(out.outputs["response"], reference.search(x, ref_k).outputs["response"])
    template, search = engine.plans["template"], engine.plans["search"]
    for name in engine.kernel_names:  # the search engine reads the template engine's output buffers
        assert search.context.addresses[name] == template.context.addresses[name]
    if cuda_graph:
        assert engine.cuda_graph_active and cudart.captures == 1 and cudart.launches == 2
        assert "CUDA graph" in engine.describe()
    else:
        assert cudart.captures == 0 and cudart.launches == 0
    seq = generate_sequence(seed=3, num_frames=6, size=(320, 240))
    np.testing.assert_array_equal(_track(engine, seq), _track(reference, seq))
    with pytest.raises(InputError, match="kernels"):
        engine.search(x, ref_k)
    with pytest.raises(InputError, match="must be"):
        engine.search(x[:1], kernels)
    with pytest.raises(NotImplementedError):
        engine.refine(out.extras, (0, 0))
    del kernels
    engine.close()
    assert not cudart.device and not cudart.host and not cudart.streams, "close() frees everything"


def test_fake_engine_serves_several_targets(siamfc_export, fake_trt, tmp_path) -> None:
    """Two trackers on one engine (the run CLI does this): each keeps its own kernel slot, also with graphs;
    dropped kernels return their slot."""
    from siamdeploy.synthetic import generate_sequence
    from siamdeploy.engine.onnxruntime_engine import OnnxRuntimeEngine
    from siamdeploy.manifest import read_manifest
    from siamdeploy.presets import get_preset
    from siamdeploy.tensorrt.runner import TensorRTEngine
    from siamdeploy.runtime import make_tracker

    trt, cudart = fake_trt
    root = str(tmp_path / "engines")
    entry = _fake_entry(siamfc_export, root)
    engine = TensorRTEngine(entry, read_manifest(siamfc_export), cuda_graph=True)
    reference = OnnxRuntimeEngine(siamfc_export, read_manifest(siamfc_export), precision="fp16")
    seq = generate_sequence(seed=5, num_frames=6, size=(320, 240))
    preset = get_preset("siamfc")
    boxes = [seq.boxes[0], (seq.boxes[0][0] + 20, seq.boxes[0][1] + 10, 30.0, 25.0)]
    shared = [make_tracker(engine, preset.track, preset.name) for _ in boxes]
    alone = [make_tracker(reference, preset.track, preset.name) for _ in boxes]
    for tracker, box in zip(shared + alone, boxes + boxes):
        tracker.init(seq.frames[0], box)
    for frame in seq.frames[1:]:
        for a, b in zip(shared, alone):
            assert a.track(frame).bbox == b.track(frame).bbox
    assert len(engine._slots) == 2 and cudart.captures == 2  # one graph per slot
    shared[0].init(seq.frames[0], boxes[0])  # re-init: a new slot, then the old one returns to the free list
    assert len(engine._slots) == 3 and len(engine._free_slots) == 1
    shared[0].init(seq.frames[0], boxes[1])  # ... and is taken again: no growth
    assert len(engine._slots) == 3 and len(engine._free_slots) == 1
    again = make_tracker(reference, preset.track, preset.name)
    again.init(seq.frames[0], boxes[1])
    for frame in seq.frames[1:]:  # the recycled slot holds the new target's kernels
        assert shared[0].track(frame).bbox == again.track(frame).bbox
    engine.close()


def test_fake_engine_refine(fake_trt, tmp_path) -> None:
    """SiamMask-shaped outputs: refine fetches f0/f1/f2/mask_corr once, crops in numpy and matches the
    onnxruntime engine; extras of an older search are refused."""
    from siamdeploy.engine.onnxruntime_engine import OnnxRuntimeEngine
    from siamdeploy.manifest import read_manifest
    from siamdeploy.tensorrt import load_engine

    folder = _tiny_export(str(tmp_path / "tiny-mask"), mask=True)
    _fake_entry(folder, str(tmp_path / "engines"))
    engine = load_engine(folder, cache_root=str(tmp_path / "engines"), rebuild=False)
    reference = OnnxRuntimeEngine(folder, read_manifest(folder), precision="fp16")
    rng = np.random.default_rng(2)
    z = rng.uniform(0, 255, (1, 3, 127, 127)).astype(np.float32)
    x = rng.uniform(0, 255, (1, 3, 255, 255)).astype(np.float32)
    out, ref = engine.search(x, engine.template(z)), reference.search(x, reference.template(z))
    assert set(out.outputs) == {"response"}
    for cell in ((0, 0), (8, 3), (16, 16)):
        np.testing.assert_array_equal(engine.refine(out.extras, cell), reference.refine(ref.extras, cell))
    assert engine._fetched[1] == {"f0", "f1", "f2", "mask_corr"}
    kernels = engine.template(z)
    engine.search(x, kernels)
    with pytest.raises(EngineError, match="must follow the search"):
        engine.refine(out.extras, (0, 0))
    with pytest.raises(NotImplementedError):
        engine.mask_at(out.extras, (0, 0))
    engine.close()


@pytest.fixture(scope="module")
def bucket_export(tmp_path_factory) -> str:
    return _tiny_export(str(tmp_path_factory.mktemp("trt_fake") / "tiny-mask-b"), mask=True, buckets=(2, 4))


def test_view_keeps_bucket_graphs(bucket_export) -> None:
    """The TensorRT view of an export keeps its bucket graphs with their target counts, from the typed manifest
    and from its JSON form alike; restricted() keeps the single-target graphs and the chosen buckets."""
    from siamdeploy.manifest import read_manifest
    from siamdeploy.tensorrt.manifest_view import as_view

    typed = as_view(read_manifest(bucket_export))
    plain = as_view(json.load(open(os.path.join(bucket_export, "manifest.json"))))
    for view in (typed, plain):
        assert set(view.graphs) == {"template", "search", "refine", "template_b2", "search_b2", "template_b4",
                                    "search_b4"}
        assert view.targets("search_b4") == 4 and view.targets("search") == 1
        assert view.graphs["search_b2"]["fp16"].role == "search_batched"
        assert view.graphs["search_b2"]["fp32"].instance_size == 255
        assert view.buckets() == (2, 4) and view.buckets("fp16") == (2, 4) and view.buckets("int8") == ()
        assert set(view.restricted([4]).graphs) == {"template", "search", "refine", "template_b4", "search_b4"}
        assert view.restricted([]).buckets() == ()


def test_build_plan_lists_one_plan_per_bucket(bucket_export, caplog) -> None:
    """What ensure_engines builds: every single-target graph plus a template and a search plan per bucket asked
    for (default: all of the export's), from the variant the precision needs; INT8 keeps one call per target."""
    from siamdeploy.manifest import read_manifest

    manifest = read_manifest(bucket_export)
    every = trt_cache.select_sources(manifest, "fp16", "strong")
    assert set(every) == {"template", "search", "refine", "template_b2", "search_b2", "template_b4", "search_b4"}
    assert every["search_b4"] == {"file": "search_b4_fp16.onnx", "sha256": manifest.graph("search_b4", "fp16").sha256,
                                  "targets": 4}
    assert "targets" not in every["search"]
    weak = trt_cache.select_sources(manifest, "fp16", "weak", buckets=(1, 2))
    assert set(weak) == {"template", "search", "refine", "template_b2", "search_b2"}
    assert weak["template_b2"]["file"] == "template_b2.onnx" and weak["template_b2"]["pin_sha256"]
    assert set(trt_cache.select_sources(manifest, "fp32", "strong", buckets=(1,))) == {"template", "search", "refine"}
    with pytest.raises(EngineError, match="no bucket graphs for 8 target.*has: 2, 4"):
        trt_cache.select_sources(manifest, "fp32", "strong", buckets=(2, 8))
    options = {"typing": "strong", "workspace_mb": None, "tf32": False}
    gpu = trt_device.GpuInfo(0, "Fake GPU 9000", "8.9")
    target = trt_build_mod.engine_target(bucket_export, manifest, gpu, "10.8.0.43", "fp16", options)
    assert target.buckets == (2, 4) and len(target.onnx) == 7
    with caplog.at_level(logging.INFO, logger="siamdeploy.tensorrt.build"):
        picked = trt_build_mod.plan_target(bucket_export, as_view_of(manifest), gpu, "10.8.0.43", "fp16", options,
                                           "unused-root", buckets=(4,))
    assert picked.buckets == (4,) and "3 single-target + 2 bucket plan(s) (buckets: 4)" in caplog.text


def as_view_of(manifest):  # noqa: ANN001, ANN201
    from siamdeploy.tensorrt.manifest_view import as_view

    return as_view(manifest)


def test_cache_records_buckets_and_fewer_is_stale(bucket_export, tmp_path) -> None:
    """The sidecar records the buckets built; an entry with more buckets than asked is used, one with fewer is
    stale ('buckets'), refused without rebuild and rebuilt with what it had plus what is asked."""
    from siamdeploy.manifest import read_manifest

    manifest = read_manifest(bucket_export)
    options = {"typing": "strong", "workspace_mb": None, "tf32": False}
    gpu = trt_device.GpuInfo(0, "Fake GPU 9000", "8.9")
    root = str(tmp_path / "engines")
    calls = []

    def build_for(target: EngineTarget):  # noqa: ANN202 - fake plans, one file per graph of the target
        def build(tmp: str) -> dict:
            calls.append(sorted(target.onnx))
            for name in target.onnx:
                open(os.path.join(tmp, f"{name}.engine"), "w").write(name)
            return {"engines": {name: f"{name}.engine" for name in target.onnx}}
        return build

    def target(buckets):  # noqa: ANN001, ANN202
        return trt_build_mod.engine_target(bucket_export, manifest, gpu, "10.8.0.43", "fp16", options, buckets)

    small = target((2,))
    entry = trt_cache.get_or_build(root, small, build_for(small))
    assert entry.buckets == (2,) and entry.sidecar["buckets"] == [2] and entry.bucket_of("search_b2") == 2
    assert set(entry.engines) == {"template", "search", "refine", "template_b2", "search_b2"}
    assert isinstance(trt_cache.lookup(root, target(())), trt_cache.CacheEntry)  # more than asked: used
    stale = trt_cache.lookup(root, target(None))
    assert isinstance(stale, Stale) and stale.reason == trt_cache.BUCKETS
    assert "built for buckets 2, buckets 2, 4 were asked for" in stale.detail
    with pytest.raises(EngineError, match="stale TensorRT engines \\(buckets\\)"):
        trt_cache.get_or_build(root, target(None), build_for(target(None)), rebuild=False)
    picked = trt_build_mod.plan_target(bucket_export, as_view_of(manifest), gpu, "10.8.0.43", "fp16", options, root,
                                       buckets=(4,))
    assert picked.buckets == (2, 4)  # stale for buckets only: rebuilt keeping bucket 2
    entry = trt_cache.get_or_build(root, picked, build_for(picked))
    assert entry.buckets == (2, 4) and len(calls) == 2 and len(entry.engines) == 7
    assert isinstance(trt_cache.lookup(root, target((4,))), trt_cache.CacheEntry)
    changed = dict(target(None).onnx)
    changed["search_b4"] = {**changed["search_b4"], "sha256": "f" * 64}
    stale = trt_cache.lookup(root, _target(tmp_path, export_name=small.export_name, gpu_name=small.gpu_name,
                                           compute_capability="8.9", trt_version="10.8.0.43", onnx=changed,
                                           options=options, export_folder=small.export_folder))
    assert isinstance(stale, Stale) and stale.reason == "onnx" and "search_b4_fp16.onnx changed" in stale.detail
    other = trt_build_mod.plan_target(bucket_export, as_view_of(manifest), gpu, "10.9.0.1", "fp16", options, root,
                                      buckets=(4,))
    assert other.buckets == (4,)  # another TensorRT: a new entry, built as asked


def test_int8_entry_has_no_bucket_plans(bucket_export, caplog) -> None:
    """INT8 bucket graphs do not exist: the INT8 target holds the single-target plans only, and says so."""
    from siamdeploy.tensorrt.manifest_view import GraphFile, ManifestView, as_view

    view = as_view(json.load(open(os.path.join(bucket_export, "manifest.json"))))
    graphs = {n: dict(v) for n, v in view.graphs.items()}
    for name in ("template", "search", "refine"):
        graphs[name]["int8"] = GraphFile(f"{name}_int8.onnx", "9" * 64, graphs[name]["fp32"].role,
                                         graphs[name]["fp32"].instance_size)
    view = ManifestView(graphs, view.exemplar_size, view.preset)
    options = {"typing": "strong", "workspace_mb": None, "tf32": False}
    gpu = trt_device.GpuInfo(0, "Fake GPU 9000", "8.9")
    with caplog.at_level(logging.INFO, logger="siamdeploy.tensorrt.build"):
        target = trt_build_mod.plan_target(bucket_export, view, gpu, "10.8.0.43", "int8", options, "no-root")
    assert target.buckets == () and set(target.onnx) == {"template", "search", "refine"}
    assert "INT8 builds the single-target plans and runs one engine call per target" in caplog.text


def test_fake_engine_bucket_bookkeeping(bucket_export, fake_trt, tmp_path) -> None:
    """The bucket plans' bookkeeping over the fake (host memory, onnxruntime doing the maths; this says nothing
    about TensorRT itself): search_many / template_many run one plan call per bucket and equal the onnxruntime
    engine's bucket graphs; kernel stacks are copied device-to-device only when the set of targets changes;
    each stack gets its own CUDA graph; a dropped target's stack is rebuilt; every target's refine works
    after a frame whose plan ran twice."""
    from siamdeploy.engine.onnxruntime_engine import OnnxRuntimeEngine
    from siamdeploy.manifest import read_manifest
    from siamdeploy.tensorrt import load_engine

    trt, cudart = fake_trt
    root = str(tmp_path / "engines")
    _fake_entry(bucket_export, root)
    engine = load_engine(bucket_export, cache_root=root, rebuild=False, cuda_graph=True)
    reference = OnnxRuntimeEngine(bucket_export, read_manifest(bucket_export), precision="fp16")
    assert engine.buckets == (1, 2, 4) and engine.batched_template() and "buckets 2,4" in engine.describe()
    rng = np.random.default_rng(4)
    zs = [rng.uniform(0, 255, (1, 3, 127, 127)).astype(np.float32) for _ in range(9)]
    xs = [rng.uniform(0, 255, (1, 3, 255, 255)).astype(np.float32) for _ in range(9)]
    assert engine.search_buckets(xs[0]) == (1, 2, 4)

    runs = trt.executions
    ks = engine.template_many(zs[:3])  # one template_b4 call (padded by the last target)
    assert trt.executions == runs + 1 and len({k.slot for k in ks}) == 3 and cudart.d2d == 3
    ref_ks = reference.template_many(zs[:3])
    for _ in range(3):  # the stack the template plan wrote: no copy; frames 2, 3 replay its CUDA graph
        copies, runs = cudart.d2d, trt.executions
        outs = engine.search_many(xs[:3], ks)
        assert cudart.d2d == copies and trt.executions == runs + 1
        ref = reference.search_many(xs[:3], ref_ks)
        for a, b in zip(outs, ref):
            np.testing.assert_array_equal(a.outputs["response"], b.outputs["response"])
    assert cudart.captures == 1 and cudart.launches == 2
    for i, (a, b) in enumerate(zip(outs, ref)):  # every target's refine, from its rows of the one call
        np.testing.assert_array_equal(engine.refine(a.extras, (3, 5)), reference.refine(b.extras, (3, 5)))
        single = reference.search(xs[i], reference.template(zs[i]))
        np.testing.assert_allclose(a.outputs["response"], single.outputs["response"], rtol=1e-5, atol=1e-3)

    order = [ks[2], ks[0], ks[1]]  # another order: a new stack (4 rows copied), kept for the next frame
    engine.search_many([xs[2], xs[0], xs[1]], order)
    assert cudart.d2d == 3 + 4
    engine.search_many([xs[2], xs[0], xs[1]], order)
    assert cudart.d2d == 3 + 4
    del order
    slot = ks[1].slot
    del ks[1], outs, a, b  # a dropped target: its slot returns, stacks holding it are never matched again
    assert slot in engine._free_slots
    pair = engine.search_many([xs[0], xs[2]], ks)  # bucket 2: a new stack of 2 rows
    assert cudart.d2d == 7 + 2 and len(engine._stacks) == 1 and engine._pool_free[4]
    np.testing.assert_array_equal(pair[1].outputs["response"],
                                  reference.search_many([xs[0], xs[2]], [ref_ks[0], ref_ks[2]])[1].outputs["response"])

    many = [engine.template(z) for z in zs]  # 9 single slots: calls of 4 + 4 + 1, search_b4 runs twice
    ref_many = [reference.template(z) for z in zs]
    runs = trt.executions
    outs = engine.search_many(xs, many)
    ref = reference.search_many(xs, ref_many)
    assert trt.executions == runs + 3
    for a, b in zip(outs, ref):  # the first call's extras were copied to the host before the second call
        np.testing.assert_array_equal(a.outputs["response"], b.outputs["response"])
        np.testing.assert_array_equal(engine.refine(a.extras, (16, 0)), reference.refine(b.extras, (16, 0)))
    assert outs[0].extras.run.host is not None and outs[4].extras.run.host is None
    with pytest.raises(InputError, match="search_many"):
        engine.search_many(xs[:2], ref_many[:2])
    del many, outs, ks, pair
    engine.close()
    assert not cudart.device and not cudart.host and not cudart.streams


def test_backend_loads_the_buckets_asked_for(bucket_export, fake_trt, tmp_path, monkeypatch) -> None:
    """backend='tensorrt' (over the fake): load_tracker's request (buckets (1,)) loads no bucket plan,
    load_multi_tracker's (buckets up to max_targets) those the export has; neither rebuilds the entry."""
    from siamdeploy.backends.builtin import TensorRTBackend
    from siamdeploy.backends.registry import LoadRequest

    root = str(tmp_path / "engines")
    created = _fake_entry(bucket_export, root).sidecar["created"]
    monkeypatch.setenv(trt_cache.ENV_ROOT, root)
    single, _ = TensorRTBackend.load(LoadRequest(bucket_export))
    assert single.buckets == (1,) and not single._bucket_plans and single.entry.buckets == (2, 4)
    multi, _ = TensorRTBackend.load(LoadRequest(bucket_export, buckets=(1, 2, 4, 8)))
    assert multi.buckets == (1, 2, 4) and set(multi._bucket_plans) == {(None, 2), (255, 2), (None, 4), (255, 4)}
    assert multi.entry.sidecar["created"] == created
    single.close()
    multi.close()


def test_refine_crop_matches_torch() -> None:
    import torch

    from siamdeploy.engine.base import crop_refine_inputs_np
    from siamdeploy.models.heads import crop_refine_inputs

    rng = np.random.default_rng(1)
    f0, f1, f2 = (rng.normal(size=s).astype(np.float32) for s in ((1, 4, 125, 125), (1, 5, 63, 63), (1, 6, 31, 31)))
    corr = rng.normal(size=(1, 7, 25, 25)).astype(np.float32)
    for cell in ((0, 0), (12, 3), (24, 24)):
        ours = crop_refine_inputs_np(f0, f1, f2, corr, *cell)
        ref = crop_refine_inputs(*(torch.from_numpy(a) for a in (f0, f1, f2, corr)), *cell)
        for a, b in zip(ours, ref):
            np.testing.assert_array_equal(a, b.numpy())


# ================================================================================================ backend="auto"
def test_auto_backend_says_why(siamfc_export, monkeypatch, caplog) -> None:
    import onnxruntime

    if HAVE_TRT or "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has TensorRT or CUDA onnxruntime: the CPU fallbacks are not reached")
    with caplog.at_level(logging.INFO, logger="siamdeploy.backends.registry"):
        tracker = siamdeploy.load_tracker(siamfc_export, backend="auto")
    assert tracker.engine.backend == "onnxruntime" and tracker.engine.device == "cpu"
    text = caplog.text
    assert "chose onnxruntime (cpu)" in text and "tensorrt:" in text and "CUDAExecutionProvider" in text
    caplog.clear()

    from siamdeploy.backends import builtin as backends
    from siamdeploy.presets import get_preset

    calls = []

    def fake_torch(request):  # noqa: ANN001, ANN202 - stands in for the torch backend's loader
        calls.append(request.model_path)
        engine = SimpleNamespace(describe=lambda: "torch (fp32, cpu)", backend="torch")
        return engine, get_preset("siamfc")

    from siamdeploy.backends.registry import auto_order

    for other in auto_order():  # every backend but torch (and TensorRT, which is absent here) is unavailable
        if other.name not in ("torch", "tensorrt"):
            monkeypatch.setattr(other, "probe", classmethod(
                lambda cls, device=None: (False, f"{cls.name} is not installed (pip install x)")))
    monkeypatch.setattr(backends.TorchBackend, "load", classmethod(lambda cls, request: fake_torch(request)))
    with caplog.at_level(logging.INFO, logger="siamdeploy.backends.registry"):
        tracker = siamdeploy.load_tracker("model.pth", backend="auto", device="cpu")
    assert tracker.engine.backend == "torch" and calls == ["model.pth"]
    assert "chose torch" in caplog.text and "device='cpu' was asked for" in caplog.text
    assert "onnxruntime: onnxruntime is not installed" in caplog.text
    with pytest.raises(EngineError, match="no backend.*export folder holds no PyTorch model"):
        siamdeploy.load_tracker(siamfc_export, backend="auto")


def test_fake_engine_is_a_context_manager_and_never_builds(siamfc_export, fake_trt, tmp_path) -> None:
    """The runner loads built plans only: with no entry it is never constructed (load_engine refuses with
    rebuild=False); as a context manager it frees every buffer and the stream on exit."""
    from siamdeploy.tensorrt import load_engine
    from siamdeploy.tensorrt.runner import TensorRTEngine

    trt, cudart = fake_trt
    root = str(tmp_path / "engines")
    with pytest.raises(EngineError, match="no TensorRT engines built yet"):
        load_engine(siamfc_export, cache_root=root, rebuild=False)
    assert not cudart.device and not cudart.streams
    entry = _fake_entry(siamfc_export, root)
    with TensorRTEngine(entry, trt_cache_view(siamfc_export)) as engine:
        engine.template(np.zeros((1, 3, 127, 127), np.float32))
        assert cudart.device and cudart.streams
    assert not cudart.device and not cudart.host and not cudart.streams


def trt_cache_view(folder: str):  # noqa: ANN201 - a ManifestView
    from siamdeploy.tensorrt.manifest_view import read_view

    return read_view(folder)
