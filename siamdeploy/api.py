"""The public entry point: ``load_tracker``."""
from __future__ import annotations

import logging
import os

from .errors import ConfigError
from .presets import Preset
from .runtime import Tracker, make_tracker

BACKENDS = ("torch", "onnxruntime")
log = logging.getLogger(__name__)


def default_cache_dir() -> str:
    """Where on-the-fly exports go: ``$SIAMDEPLOY_CACHE`` or ``~/.cache/siamdeploy``."""
    return os.environ.get("SIAMDEPLOY_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "siamdeploy")


def load_tracker(model_path: str | os.PathLike[str], config: str | os.PathLike[str] | None = None,
                 preset: str | Preset | None = None, backend: str = "torch", device: str | None = None,
                 allow_unsafe_pickle: bool = False, precision: str = "fp32") -> Tracker:
    """Load a checkpoint (or an export folder) and return a ready tracker.

    model_path: ``.pth`` / ``.model`` checkpoint, or (onnxruntime) a folder written by
    ``python -m siamdeploy.export``. config: a pysot ``config.yaml`` (optional). preset: a preset id from
    :data:`siamdeploy.presets.PRESETS` (optional; without config or preset the preset is detected from the
    checkpoint and logged). backend: ``torch`` | ``onnxruntime``. device: torch: ``cpu``, ``cuda[:N]``
    (default: CUDA when available); onnxruntime: ``cpu`` (default), ``cuda[:N]``, ``tensorrt``.
    precision (onnxruntime): ``fp32`` | ``fp16``. allow_unsafe_pickle: read legacy checkpoints that need
    full unpickling (runs code from the file; only for files you trust).

    Usage: ``tracker.init(frame, (x, y, w, h))`` then ``tracker.track(frame) -> TrackResult``.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend '{backend}'; available: {', '.join(BACKENDS)}")
    path = os.fspath(model_path)
    if backend == "onnxruntime":
        return _onnxruntime_tracker(path, config, preset, device, allow_unsafe_pickle, precision)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "manifest.json")):
        raise ConfigError(f"'{path}' is an export folder; load it with backend='onnxruntime', or pass the checkpoint")
    from .checkpoint import load_model
    from .engine.torch_engine import TorchEngine

    loaded = load_model(path, config=config, preset=preset, allow_unsafe_pickle=allow_unsafe_pickle)
    engine = TorchEngine(loaded.net, device)
    return make_tracker(engine, loaded.preset.track, loaded.preset.name)


def _onnxruntime_tracker(path: str, config: object, preset: object, device: str | None,
                         allow_unsafe_pickle: bool, precision: str) -> Tracker:
    from .engine.onnxruntime_engine import OnnxRuntimeEngine, import_onnxruntime
    from .export.manifest import preset_from_dict, read_manifest

    import_onnxruntime()  # fail early with the install hint
    folder = path
    if not os.path.isdir(path):  # a checkpoint: export once into the cache, reuse while it verifies
        from .checkpoint import load_model
        from .export.exporter import export_model
        from .export.manifest import sha256_file

        loaded = load_model(path, config=config, preset=preset, allow_unsafe_pickle=allow_unsafe_pickle)  # type: ignore[arg-type]
        folder = os.path.join(default_cache_dir(), "exports", f"{loaded.preset.name}-{sha256_file(path)[:16]}")
        try:
            manifest = read_manifest(folder)
            if precision not in manifest["precisions"]:
                raise FileNotFoundError
            log.info("using cached export %s", folder)
        except Exception:  # noqa: BLE001 - any unusable cache entry is rebuilt
            log.info("exporting %s to %s (once; later loads reuse it)", os.path.basename(path), folder)
            export_model(loaded, folder, precision="both" if precision == "fp16" else "fp32")
    engine = OnnxRuntimeEngine(folder, precision=precision, device=device)
    chosen = preset_from_dict(engine.manifest["preset"])
    return make_tracker(engine, chosen.track, chosen.name)
