"""The backend registry: every inference backend is one :class:`Backend` class registered once.

A backend declares its name, the devices and precisions it takes, its place in ``backend="auto"``, an
availability probe returning ``(ok, why)`` and a loader from a model path (an export folder, or a checkpoint
it exports once into the cache) to an :class:`~siamdeploy.engine.base.Engine` plus the
:class:`~siamdeploy.presets.Preset` that engine was built for. ``load_tracker``, ``auto``, the CLIs' choices,
the benchmarks and the GPU tests iterate :func:`backends`. The built-in backends are registered in
:mod:`siamdeploy.backends.builtin`; adding one = one engine module + one registered class there.

Nothing heavy is imported here: probes and loaders import their libraries when called.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ..errors import ConfigError, EngineError, SiamDeployError, unknown_name

if TYPE_CHECKING:
    from ..presets import Preset
    from ..engine.base import Engine

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class LoadRequest:
    """What the user asked for. ``model_path``: checkpoint file or export folder; ``config``: pysot
    ``config.yaml`` or None; ``preset``: preset id / :class:`Preset` or None; ``device``: e.g. ``cpu``,
    ``cuda:0`` (None: the backend's default); ``precision``: one of :data:`PRECISIONS` (None: the backend's
    default); ``buckets``: targets per call the engine should have batched graphs for (ONNX-based backends
    export a checkpoint with them; ``(1,)``: single-target graphs, see docs/multi_target.md)."""

    model_path: str
    config: str | None = None
    preset: object = None
    device: str | None = None
    precision: str | None = None
    allow_unsafe_pickle: bool = False
    buckets: tuple[int, ...] = (1,)


class Backend(ABC):
    """One inference backend. Subclasses set the class attributes and implement :meth:`probe` and :meth:`load`.

    ``devices``: device kinds it runs on (``cpu``, ``cuda``, ...; a device string is ``kind[:index]``).
    ``precisions``: what it can run; ``default_precision``: what runs when none is asked for.
    ``auto_priority``: order in ``backend="auto"`` (lower first); None: never chosen by ``auto``.
    ``explicit_precisions``: precisions that run only when this backend is named (``auto`` never picks them).
    ``takes_checkpoint`` / ``takes_export``: which model paths it loads.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    default_device: ClassVar[str] = "cpu"
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    default_precision: ClassVar[str] = "fp32"
    auto_priority: ClassVar[int | None] = None
    explicit_precisions: ClassVar[tuple[str, ...]] = ()
    takes_checkpoint: ClassVar[bool] = True
    takes_export: ClassVar[bool] = True

    @classmethod
    @abstractmethod
    def probe(cls, device: str | None = None) -> tuple[bool, str]:
        """``(True, "")`` when this backend can run on ``device`` here, else ``(False, why + how to fix)``."""

    @classmethod
    @abstractmethod
    def load(cls, request: LoadRequest) -> tuple[Engine, Preset]:
        """Build or find the artifacts ``request`` needs and return a ready engine and its preset."""

    @classmethod
    def require(cls, device: str | None = None) -> None:
        """Raise the one-line error :meth:`probe` describes (a missing package: a ``DependencyError``)."""
        ok, why = cls.probe(device)
        if not ok:
            raise EngineError(f"backend '{cls.name}' is not available: {why}")

    @classmethod
    def supports(cls, device: str, precision: str) -> tuple[bool, str]:
        """Whether ``precision`` runs on ``device`` (for backends where that depends on the device)."""
        return True, ""

    # ---- shared checks, used by load_engine before load() runs
    @classmethod
    def check_request(cls, request: LoadRequest) -> None:
        """Refuse a device or precision this backend does not take, with the ones it does."""
        device = request.device or cls.default_device
        kind = device.partition(":")[0]
        if kind not in cls.devices:
            raise ConfigError(f"backend '{cls.name}' runs on {', '.join(cls.devices)}, not '{device}'")
        precision = request.precision or cls.default_precision
        if precision not in cls.precisions:
            others = [b.name for b in backends() if precision in b.precisions]
            hint = f" ({precision} runs on: {', '.join(others)})" if others else ""
            raise ConfigError(f"backend '{cls.name}' runs {', '.join(cls.precisions)}, not '{precision}'{hint}")
        ok, why = cls.supports(device, precision)
        if not ok:
            raise ConfigError(f"backend '{cls.name}' cannot run {precision} on '{device}': {why}")
        from ..manifest import is_export_folder

        export = is_export_folder(request.model_path)
        if export and not cls.takes_export:
            raise ConfigError(f"'{request.model_path}' is an export folder; backend '{cls.name}' needs the checkpoint "
                              f"(export folders load with: {', '.join(b.name for b in backends() if b.takes_export)})")
        if not export and not cls.takes_checkpoint:
            raise ConfigError(f"backend '{cls.name}' loads export folders only; export the checkpoint first "
                              "(python -m siamdeploy.export CHECKPOINT)")


