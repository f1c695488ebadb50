"""Patches applied from outside, in the harness process only, so that unmodified upstream code runs on
Python 3 / numpy 2 / OpenCV 5 / a CPU-only torch. Nothing here changes what the upstream algorithms compute.
"""
from __future__ import annotations

import math
import sys
import types
from collections.abc import Callable
from typing import Any

import numpy as np


def restore_numpy_aliases() -> None:
    """numpy 2 removed ``np.float``, ``np.int``, ``np.bool``, ...; the old code bases still use them."""
    for name, value in {"float": float, "int": int, "bool": bool, "object": object, "complex": complex,
                        "str": str, "long": int, "unicode": str, "int0": np.intp}.items():
        if name not in np.__dict__:
            setattr(np, name, value)


def cpu_only_cuda() -> None:
    """``.cuda()`` on tensors and modules returns the object itself (DaSiamRPN and SiamTrackers call it
    unconditionally)."""
    import torch

    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]


def upsample_as_interpolate() -> None:
    """``F.upsample`` (pysot's SiamMask refine head) is ``F.interpolate`` under its old name."""
    import torch.nn.functional as F

    F.upsample = F.interpolate  # type: ignore[attr-defined]


def python2_round(x: float, ndigits: None = None) -> float:
    """Python 2 ``round``: halves away from zero, returns a float (Python 3 rounds halves to even)."""
    if ndigits is not None:
        raise TypeError("python2_round supports the one-argument form only")
    value = float(x)
    return math.copysign(math.floor(abs(value) + 0.5), value)


class Python2Int(int):
    """An int whose ``/`` by an int is Python 2's floor division (DaSiamRPN's anchor-grid origin
    ``-(score_size / 2) * total_stride``)."""

    def __truediv__(self, other: object) -> Any:
        if isinstance(other, int):
            return Python2Int(int(self) // other)
        return int(self) / other  # type: ignore[operator]


class OpenCV4Facade(types.ModuleType):
    """A stand-in for the ``cv2`` module inside one upstream module: reports an OpenCV 4 version string, so
    version checks written as ``cv2.__version__[-5] == '4'`` take the two-value ``findContours`` branch, and
    records the contours ``findContours`` returned last. Everything else is the real ``cv2``."""

    def __init__(self, real: types.ModuleType, version: str = "4.5.5") -> None:
        super().__init__("cv2")
        self._real = real
        self.__version__ = version
        self.last_contours: tuple[np.ndarray, ...] = ()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def findContours(self, *args: Any, **kwargs: Any) -> Any:
        result = self._real.findContours(*args, **kwargs)
        self.last_contours = tuple(result[-2])
        return result


def stub_module(name: str, **attributes: object) -> types.ModuleType:
    """Register an empty module ``name`` (and its parents if missing) in ``sys.modules``; calling one of its
    ``attributes`` that is None raises, so a stand-in can never be used silently."""
    module = types.ModuleType(name)
    for attr, value in attributes.items():
        setattr(module, attr, value if value is not None else _unavailable(f"{name}.{attr}"))
    sys.modules[name] = module
    return module


def _unavailable(what: str) -> Callable[..., None]:
    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"{what} is a stand-in in the trace harness and cannot be called")

    return fail


def torchvision_transforms_standin() -> None:
    """A ``torchvision`` whose ``transforms`` has the three classes haooozi/SiamRPN and SiamTrackers use, with
    torchvision's semantics: ``Compose``, ``ToTensor`` (uint8 HWC -> float CHW / 255; float arrays are not
    scaled) and ``Normalize`` (``(x - mean) / std`` per channel); ``models``, ``datasets`` and ``utils`` are
    empty."""
    import torch

    class Compose:
        def __init__(self, transforms: list[Callable[[Any], Any]]) -> None:
            self.transforms = transforms

        def __call__(self, x: Any) -> Any:
            for t in self.transforms:
                x = t(x)
            return x

    class ToTensor:
        def __call__(self, pic: np.ndarray) -> torch.Tensor:
            arr = np.asarray(pic)
            if arr.ndim == 2:
                arr = arr[:, :, None]
            tensor = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
            if arr.dtype == np.uint8:
                return tensor.float().div(255)
            return tensor

    class Normalize:
        def __init__(self, mean: list[float], std: list[float], inplace: bool = False) -> None:
            self.mean, self.std = mean, std

        def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
            mean = torch.as_tensor(self.mean, dtype=tensor.dtype).view(-1, 1, 1)
            std = torch.as_tensor(self.std, dtype=tensor.dtype).view(-1, 1, 1)
            return (tensor - mean) / std

    package = stub_module("torchvision")
    transforms = stub_module("torchvision.transforms", Compose=Compose, ToTensor=ToTensor, Normalize=Normalize)
    package.transforms = transforms  # type: ignore[attr-defined]
    # haooozi also writes `from torchvision.transforms import transforms` (the module of the classes).
    transforms.transforms = transforms  # type: ignore[attr-defined]
    sys.modules["torchvision.transforms.transforms"] = transforms
    # Imported by SiamTrackers' package (training code), never called by the tracker.
    package.models = stub_module("torchvision.models", alexnet=None)  # type: ignore[attr-defined]
    package.datasets = stub_module("torchvision.datasets")  # type: ignore[attr-defined]
    package.utils = stub_module("torchvision.utils")  # type: ignore[attr-defined]


class CallRecorder(types.ModuleType):
    """A stand-in for a module inside one upstream module that records the last call of chosen functions:
    ``recorder.last["argmax"]`` is what it returned, ``recorder.args["argmax"]`` its positional arguments.
    Everything else is the real module, unchanged."""

    def __init__(self, real: types.ModuleType, names: tuple[str, ...]) -> None:
        super().__init__(real.__name__)
        self._real = real
        self._names = names
        self.last: dict[str, Any] = {}
        self.args: dict[str, tuple[Any, ...]] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name not in self._names:
            return attr

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.args[name] = args
            self.last[name] = out = attr(*args, **kwargs)
            return out

        return recorded
