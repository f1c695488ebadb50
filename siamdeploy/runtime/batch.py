"""Track several targets with one engine: one batched search per search size instead of one call per target.

Every target keeps its own tracker (state, kernels, rules); only the network call is shared, so each result
equals what the target's tracker would report alone (up to the float noise of a batched convolution).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..engine.base import SearchOutput
from ..errors import InputError
from .trackers.base import SearchRequest, Tracker, masks_for
from .types import TrackResult


def track_together(trackers: Sequence[Tracker], frames: Sequence[np.ndarray]) -> list[TrackResult]:
    """``trackers[i]`` tracks ``frames[i]`` (the same frame for the targets of one camera, different frames
    for different streams); all trackers must drive the same engine. Returns the results in order.

    Requests with equal search size and crop count run as one ``Engine.search_many`` call (a long-term
    tracker's lost targets search 831-pixel crops: they form a second call among themselves). SiamMask's masks
    of all targets then run as one ``Engine.refine_many`` (``mask_at_many``) call: every tracker
    :meth:`~Tracker.decode` s its output, the mask requests are gathered (:func:`masks_for`), and every tracker
    :meth:`~Tracker.finish` es with its own logits.
    """
    if len(trackers) != len(frames):
        raise InputError(f"track_together got {len(trackers)} trackers and {len(frames)} frames; pass one frame "
                         "per tracker")
    if not trackers:
        return []
    engine = trackers[0].engine
    if any(t.engine is not engine for t in trackers):
        raise InputError("track_together needs trackers that share one engine; make them from one loaded engine")
    requests = [t.prepare(f, blob=False) for t, f in zip(trackers, frames)]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, request in enumerate(requests):
        groups.setdefault((request.size, request.crops), []).append(i)
    outputs: list[SearchOutput | None] = [None] * len(trackers)
    for (size, crops), members in groups.items():
        # every target's crops go straight into its row of the engine's batched input: no per-target blob,
        # no concatenation on the way to the network
        batch = engine.search_input(len(members), crops, size)
        for row, i in zip(batch, members):
            trackers[i].write_search_input(requests[i], row)
        outs = engine.search_many(batch, [trackers[i].kernels for i in members])
        for i, out in zip(members, outs):
            outputs[i] = out
    decoded = [t.decode(r, o) for t, r, o in zip(trackers, requests, outputs) if o is not None]
    asking = [(i, d.mask) for i, d in enumerate(decoded) if d.mask is not None]
    logits: list[np.ndarray | None] = [None] * len(decoded)
    for (i, _), got in zip(asking, masks_for(engine, [mask for _, mask in asking])):
        logits[i] = got
    return [t.finish(d, m) for t, d, m in zip(trackers, decoded, logits)]


__all__ = ["SearchRequest", "track_together"]
