"""From what the user passed (export folder or checkpoint) to a verified export folder with the graphs a
backend needs: the loader side of every ONNX-based backend.

A checkpoint is exported once into ``<cache>/exports/<preset>-<checkpoint sha>-<preset sha>``. The key holds
every structure and tracker parameter (:func:`~siamdeploy.manifest.preset_fingerprint`), so editing
``TRACK.LR`` in a ``config.yaml`` gives a new export instead of the old parameters. Two processes asking for
the same entry take turns on one lock; the second finds the first one's export and reuses it.
An export folder is used as it is; a ``config``/``preset`` passed with it must describe the same tracker.
"""
from __future__ import annotations

import logging
import os

from ..errors import ConfigError, ExportError
from ..manifest import ExportManifest, is_export_folder, preset_fingerprint, read_manifest, sha256_file
from ..presets import Preset
from ..pysot_config import explicit_preset

log = logging.getLogger(__name__)

# the exporter's --precision for each graph precision a backend may need (see _export_precision: a cached
# export that lacks one precision is exported again with the union of what it had and what is asked)
_EXPORT_PRECISION = {"fp32": "fp32", "fp16": "both", "int8": "int8"}


def _export_precision(precision: str, had: tuple[str, ...] = ()) -> str:
    """The exporter's --precision that writes ``precision`` plus every precision ``had`` (a stale entry)."""
    from .exporter import export_precision_for

    return export_precision_for({precision, *(p for p in had if p in _EXPORT_PRECISION)})


def _cache_root() -> str:
    from ..backends.registry import default_cache_dir

    return os.path.join(default_cache_dir(), "exports")


def _check_agrees(folder: str, manifest: ExportManifest, wanted: Preset | None) -> None:
    if wanted is None or preset_fingerprint(wanted) == preset_fingerprint(manifest.preset):
        return
    what = (f"preset '{wanted.name}'" if wanted.name != manifest.preset.name else
            "config (other tracker parameters than the export's)")
    raise ConfigError(f"the requested {what} disagrees with export folder '{folder}', which was exported for preset "
                      f"'{manifest.preset.name}'; drop --config/--preset (an export carries its own tracker "
                      "parameters), or pass the checkpoint so it is exported with them")


def check_agrees(folder: str, config: str | None, preset: object) -> ExportManifest:
    """Read ``folder``'s manifest (schema checked, files not hashed) and refuse a ``config``/``preset`` that
    describes another tracker than the one it was exported for."""
    manifest = read_manifest(folder, verify=False)
    _check_agrees(folder, manifest, explicit_preset(config, preset))  # type: ignore[arg-type]
    return manifest


def ensure_export(model_path: str, precision: str, config: str | None = None, preset: object = None,
                  allow_unsafe_pickle: bool = False, buckets: tuple[int, ...] = (1,)) -> tuple[str, ExportManifest]:
    """A verified export folder holding ``precision`` graphs for ``model_path``, and its manifest.

    ``model_path``: an export folder (used as is; ``config``/``preset`` must agree with its manifest) or a
    checkpoint (exported once into the cache, keyed by checkpoint sha256 and every preset parameter).
    ``buckets``: targets per call to export batched graphs for (part of the cache key; an export folder is
    used with the buckets it has, and engines run one call per target where it has none).
    """
    if is_export_folder(model_path):
        manifest = read_manifest(model_path)
        _check_agrees(model_path, manifest, explicit_preset(config, preset))  # type: ignore[arg-type]
        manifest.require(precision, model_path)
        return model_path, manifest
    if os.path.isdir(model_path):
        raise ConfigError(f"'{model_path}' is a folder without a siamdeploy manifest.json; pass a checkpoint file or "
                          "an export folder")
    if precision not in _EXPORT_PRECISION:
        raise ExportError(f"on-the-fly export writes {', '.join(_EXPORT_PRECISION)} graphs, not {precision}; export "
                          "the checkpoint first: python -m siamdeploy.export CHECKPOINT --precision " + precision)
    from ..checkpoint import load_model  # torch from here on
    from ..locking import exclusive_lock
    from .exporter import export_model

    loaded = load_model(model_path, config=config, preset=preset, allow_unsafe_pickle=allow_unsafe_pickle)
    key = f"{loaded.preset.name}-{sha256_file(model_path)[:16]}-{preset_fingerprint(loaded.preset)[:12]}"
    buckets = tuple(sorted({1, *buckets}))
    if buckets != (1,):
        key += "-b" + "_".join(str(b) for b in buckets[1:])
    folder = os.path.join(_cache_root(), key)
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    with exclusive_lock(folder + ".lock", what=f"the export of {os.path.basename(model_path)}"):
        try:
            manifest = read_manifest(folder)
            manifest.require(precision, folder)
            log.info("using cached export %s", folder)
            return folder, manifest
        except ExportError as why:
            had: tuple[str, ...] = ()
            if os.path.exists(folder):
                log.info("cached export %s is unusable (%s); exporting again", folder, why)
                try:
                    had = read_manifest(folder, verify=False).precisions
                except ExportError:
                    had = ()
        log.info("exporting %s to %s (once; later loads reuse it)", os.path.basename(model_path), folder)
        result = export_model(loaded, folder, precision=_export_precision(precision, had), buckets=buckets)
        return result.folder, result.manifest
