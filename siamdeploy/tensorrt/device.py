"""The lazy ``tensorrt`` and cuda-python imports, checked CUDA calls, the GPU identity and the probe.

cuda-python: ``cuda.bindings.runtime`` (cuda-python >= 12.6, the only module in 13.x), else the older
``cuda.cudart`` (12.0 .. 12.5). Every runtime call returns ``(err, *values)``; :func:`cuda_check` unpacks it.
The calls used (signatures as documented in cuda-bindings 12.9 and 13.5, identical in both):
``cudaMalloc(size)``, ``cudaMallocHost(size)``, ``cudaMemcpyAsync(dst, src, count, kind, stream)``,
``cudaStreamBeginCapture(stream, mode)``, ``cudaStreamEndCapture(stream) -> graph``,
``cudaGraphInstantiate(graph, flags) -> graphExec`` (CUDA 12 dropped the error-node/log-buffer arguments;
cuda-python 11.x had ``(graph, bufferSize)``, hence ``cuda-python>=12`` in the ``trt`` extra),
``cudaGraphLaunch(graphExec, stream)``, ``cudaGetDeviceProperties(device) -> cudaDeviceProp``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import DependencyError, EngineError
from .versions import check_version, parse_version

INSTALL_HINT = "pip install tensorrt cuda-python"


def import_tensorrt() -> Any:
    """``tensorrt``, or a one-line :class:`DependencyError` naming the package."""
    try:
        import tensorrt
    except ImportError:
        raise DependencyError(f"the TensorRT backend needs the 'tensorrt' package, which is not installed: "
                              f"{INSTALL_HINT} (or use backend='onnxruntime')") from None
    return tensorrt


def import_cudart() -> Any:
    """cuda-python's runtime API: ``cuda.bindings.runtime`` (cuda-python >= 12.6), else ``cuda.cudart``."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise DependencyError(f"the TensorRT backend needs the 'cuda-python' package (cuda.bindings), which is not "
                                  f"installed: {INSTALL_HINT}") from None
    return cudart


def cuda_check(result: Any, what: str, cudart: Any) -> Any:
    """Unpack a cuda-python call's ``(err, *values)``; raise :class:`EngineError` naming the call on error.

    Returns None (no values), the value, or a tuple of the values.
    """
    if isinstance(result, tuple):
        err, values = result[0], result[1:]
    else:
        err, values = result, ()
    if err != cudart.cudaError_t.cudaSuccess:
        try:
            name = cudart.cudaGetErrorString(err)[1]
            name = name.decode() if isinstance(name, bytes) else str(name)
        except Exception:  # noqa: BLE001 - the message only
            name = str(err)
        raise EngineError(f"CUDA call {what} failed: {name} ({err})")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


@dataclass(frozen=True)
class GpuInfo:
    """A CUDA device: ``index``, ``name`` (as the driver reports it), ``compute_capability`` (``"8.9"``)."""

    index: int
    name: str
    compute_capability: str


def gpu_identity(index: int = 0, cudart: Any = None) -> GpuInfo:
    """Name and compute capability of CUDA device ``index`` (cuda-python, no torch)."""
    cudart = cudart or import_cudart()
    count = cuda_check(cudart.cudaGetDeviceCount(), "cudaGetDeviceCount", cudart)
    if not count:
        raise EngineError("the TensorRT backend needs a CUDA GPU and none was found")
    if not 0 <= index < count:
        raise EngineError(f"CUDA device {index} does not exist (this machine has {count})")
    props = cuda_check(cudart.cudaGetDeviceProperties(index), "cudaGetDeviceProperties", cudart)
    name = props.name
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).split(b"\0", 1)[0].decode("utf-8", "replace")
    return GpuInfo(index, str(name).strip(), f"{props.major}.{props.minor}")


def device_index(device: str | None) -> int:
    """``None`` / ``cuda`` -> 0, ``cuda:N`` -> N; anything else is an error for TensorRT."""
    if device in (None, "", "cuda", "gpu"):
        return 0
    kind, _, index = str(device).partition(":")
    if kind != "cuda" or not index.isdigit():
        raise EngineError(f"the TensorRT backend runs on a CUDA GPU: device must be cuda or cuda:N, got '{device}'")
    return int(index)


def probe(device: str | None = None) -> tuple[bool, str]:
    """Can TensorRT run here? ``(True, description)`` or ``(False, reason)``; never raises."""
    try:
        trt = import_tensorrt()
        check_version(parse_version(trt.__version__))
        cudart = import_cudart()
        gpu = gpu_identity(device_index(device), cudart)
    except Exception as err:  # noqa: BLE001 - any failure is a reason to skip
        return False, str(err)
    return True, f"TensorRT {trt.__version__} on {gpu.name} (compute {gpu.compute_capability})"
