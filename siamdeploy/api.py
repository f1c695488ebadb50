"""The public entry points: ``load_tracker`` and ``load_multi_tracker``."""
from __future__ import annotations

import os

from .backends.registry import LoadRequest, default_cache_dir, load_engine
from .families import make_tracker
from .presets import Preset
from .errors import InputError
from .manifest import DEFAULT_BUCKETS
from .runtime import Tracker
from .runtime.multi import MultiTracker

__all__ = ["load_tracker", "load_multi_tracker", "default_cache_dir"]


def load_tracker(model_path: str | os.PathLike[str], config: str | os.PathLike[str] | None = None,
                 preset: str | Preset | None = None, backend: str = "torch", device: str | None = None,
                 allow_unsafe_pickle: bool = False, precision: str | None = None) -> Tracker:
    """Load a checkpoint (or an export folder) and return a ready tracker.

    model_path: ``.pth`` / ``.model`` checkpoint, or (every backend but torch) a folder written by
    ``python -m siamdeploy.export``; a checkpoint given to an ONNX-based backend is exported once into
    ``$SIAMDEPLOY_CACHE/exports`` (default ``~/.cache/siamdeploy``), keyed by the checkpoint and every preset
    parameter. config: a pysot ``config.yaml`` (optional). preset: a preset id from
    :data:`siamdeploy.presets.PRESETS` (optional; without config or preset the preset is detected from the
    checkpoint and logged; with an export folder they must agree with its manifest).
    backend: a name from :func:`siamdeploy.backends.registry.backend_names` (``torch``, ``onnxruntime``,
    ``onnxruntime-trt``, ``tensorrt``, ...) or ``auto`` (the registry's priority order; the choice and why each
    earlier backend was skipped are logged). device: ``cpu`` or ``cuda[:N]`` (default: the backend's).
    precision: ``fp32`` | ``fp16`` | ... as the backend allows (default: the backend's; never downgraded).
    allow_unsafe_pickle: read legacy checkpoints that need full unpickling (runs code from the file; only for
    files you trust).

    Usage: ``tracker.init(frame, (x, y, w, h))`` then ``tracker.track(frame) -> TrackResult``; ``tracker.close()``
    (or ``with``) releases the engine.
    """
    request = LoadRequest(model_path=os.fspath(model_path), config=os.fspath(config) if config is not None else None,
                          preset=preset, device=device, precision=precision, allow_unsafe_pickle=allow_unsafe_pickle)
    engine, chosen = load_engine(backend, request)
    return make_tracker(engine, chosen.track, chosen.name)


def load_multi_tracker(model: str | os.PathLike[str], config: str | os.PathLike[str] | None = None,
                       preset: str | Preset | None = None, backend: str = "torch", device: str | None = None,
                       precision: str | None = None, max_targets: int = 32, allow_unsafe_pickle: bool = False
                       ) -> MultiTracker:
    """Load a model once and return a :class:`~siamdeploy.runtime.multi.MultiTracker` that tracks up to
    ``max_targets`` targets of one video with one engine call per frame (docs/multi_target.md).

    Arguments as :func:`load_tracker`. A checkpoint given to an ONNX-based backend is exported once with batch
    buckets 1, 2, 4, ... up to ``max_targets`` (at most 32; more targets take several calls); an export folder is
    used with the buckets it has (one without buckets runs one call per target).

    Usage: ``ids = mt.init(frame, [box, ...])``, ``mt.add(frame, box) -> id``, ``mt.remove(id)``,
    ``mt.track(frame) -> {id: TrackResult}``, ``mt.states``; ``mt.close()`` (or ``with``) releases the engine.
    """
    if not isinstance(max_targets, int) or isinstance(max_targets, bool) or not 1 <= max_targets <= 256:
        raise InputError(f"max_targets must be an integer from 1 to 256, got {max_targets!r}")
    buckets = tuple(b for b in DEFAULT_BUCKETS if b <= max_targets)
    if max_targets < DEFAULT_BUCKETS[-1] and buckets[-1] < max_targets:
        buckets += (max_targets,)
    request = LoadRequest(model_path=os.fspath(model), config=os.fspath(config) if config is not None else None,
                          preset=preset, device=device, precision=precision, allow_unsafe_pickle=allow_unsafe_pickle,
                          buckets=buckets)
    engine, chosen = load_engine(backend, request)
    return MultiTracker(engine, lambda: make_tracker(engine, chosen.track, chosen.name), max_targets, chosen.name)
