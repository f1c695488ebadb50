"""The public entry point: ``load_tracker``."""
from __future__ import annotations

import logging
import os

from .errors import ConfigError
from .presets import Preset
from .runtime import Tracker, make_tracker

BACKENDS = ("torch", "onnxruntime", "tensorrt", "auto")
log = logging.getLogger(__name__)


def default_cache_dir() -> str:
    """Where on-the-fly exports go: ``$SIAMDEPLOY_CACHE`` or ``~/.cache/siamdeploy``."""
    return os.environ.get("SIAMDEPLOY_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "siamdeploy")


def load_tracker(model_path: str | os.PathLike[str], config: str | os.PathLike[str] | None = None,
                 preset: str | Preset | None = None, backend: str = "torch", device: str | None = None,
                 allow_unsafe_pickle: bool = False, precision: str | None = None) -> Tracker:
    """Load a checkpoint (or an export folder) and return a ready tracker.

    model_path: ``.pth`` / ``.model`` checkpoint, or (onnxruntime, tensorrt) a folder written by
    ``python -m siamdeploy.export``. config: a pysot ``config.yaml`` (optional). preset: a preset id from
    :data:`siamdeploy.presets.PRESETS` (optional; without config or preset the preset is detected from the
    checkpoint and logged). backend: ``torch`` | ``onnxruntime`` | ``tensorrt`` | ``auto`` (tensorrt, then
    onnxruntime on CUDA, then onnxruntime on CPU, then torch; the choice and the reason each earlier one was
    skipped are logged). device: torch: ``cpu``, ``cuda[:N]`` (default: CUDA when available); onnxruntime:
    ``cpu`` (default), ``cuda[:N]``, ``tensorrt``; tensorrt: ``cuda[:N]`` (default ``cuda:0``).
    precision: ``fp32`` | ``fp16`` (default: fp16 for tensorrt, fp32 otherwise; torch fp16 needs CUDA).
    tensorrt builds its engines once into the engine cache (``$SIAMDEPLOY_ENGINES``, else ``engines/`` for
    an export folder and the user cache for a checkpoint) and reuses them while they match the GPU,
    TensorRT version and ONNX graphs. allow_unsafe_pickle: read legacy checkpoints that need
    full unpickling (runs code from the file; only for files you trust).

    Usage: ``tracker.init(frame, (x, y, w, h))`` then ``tracker.track(frame) -> TrackResult``.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend '{backend}'; available: {', '.join(BACKENDS)}")
    path = os.fspath(model_path)
    if backend == "auto":
        return _auto_tracker(path, config, preset, device, allow_unsafe_pickle, precision)
    if backend == "tensorrt":
        return _tensorrt_tracker(path, config, preset, device, allow_unsafe_pickle, precision or "fp16")
    if backend == "onnxruntime":
        return _onnxruntime_tracker(path, config, preset, device, allow_unsafe_pickle, precision or "fp32")
    if _is_export_folder(path):
        raise ConfigError(f"'{path}' is an export folder; load it with backend='onnxruntime' or 'tensorrt', or pass "
                          "the checkpoint")
    from .checkpoint import load_model
    from .engine.torch_engine import TorchEngine

    loaded = load_model(path, config=config, preset=preset, allow_unsafe_pickle=allow_unsafe_pickle)
    engine = TorchEngine(loaded.net, device, precision=precision or "fp32")
    return make_tracker(engine, loaded.preset.track, loaded.preset.name)


def _onnxruntime_tracker(path: str, config: object, preset: object, device: str | None,
                         allow_unsafe_pickle: bool, precision: str) -> Tracker:
    from .engine.onnxruntime_engine import OnnxRuntimeEngine, import_onnxruntime
    from .export.manifest import preset_from_dict

    import_onnxruntime()  # fail early with the install hint
    folder = path if os.path.isdir(path) else _cached_export(path, config, preset, allow_unsafe_pickle, precision)
    engine = OnnxRuntimeEngine(folder, precision=precision, device=device)
    chosen = preset_from_dict(engine.manifest["preset"])
    return make_tracker(engine, chosen.track, chosen.name)


def _is_export_folder(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "manifest.json"))


def _cached_export(path: str, config: object, preset: object, allow_unsafe_pickle: bool, precision: str) -> str:
    """A checkpoint exported once into the cache (``<cache>/exports``), reused while it verifies and holds
    ``precision``'s graphs."""
    from .checkpoint import load_model
    from .export.exporter import export_model
    from .export.manifest import read_manifest, sha256_file

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
    return folder


def _tensorrt_tracker(path: str, config: object, preset: object, device: str | None, allow_unsafe_pickle: bool,
                      precision: str) -> Tracker:
    from .export.manifest import preset_from_dict
    from .tensorrt import cache as trt_cache
    from .tensorrt import device as trt_device
    from .tensorrt import load_engine

    trt_device.import_tensorrt()  # fail early with the install hint, before any export
    trt_device.import_cudart()
    if _is_export_folder(path):
        folder, root = path, trt_cache.default_root()
    else:  # a checkpoint: its export and engines live in the user cache
        # the FP16 build needs the mixed-precision graphs (strongly typed) or their fp32_nodes list (pins)
        folder = _cached_export(path, config, preset, allow_unsafe_pickle, "fp16")
        root = os.environ.get(trt_cache.ENV_ROOT) or os.path.join(default_cache_dir(), "engines")
    engine = load_engine(folder, precision=precision, device=device, cache_root=root)
    chosen = preset_from_dict(dict(engine.manifest.preset))
    return make_tracker(engine, chosen.track, chosen.name)


def _auto_tracker(path: str, config: object, preset: object, device: str | None, allow_unsafe_pickle: bool,
                  precision: str | None) -> Tracker:
    """tensorrt, then onnxruntime (CUDA), then onnxruntime (CPU), then torch: the first that loads wins; the
    choice and why each earlier backend was skipped are logged."""
    from .errors import EngineError, SiamDeployError

    skipped: list[tuple[str, str]] = []
    gpu_only = device not in (None, "cpu") and not str(device).startswith("cpu")

    def attempt(name: str, make: object) -> Tracker | None:
        try:
            return make()  # type: ignore[operator]
        except SiamDeployError as err:
            skipped.append((name, str(err)))
            return None

    def tensorrt() -> Tracker | None:
        from .tensorrt import device as trt_device

        if device == "cpu":
            skipped.append(("tensorrt", "device='cpu' was asked for"))
            return None
        ok, why = trt_device.probe(device)
        if not ok:
            skipped.append(("tensorrt", why))
            return None
        return attempt("tensorrt", lambda: _tensorrt_tracker(path, config, preset, device, allow_unsafe_pickle,
                                                             precision or "fp16"))

    def onnxruntime(kind: str) -> Tracker | None:
        name = f"onnxruntime ({kind})"
        if kind == "cuda" and device == "cpu":
            skipped.append((name, "device='cpu' was asked for"))
            return None
        if kind == "cpu" and gpu_only:
            skipped.append((name, f"device='{device}' was asked for"))
            return None
        try:
            import onnxruntime
        except ImportError:
            skipped.append((name, "onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu)"))
            return None
        if kind == "cuda" and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            skipped.append((name, "this onnxruntime has no CUDAExecutionProvider (pip install onnxruntime-gpu)"))
            return None
        ort_device = (device or "cuda") if kind == "cuda" else "cpu"
        tracker = attempt(name, lambda: _onnxruntime_tracker(path, config, preset, ort_device, allow_unsafe_pickle,
                                                             precision or "fp32"))
        if tracker is not None and kind == "cuda":
            providers = tracker.engine.sessions["search"].get_providers()  # type: ignore[attr-defined]
            if providers[0] != "CUDAExecutionProvider":
                skipped.append((name, "onnxruntime could not start its CUDA provider (CUDA/cuDNN libraries?)"))
                return None
        return tracker

    def torch() -> Tracker | None:
        if _is_export_folder(path):
            skipped.append(("torch", "an export folder holds no PyTorch model; pass the checkpoint"))
            return None
        return attempt("torch", lambda: load_tracker(path, config=config, preset=preset, backend="torch",  # type: ignore[arg-type]
                                                     device=device, allow_unsafe_pickle=allow_unsafe_pickle,
                                                     precision=precision))

    for name, make in (("tensorrt", tensorrt), ("onnxruntime (cuda)", lambda: onnxruntime("cuda")),
                       ("onnxruntime (cpu)", lambda: onnxruntime("cpu")), ("torch", torch)):
        tracker = make()
        if tracker is not None:
            why = "; ".join(f"{b}: {r}" for b, r in skipped)
            log.info("backend='auto' chose %s [%s]%s", name, tracker.engine.describe(),
                     f"; skipped {why}" if why else "")
            return tracker
    raise EngineError("backend='auto' found no backend that loads this model: "
                      + "; ".join(f"{b}: {r}" for b, r in skipped))
