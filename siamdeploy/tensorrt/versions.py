"""Which TensorRT versions siamdeploy builds with, and how (no tensorrt import here; background in
docs/export.md#tensorrt).

- TensorRT < 8.5 is refused: it cannot take a convolution whose weights are a runtime tensor, and every
  correlation here is exactly that (the template branch's output is the search graph's Conv weight).
- 8.5 .. 10.x, typing ``weak``: the FP32 ONNX graphs + ``BuilderFlag.FP16``, with the correlation, head and
  refine layers pinned to FP32 (``OBEY_PRECISION_CONSTRAINTS``, ``layer.precision``, ``set_output_type``).
- 10.x (``auto``) and 11.x (the only way: 11 removed ``BuilderFlag.FP16``/``INT8``, the precision
  constraints and per-layer precision): a strongly typed network from the mixed ``*_fp16.onnx`` graphs, whose
  types already say which nodes are FP16. NVIDIA's route for TensorRT 11 (NVIDIA/TensorRT,
  ``.agents/skills/trt-strong-typing-migration/SKILL.md``): put the precision into the ONNX (Cast nodes / FP16
  initializers, or Q/DQ for INT8) and build with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``.
- INT8 only as explicit quantization (Q/DQ nodes in the ONNX) on a strongly typed network, TensorRT >= 10;
  implicit INT8 calibration (``IInt8Calibrator``) is not supported (TensorRT 11 removed it).

:data:`CLAIMED` lists the version ranges the code claims; :func:`trt_path` marks a function that only runs on
part of them, so the bindings check (:mod:`.api_names`) checks its TensorRT names only against those versions.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from ..errors import EngineError

Version = tuple[int, int, int]
MIN_VERSION = (8, 5)
TYPINGS = ("auto", "strong", "weak")
PRECISIONS = ("fp16", "fp32", "int8")
# label -> [first, end) of the TensorRT versions the code claims to support
CLAIMED: dict[str, tuple[Version, Version]] = {
    "8.5-9.x": ((8, 5, 0), (10, 0, 0)),
    "10.x": ((10, 0, 0), (11, 0, 0)),
    "11.x": ((11, 0, 0), (12, 0, 0)),
}

F = TypeVar("F", bound=Callable[..., object])


def trt_path(since: Version | None = None, below: Version | None = None) -> Callable[[F], F]:
    """Mark a function as running only on TensorRT ``since <= version < below`` (a no-op at run time).

    The bindings check reads these marks from the source (literal tuples only) and checks the function's
    TensorRT names against the bindings of those versions only; the caller is responsible for never calling
    it on other versions.
    """

    def mark(fn: F) -> F:
        fn.__trt_path__ = (since, below)  # type: ignore[attr-defined]
        return fn

    return mark


def in_range(version: Version, since: Version | None, below: Version | None) -> bool:
    """``since <= version < below`` (an open end when None)."""
    return (since is None or version >= since) and (below is None or version < below)


def parse_version(text: str) -> Version:
    """``10.13.0.35`` -> ``(10, 13, 0)``."""
    parts = [int(p) for p in re.findall(r"\d+", str(text))[:3]]
    if len(parts) < 2:
        raise EngineError(f"cannot read the TensorRT version '{text}'")
    return (parts[0], parts[1], parts[2] if len(parts) > 2 else 0)


def version_text(version: Version) -> str:
    return ".".join(map(str, version))


def check_version(version: Version) -> None:
    """Refuse TensorRT older than :data:`MIN_VERSION` (one line naming the reason and the way out)."""
    if version[:2] < MIN_VERSION:
        raise EngineError(f"TensorRT {version_text(version)} is too old: siamdeploy's search graphs use a "
                          "convolution whose weights are a runtime tensor (the template kernels), which TensorRT "
                          "supports from 8.5 on; upgrade TensorRT (JetPack 5.1+) or use backend='onnxruntime'")
    if version >= CLAIMED["11.x"][1]:
        import logging

        logging.getLogger(__name__).warning("TensorRT %s is newer than any version siamdeploy was checked "
                                            "against (up to 11.x); trying anyway", version_text(version))


def resolve_typing(version: Version, requested: str = "auto", precision: str = "fp16") -> str:
    """``strong`` (strongly typed network) or ``weak`` (builder precision flags + per-layer constraints)."""
    if requested not in TYPINGS:
        raise EngineError(f"typing must be one of {', '.join(TYPINGS)}, got '{requested}'")
    if precision == "int8":
        if version[0] < 10:
            raise EngineError(f"INT8 engines need TensorRT 10 or later (explicit Q/DQ quantization on a strongly "
                              f"typed network), this is {version_text(version)}; use fp16")
        if requested == "weak":
            raise EngineError("INT8 engines are built only as strongly typed networks from Q/DQ graphs; "
                              "use typing='auto'")
        return "strong"
    if requested == "auto":
        return "strong" if version[0] >= 10 else "weak"
    if requested == "weak" and version[0] >= 11:
        raise EngineError("TensorRT 11 removed BuilderFlag.FP16 (every network is strongly typed); use typing='auto'")
    if requested == "strong" and version[:2] < (9, 1):
        raise EngineError(f"strongly typed networks need TensorRT 9.1 or later, this is "
                          f"{version_text(version)}; use typing='auto'")
    return requested
