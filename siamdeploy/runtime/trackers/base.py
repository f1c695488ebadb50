"""What every tracker shares: input checking, the init/track protocol, the engine and its kernels, the state."""
from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ...config import TrackParams
from ...engine.base import MASK_HEAD, REFINE, Engine, SearchOutput
from ...errors import InputError
from ...geometry import box_to_centre_size
from ..crop import to_blob
from ..frames import as_bgr, check_box
from ..types import TrackResult
from .state import TrackerState


class SearchRequest:
    """One target's half-done frame, between :meth:`Tracker.prepare` and :meth:`Tracker.conclude`.

    ``blob``: the search crop(s) ``(n, 3, S, S)`` float32 for ``Engine.search`` (``n`` = the family's search
    batch: 1, or SiamFC's scales), made from ``patches`` (the uint8 ``S x S x 3`` crops) on first use or
    written straight into a row of a batched input by :meth:`write_blob`; ``size``: ``S`` in network pixels
    (targets with equal sizes can share one batched call); ``img``: the BGR frame; ``context``: what the loop
    needs to finish the frame (opaque). Give either ``blob`` or ``patches`` (with ``rgb``: flip the channels).
    """

    def __init__(self, blob: np.ndarray | None, size: int, img: np.ndarray, context: Any = None, *,
                 patches: Sequence[np.ndarray] | None = None, rgb: bool = False) -> None:
        if blob is None and not patches:
            raise InputError("a SearchRequest needs its blob or its patches")
        self._blob = blob
        self.size = size
        self.img = img
        self.context = context
        self.patches = list(patches) if patches is not None else None
        self.rgb = rgb

    @property
    def blob(self) -> np.ndarray:
        if self._blob is None:
            self._blob = to_blob(self.patches or [], self.rgb)
        return self._blob

    @property
    def crops(self) -> int:
        """``n``: crops in this request (the blob's first dimension)."""
        return self._blob.shape[0] if self._blob is not None else len(self.patches or [])

    def write_blob(self, out: np.ndarray) -> np.ndarray:
        """Write the blob into ``out`` (float32 ``(n, 3, S, S)``, e.g. this target's row of an
        ``Engine.search_input`` batch), which becomes :attr:`blob`; returns it."""
        if self._blob is None:
            to_blob(self.patches or [], self.rgb, out)
        else:
            out[...] = self._blob
        self._blob = out
        return out

    def __repr__(self) -> str:
        return f"SearchRequest(size={self.size}, crops={self.crops})"


@dataclass
class MaskRequest:
    """The mask a SiamMask target still needs from the engine after :meth:`Tracker.decode`: the ``head``
    (``"refine"``: ``Engine.refine``'s ``(127, 127)`` logits; ``"mask_head"``: ``Engine.mask_at``'s
    ``(63, 63)``) at score cell ``cell = (y, x)`` of the search output whose ``extras`` it holds. Requests of
    several targets go through one ``Engine.refine_many`` / ``Engine.mask_at_many``
    (:func:`masks_for`)."""

    head: str
    extras: Any = field(repr=False)
    cell: tuple[int, int]


@dataclass
class Decoded:
    """One target's frame after :meth:`Tracker.decode` (box chosen, state updated): ``result`` (box, score),
    ``mask``: the :class:`MaskRequest` still to run (None: the frame is done), ``context``: what
    :meth:`Tracker.finish` needs to turn the mask logits into the result's polygon and mask (opaque)."""

    result: TrackResult
    mask: MaskRequest | None = None
    context: Any = field(default=None, repr=False)


def masks_for(engine: Engine, requests: Sequence[MaskRequest]) -> list[np.ndarray]:
    """The logits of every request, in order, with one ``Engine.refine_many`` for the refine requests and one
    ``Engine.mask_at_many`` for the mask-head requests (each runs one network call per bucket)."""
    runs = {REFINE: engine.refine_many, MASK_HEAD: engine.mask_at_many}
    unknown = sorted({r.head for r in requests} - set(runs))
    if unknown:
        raise ValueError(f"unknown mask head {unknown[0]!r} (refine or mask_head)")
    logits: dict[int, np.ndarray] = {}
    for head, run in runs.items():
        members = [i for i, r in enumerate(requests) if r.head == head]
        if members:
            logits.update(zip(members, run([requests[i].extras for i in members], [requests[i].cell for i in members])))
    return [logits[i] for i in range(len(requests))]


