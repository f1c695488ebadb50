"""The built-in backends, one registered class each (see :mod:`siamdeploy.backends.registry`).

Each class says what it takes and how to probe for it; ``load`` finds or builds the artifacts (loaders) and
hands them to its engine (runners only run). Heavy libraries are imported inside the methods.
"""
from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from .registry import Backend, LoadRequest, register

if TYPE_CHECKING:
    from ..presets import Preset
    from ..engine.base import Engine


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@register
class TorchBackend(Backend):
    """PyTorch eager on the checkpoint itself: the reference (CPU, or CUDA with fp16 and CUDA graphs). bf16 on
    the CPU (backbone/neck autocast, correlation and heads FP32) is an opt-in, refused where torch has no bf16
    CPU kernels."""

    name = "torch"
    description = "PyTorch on the checkpoint (the reference)"
    devices = ("cpu", "cuda")
    default_device = "cpu"
    precisions = ("fp32", "fp16", "bf16")
    explicit_precisions = ("bf16",)
    auto_priority = 40
    takes_export = False

    @classmethod
    def probe(cls, device: str | None = None) -> tuple[bool, str]:
        if not _installed("torch"):
            return False, "torch is not installed (pip install 'siamdeploy[torch]')"
        if device is not None and device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                return False, "this torch build sees no CUDA GPU"
        return True, ""

    @classmethod
    def supports(cls, device: str, precision: str) -> tuple[bool, str]:
        if precision == "fp16" and not device.startswith("cuda"):
            return False, "the torch backend runs fp16 on CUDA only (backbone/neck in half precision)"
        if precision == "bf16":
            if device.startswith("cuda"):
                return False, "the torch backend runs bf16 on the CPU only; use precision='fp16' on CUDA"
            if not _installed("torch"):
                return True, ""  # require() names the missing package
            from ..engine.torch_engine import cpu_bf16_support

            ok, why = cpu_bf16_support()
            return (True, "") if ok else (False, why)
        return True, ""

    @classmethod
    def load(cls, request: LoadRequest) -> tuple[Engine, Preset]:
        from ..checkpoint import load_model
        from ..engine.torch_engine import TorchEngine

        loaded = load_model(request.model_path, config=request.config, preset=request.preset,  # type: ignore[arg-type]
                            allow_unsafe_pickle=request.allow_unsafe_pickle)
        engine = TorchEngine(loaded.net, request.device, precision=request.precision or cls.default_precision)
        return engine, loaded.preset


class _OnnxBackend(Backend):
    """Shared by the onnxruntime entries: export folder or checkpoint -> verified export -> sessions."""

    provider = "CPUExecutionProvider"

    @classmethod
    def probe(cls, device: str | None = None) -> tuple[bool, str]:
        try:
            import onnxruntime
        except ImportError:
            return False, "onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu for CUDA)"
        kind = (device or cls.default_device).partition(":")[0]
        wanted = cls.provider if kind != "cpu" else "CPUExecutionProvider"
        if wanted not in onnxruntime.get_available_providers():
            return False, f"this onnxruntime has no {wanted} (pip install onnxruntime-gpu)"
        return True, ""

    @classmethod
    def require(cls, device: str | None = None) -> None:
        from ..engine.onnxruntime_engine import import_onnxruntime

        import_onnxruntime()  # the install hint as a DependencyError
        super().require(device)

    @classmethod
    def load(cls, request: LoadRequest) -> tuple[Engine, Preset]:
        from ..export.cache import ensure_export
        from ..engine.onnxruntime_engine import OnnxRuntimeEngine

        precision = request.precision or cls.default_precision
        folder, manifest = ensure_export(request.model_path, precision, request.config, request.preset,
                                         request.allow_unsafe_pickle, request.buckets)
        device = request.device or cls.default_device
        kind, _, index = device.partition(":")
        provider = "CPUExecutionProvider" if kind == "cpu" else cls.provider
        engine = OnnxRuntimeEngine(folder, manifest, precision=precision, provider=provider,
                                   device_id=int(index or 0), device=device if kind == "cpu" else f"cuda:{index or 0}")
        return engine, manifest.preset


@register
class OnnxRuntimeBackend(_OnnxBackend):
    """onnxruntime on CPU or CUDA (``pip install onnxruntime`` / ``onnxruntime-gpu``)."""

    name = "onnxruntime"
    description = "onnxruntime (CPU, or CUDA with onnxruntime-gpu)"
    devices = ("cuda", "cpu")
    default_device = "cpu"
    precisions = ("fp32", "fp16", "int8")
    provider = "CUDAExecutionProvider"
    auto_priority = 20

    @classmethod
    def supports(cls, device: str, precision: str) -> tuple[bool, str]:
        if precision == "int8" and not device.startswith("cpu"):
            return False, "the onnxruntime backend runs the INT8 (Q/DQ) graphs on the CPU only; use device='cpu'"
        return True, ""


@register
class OnnxRuntimeTensorRTBackend(_OnnxBackend):
    """onnxruntime's TensorRT execution provider (``onnxruntime-gpu`` built with TensorRT)."""

    name = "onnxruntime-trt"
    description = "onnxruntime with its TensorRT execution provider"
    devices = ("cuda",)
    default_device = "cuda:0"
    precisions = ("fp32", "fp16")
    provider = "TensorrtExecutionProvider"


