"""The ONNX opsets the exporter writes (no torch import: the CLI checks ``--opset`` before any work)."""
from __future__ import annotations

from ..errors import ExportError

DEFAULT_OPSET = 17
# torch.onnx's TorchScript exporter writes opsets up to 20; the grouped-convolution correlation needs >= 11.
MIN_OPSET, MAX_OPSET = 11, 20


def check_opset(opset: int) -> None:
    """Refuse an ONNX opset outside :data:`MIN_OPSET`..:data:`MAX_OPSET` with :class:`ExportError`."""
    if not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise ExportError(f"--opset {opset} is not supported; pass {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})")
