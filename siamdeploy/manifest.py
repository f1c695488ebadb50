"""``manifest.json``: what an export folder holds, as typed, frozen records.

Written by the exporter from the graph specs, read once by every loader (onnxruntime, TensorRT, the export
cache, the CLIs) and used as attributes (``m.graph("search", "fp16").file``, ``m.kernel_names()``,
``m.preset``). No torch import: torch-free deployments read manifests.

Compatibility is decided by ``format_version`` (and the sha256 of every file), not by the siamdeploy version
that wrote the folder: a patch release keeps reading older exports of the same format.
A manifest is untrusted input: its schema is checked field by field, and every ``file`` must be a plain file
name inside the export folder (no directories, no ``..``, no absolute paths, no symlink leading out).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import ModelSpec, TrackParams
from .errors import ExportError
from .presets import Preset

MANIFEST = "manifest.json"
FORMAT = "siamdeploy-export"
FORMAT_VERSION = 2
# the formats this version reads; 1 was written by siamdeploy 0.1.0 (untyped, accepted by version equality)
READABLE_FORMATS = (2,)
REEXPORT = "re-export it: python -m siamdeploy.export CHECKPOINT [--config config.yaml] --out FOLDER"
# template_batched / search_batched (/ refine_batched / mask_head_batched, SiamMask): the same branches for a
# bucket of ``targets`` targets in one call (an addition to format 2: a reader that predates them refuses the
# folder naming the unknown role)
ROLES = ("template", "search", "refine", "mask_head", "template_batched", "search_batched", "refine_batched",
         "mask_head_batched")
# targets per call the exporter writes bucket graphs for by default (python -m siamdeploy.export --buckets)
DEFAULT_BUCKETS = (1, 2, 4, 8, 16, 32)
BATCHED_ROLES = {"template_batched": "template", "search_batched": "search", "refine_batched": "refine",
                 "mask_head_batched": "mask_head"}
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def sha256_file(path: str) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class TensorInfo:
    """A named tensor of static shape (NCHW for images)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class GraphFile:
    """One ONNX file of an export.

    ``name``: graph name (``template``, ``search``, ``search_831``, ``refine``, ``mask_head``); ``role``: one of
    :data:`ROLES`; ``instance_size``: search-crop side in network pixels (search graphs only);
    ``fp32_nodes``: nodes kept in FP32 in a reduced-precision graph. ``targets``: how many targets one call
    carries (1; a bucket size for the ``*_batched`` roles, whose tensors hold that many targets' rows
    target-major, docs/multi_target.md#batched-graphs). ``weights``: the shared weights file (a
    :class:`WeightsFile` of the manifest) its large initializers live in as ONNX external data, or None when
    the graph holds its weights inline (exports before shared weights, docs/export.md#shared-weights-file).
    """

    name: str
    role: str
    precision: str
    file: str
    sha256: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    instance_size: int | None = None
    fp32_nodes: tuple[str, ...] = ()
    reduced_nodes: int = 0
    targets: int = 1
    weights: str | None = None

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)


@dataclass(frozen=True)
class WeightsFile:
    """A file of initializers shared by the graphs of one precision (ONNX external data): ``file`` (a plain
    name inside the export folder), ``precision``, ``sha256`` of the file and its size in ``bytes``."""

    file: str
    precision: str
    sha256: str
    bytes: int = 0


@dataclass(frozen=True)
class InputInfo:
    """What the graphs' image inputs expect: channel order, value range, normalisation already folded in."""

    colour: str
    range: str
    normalisation: str


@dataclass(frozen=True)
class CheckpointInfo:
    """The checkpoint the export came from: file name (no directory), sha256, key layout."""

    file: str
    sha256: str
    layout: str


