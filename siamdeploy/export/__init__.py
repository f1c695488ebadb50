"""ONNX export: split template/search graphs (correlation = Conv fed by the template output), validation
against PyTorch, mixed FP16, manifest. ``python -m siamdeploy.export CHECKPOINT``.

Importing this package does not import torch; :func:`export_model` does."""
from __future__ import annotations

from typing import Any


def export_model(*args: Any, **kwargs: Any) -> Any:
    """See :func:`siamdeploy.export.exporter.export_model`."""
    from .exporter import export_model as _export

    return _export(*args, **kwargs)


__all__ = ["export_model"]
