"""The one interface every inference backend implements (torch here; onnxruntime and TensorRT later).

Engines are stateless with respect to tracking: ``template`` returns the kernels, the tracker keeps them
and hands them back to ``search`` every frame. Arrays in and out are numpy float32; kernels and the
refine features stay in whatever form (and on whatever device) the backend prefers.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import EngineError, InputError


@dataclass
class SearchOutput:
    """``outputs``: named numpy arrays (``cls``/``loc`` or ``response``); ``extras``: backend-specific data
    that :meth:`Engine.refine` needs (SiamMask), opaque to the runtime."""

    outputs: dict[str, np.ndarray]
    extras: Any = field(default=None, repr=False)


class Engine(ABC):
    """A two-branch Siamese network behind ``template`` / ``search`` (/ ``refine``) calls.

    ``backend``: ``torch`` | ``onnxruntime`` | ``tensorrt``; ``precision``: what actually runs (``fp32``,
    ``fp16``); ``device``: where (``cpu``, ``cuda:0``).
    """

    backend: str = "?"
    precision: str = "fp32"
    device: str = "cpu"
    exemplar_size: int = 127
    # search outputs the tracker decodes; the others go to refine/mask_at (see siamdeploy.families)
    head_outputs: tuple[str, ...] = ("cls", "loc")

    def close(self) -> None:  # noqa: B027 - an optional hook: engines without resources keep it empty
        """Release sessions, buffers and device memory; the engine is unusable afterwards."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _split(self, named: dict[str, Any]) -> SearchOutput:
        """Named search outputs -> heads (numpy, for the tracker) and extras (opaque, for refine)."""
        heads = {k: named[k] for k in self.head_outputs}
        extras = {k: v for k, v in named.items() if k not in heads} or None
        return SearchOutput(heads, extras)

    def template(self, z: np.ndarray) -> Any:
        """Exemplar crop ``(1, 3, 127, 127)`` float32 -> kernels (opaque handle)."""
        _check_blob(z, "template input", self.exemplar_size)
        return self._template(z)

    # search calls that reached the network (a batched search_many counts once); for the run summary
    search_calls: int = 0

    def search(self, x: np.ndarray, kernels: Any) -> SearchOutput:
        """Search crops ``(B, 3, S, S)`` float32 + kernels from :meth:`template` -> outputs."""
        _check_blob(x, "search input", None)
        self.search_calls += 1
        out = self._search(x, kernels)
        check_finite_outputs(out.outputs, self.backend)
        return out

    def search_many(self, xs: Sequence[np.ndarray], kernels: Sequence[Any]) -> list[SearchOutput]:
        """Several targets' searches: ``xs[i]`` (``(n, 3, S, S)``, the same ``S`` and ``n`` for all) with
        ``kernels[i]`` -> one :class:`SearchOutput` per target, each equal to ``search(xs[i], kernels[i])``.

        This default runs one call per target; engines with batched search graphs override it with one call.
        """
        if len(xs) != len(kernels):
            raise InputError(f"search_many got {len(xs)} search inputs and {len(kernels)} kernel sets; pass one "
                             "kernel set per search input")
        return [self.search(x, k) for x, k in zip(xs, kernels)]

    def refine(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
        """SiamMask: mask logits ``(127, 127)`` float32 at score cell ``(y, x)`` of the last search."""
        raise NotImplementedError(f"{self.backend} engine has no refine branch for this model")

    def mask_at(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
        """SiamMask base mode: the mask head's ``(63, 63)`` logits at score cell ``(y, x)``."""
        raise NotImplementedError(f"{self.backend} engine has no mask head for this model")

    @abstractmethod
    def _template(self, z: np.ndarray) -> Any: ...

    @abstractmethod
    def _search(self, x: np.ndarray, kernels: Any) -> SearchOutput: ...

    def describe(self) -> str:
        return f"{self.backend} ({self.precision}, {self.device})"


def check_finite_outputs(outputs: dict[str, Any], backend: str) -> None:
    """Raise :class:`EngineError` naming the first numpy output with NaN or infinite values (broken weights or
    an FP16 overflow would otherwise track a constant box without a word)."""
    for name, arr in outputs.items():
        if isinstance(arr, np.ndarray) and arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            raise EngineError(f"the {backend} engine's output '{name}' has {bad} NaN or infinite value(s) of "
                              f"{arr.size}; the weights or the export are broken: check the checkpoint, or "
                              "export it again")


def _check_blob(blob: np.ndarray, what: str, side: int | None) -> None:
    if not isinstance(blob, np.ndarray) or blob.dtype != np.float32 or blob.ndim != 4 or blob.shape[1] != 3:
        shape = getattr(blob, "shape", None)
        raise InputError(f"{what} must be a float32 (B, 3, S, S) array, got {getattr(blob, 'dtype', type(blob))} "
                         f"{shape}")
    if side is not None and blob.shape[2:] != (side, side):
        raise InputError(f"{what} must be {side}x{side}, got {blob.shape[2]}x{blob.shape[3]}")


def crop_refine_inputs_np(f0: np.ndarray, f1: np.ndarray, f2: np.ndarray, corr: np.ndarray, y: int, x: int
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The refine inputs at score cell ``(y, x)`` (docs/networks.md#siammask-refine), in numpy."""
    p0 = np.pad(f0, ((0, 0), (0, 0), (16, 16), (16, 16)))[:, :, 4 * y:4 * y + 61, 4 * x:4 * x + 61]
    p1 = np.pad(f1, ((0, 0), (0, 0), (8, 8), (8, 8)))[:, :, 2 * y:2 * y + 31, 2 * x:2 * x + 31]
    p2 = np.pad(f2, ((0, 0), (0, 0), (4, 4), (4, 4)))[:, :, y:y + 15, x:x + 15]
    p3 = corr[:, :, y, x].reshape(corr.shape[0], corr.shape[1], 1, 1)
    return p0, p1, p2, p3