@dataclass(frozen=True)
class ExportManifest:
    """Everything a torch-free runtime needs to track with an export folder."""

    siamdeploy_version: str
    created: str
    preset: Preset
    input: InputInfo
    checkpoint: CheckpointInfo
    opset: int
    graphs: tuple[GraphFile, ...]
    validation: tuple[str, ...] = ()
    format_version: int = FORMAT_VERSION
    extras: Mapping[str, Any] = field(default_factory=dict)  # informative only (anchors, score sizes, ...)
    weights: tuple[WeightsFile, ...] = ()

    @property
    def family(self) -> str:
        return self.preset.track.tracker

    @property
    def precisions(self) -> tuple[str, ...]:
        """Precisions for which every single-target graph of the export exists, in :data:`PRECISIONS` order (bucket
        graphs are optional per precision: :meth:`batched_graphs`)."""
        single = [g for g in self.graphs if g.role not in BATCHED_ROLES]
        names = {g.name for g in single}
        have = [p for p in PRECISIONS if {g.name for g in single if g.precision == p} == names]
        return tuple(have)

    def graph(self, name: str, precision: str = "fp32") -> GraphFile:
        """The graph ``name`` in ``precision``; a missing one raises naming what the export has."""
        for g in self.graphs:
            if g.name == name and g.precision == precision:
                return g
        have = sorted({g.precision for g in self.graphs if g.name == name})
        if not have:
            raise ExportError(f"this export has no '{name}' graph (has: {', '.join(self.graph_names())})")
        raise ExportError(f"this export has no {precision} '{name}' graph (has: {', '.join(have)}); "
                          f"re-export with --precision {precision}")

    def graph_names(self) -> list[str]:
        seen: dict[str, None] = {}
        for g in self.graphs:
            seen.setdefault(g.name, None)
        return list(seen)

    def has_graph(self, name: str) -> bool:
        return any(g.name == name for g in self.graphs)

    def graphs_for(self, precision: str) -> list[GraphFile]:
        """One file per single-target graph name in ``precision`` (raises when the export lacks that precision);
        the bucket graphs are listed by :meth:`batched_graphs`."""
        single = {g.name for g in self.graphs if g.role not in BATCHED_ROLES}
        return [self.graph(name, precision) for name in self.graph_names() if name in single]

    def search_graphs(self, precision: str = "fp32") -> dict[int, GraphFile]:
        """Search graphs by search-crop side."""
        return {int(g.instance_size): g for g in self.graphs_for(precision)
                if g.role == "search" and g.instance_size is not None}

    def batched_graphs(self, role: str, precision: str = "fp32") -> dict[tuple[int | None, int], GraphFile]:
        """Bucket graphs of ``role`` (``template``, ``search``, ``refine`` or ``mask_head``) by ``(search size or
        None, targets)``; empty for an export written without buckets."""
        batched = next(k for k, v in BATCHED_ROLES.items() if v == role)
        return {(g.instance_size, g.targets): g for g in self.graphs
                if g.role == batched and g.precision == precision}

    def buckets(self, precision: str = "fp32") -> tuple[int, ...]:
        """Targets per call the export has graphs for (``(1,)`` without batched graphs), ascending."""
        return tuple(sorted({1} | {t for (_, t) in self.batched_graphs("search", precision)}))

    def kernel_names(self, precision: str = "fp32") -> tuple[str, ...]:
        """The template graph's outputs, which are the search graphs' kernel inputs, in order."""
        return self.graph("template", precision).output_names

    def weights_file(self, graph: GraphFile) -> WeightsFile | None:
        """The shared weights file ``graph`` reads its initializers from (None: inline weights)."""
        if graph.weights is None:
            return None
        for w in self.weights:
            if w.file == graph.weights:
                return w
        raise ExportError(f"graph {graph.name} ({graph.precision}) reads weights from '{graph.weights}', which the "
                          f"manifest does not list; {REEXPORT}")

    def content_sha256(self, graph: GraphFile) -> str:
        """A sha256 of everything ``graph`` computes with: its file's sha256, and its weights file's when the
        weights are shared (then the graph file alone does not change with the weights)."""
        weights = self.weights_file(graph)
        if weights is None:
            return graph.sha256
        return hashlib.sha256(f"{graph.sha256}:{weights.file}:{weights.sha256}".encode()).hexdigest()

    @property
    def exemplar_size(self) -> int:
        return self.preset.track.exemplar_size

    def require(self, precision: str, folder: str = "") -> None:
        """Raise a one-line error when the export has no complete ``precision`` set of graphs."""
        if precision not in self.precisions:
            where = f"export '{folder}'" if folder else "this export"
            raise ExportError(f"{where} has no {precision} graphs (has: {', '.join(self.precisions)}); re-export with "
                              f"python -m siamdeploy.export CHECKPOINT --precision {precision}")

    # ---- serialisation
    def to_dict(self) -> dict[str, Any]:
        graphs: dict[str, dict[str, Any]] = {}
        for g in self.graphs:
            entry: dict[str, Any] = {
                "file": g.file, "role": g.role, "precision": g.precision, "sha256": g.sha256,
                "instance_size": g.instance_size,
                "inputs": [_tensor_dict(t) for t in g.inputs], "outputs": [_tensor_dict(t) for t in g.outputs]}
            if g.precision != "fp32":
                entry.update(fp32_nodes=list(g.fp32_nodes), reduced_nodes=g.reduced_nodes)
            if g.role in BATCHED_ROLES:
                entry["targets"] = g.targets
            if g.weights is not None:
                entry["weights"] = g.weights
            graphs.setdefault(g.name, {})[g.precision] = entry
        return {"format": FORMAT, "format_version": self.format_version,
                "siamdeploy_version": self.siamdeploy_version, "created": self.created,
                "family": self.family, "preset": preset_to_dict(self.preset),
                "input": dataclasses.asdict(self.input), "checkpoint": dataclasses.asdict(self.checkpoint),
                "opset": self.opset, "precisions": list(self.precisions), **_plain(dict(self.extras)),
                "weights": [dataclasses.asdict(w) for w in self.weights],
                "graphs": graphs, "validation": list(self.validation)}

    def with_validation(self, lines: Iterable[str]) -> ExportManifest:
        return dataclasses.replace(self, validation=tuple(lines))


