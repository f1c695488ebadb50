"""siamdeploy: Siamese visual-object trackers from research checkpoints to fast deployments.

``load_tracker(checkpoint, config=None, preset=None, backend="torch")`` returns a tracker with
``init(frame, (x, y, w, h))`` and ``track(frame) -> TrackResult``; ``load_multi_tracker(...)`` one that tracks
several targets with one engine call per frame. ``reference_model(name)`` gives the
paths of the small reference trackers that ship with siamdeploy.
"""
from ._version import __version__
from .api import load_multi_tracker, load_tracker
from .errors import (CheckpointError, ConfigError, EngineError, ExportError, InputError, SiamDeployError)
from .presets import PRESETS, get_preset
from .reference import ReferenceModel, reference_model
from .runtime.types import TrackResult

__all__ = ["load_tracker", "load_multi_tracker", "TrackResult", "PRESETS", "get_preset", "SiamDeployError",
           "ConfigError", "CheckpointError", "InputError", "EngineError", "ExportError", "reference_model",
           "ReferenceModel", "__version__"]
