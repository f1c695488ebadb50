"""The deployment runtime: numpy + OpenCV only (no torch). Crops, anchors, decoding, selection and the
tracker loops around an :class:`~siamdeploy.engine.Engine`."""
from .trackers import Tracker, make_tracker
from .types import TrackResult

__all__ = ["Tracker", "TrackResult", "make_tracker"]
