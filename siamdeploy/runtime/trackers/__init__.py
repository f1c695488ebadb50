"""Tracker loops; which one runs is the family's choice (:mod:`siamdeploy.families`)."""
from __future__ import annotations

from ...families import make_tracker
from .base import Tracker
from .mask import MaskTracker
from .rpn import LongTermTracker, RPNTracker
from .siamfc import SiamFCTracker


__all__ = ["Tracker", "RPNTracker", "LongTermTracker", "MaskTracker", "SiamFCTracker", "make_tracker"]
