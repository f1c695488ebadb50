"""Every TensorRT name the code uses exists in NVIDIA's published bindings of each version it claims.

The bindings wheels (``tensorrt-bindings`` 8.6.1, ``tensorrt-cu12-bindings`` 10.x, ``tensorrt-cu13-bindings``
11.x, about 1.3 MB each) are downloaded with pip into ``$SIAMDEPLOY_TRT_BINDINGS`` (default
``~/.cache/siamdeploy/trt-bindings``) on first use; without network the version tests skip with pip's reason.
The names are collected from the source of ``siamdeploy/tensorrt/`` (see ``siamdeploy.tensorrt.api_names``),
so a new TensorRT call is checked without touching this file. The cuda-python runtime calls are checked the
same way (name and number of arguments) against ``cuda-bindings`` 12.8.0 and 13.5.0 (about 10 MB each).
"""
from __future__ import annotations

import pytest

from siamdeploy.tensorrt import api_names
from siamdeploy.tensorrt.versions import CLAIMED, parse_version

_WHEELS: dict[tuple[str, str], api_names.Bindings | str] = {}


def bindings(package: str, version: str) -> api_names.Bindings:
    """The bindings of ``package==version`` (downloaded once per session), or skip saying why not."""
    key = (package, version)
    if key not in _WHEELS:
        path, why = api_names.fetch_wheel(package, version)
        _WHEELS[key] = api_names.read_bindings(path) if path else why
    found = _WHEELS[key]
    if isinstance(found, str):
        pytest.skip(found)
    return found


# ================================================================================================ collector (offline)
SOURCE = '''
from .versions import trt_path

def build(trt, builder, logger):
    network = builder.create_network(0)
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.TF32)
    flags = trt.NetworkDefinitionCreationFlag
    flags.STRONGLY_TYPED
    out = network.get_layer(0).get_output(0)
    out.dtype
    network.get_layer(0).name.startswith("/")
    if hasattr(trt, "IProgressMonitor"):
        trt.IProgressMonitor
    getattr(builder, "platform_has_fast_fp16", True)
    getattr(builder, "max_threads")
    trt.__version__, builder._private

@trt_path(below=(11, 0, 0))
def weak(trt, config):
    config.set_flag(trt.BuilderFlag.FP16)

    @trt_path(since=(10, 0, 0))
    def inner():
        trt.BuilderFlag.FP8

def make_logger(trt):
    class Logger(trt.ILogger):
        def log(self, severity, msg):
            pass
        def _private(self):
            pass
    return Logger()

class Runner:
    def run(self, plan, things):
        plan.context.execute_async_v3(0)
        self._trt.nptype(1)
        things.context_free_call()
'''


def _collected() -> dict[str, api_names.UsedName]:
    return {u.chain: u for u in api_names.collect(["example.py"], source=SOURCE)}


def test_collector_finds_chains_objects_and_aliases() -> None:
    used = _collected()
    for chain in ("builder.create_network", "builder.create_builder_config", "config.set_flag", "trt.BuilderFlag",
                  "trt.BuilderFlag.TF32", "trt.NetworkDefinitionCreationFlag", "flags.STRONGLY_TYPED",
                  "network.get_layer", "network.get_layer(0).get_output", "out.dtype", "network.get_layer(0).name",
                  "plan.context.execute_async_v3", "self._trt.nptype", "trt.ILogger.log"):
        assert chain in used, f"{chain} not collected: {sorted(used)}"
    assert used["trt.BuilderFlag.TF32"].name == "TF32" and used["trt.BuilderFlag.TF32"].line == 7
    for chain in ("network.get_layer(0).name.startswith", "things.context_free_call", "trt.__version__",
                  "builder._private", "trt.ILogger._private"):
        assert chain not in used, f"{chain} must not be collected"


def test_collector_optional_and_version_marks() -> None:
    used = _collected()
    assert used["trt.IProgressMonitor"].optional  # tested with hasattr first
    assert used["builder.platform_has_fast_fp16"].optional  # getattr with a default
    assert not used["builder.max_threads"].optional  # getattr without a default raises when absent
    fp16 = used["trt.BuilderFlag.FP16"]
    assert (fp16.since, fp16.below) == (None, (11, 0, 0))
    assert not fp16.applies_to((11, 4, 0)) and fp16.applies_to((10, 16, 1))
    fp8 = used["trt.BuilderFlag.FP8"]  # a marked function inside a marked function: both ranges apply
    assert (fp8.since, fp8.below) == ((10, 0, 0), (11, 0, 0))
    assert (used["trt.BuilderFlag.TF32"].since, used["trt.BuilderFlag.TF32"].below) == (None, None)


