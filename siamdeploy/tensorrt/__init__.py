"""TensorRT: build engines from an export folder, cache them, and run them (no torch).

Modules, each small and with one job:

- :mod:`.versions`: which TensorRT versions are supported and how each builds (typing rules);
- :mod:`.device`: lazy ``tensorrt`` / cuda-python imports, CUDA error checks, the GPU identity, the probe;
- :mod:`.manifest_view`: the one adapter from an export manifest to what the TensorRT code reads;
- :mod:`.network`: ONNX parsing, network flags, builder config, FP32 pinning, INT8 (Q/DQ) checks;
- :mod:`.inspection`: the engine inspector's per-layer precisions;
- :mod:`.cache`: cache entries, staleness, the sidecar, atomic find-or-build under a lock;
- :mod:`.build`: :func:`~.build.ensure_engines` (find or build the plans of an export);
- :mod:`.runner`: :class:`~.runner.TensorRTEngine`, which loads built plans and runs them (it never builds);
- :mod:`.api_names`: the TensorRT names the code uses, checked against NVIDIA's published bindings.

:func:`load_engine` joins the two halves: find or build the plans, then load them.

Everything here except the runner and the build step is pure Python and tested on CPU; TensorRT itself was
not available while this was written (see the README's TensorRT section).
"""
from __future__ import annotations

from typing import Any


def load_engine(folder: str, precision: str = "fp16", device: str | None = None, cuda_graph: bool = False,
                cache_root: str | None = None, rebuild: bool = True, options: Any = None,
                verify: bool = True, manifest: Any = None, buckets: tuple[int, ...] | list[int] | None = None) -> Any:
    """A :class:`~.runner.TensorRTEngine` for the export ``folder``: the cached plans for this GPU and
    TensorRT (built first when missing or stale, unless ``rebuild=False``), loaded.

    precision: ``fp16`` | ``fp32`` | ``int8`` (INT8 needs Q/DQ graphs in the export; not run so far).
    device: ``cuda`` / ``cuda:N``. options: :class:`~.network.BuildOptions`. verify: check the export's
    sha256 sums when reading its manifest. manifest: the export's manifest when the caller has already read
    (and verified) it. buckets: the batch buckets (targets per call, above 1) to build and load plans for
    (None: every bucket of the export; ``(1,)``: none, one call per target).
    """
    from . import device as _device
    from .build import ensure_engines
    from .manifest_view import as_view, read_view
    from .runner import TensorRTEngine

    _device.import_tensorrt()  # one-line install hints before any work
    _device.import_cudart()
    view = as_view(manifest) if manifest is not None else read_view(folder, verify=verify)
    entry = ensure_engines(folder, precision, cache_root=cache_root, rebuild=rebuild, options=options,
                           device=device, view=view, buckets=buckets)
    return TensorRTEngine(entry, view, device=device, cuda_graph=cuda_graph, buckets=buckets)
