"""The TensorRT engine cache: one folder per export, GPU, TensorRT version and precision.

``<root>/<export name>/<gpu-slug>-trt<version>-<precision>/`` holds one ``<graph>.engine`` plan per graph of
the export and ``sidecar.json``, which says what the plans were built from and for: the sha256 of every ONNX
graph, the TensorRT version, the GPU name and compute capability, the precision, the build options, the
siamdeploy version, the creation time, the batch buckets built (``buckets``: one template and one search plan
per bucket of targets, besides the single-target plans), and (from the builder) the precision every layer
actually got.

Buckets: the single-target plans must match the export exactly; the bucket plans asked for must be in the
entry (with the same ONNX sha256). An entry with more buckets than asked is used as it is; one with fewer is
stale (reason ``buckets``) and rebuilt (:func:`siamdeploy.tensorrt.build.ensure_engines` rebuilds it with the
buckets asked for and those it had, so asking for fewer later does not shrink it).

An entry is used only when its sidecar matches what is asked for; otherwise :func:`lookup` says why it is
stale (:class:`Stale`: other GPU, other TensorRT, changed ONNX, ...) and the caller rebuilds it (default) or
refuses with a clear :class:`~siamdeploy.errors.EngineError` (``rebuild=False``).

Building is atomic and safe across processes: :func:`get_or_build` holds
:func:`siamdeploy.locking.exclusive_lock` on ``<entry>.lock``, builds into a temporary folder beside the
entry and renames it into place; a second process asking for the same entry waits for the lock, then finds
the entry and reuses it (a lock left by a crashed build is broken, see :mod:`siamdeploy.locking`).

The build step itself is a callable (``build(tmp_dir) -> dict``), so all of this is pure Python and
testable without TensorRT or a GPU. No tensorrt import here.
"""
from __future__ import annotations

import datetime as _dt
import glob
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import EngineError
from ..fsutil import replace_dir
from ..locking import LockTimeout, exclusive_lock
from .manifest_view import ManifestView, as_view

log = logging.getLogger(__name__)

SIDECAR = "sidecar.json"
SIDECAR_FORMAT = "siamdeploy-trt-engines"
SIDECAR_VERSION = 1
ENGINE_SUFFIX = ".engine"
ENV_ROOT = "SIAMDEPLOY_ENGINES"
DEFAULT_ROOT = "engines"
DEFAULT_STALE_LOCK_S = 3600.0   # a build holding the lock longer than this (and not provably alive) is dead
DEFAULT_WAIT_S = 3 * 3600.0     # how long a second process waits for someone else's build

# Stale reasons (Stale.reason)
MISSING = "missing"
INCOMPLETE = "incomplete"
FORMAT = "format"
GPU = "gpu"
TENSORRT = "tensorrt"
PRECISION = "precision"
ONNX = "onnx"
OPTIONS = "options"
CORRUPT = "corrupt"
BUCKETS = "buckets"


def default_root() -> str:
    """``$SIAMDEPLOY_ENGINES``, else ``engines`` (relative to the working directory, like ``export/``)."""
    return os.environ.get(ENV_ROOT) or DEFAULT_ROOT