def test_collector_sees_the_version_rules_of_the_code() -> None:
    """The real sources: the version-specific names carry the ranges the version rules give them."""
    used = api_names.collect()
    by_name: dict[str, list[api_names.UsedName]] = {}
    for u in used:
        by_name.setdefault(u.name, []).append(u)
    for name in ("execute_async_v3", "set_tensor_address", "deserialize_cuda_engine", "get_engine_information",
                 "build_serialized_network", "parse_from_file", "TF32", "DETAILED"):
        assert name in by_name, f"{name} is used by the TensorRT code but was not collected"
    for name in ("FP16", "OBEY_PRECISION_CONSTRAINTS", "set_output_type", "precision"):  # gone in 11
        assert by_name[name] and all(u.below is not None and u.below <= (11, 0, 0) for u in by_name[name]), name
    assert all(u.below == (10, 0, 0) for u in by_name["EXPLICIT_BATCH"])
    assert all(u.since is not None and u.since >= (9, 1, 0) for u in by_name["STRONGLY_TYPED"])
    assert all(u.since == (10, 0, 0) for u in by_name["IProgressMonitor"])


def test_every_claimed_range_has_a_wheel() -> None:
    assert api_names.claimed_without_wheel() == []
    for label, _, version in api_names.WHEELS:
        since, below = CLAIMED[label]
        assert since <= parse_version(version) < below, (label, version)


# ================================================================================================ bindings
@pytest.mark.parametrize("label, package, version", api_names.WHEELS, ids=[w[2] for w in api_names.WHEELS])
def test_code_matches_published_bindings(label: str, package: str, version: str) -> None:
    found = bindings(package, version)
    assert found.version == version and found.package == package
    absent = api_names.missing(api_names.collect(), found)
    assert not absent, api_names.describe(absent, found)


def test_bindings_tell_versions_apart() -> None:
    """The string-table check really discriminates: 11 lacks what the version rules say it lacks."""
    v86 = bindings("tensorrt-bindings", "8.6.1")
    v10 = bindings("tensorrt-cu12-bindings", "10.16.1.11")
    v11 = bindings("tensorrt-cu13-bindings", "11.4.0.106")
    for name in ("FP16", "OBEY_PRECISION_CONSTRAINTS", "set_output_type", "EXPLICIT_BATCH", "platform_has_fast_fp16"):
        assert v10.has(name) and not v11.has(name), name
    for name in ("STRONGLY_TYPED", "execute_async_v3", "set_tensor_address", "TF32", "IProgressMonitor", "nptype"):
        assert v10.has(name) and v11.has(name), name
    assert not v86.has("STRONGLY_TYPED") and not v86.has("IProgressMonitor") and v86.has("execute_async_v3")
    assert not v11.has("no_such_method_anywhere")


def test_unmarked_fp16_flag_fails_on_11() -> None:
    """A weak-typing call outside a version mark is reported with the version and the attribute."""
    v11 = bindings("tensorrt-cu13-bindings", "11.4.0.106")
    source = "def build(trt, config):\n    config.set_flag(trt.BuilderFlag.FP16)\n    layer.set_output_type(0, 1)\n"
    used = api_names.collect(["oops.py"], source=source)
    absent = api_names.missing(used, v11)
    assert {u.chain for u in absent} == {"trt.BuilderFlag.FP16", "layer.set_output_type"}
    text = api_names.describe(absent, v11)
    assert "TensorRT 11.4.0.106 (tensorrt-cu13-bindings)" in text and "trt.BuilderFlag.FP16  (oops.py:2" in text
    v10 = bindings("tensorrt-cu12-bindings", "10.0.1")
    assert api_names.missing(used, v10) == []