@register
class TensorRTBackend(Backend):
    """TensorRT engines built from the export (FP16 by default) and cached per GPU and TensorRT version."""

    name = "tensorrt"
    description = "TensorRT engines (needs tensorrt, cuda-python and a CUDA GPU)"
    devices = ("cuda",)
    default_device = "cuda:0"
    precisions = ("fp16", "fp32", "int8")
    default_precision = "fp16"
    auto_priority = 0

    @classmethod
    def probe(cls, device: str | None = None) -> tuple[bool, str]:
        from ..tensorrt.device import probe

        return probe(device)

    @classmethod
    def require(cls, device: str | None = None) -> None:
        from ..tensorrt.device import import_cudart, import_tensorrt

        import_tensorrt()  # the install hints as DependencyErrors, before any export
        import_cudart()
        super().require(device)

    @classmethod
    def load(cls, request: LoadRequest) -> tuple[Engine, Preset]:
        import os

        from ..export.cache import ensure_export
        from ..manifest import is_export_folder
        from ..tensorrt import cache as trt_cache
        from ..tensorrt import load_engine
        from .registry import default_cache_dir

        # the FP16 build needs the mixed-precision graphs (strongly typed) or their fp32_nodes list (pins); INT8
        # builds the Q/DQ graphs (explicit quantization)
        graphs = "int8" if request.precision == "int8" else "fp16"
        folder, manifest = ensure_export(request.model_path, graphs, request.config, request.preset,
                                         request.allow_unsafe_pickle, request.buckets)
        if is_export_folder(request.model_path):
            root = trt_cache.default_root()
        else:  # a checkpoint: its export and engines live in the user cache
            root = os.environ.get(trt_cache.ENV_ROOT) or os.path.join(default_cache_dir(), "engines")
        # find or build the plans (siamdeploy.tensorrt.build), then load them (siamdeploy.tensorrt.runner); the bucket
        # plans asked for (load_multi_tracker: up to max_targets) that the export has graphs for
        buckets = tuple(b for b in request.buckets if b in manifest.buckets())
        engine = load_engine(folder, precision=request.precision or cls.default_precision, device=request.device,
                             cache_root=root, manifest=manifest, buckets=buckets)
        return engine, manifest.preset


@register
class OpenVINOBackend(Backend):
    """OpenVINO on the export's ONNX graphs (``pip install 'siamdeploy[openvino]'``): CPU, and OpenVINO's Intel
    ``GPU`` / ``NPU`` plugins as ``gpu[:N]`` / ``npu[:N]``. fp32 is exact (f32 inference precision set
    explicitly); bf16 runs the same graphs in bf16 where the device has it, and only when asked for by name.

    In ``auto`` after onnxruntime: on a CPU its fp32 gives the same boxes at about the same speed, so the more
    common install stays first, and OpenVINO is chosen where onnxruntime is missing (before eager torch).
    Threads: ``$SIAMDEPLOY_OPENVINO_THREADS`` (default: all physical cores). Compiled models are cached in
    ``<cache>/openvino``.
    """

    name = "openvino"
    description = "OpenVINO (CPU; Intel GPU/NPU where present)"
    devices = ("cpu", "gpu", "npu")
    default_device = "cpu"
    precisions = ("fp32", "bf16", "int8")
    explicit_precisions = ("bf16",)
    auto_priority = 30

    @classmethod
    def probe(cls, device: str | None = None) -> tuple[bool, str]:
        if not _installed("openvino"):
            return False, "openvino is not installed (pip install 'siamdeploy[openvino]')"
        from ..engine import openvino_engine as ove

        ov_device = ove.openvino_device(device or cls.default_device)
        if not ove.is_available(ov_device):
            return False, f"OpenVINO sees no {ov_device} device here (has: {', '.join(ove.available_devices())})"
        return True, ""

    @classmethod
    def supports(cls, device: str, precision: str) -> tuple[bool, str]:
        if not _installed("openvino"):
            return True, ""  # require() names the missing package
        from ..engine.openvino_engine import check_precision

        return check_precision(device, precision)

    @classmethod
    def require(cls, device: str | None = None) -> None:
        from ..engine.openvino_engine import import_openvino

        import_openvino()  # the install hint as a DependencyError
        super().require(device)

    @classmethod
    def load(cls, request: LoadRequest) -> tuple[Engine, Preset]:
        from ..export.cache import ensure_export
        from ..engine.openvino_engine import OpenVINOEngine, default_compile_cache, threads_from_env

        # bf16 compiles the fp32 graphs with a bf16 inference precision: fp32 graphs are what it needs; int8
        # compiles the export's Q/DQ graphs
        graphs = "int8" if request.precision == "int8" else "fp32"
        folder, manifest = ensure_export(request.model_path, graphs, request.config, request.preset,
                                         request.allow_unsafe_pickle, request.buckets)
        engine = OpenVINOEngine(folder, manifest, precision=request.precision or cls.default_precision,
                                device=request.device or cls.default_device, num_threads=threads_from_env(),
                                cache_dir=default_compile_cache())
        return engine, manifest.preset