def slug(text: str) -> str:
    """Lower-case, runs of anything but letters and digits become one ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def gpu_slug(gpu_name: str, compute_capability: str) -> str:
    """``NVIDIA GeForce RTX 4090``, ``8.9`` -> ``nvidia-geforce-rtx-4090-sm89``."""
    return f"{slug(gpu_name)}-sm{compute_capability.replace('.', '')}"


def trt_version_tag(version: str) -> str:
    """``10.13.0.35`` -> ``10.13.0`` (the folder name; the sidecar keeps the full version)."""
    return ".".join(version.split(".")[:3])


@dataclass(frozen=True)
class EngineTarget:
    """What a cache entry must have been built from and for.

    onnx: graph name -> ``{"file", "sha256"}`` of the ONNX graph each plan is built from (plus
    ``weights_sha256``, its shared weights file's, when it has one; and for the weakly typed FP16 build,
    ``pin_sha256``: the FP16 variant whose ``fp32_nodes`` list chose the pinned layers; for a bucket graph
    also ``targets``: its bucket size).
    options: JSON-ready build options (typing, workspace, TF32, ...).
    """

    export_name: str
    gpu_name: str
    compute_capability: str
    trt_version: str
    precision: str
    onnx: Mapping[str, Mapping[str, str]]
    options: Mapping[str, Any] = field(default_factory=dict)
    export_folder: str = ""

    @property
    def buckets(self) -> tuple[int, ...]:
        """The bucket sizes (above 1) whose plans are asked for, ascending."""
        return bucket_sizes(self.onnx)

    @property
    def key(self) -> str:
        """The entry's folder name: ``<gpu-slug>-trt<version>-<precision>``."""
        gpu = gpu_slug(self.gpu_name, self.compute_capability)
        return f"{gpu}-trt{trt_version_tag(self.trt_version)}-{self.precision}"


def bucket_sizes(onnx: Mapping[str, Mapping[str, Any]]) -> tuple[int, ...]:
    """The bucket sizes (above 1) among graph sources (``EngineTarget.onnx`` or a sidecar's ``onnx``)."""
    return tuple(sorted({int(v.get("targets", 1)) for v in onnx.values()} - {1}))


def _singles(onnx: Mapping[str, Any]) -> set[str]:
    return {n for n, v in onnx.items() if int(v.get("targets", 1)) == 1}


def entry_dir(root: str, target: EngineTarget) -> str:
    """``<root>/<export name>/<gpu-slug>-trt<version>-<precision>``."""
    return os.path.join(root, target.export_name, target.key)


def select_sources(manifest: ManifestView | Mapping[str, Any], precision: str, typing: str,
                   buckets: tuple[int, ...] | list[int] | None = None) -> dict[str, dict[str, Any]]:
    """Which ONNX variant each plan is built from (``manifest``: a view, or the manifest itself): one plan per
    single-target graph and one per bucket graph of ``buckets`` (None: every bucket of the export that has
    the variant; the bucket graphs' entries carry ``targets``).

    fp32: the FP32 graphs. fp16 + ``strong`` (strongly typed network): the mixed-precision ``*_fp16.onnx``
    graphs. fp16 + ``weak`` (``BuilderFlag.FP16`` with pinned layers): the FP32 graphs, with the FP16
    variant's sha256 recorded as ``pin_sha256`` (its ``fp32_nodes`` list picks the pinned layers).
    int8 (always ``strong``): the export's ``int8`` variant, a Q/DQ graph (single-target graphs only: INT8
    has no bucket graphs, so an INT8 entry runs one call per target).
    """
    if precision not in ("fp16", "fp32", "int8"):
        raise EngineError(f"TensorRT precision must be fp16, fp32 or int8, got '{precision}'")
    if typing not in ("strong", "weak"):
        raise EngineError(f"network typing must be strong or weak, got '{typing}'")
    view = as_view(manifest)
    use = source_variant(precision, typing)
    have = view.buckets(use) if precision != "fp16" or typing == "strong" else view.buckets("fp16")
    if buckets is None:
        wanted = set(have)
    else:
        wanted = {int(b) for b in buckets} - {1}
        absent = sorted(wanted - set(view.buckets()))
        if absent:
            raise EngineError(f"the export has no bucket graphs for {', '.join(map(str, absent))} target(s) (has: "
                              f"{', '.join(map(str, view.buckets())) or 'none'}); choose engine buckets among those, "
                              "or re-export with --buckets")
        wanted &= set(have)  # INT8: none
    sources: dict[str, dict[str, Any]] = {}
    for name, variants in view.graphs.items():
        targets = view.targets(name)
        if targets > 1:
            if targets not in wanted:
                continue
            entry_b: dict[str, Any] = {"file": variants[use].file, "sha256": variants[use].sha256, "targets": targets}
            if variants[use].weights_sha256:
                entry_b["weights_sha256"] = variants[use].weights_sha256
            if precision == "fp16" and typing == "weak":
                entry_b["pin_sha256"] = variants["fp16"].sha256
            sources[name] = entry_b
            continue
        if precision == "fp16" and "fp16" not in variants:
            raise EngineError(f"the export has no FP16 graphs (has: {', '.join(variants)}), which the TensorRT FP16 "
                              "build needs; re-export with --precision both (or build with --engine-precision fp32)")
        if precision == "int8" and "int8" not in variants:
            raise EngineError(f"the export has no INT8 (Q/DQ) graphs (has: {', '.join(variants)}): TensorRT INT8 "
                              "engines are built only from explicitly quantized graphs; re-export with --precision "
                              "int8, or build fp16")
        entry: dict[str, Any] = {"file": variants[use].file, "sha256": variants[use].sha256}
        if variants[use].weights_sha256:  # shared weights: the graph file keeps its bytes when only they change
            entry["weights_sha256"] = variants[use].weights_sha256
        if precision == "fp16" and typing == "weak":
            entry["pin_sha256"] = variants["fp16"].sha256
        sources[name] = entry
    return sources