class Tracker(ABC):
    """Single-target tracker over an :class:`Engine`.

    ``init(frame, (x, y, w, h))`` then ``track(frame) -> TrackResult`` per frame. Frames are ``HxWx3`` uint8
    BGR (grayscale and BGRA are converted); boxes are 0-based ``(x, y, w, h)``.

    ``state`` / ``set_state(state)``: what the tracker carries between frames, as a frozen value (see
    :mod:`siamdeploy.runtime.trackers.state`); ``params``: the :class:`TrackParams` in use; ``kernels``: the
    template branch's output, which stays with the tracker.
    """

    state_type: ClassVar[type[TrackerState]] = TrackerState

    def __init__(self, engine: Engine, params: TrackParams, name: str = "") -> None:
        self.engine = engine
        self.params = params
        self.name = name
        self.kernels: Any = None
        # seconds spent in the last track() call per stage: preprocess (crop, blob), engine, postprocess
        self.timings: dict[str, float] = {}
        self._clock = 0.0

    def _lap(self, stage: str) -> None:
        """Close the current stage of the per-frame timing (see :attr:`timings`)."""
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self._clock
        self._clock = now

    @property
    def initialised(self) -> bool:
        return self.kernels is not None

    def init(self, frame: np.ndarray, box: Sequence[float]) -> None:
        """Start tracking the target in ``box`` on ``frame``; runs the template branch once
        (:meth:`init_prepare`, ``Engine.template``, :meth:`init_finish`)."""
        self.init_finish(self.engine.template(self.init_prepare(frame, box)))

    def init_prepare(self, frame: np.ndarray, box: Sequence[float]) -> np.ndarray:
        """First half of :meth:`init`: set the state from ``box`` and return the exemplar crop ``(1, 3, 127, 127)``
        float32 for ``Engine.template`` (several targets' crops can go through one ``Engine.template_many``)."""
        img = as_bgr(frame)
        return self._init_blob(img, check_box(box, img.shape))

    def init_finish(self, kernels: Any) -> None:
        """Second half of :meth:`init`: keep the template branch's ``kernels`` for this target."""
        self.kernels = kernels
        self._on_init()

    def _on_init(self) -> None:  # noqa: B027 - an optional hook: most trackers keep nothing extra
        """Hook for variants that keep extra state."""

    def track(self, frame: np.ndarray) -> TrackResult:
        """Locate the target in the next frame: :meth:`prepare`, one ``Engine.search``, :meth:`conclude`
        (SiamMask: and one refine or mask-head call)."""
        request = self.prepare(frame)
        out = self.engine.search(request.blob, self.kernels)
        self._lap("engine")
        return self.conclude(request, out)

    def prepare(self, frame: np.ndarray, blob: bool = True) -> SearchRequest:
        """First half of :meth:`track`: cut the search crop(s) for ``frame`` from the current state.

        Several trackers sharing one engine can :meth:`prepare` their frames, run one batched search
        (``Engine.search_many``) over the requests of equal :attr:`SearchRequest.size` and :meth:`conclude`
        each with its own output; the result equals :meth:`track`'s. ``blob=False``: leave the float32 blob
        unmade, for :meth:`write_search_input` to write into a batched input.
        """
        if not self.initialised:
            raise InputError("track() called before init(); call tracker.init(frame, (x, y, w, h)) first")
        self.timings = {}
        self._clock = time.perf_counter()
        request = self._prepare(as_bgr(frame))
        if blob:
            request.blob  # noqa: B018 - made here, so that its time counts as preprocessing
        self._lap("preprocess")
        return request

    def write_search_input(self, request: SearchRequest, out: np.ndarray) -> None:
        """Write ``request``'s crops into ``out`` (float32 ``(n, 3, S, S)``: this target's row of a batched
        search input, ``Engine.search_input``); the time counts as preprocessing."""
        self._clock = time.perf_counter()
        request.write_blob(out)
        self._lap("preprocess")

    def conclude(self, request: SearchRequest, out: SearchOutput) -> TrackResult:
        """Second half of :meth:`track`: :meth:`decode` this target's search output (update the state), run the
        mask it asks for, if any (one ``Engine.refine_many`` / ``mask_at_many`` call for this target), and
        :meth:`finish`."""
        decoded = self.decode(request, out)
        logits = None
        if decoded.mask is not None:
            self._clock = time.perf_counter()
            logits = masks_for(self.engine, [decoded.mask])[0]
            self._lap("engine")
        return self.finish(decoded, logits)

    def decode(self, request: SearchRequest, out: SearchOutput) -> Decoded:
        """First part of :meth:`conclude`: decode this target's search output, update the state; returns the
        result so far and the mask still to run (:attr:`Decoded.mask`, SiamMask only).

        Several trackers (:func:`siamdeploy.runtime.batch.track_together`) decode their outputs, run the mask
        requests of all of them together (:func:`masks_for`) and :meth:`finish` each; the result equals
        :meth:`conclude`'s.
        """
        self._clock = time.perf_counter()
        decoded = self._decode(request, out)
        self._lap("postprocess")
        return decoded

    def finish(self, decoded: Decoded, logits: np.ndarray | None = None) -> TrackResult:
        """Last part of :meth:`conclude`: the result of :meth:`decode`, completed with the mask ``logits`` it
        asked for (float32, ``(127, 127)`` refine or ``(63, 63)`` mask head; None when it asked for none)."""
        self._clock = time.perf_counter()
        result = self._finish(decoded, logits)
        self._lap("postprocess")
        return result

    def close(self) -> None:
        """Release the engine (sessions, device memory). An engine shared by several trackers is closed once,
        by whoever made it."""
        self.engine.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def box_convention(self) -> str:
        """How the reported box relates to the state: :data:`siamdeploy.geometry.HALF` (``x = cx - w/2``) or
        :data:`siamdeploy.geometry.INCLUSIVE` (``x = cx - (w-1)/2``)."""
        raise NotImplementedError

    @property
    def state(self) -> TrackerState:
        """The state after the last ``init``/``track`` call (a frozen :attr:`state_type`, restored exactly by
        :meth:`set_state`)."""
        if not self.initialised:
            raise InputError("a tracker has no state before init(); call tracker.init(frame, (x, y, w, h)) first")
        return self._get_state()._mark_exact()

    def set_state(self, state: TrackerState) -> None:
        """Continue from ``state``: the next ``track`` behaves as if the tracker had reached it itself.

        A state from :attr:`state` is restored exactly; any other (e.g. ``dataclasses.replace(tracker.state,
        centre=..., size=...)``) has the fields in ``state.DERIVED`` recomputed from its centre and size.
        """
        if not self.initialised:
            raise InputError("set_state() needs the kernels made by init(); call tracker.init(frame, box) first")
        if type(state) is not self.state_type:
            raise InputError(f"{type(self).__name__}.set_state() takes a {self.state_type.__name__}, got "
                             f"{type(state).__name__}; pass a state from a tracker of the same kind")
        self._set_state(state, derive=not state.exact)

    def state_for_box(self, box: Sequence[float], **fields: Any) -> TrackerState:
        """The current state with ``centre``/``size`` replaced by those behind a box this tracker reports
        (its :attr:`box_convention`), and any other ``fields`` replaced too; for :meth:`set_state`."""
        centre, size = box_to_centre_size(box, self.box_convention)
        return dataclasses.replace(self.state, centre=centre, size=size, **fields)

    @abstractmethod
    def _get_state(self) -> TrackerState: ...

    @abstractmethod
    def _set_state(self, state: Any, derive: bool) -> None:
        """Restore ``state`` (of :attr:`state_type`); ``derive``: recompute its ``DERIVED`` fields."""

    @abstractmethod
    def _init_blob(self, img: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """Set the state for a new target in ``box`` on ``img``; return its exemplar crop blob."""

    @abstractmethod
    def _prepare(self, img: np.ndarray) -> SearchRequest: ...

    @abstractmethod
    def _decode(self, request: SearchRequest, out: SearchOutput) -> Decoded:
        """Decode ``out`` for ``request``, update the state; the result and the mask still to run."""

    def _finish(self, decoded: Decoded, logits: np.ndarray | None) -> TrackResult:
        """Complete the result with the mask ``logits`` (trackers without masks: the result as decoded)."""
        return decoded.result
