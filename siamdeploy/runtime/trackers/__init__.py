"""Tracker loops, chosen by ``TrackParams.tracker``."""
from __future__ import annotations

from ...config import TrackParams
from ...engine.base import Engine
from ...errors import ConfigError
from .base import Tracker
from .mask import MaskTracker
from .rpn import LongTermTracker, RPNTracker
from .siamfc import SiamFCTracker

TRACKERS: dict[str, type[Tracker]] = {
    "siamrpn": RPNTracker,
    "siamrpn_lt": LongTermTracker,
    "siammask": MaskTracker,
    "siamfc": SiamFCTracker,
}


def make_tracker(engine: Engine, params: TrackParams, name: str = "") -> Tracker:
    """The tracker loop for ``params.tracker`` driving ``engine``."""
    try:
        cls = TRACKERS[params.tracker]
    except KeyError:
        raise ConfigError(f"unknown tracker '{params.tracker}'; known: {', '.join(TRACKERS)}") from None
    return cls(engine, params, name)


__all__ = ["Tracker", "RPNTracker", "LongTermTracker", "MaskTracker", "SiamFCTracker", "TRACKERS", "make_tracker"]