def source_variant(precision: str, typing: str) -> str:
    """The export variant a plan is built from: ``int8`` for INT8, ``fp16`` for a strongly typed FP16 build,
    else ``fp32``."""
    if precision == "int8":
        return "int8"
    return "fp16" if precision == "fp16" and typing == "strong" else "fp32"


@dataclass(frozen=True)
class Stale:
    """Why there is no usable entry: ``reason`` is one of the module constants (``missing``, ``gpu``,
    ``tensorrt``, ``onnx``, ``options``, ``precision``, ``format``, ``incomplete``, ``corrupt``);
    ``detail`` is a sentence for the user."""

    reason: str
    detail: str
    path: str


@dataclass(frozen=True)
class CacheEntry:
    """A valid entry: its folder, its sidecar, and the plan file of every graph."""

    path: str
    sidecar: dict[str, Any]

    @property
    def engines(self) -> dict[str, str]:
        """Graph name -> plan file, for every plan of the entry (the single-target ones and every bucket's)."""
        return {name: os.path.join(self.path, info["file"]) for name, info in self.sidecar["engines"].items()}

    @property
    def buckets(self) -> tuple[int, ...]:
        """The bucket sizes (above 1) the entry holds plans for (``()``: one call per target)."""
        return bucket_sizes(self.sidecar.get("onnx", {}))

    def bucket_of(self, name: str) -> int:
        """Targets per call of the plan of graph ``name`` (1: a single-target plan)."""
        return int(self.sidecar.get("onnx", {}).get(name, {}).get("targets", 1))


