"""What the TensorRT code reads from an export manifest, behind one adapter (:func:`as_view`).

The TensorRT modules never index the manifest themselves: they take a :class:`ManifestView`. When the export
manifest becomes a typed object, only :func:`as_view` changes.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ExportError


@dataclass(frozen=True)
class GraphFile:
    """One ONNX file of an export: ``file`` (name inside the folder), ``sha256``, ``role`` (``template``,
    ``search``, ``refine``, ``mask_head``; ``template_batched`` / ``search_batched`` for the bucket graphs),
    ``instance_size`` (search crop side in pixels, search graphs only), ``outputs`` (tensor names),
    ``fp32_nodes`` (FP16 variant: the ONNX nodes kept in FP32), ``targets`` (targets one call carries: 1, or
    the bucket size of a bucket graph, whose tensors hold that many targets' rows, target-major),
    ``weights_sha256`` (sha256 of the shared weights file the graph reads its initializers from; empty when
    they are inline)."""

    file: str
    sha256: str
    role: str = ""
    instance_size: int | None = None
    outputs: tuple[str, ...] = ()
    fp32_nodes: tuple[str, ...] = ()
    targets: int = 1
    weights_sha256: str = ""


@dataclass(frozen=True)
class ManifestView:
    """graphs: graph name -> precision (``fp32``, ``fp16``, ``int8``) -> :class:`GraphFile`.
    exemplar_size: template crop side in pixels (None when the manifest has no preset).
    preset: the manifest's preset (a :class:`~siamdeploy.presets.Preset` from a typed manifest, the stored
    record from a dict), for the tracker."""

    graphs: Mapping[str, Mapping[str, GraphFile]]
    exemplar_size: int | None = None
    preset: Any = None

    @property
    def kernel_names(self) -> tuple[str, ...]:
        """The template graph's outputs: the correlation kernels the search graphs take as inputs."""
        return self.graphs["template"]["fp32"].outputs

    def targets(self, name: str) -> int:
        """Targets per call of graph ``name`` (1 for a single-target graph, the bucket size of a bucket graph)."""
        return next(iter(self.graphs[name].values())).targets

    def buckets(self, precision: str | None = None) -> tuple[int, ...]:
        """Bucket sizes (above 1) the export has bucket graphs for, ascending; with ``precision``: only those
        whose every bucket graph has that variant (INT8 exists for the single-target graphs only)."""
        out: dict[int, bool] = {}
        for variants in self.graphs.values():
            first = next(iter(variants.values()))
            if first.targets > 1:
                out[first.targets] = out.get(first.targets, True) and (precision is None or precision in variants)
        return tuple(sorted(b for b, ok in out.items() if ok))

    def restricted(self, buckets: tuple[int, ...] | list[int]) -> ManifestView:
        """The same view with the single-target graphs and the bucket graphs of ``buckets`` only."""
        keep = set(buckets)
        graphs = {n: v for n, v in self.graphs.items() if self.targets(n) == 1 or self.targets(n) in keep}
        return ManifestView(graphs, self.exemplar_size, self.preset)


# the manifest's batched roles (siamdeploy.manifest.BATCHED_ROLES), spelled here to keep this module standalone;
# a bucket graph of any other role (SiamMask's refine_batched / mask_head_batched) is left out of the view:
# TensorRT runs one refine call per target
_BATCHED_ROLES = ("template_batched", "search_batched")


def as_view(manifest: Any) -> ManifestView:
    """The adapter: a :class:`ManifestView` from a typed export manifest (``graphs`` a sequence of graph
    files with ``name``/``precision``/``file``/...), or from the manifest's JSON form (a dict); a view is
    returned unchanged."""
    if isinstance(manifest, ManifestView):
        return manifest
    if not isinstance(manifest, Mapping):  # the typed manifest
        typed: dict[str, dict[str, GraphFile]] = {}
        for g in manifest.graphs:
            targets = int(getattr(g, "targets", 1))
            if targets > 1 and g.role not in _BATCHED_ROLES:
                continue
            shared = manifest.weights_file(g) if hasattr(manifest, "weights_file") else None
            typed.setdefault(g.name, {})[g.precision] = GraphFile(
                file=g.file, sha256=g.sha256, role=g.role, instance_size=g.instance_size,
                outputs=tuple(t.name for t in g.outputs), fp32_nodes=tuple(g.fp32_nodes), targets=targets,
                weights_sha256=shared.sha256 if shared is not None else "")
        return ManifestView(typed, int(manifest.preset.track.exemplar_size), manifest.preset)
    try:
        graphs = {}
        shared = {str(w["file"]): str(w["sha256"]) for w in manifest.get("weights", [])}
        for name, variants in manifest["graphs"].items():
            if any(int(v.get("targets", 1)) > 1 and v.get("role") not in _BATCHED_ROLES for v in variants.values()):
                continue
            graphs[name] = {
                precision: GraphFile(file=str(v["file"]), sha256=str(v["sha256"]), role=str(v.get("role", "")),
                                     instance_size=v.get("instance_size"),
                                     outputs=tuple(t["name"] for t in v.get("outputs", [])),
                                     fp32_nodes=tuple(v.get("fp32_nodes", [])), targets=int(v.get("targets", 1)),
                                     weights_sha256=shared[v["weights"]] if v.get("weights") else "")
                for precision, v in variants.items()}
        preset = manifest.get("preset") or {}
        size = preset.get("track", {}).get("exemplar_size")
    except (KeyError, TypeError, AttributeError) as err:
        raise ExportError(f"the export manifest lacks what the TensorRT backend needs ({err!r}); re-export the "
                          "model") from None
    return ManifestView(graphs, int(size) if size is not None else None, preset)


def read_view(folder: str, verify: bool = True) -> ManifestView:
    """Read (and by default verify) the manifest of the export ``folder`` as a :class:`ManifestView`."""
    from ..manifest import read_manifest

    return as_view(read_manifest(folder, verify=verify))
