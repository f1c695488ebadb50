"""``manifest.json``: what an export folder holds, enough for a torch-free runtime to track with it.

No torch import here: the onnxruntime/TensorRT runtimes read manifests on machines without torch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any

from .. import __version__
from ..config import ModelSpec, TrackParams
from ..errors import ExportError
from ..presets import Preset

MANIFEST = "manifest.json"
FORMAT = "siamdeploy-export"
FORMAT_VERSION = 1


def sha256_file(path: str) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def preset_to_dict(preset: Preset) -> dict[str, Any]:
    """A preset as JSON-ready data (round-trips through :func:`preset_from_dict`)."""
    track = {f.name: _plain(getattr(preset.track, f.name)) for f in dataclasses.fields(TrackParams)}
    model = {f.name: _plain(getattr(preset.model, f.name)) for f in dataclasses.fields(ModelSpec)}
    return {"name": preset.name, "source": preset.source, "description": preset.description,
            "model": model, "track": track}


def preset_from_dict(data: dict[str, Any]) -> Preset:
    """Inverse of :func:`preset_to_dict`; unknown fields are an error (a manifest from a newer version)."""
    def build(cls: type, values: dict[str, Any]) -> Any:
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(values) - set(names)
        if unknown:
            raise ExportError(f"manifest has fields this siamdeploy does not know ({', '.join(sorted(unknown))}); "
                              "re-export with this version")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    return Preset(name=data["name"], source=data["source"], description=data.get("description", ""),
                  model=build(ModelSpec, data["model"]), track=build(TrackParams, data["track"]))


def write_manifest(folder: str, manifest: dict[str, Any]) -> str:
    path = os.path.join(folder, MANIFEST)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=False)
        fh.write("\n")
    return path


def read_manifest(folder: str, verify: bool = True) -> dict[str, Any]:
    """Read and (by default) verify an export folder: format, siamdeploy version, and every file's sha256.

    A folder written by another siamdeploy version, or with a file changed after export, is refused.
    """
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        raise ExportError(f"'{folder}' has no {MANIFEST}; it is not a siamdeploy export folder "
                          "(export one with python -m siamdeploy.export CHECKPOINT)")
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ExportError(f"{path} is not valid JSON ({err}); re-export the model") from None
    if manifest.get("format") != FORMAT:
        raise ExportError(f"{path} is not a siamdeploy manifest; re-export the model")
    if not verify:
        return manifest
    version = manifest.get("siamdeploy_version")
    if version != __version__:
        raise ExportError(f"'{folder}' was exported by siamdeploy {version}, this is {__version__}; "
                          "re-export it with this version (python -m siamdeploy.export CHECKPOINT)")
    for graph in manifest.get("graphs", {}).values():
        for variant in graph.values():
            file = os.path.join(folder, variant["file"])
            if not os.path.isfile(file):
                raise ExportError(f"'{folder}' is missing {variant['file']}; re-export the model")
            if sha256_file(file) != variant["sha256"]:
                raise ExportError(f"{variant['file']} in '{folder}' changed after export (sha256 differs from "
                                  "the manifest); re-export the model")
    return manifest