def read_sidecar(path: str) -> dict[str, Any] | None:
    """The sidecar of an entry folder, or None when absent or unreadable."""
    try:
        with open(os.path.join(path, SIDECAR), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _sha256(path: str) -> str:
    from ..manifest import sha256_file

    return sha256_file(path)


def check_entry(path: str, target: EngineTarget, verify_plans: bool = True) -> CacheEntry | Stale:
    """Compare the entry in ``path`` with ``target``: a :class:`CacheEntry` when it fits, else :class:`Stale`."""
    if not os.path.isdir(path):
        return Stale(MISSING, f"no TensorRT engines built yet in {path}", path)
    side = read_sidecar(path)
    if side is None:
        return Stale(INCOMPLETE, f"{path} has no readable {SIDECAR}", path)
    if side.get("format") != SIDECAR_FORMAT or side.get("format_version") != SIDECAR_VERSION:
        return Stale(FORMAT, f"{path} was written in another cache format ({side.get('format_version')})", path)
    gpu = side.get("gpu", {})
    if gpu.get("name") != target.gpu_name or gpu.get("compute_capability") != target.compute_capability:
        return Stale(GPU, f"the engines in {path} were built for {gpu.get('name')} (compute "
                          f"{gpu.get('compute_capability')}), this GPU is {target.gpu_name} (compute "
                          f"{target.compute_capability})", path)
    if side.get("tensorrt_version") != target.trt_version:
        return Stale(TENSORRT, f"the engines in {path} were built with TensorRT {side.get('tensorrt_version')}, "
                               f"this is TensorRT {target.trt_version}", path)
    if side.get("precision") != target.precision:
        return Stale(PRECISION, f"the engines in {path} are {side.get('precision')}, {target.precision} was asked "
                                "for", path)
    built = side.get("onnx", {})
    if not isinstance(built, dict) or not all(isinstance(v, dict) for v in built.values()):
        return Stale(INCOMPLETE, f"{path} has a malformed {SIDECAR} (onnx)", path)
    if _singles(built) != _singles(target.onnx):
        return Stale(ONNX, f"the export's graphs ({', '.join(sorted(_singles(target.onnx)))}) differ from those the "
                           f"engines in {path} were built from ({', '.join(sorted(_singles(built)))})", path)
    for name in _singles(target.onnx):
        want = target.onnx[name]
        if dict(built[name]) != dict(want):
            return Stale(ONNX, f"{want['file']} changed since the engines in {path} were built (sha256 differs)", path)
    missing = [b for b in target.buckets if b not in bucket_sizes(built)]
    if missing:
        return Stale(BUCKETS, f"the engines in {path} were built for buckets "
                              f"{', '.join(map(str, bucket_sizes(built))) or 'none'}, buckets "
                              f"{', '.join(map(str, target.buckets))} were asked for", path)
    for name, want in target.onnx.items():
        if name not in _singles(target.onnx) and dict(built.get(name, {})) != dict(want):
            return Stale(ONNX, f"{want['file']} changed since the engines in {path} were built (sha256 differs)", path)
    if dict(side.get("options", {})) != _plain(target.options):
        return Stale(OPTIONS, f"the engines in {path} were built with options {side.get('options')}, "
                              f"now {_plain(target.options)}", path)
    engines = side.get("engines")
    if not isinstance(engines, dict) or set(engines) != set(built):
        return Stale(INCOMPLETE, f"{path} does not hold a plan for every graph", path)
    for info in engines.values():
        plan = os.path.join(path, info.get("file", ""))
        if not os.path.isfile(plan):
            return Stale(INCOMPLETE, f"{path} is missing {info.get('file')}", path)
        if verify_plans and _sha256(plan) != info.get("sha256"):
            return Stale(CORRUPT, f"{plan} changed after it was built (sha256 differs from {SIDECAR})", path)
    return CacheEntry(path, side)


def lookup(root: str, target: EngineTarget, verify_plans: bool = True) -> CacheEntry | Stale:
    """The valid entry for ``target`` under ``root``, or why there is none (:class:`Stale`)."""
    return check_entry(entry_dir(root, target), target, verify_plans)


def refusal(stale: Stale, export_folder: str = "") -> EngineError:
    """The error raised instead of rebuilding (``rebuild=False``)."""
    how = f"python -m siamdeploy.export {export_folder or 'EXPORT_FOLDER'} --engine"
    if stale.reason == MISSING:
        return EngineError(f"{stale.detail}; build them with {how}, or allow building (rebuild=True)")
    return EngineError(f"stale TensorRT engines ({stale.reason}): {stale.detail}; rebuild them with {how}, "
                       "or allow rebuilding (rebuild=True)")


def _plain(value: Any) -> Any:
    """JSON round trip (tuples -> lists), so options compare equal to what the sidecar stored."""
    return json.loads(json.dumps(value, sort_keys=True))


def make_sidecar(target: EngineTarget, result: Mapping[str, Any], folder: str) -> dict[str, Any]:
    """The sidecar for a finished build in ``folder``; ``result`` is the build callable's answer (its
    ``engines`` maps graph -> plan file name; every other key is recorded as given)."""
    from .. import __version__

    engines = {}
    for name, file in result["engines"].items():
        plan = os.path.join(folder, file)
        if not os.path.isfile(plan):
            raise EngineError(f"the TensorRT build reported {file} but did not write it")
        engines[name] = {"file": file, "sha256": _sha256(plan), "bytes": os.path.getsize(plan)}
    missing = set(target.onnx) - set(engines)
    if missing:
        raise EngineError(f"the TensorRT build wrote no plan for {', '.join(sorted(missing))}")
    extra = {k: v for k, v in result.items() if k != "engines"}
    return {
        "format": SIDECAR_FORMAT, "format_version": SIDECAR_VERSION,
        "export": target.export_name, "export_folder": target.export_folder,
        "onnx": _plain(target.onnx),
        "tensorrt_version": target.trt_version,
        "gpu": {"name": target.gpu_name, "compute_capability": target.compute_capability},
        "precision": target.precision,
        "buckets": list(target.buckets),
        "options": _plain(target.options),
        "siamdeploy_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "engines": engines,
        **_plain(extra),
    }


BuildFn = Callable[[str], Mapping[str, Any]]


def get_or_build(root: str, target: EngineTarget, build: BuildFn, rebuild: bool = True,
                 stale_lock_s: float = DEFAULT_STALE_LOCK_S, wait_s: float = DEFAULT_WAIT_S,
                 poll_s: float = 0.2, verify_plans: bool = True) -> CacheEntry:
    """The valid entry for ``target``, building it with ``build`` when missing or stale.

    ``build(tmp_dir)`` writes the plans into ``tmp_dir`` and returns ``{"engines": {graph: file}, ...}``
    (other keys, e.g. the per-layer precisions, go into the sidecar as given). ``rebuild=False``: a missing
    or stale entry raises :class:`EngineError` saying why, and nothing is built.
    """
    found = lookup(root, target, verify_plans)
    if isinstance(found, CacheEntry):
        log.info("using cached TensorRT engines %s", found.path)
        return found
    if not rebuild:
        raise refusal(found, target.export_folder)
    path = entry_dir(root, target)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with exclusive_lock(path + ".lock", timeout=wait_s, stale_after=stale_lock_s, poll=poll_s,
                            what=f"the TensorRT build of {path}"):
            return _build_locked(root, target, build, verify_plans)
    except LockTimeout as err:
        raise EngineError(str(err)) from None


def _build_locked(root: str, target: EngineTarget, build: BuildFn, verify_plans: bool) -> CacheEntry:
    """The part of :func:`get_or_build` that runs under the lock."""
    path = entry_dir(root, target)
    parent, name = os.path.split(path)
    again = lookup(root, target, verify_plans)
    if isinstance(again, CacheEntry):  # another process built it while we waited
        log.info("reusing TensorRT engines %s (built by another process meanwhile)", again.path)
        return again
    if again.reason != MISSING:
        log.info("rebuilding TensorRT engines: %s", again.detail)
    for leftover in glob.glob(os.path.join(parent, f".{name}.tmp-*")):  # a crashed build's temp folder
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
    try:
        result = build(tmp)
        sidecar = make_sidecar(target, result, tmp)
        with open(os.path.join(tmp, SIDECAR), "w", encoding="utf-8") as fh:
            json.dump(sidecar, fh, indent=2)
            fh.write("\n")
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    done = check_entry(path, target, verify_plans)
    if isinstance(done, Stale):  # cannot happen unless the folder is changed under us
        raise EngineError(f"the TensorRT engines just built in {path} do not verify: {done.detail}")
    return done