def _tensor_dict(t: TensorInfo) -> dict[str, Any]:
    return {"name": t.name, "shape": list(t.shape), "dtype": t.dtype}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
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


def preset_fingerprint(preset: Preset) -> str:
    """sha256 (hex) of every structure and tracker parameter of ``preset``: the part of a cache key that changes
    when a config file is edited."""
    data = json.dumps(preset_to_dict(preset), sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def preset_from_dict(data: Any, where: str = "preset") -> Preset:
    """Inverse of :func:`preset_to_dict`; unknown or missing fields are an :class:`ExportError`."""
    _expect(data, dict, where)

    def build(cls: type, values: Any, path: str) -> Any:
        _expect(values, dict, path)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise ExportError(f"manifest field {path} has entries this siamdeploy does not know "
                              f"({', '.join(sorted(unknown))}); {REEXPORT}")
        try:
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
        except (TypeError, ValueError) as err:
            raise ExportError(f"manifest field {path} is malformed ({err}); {REEXPORT}") from None

    return Preset(name=_get(data, "name", str, where), source=_get(data, "source", str, where),
                  description=str(data.get("description", "")),
                  model=build(ModelSpec, data.get("model"), f"{where}.model"),
                  track=build(TrackParams, data.get("track"), f"{where}.track"))


# ---- reading (untrusted input: check every field)
def _expect(value: Any, kind: type | tuple[type, ...], path: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ExportError(f"manifest field {path} must be {names}, got {type(value).__name__}; the manifest is "
                          f"malformed: {REEXPORT}")
    return value


def _get(data: dict[str, Any], key: str, kind: type | tuple[type, ...], path: str) -> Any:
    if key not in data:
        raise ExportError(f"manifest lacks {path}.{key}; the manifest is malformed: {REEXPORT}")
    return _expect(data[key], kind, f"{path}.{key}")


def _plain_file_name(name: str, path: str) -> str:
    """A manifest ``file`` entry must be a plain file name: no separators, no ``..``, not absolute."""
    if (not name or name in (".", "..") or os.path.isabs(name) or "/" in name or "\\" in name
            or os.sep in name or (os.altsep and os.altsep in name) or "\x00" in name):
        raise ExportError(f"manifest field {path} is '{name[:80]}', not a plain file name inside the export folder; "
                          "refusing to read it")
    return name


def _tensors(items: Any, path: str) -> tuple[TensorInfo, ...]:
    _expect(items, list, path)
    out = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        _expect(item, dict, where)
        shape = _get(item, "shape", list, where)
        for d in shape:
            _expect(d, int, f"{where}.shape")
        out.append(TensorInfo(_get(item, "name", str, where), tuple(shape), str(item.get("dtype", "float32"))))
    return tuple(out)


def manifest_from_dict(data: Any) -> ExportManifest:
    """Parse and check a manifest's JSON data (every field's type, roles, precisions, file names)."""
    _expect(data, dict, "(top level)")
    if data.get("format") != FORMAT:
        raise ExportError(f"not a siamdeploy manifest (format is not '{FORMAT}'); {REEXPORT}")
    version = data.get("format_version")
    if version not in READABLE_FORMATS:
        by = data.get("siamdeploy_version", "an unknown version")
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise ExportError(f"export format {version!r} (written by siamdeploy {by}) is "
                          f"{'newer than' if newer else 'not'} what this siamdeploy reads (format "
                          f"{', '.join(map(str, READABLE_FORMATS))}); "
                          + ("upgrade siamdeploy or " if newer else "") + REEXPORT)
    weights = _weights_files(data.get("weights", []))
    graphs_data = _get(data, "graphs", dict, "")
    graphs = []
    for name, variants in graphs_data.items():
        _expect(variants, dict, f"graphs.{name}")
        for precision, entry in variants.items():
            where = f"graphs.{name}.{precision}"
            _expect(entry, dict, where)
            if precision not in PRECISIONS:
                raise ExportError(f"manifest field {where}: unknown precision '{precision[:40]}'; {REEXPORT}")
            role = _get(entry, "role", str, where)
            if role not in ROLES:
                raise ExportError(f"manifest field {where}.role: unknown role '{role[:40]}'; {REEXPORT}")
            size = entry.get("instance_size")
            if size is not None:
                _expect(size, int, f"{where}.instance_size")
            shared = entry.get("weights")
            if shared is not None:
                _plain_file_name(_expect(shared, str, f"{where}.weights"), f"{where}.weights")
                if shared not in {w.file for w in weights}:
                    raise ExportError(f"manifest field {where}.weights names '{shared[:80]}', which the manifest's "
                                      f"weights list does not hold; {REEXPORT}")
            targets = entry.get("targets", 1)
            _expect(targets, int, f"{where}.targets")
            if targets < 1 or (role in BATCHED_ROLES) != (targets > 1):
                raise ExportError(f"manifest field {where}.targets is {targets} for a {role} graph; {REEXPORT}")
            graphs.append(GraphFile(
                name=name, role=role, precision=precision,
                file=_plain_file_name(_get(entry, "file", str, where), f"{where}.file"),
                sha256=_get(entry, "sha256", str, where),
                inputs=_tensors(entry.get("inputs"), f"{where}.inputs"),
                outputs=_tensors(entry.get("outputs"), f"{where}.outputs"),
                instance_size=size, fp32_nodes=tuple(str(n) for n in entry.get("fp32_nodes", ())),
                reduced_nodes=int(entry.get("reduced_nodes", 0)), targets=targets, weights=shared))
    if not any(g.role == "template" for g in graphs) or not any(g.role == "search" for g in graphs):
        raise ExportError(f"manifest lists no template or no search graph; {REEXPORT}")
    inp = _get(data, "input", dict, "")
    ckpt = _get(data, "checkpoint", dict, "")
    known = {"format", "format_version", "siamdeploy_version", "created", "family", "preset", "input",
             "checkpoint", "opset", "precisions", "graphs", "validation", "weights"}
    validation = data.get("validation", [])
    _expect(validation, list, "validation")
    return ExportManifest(
        siamdeploy_version=str(data.get("siamdeploy_version", "")), created=str(data.get("created", "")),
        preset=preset_from_dict(data.get("preset")),
        input=InputInfo(_get(inp, "colour", str, "input"), str(inp.get("range", "")),
                        str(inp.get("normalisation", ""))),
        checkpoint=CheckpointInfo(str(ckpt.get("file", "")), str(ckpt.get("sha256", "")), str(ckpt.get("layout", ""))),
        opset=_get(data, "opset", int, ""), graphs=tuple(graphs), validation=tuple(str(v) for v in validation),
        format_version=version, extras={k: v for k, v in data.items() if k not in known}, weights=weights)


def _weights_files(items: Any) -> tuple[WeightsFile, ...]:
    """The manifest's ``weights`` list (absent in exports with inline weights)."""
    _expect(items, list, "weights")
    out = []
    for i, item in enumerate(items):
        where = f"weights[{i}]"
        _expect(item, dict, where)
        precision = _get(item, "precision", str, where)
        if precision not in PRECISIONS:
            raise ExportError(f"manifest field {where}.precision: unknown precision '{precision[:40]}'; {REEXPORT}")
        size = _get(item, "bytes", int, where)
        out.append(WeightsFile(_plain_file_name(_get(item, "file", str, where), f"{where}.file"), precision,
                               _get(item, "sha256", str, where), size))
    if len({w.file for w in out}) != len(out):
        raise ExportError(f"manifest field weights lists a file twice; {REEXPORT}")
    return tuple(out)


def is_export_folder(path: str) -> bool:
    """True when ``path`` is a folder holding a ``manifest.json`` of siamdeploy's format (not verified)."""
    file = os.path.join(path, MANIFEST)
    if not os.path.isfile(file):
        return False
    try:
        with open(file, encoding="utf-8") as fh:
            return json.load(fh).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def write_manifest(folder: str, manifest: ExportManifest) -> str:
    """Write ``manifest.json`` into ``folder``; returns its path."""
    path = os.path.join(folder, MANIFEST)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(manifest.to_dict(), fh, indent=2)
        fh.write("\n")
    return path


def _inside(folder: str, name: str, where: str) -> str:
    root = os.path.realpath(folder)
    path = os.path.realpath(os.path.join(root, _plain_file_name(name, where)))
    if os.path.dirname(path) != root:
        raise ExportError(f"'{name}' in '{folder}' leads outside the export folder (a link?); refusing to read it")
    return path


def graph_path(folder: str, graph: GraphFile) -> str:
    """The file of ``graph`` inside ``folder``; refuses anything whose real path leaves the folder."""
    return _inside(folder, graph.file, f"graphs.{graph.name}.file")


def weights_path(folder: str, weights: WeightsFile) -> str:
    """The shared weights file ``weights`` inside ``folder``; refuses anything whose real path leaves it."""
    return _inside(folder, weights.file, "weights.file")


def read_manifest(folder: str, verify: bool = True) -> ExportManifest:
    """Read, check and (by default) verify an export folder: schema, format version, and the sha256 of every
    file (graphs and shared weights files).

    A folder of another format, with a malformed manifest, with a file name that leaves the folder, or with a
    file changed after export is refused with one line naming the problem.
    """
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        raise ExportError(f"'{folder}' has no {MANIFEST}; it is not a siamdeploy export folder "
                          "(export one with python -m siamdeploy.export CHECKPOINT)")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ExportError(f"{path} is not valid JSON ({err}); {REEXPORT}") from None
    try:
        manifest = manifest_from_dict(data)
    except ExportError as err:
        raise ExportError(f"{path}: {err}") from None
    if verify:
        for graph in manifest.graphs:
            file = graph_path(folder, graph)
            if not os.path.isfile(file):
                raise ExportError(f"'{folder}' is missing {graph.file}; {REEXPORT}")
            if sha256_file(file) != graph.sha256:
                raise ExportError(f"{graph.file} in '{folder}' changed after export (sha256 differs from the "
                                  f"manifest); {REEXPORT}")
        for weights in manifest.weights:
            file = weights_path(folder, weights)
            what = f"the shared weights of the {weights.precision} graphs"
            if not os.path.isfile(file):
                raise ExportError(f"'{folder}' is missing {weights.file} ({what}); {REEXPORT}")
            if os.path.getsize(file) != weights.bytes or sha256_file(file) != weights.sha256:
                raise ExportError(f"{weights.file} in '{folder}' ({what}) changed after export (its size or sha256 "
                                  f"differs from the manifest); {REEXPORT}")
    return manifest