_REGISTRY: dict[str, type[Backend]] = {}
_builtins_loaded = False


def register(cls: type[Backend]) -> type[Backend]:
    """Class decorator: add a backend (its ``name`` must be new)."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"backend '{cls.name}' is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _ensure_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        from . import builtin as _  # noqa: F401  (registers the built-in backends)


def backends() -> list[type[Backend]]:
    """Every registered backend, in registration order."""
    _ensure_builtins()
    return list(_REGISTRY.values())


def backend_names() -> list[str]:
    """Names for ``--backend`` choices: every registered backend, then ``auto``."""
    return [b.name for b in backends()] + ["auto"]


def get_backend(name: str) -> type[Backend]:
    """The backend ``name``; an unknown one fails with the known ones and the closest match."""
    _ensure_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name("backend", name, backend_names()) from None


def auto_order() -> list[type[Backend]]:
    """The backends ``auto`` tries, best first."""
    return sorted((b for b in backends() if b.auto_priority is not None), key=lambda b: b.auto_priority or 0)


@dataclass(frozen=True)
class Configuration:
    """One (backend, device, precision) and whether it can run here (``why`` says why not)."""

    backend: type[Backend]
    device: str
    precision: str
    ok: bool
    why: str = ""

    @property
    def label(self) -> str:
        return f"{self.backend.name} {self.device} {self.precision}"


def configurations() -> list[Configuration]:
    """Every (backend, device kind, precision) the registry knows, probed here: what benchmarks and tests
    iterate. Devices are ``cpu`` and ``<kind>:0``."""
    out = []
    for cls in backends():
        for kind in cls.devices:
            device = kind if kind == "cpu" else f"{kind}:0"
            ok, why = cls.probe(device)
            for precision in cls.precisions:
                fits, reason = cls.supports(device, precision) if ok else (ok, why)
                out.append(Configuration(cls, device, precision, fits, reason))
    return out


def load_engine(backend: str, request: LoadRequest) -> tuple[Engine, Preset]:
    """Load ``request`` on ``backend`` (a registered name or ``auto``)."""
    if backend == "auto":
        return _load_auto(request)
    cls = get_backend(backend)
    cls.check_request(request)
    cls.require(request.device)
    return cls.load(request)


def _load_auto(request: LoadRequest) -> tuple[Engine, Preset]:
    """Try :func:`auto_order`; the first that loads wins. The choice and why each earlier backend was skipped
    are logged. A device or precision some backend cannot take skips that backend, it is never downgraded."""
    skipped: list[str] = []
    from ..manifest import is_export_folder

    export = is_export_folder(request.model_path)
    for cls in auto_order():
        # without a device, each backend is tried on each of its devices (e.g. onnxruntime: CUDA, then CPU)
        for device in [request.device] if request.device is not None else list(cls.devices):
            label = cls.name if len(cls.devices) == 1 or request.device else f"{cls.name} ({device})"
            attempt = dataclasses.replace(request, device=device)
            try:
                if (export and not cls.takes_export) or (not export and not cls.takes_checkpoint):
                    raise ConfigError("an export folder holds no PyTorch model; pass the checkpoint" if export else
                                      "loads export folders only")
                if device.partition(":")[0] not in cls.devices:
                    raise ConfigError(f"device='{device}' was asked for")
                precision = request.precision or cls.default_precision
                if precision in cls.explicit_precisions:
                    raise ConfigError(f"{precision} is opt-in here: ask for backend='{cls.name}' by name")
                cls.check_request(attempt)
                ok, why = cls.probe(device)
                if not ok:
                    raise EngineError(why)
                engine, preset = cls.load(attempt)
            except SiamDeployError as err:
                skipped.append(f"{label}: {err}")
                continue
            log.info("backend='auto' chose %s [%s]%s", label, engine.describe(),
                     f"; skipped {'; '.join(skipped)}" if skipped else "")
            return engine, preset
    raise EngineError("backend='auto' found no backend that loads this model: " + "; ".join(skipped))


def default_cache_dir() -> str:
    """Where on-the-fly exports and engines go: ``$SIAMDEPLOY_CACHE`` or ``~/.cache/siamdeploy``."""
    return os.environ.get("SIAMDEPLOY_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "siamdeploy")
