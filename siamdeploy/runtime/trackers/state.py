"""Tracker state as a value: what a tracker carries from one frame to the next, without its kernels.

``tracker.state`` returns a frozen dataclass; ``tracker.set_state(state)`` restores it. Every state has

- ``centre``: ``(cx, cy)`` float64, frame pixels, the target centre the next search crop is cut around;
- ``size``: ``(w, h)`` float64, frame pixels, the target size the next crops and penalties use;

plus what its loop needs (see each class). Arrays are read-only float64 copies; ``set_state`` and the
constructors accept tuples and lists.

Two ways to restore:

- a state returned by ``tracker.state`` (or a copy of one) is restored **exactly**, every field as stored;
- any other state, in particular one made with ``dataclasses.replace(tracker.state, centre=..., size=...)``,
  is a **teacher-forcing** state: ``set_state`` recomputes the fields listed in the class's ``DERIVED`` from
  ``centre`` and ``size`` (and the stored init-time fields), as the tracker's own loop would derive them, and
  takes every other field as given.

The kernels (the template branch's output) are not part of a state: they stay with the tracker.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

_EXACT = "_exact"


def _vector(value: Any, length: int, name: str, dtype: Any = np.float64) -> np.ndarray:
    arr = np.array(value, dtype=dtype).reshape(-1)
    if arr.shape != (length,):
        raise ValueError(f"state field '{name}' needs {length} values, got {np.shape(value)}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class TrackerState:
    """``centre`` ``(cx, cy)`` and ``size`` ``(w, h)``: float64, frame pixels."""

    centre: np.ndarray
    size: np.ndarray

    DERIVED: ClassVar[tuple[str, ...]] = ()
    _VECTORS: ClassVar[dict[str, tuple[int, Any]]] = {"centre": (2, np.float64), "size": (2, np.float64)}

    def __post_init__(self) -> None:
        for name, (length, dtype) in self._VECTORS.items():
            object.__setattr__(self, name, _vector(getattr(self, name), length, name, dtype))

    @property
    def exact(self) -> bool:
        """True for a state returned by ``tracker.state`` (restored as stored); False for one built otherwise
        (``set_state`` recomputes :attr:`DERIVED` from ``centre`` and ``size``)."""
        return bool(self.__dict__.get(_EXACT, False))

    def _mark_exact(self) -> TrackerState:
        object.__setattr__(self, _EXACT, True)
        return self

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if not np.array_equal(a, b):
                    return False
            elif a != b:
                return False
        return True

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class RPNState(TrackerState):
    """Anchor-based trackers (SiamRPN family, DaSiamRPN, SiamMask).

    crop_wh: ``(w, h)`` the crops are cut for; equal to ``size`` except under the ``init_relative`` clamp
    (haooozi / SiamTrackers), where it is ``size`` clipped to ``[10, W] x [10, H]`` (at init: ``size``).
    init_size: the initial ``(w, h)`` (the ``init_relative`` clamp bounds the size by multiples of it).
    instance_size: search-crop side in network pixels chosen at init (DaSiamRPN-BIG: 287 for small targets).
    avg: the init frame's channel mean ``(B, G, R)`` float64; crops are padded with it (truncated to uint8).
    frame_size: ``(W, H)`` of the last frame seen, pixels (the ``init_relative`` crop clip needs it).

    Derived by ``set_state`` for a teacher-forcing state: ``crop_wh``.
    """

    crop_wh: np.ndarray
    init_size: np.ndarray
    instance_size: int
    avg: np.ndarray
    frame_size: tuple[int, int]

    DERIVED: ClassVar[tuple[str, ...]] = ("crop_wh",)
    _VECTORS: ClassVar[dict[str, tuple[int, Any]]] = {
        **TrackerState._VECTORS, "crop_wh": (2, np.float64), "init_size": (2, np.float64), "avg": (3, np.float64)}

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "instance_size", int(self.instance_size))
        object.__setattr__(self, "frame_size", tuple(int(v) for v in self.frame_size))


@dataclass(frozen=True, eq=False)
class LongTermState(RPNState):
    """pysot's long-term tracker: an :class:`RPNState` plus ``lost`` (the target was lost: the next frame uses
    the lost-state search size and a flat window). ``centre``/``size`` are stored before clipping (only the
    reported box is clipped), so the state behind a clipped reported box is not that box.

    Derived by ``set_state`` for a teacher-forcing state: ``crop_wh`` (= ``size``).
    """

    lost: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "lost", bool(self.lost))


@dataclass(frozen=True, eq=False)
class SiamFCState(TrackerState):
    """siamfc-pytorch's tracker. The loop keeps ``centre`` and ``size`` in float32 (as upstream does);
    ``set_state`` rounds them to float32.

    z_sz / x_sz: exemplar and search crop sides in frame pixels (before the scale factors), float.
    fill: the padding colour, the init frame's channel mean rounded half to even, uint8 ``(B, G, R)``.

    Derived by ``set_state`` for a teacher-forcing state: ``z_sz = sqrt(prod(size + context * sum(size)))``
    and ``x_sz = z_sz * instance_size / exemplar_size`` in the float32 arithmetic of the init step.
    """

    z_sz: float
    x_sz: float
    fill: np.ndarray

    DERIVED: ClassVar[tuple[str, ...]] = ("z_sz", "x_sz")
    _VECTORS: ClassVar[dict[str, tuple[int, Any]]] = {**TrackerState._VECTORS, "fill": (3, np.uint8)}

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "z_sz", float(self.z_sz))
        object.__setattr__(self, "x_sz", float(self.x_sz))