# ================================================================================================ cuda-python
CUDA_SOURCE = '''
def setup(cudart, self):
    cudart.cudaSetDevice(0)
    self._cuda("cudaGraphInstantiate", graph, 0)
    self("cudaMemcpyAsync", dst, src, n, kind, stream)
    self._quiet("cudaFree", ptr)
    log.info("cudaSomething %s", 1)
    getattr(self.rt, name)(*args)
'''


def test_cuda_call_collector_and_arity() -> None:
    calls = api_names.collect_cuda_calls(["c.py"], source=CUDA_SOURCE)
    assert [(c.name, c.nargs, c.line) for c in calls] == [
        ("cudaSetDevice", 1, 3), ("cudaGraphInstantiate", 2, 4), ("cudaMemcpyAsync", 5, 5), ("cudaFree", 1, 6)]
    # cuda-python 11.x documented cudaGraphInstantiate(graph, size_t bufferSize) too, but returned the error
    # node and log as well; CUDA 12 has (graph, flags). A 4-argument call is caught either way:
    sigs = {"cudaSetDevice": (1, 1), "cudaGraphInstantiate": (2, 2), "cudaMemcpyAsync": (5, 5)}
    bad = [api_names.CudaCall("cudaGraphInstantiate", 4, "r.py", 9)] + calls
    assert api_names.cuda_mismatches(bad, sigs) == [
        "cudaGraphInstantiate (r.py:9) passes 4 argument(s), the bindings take 2", "cudaFree (c.py:6) does not exist"]


def test_code_calls_match_runtime_signatures() -> None:
    calls = api_names.collect_cuda_calls()
    assert {"cudaGraphInstantiate", "cudaMemcpyAsync", "cudaStreamBeginCapture", "cudaMallocHost"} <= {
        c.name for c in calls}
    for package, version in api_names.CUDA_WHEELS:
        path, why = api_names.fetch_wheel(package, version)
        if path is None:
            pytest.skip(why)
        signatures = api_names.cuda_signatures(path)
        assert signatures["cudaGraphInstantiate"] == (2, 2), f"{package} {version}"
        problems = api_names.cuda_mismatches(calls, signatures)
        assert not problems, f"{package} {version}: " + "; ".join(problems)


CUDA_ENUM_SOURCE = '''
def copy(self, rt):
    self("cudaMemcpyAsync", 1, 2, 3, self.rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice, 5)
    rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
    self._cuda.rt.cudaMemcpyKind.cudaMemcpyNoSuchKind
    other.cudaMemcpyKind.cudaMemcpyHostToDevice
'''


def test_cuda_enum_collector() -> None:
    enums = api_names.collect_cuda_enums(["e.py"], source=CUDA_ENUM_SOURCE)
    assert [(e.enum, e.value, e.line) for e in enums] == [
        ("cudaMemcpyKind", "cudaMemcpyDeviceToDevice", 3),
        ("cudaStreamCaptureMode", "cudaStreamCaptureModeThreadLocal", 4),
        ("cudaMemcpyKind", "cudaMemcpyNoSuchKind", 5)]
    code = {(e.enum, e.value) for e in api_names.collect_cuda_enums()}
    assert {("cudaMemcpyKind", "cudaMemcpyDeviceToDevice"), ("cudaMemcpyKind", "cudaMemcpyHostToDevice"),
            ("cudaMemcpyKind", "cudaMemcpyDeviceToHost"),
            ("cudaStreamCaptureMode", "cudaStreamCaptureModeThreadLocal")} <= code


def test_code_enums_match_runtime_bindings() -> None:
    """Every cuda-python enum value the code uses (the bucket stacks' device-to-device copies among them) exists
    in both cuda-bindings wheels; a made-up value is reported."""
    made_up = api_names.collect_cuda_enums(["e.py"], source=CUDA_ENUM_SOURCE)
    for package, version in api_names.CUDA_WHEELS:
        path, why = api_names.fetch_wheel(package, version)
        if path is None:
            pytest.skip(why)
        problems = api_names.cuda_enum_mismatches(api_names.collect_cuda_enums(), path)
        assert not problems, f"{package} {version}: " + "; ".join(problems)
        assert api_names.cuda_enum_mismatches(made_up, path) == [
            "cudaMemcpyKind.cudaMemcpyNoSuchKind (e.py:5): cudaMemcpyNoSuchKind does not exist"]
