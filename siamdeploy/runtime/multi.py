"""Several targets in one video, one engine call per frame for all of them (docs/multi_target.md).

A :class:`MultiTracker` holds one single-target tracker per target (its own state, kernels and rules) over
one shared engine. ``init`` runs the template branch once for all boxes (``Engine.template_many``),
``track`` cuts every target's search crop, runs one ``Engine.search_many`` per search size (a long-term
tracker's lost targets search 831-pixel crops: a second call among themselves), decodes each target and
runs SiamMask's masks of all targets as one ``Engine.refine_many`` (``mask_at_many``) call. So
every target's boxes equal an independent single-target tracker's, up to the float noise of a batched
convolution.

No torch import: the deployed runtime uses this module.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from ..engine.base import Engine
from ..errors import InputError
from .batch import track_together
from .frames import as_bgr
from .trackers.base import Tracker
from .trackers.state import TrackerState
from .types import TrackResult


class MultiTracker:
    """Track several targets of one video with one engine.

    ``ids = mt.init(frame, [box, ...])`` (starts afresh: earlier targets are dropped), ``mt.add(frame, box) ->
    id``, ``mt.remove(id)``, ``mt.track(frame) -> {id: TrackResult}`` (ids in the order they were added),
    ``mt.states -> {id: TrackerState}``. Frames are ``HxWx3`` uint8 BGR (grayscale/BGRA converted), boxes
    0-based ``(x, y, w, h)`` in frame pixels. Ids are small integers, never reused by one MultiTracker.

    ``max_targets``: the most targets held at once (adding more raises :class:`InputError`).
    ``timings``: seconds of the last ``track`` per stage (``preprocess``, ``engine``, ``postprocess``, all
    targets together); ``engine.search_calls`` counts the search calls that reached the network,
    ``engine.refine_calls`` SiamMask's mask calls.
    """

    def __init__(self, engine: Engine, make_tracker: Callable[[], Tracker], max_targets: int = 32,
                 name: str = "") -> None:
        if not isinstance(max_targets, int) or isinstance(max_targets, bool) or max_targets < 1:
            raise InputError(f"max_targets must be a positive integer, got {max_targets!r}")
        self.engine = engine
        self.name = name
        self.max_targets = max_targets
        self._make = make_tracker
        self._trackers: dict[int, Tracker] = {}
        self._next = 0
        self.timings: dict[str, float] = {}

    def new_tracker(self) -> Tracker:
        """A fresh single-target tracker over this engine (not held by the MultiTracker; for callers that
        drive trackers themselves, e.g. through :func:`siamdeploy.runtime.batch.track_together`)."""
        return self._make()

    # ---- targets
    @property
    def ids(self) -> list[int]:
        """The targets tracked now, in the order they were added."""
        return list(self._trackers)

    def __len__(self) -> int:
        return len(self._trackers)

    def __contains__(self, target: object) -> bool:
        return target in self._trackers

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._trackers))

    def tracker(self, target: int) -> Tracker:
        """The single-target tracker behind ``target`` (its state, params and timings)."""
        try:
            return self._trackers[target]
        except (KeyError, TypeError):
            raise InputError(f"no target with id {target!r} (tracked now: {self.ids}); use an id returned by "
                             "init() or add()") from None

    def init(self, frame: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[int]:
        """Start tracking every box on ``frame`` (earlier targets are dropped); returns their ids in order.
        The template branch runs once for all boxes (per bucket of the engine)."""
        boxes = list(boxes)
        if len(boxes) > self.max_targets:
            raise InputError(f"{len(boxes)} boxes given but max_targets is {self.max_targets}; pass fewer boxes or "
                             "load the tracker with a larger max_targets")
        img = as_bgr(frame)
        trackers = [self._make() for _ in boxes]
        blobs = [t.init_prepare(img, box) for t, box in zip(trackers, boxes)]  # a bad box fails before any change
        kernels = self.engine.template_many(blobs) if blobs else []
        for tracker, k in zip(trackers, kernels):
            tracker.init_finish(k)
        self._trackers = {}
        ids = []
        for tracker in trackers:
            ids.append(self._next)
            self._trackers[self._next] = tracker
            self._next += 1
        return ids

    def add(self, frame: np.ndarray, box: Sequence[float]) -> int:
        """Start tracking one more target in ``box`` on ``frame``; returns its id."""
        if len(self._trackers) >= self.max_targets:
            raise InputError(f"already tracking {self.max_targets} targets (max_targets); remove one first or load "
                             "the tracker with a larger max_targets")
        tracker = self._make()
        tracker.init(frame, box)
        target = self._next
        self._trackers[target] = tracker
        self._next += 1
        return target

    def remove(self, target: int) -> None:
        """Stop tracking ``target``."""
        self.tracker(target)
        del self._trackers[target]

    # ---- tracking
    def track(self, frame: np.ndarray) -> dict[int, TrackResult]:
        """Locate every target in the next frame: one batched engine call per search size."""
        started = time.perf_counter()
        if not self._trackers:
            self.timings = {}
            return {}
        img = as_bgr(frame)
        trackers = list(self._trackers.values())
        results = track_together(trackers, [img] * len(trackers))
        total = time.perf_counter() - started
        pre = sum(t.timings.get("preprocess", 0.0) for t in trackers)
        post = sum(t.timings.get("postprocess", 0.0) for t in trackers)
        # the shared calls (search, SiamMask's masks) are timed by none of the trackers
        self.timings = {"preprocess": pre, "engine": total - pre - post, "postprocess": post}
        return dict(zip(self._trackers, results))

    @property
    def states(self) -> dict[int, TrackerState]:
        """Every target's state (frozen values; ``mt.tracker(id).set_state(state)`` restores one)."""
        return {target: tracker.state for target, tracker in self._trackers.items()}

    def close(self) -> None:
        """Release the engine; the tracker is unusable afterwards."""
        self._trackers.clear()
        self.engine.close()

    def __enter__(self) -> MultiTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
