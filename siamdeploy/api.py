"""The public entry point: ``load_tracker``."""
from __future__ import annotations

import os

from .errors import ConfigError
from .presets import Preset
from .runtime import Tracker, make_tracker

BACKENDS = ("torch",)


def load_tracker(model_path: str | os.PathLike[str], config: str | os.PathLike[str] | None = None,
                 preset: str | Preset | None = None, backend: str = "torch", device: str | None = None,
                 allow_unsafe_pickle: bool = False) -> Tracker:
    """Load a checkpoint from any supported upstream code base and return a ready tracker.

    model_path: ``.pth`` / ``.model`` checkpoint. config: a pysot ``config.yaml`` (optional). preset: a preset
    id from :data:`siamdeploy.presets.PRESETS` (optional; without config or preset the preset is detected
    from the checkpoint and logged). backend: ``torch``. device: ``cpu``, ``cuda``, ``cuda:N`` (default: CUDA
    when available). allow_unsafe_pickle: read legacy checkpoints that need full unpickling (runs code from
    the file; only for files you trust).

    Usage: ``tracker.init(frame, (x, y, w, h))`` then ``tracker.track(frame) -> TrackResult``.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend '{backend}'; available: {', '.join(BACKENDS)}")
    from .checkpoint import load_model
    from .engine.torch_engine import TorchEngine

    loaded = load_model(model_path, config=config, preset=preset, allow_unsafe_pickle=allow_unsafe_pickle)
    engine = TorchEngine(loaded.net, device)
    return make_tracker(engine, loaded.preset.track, loaded.preset.name)
