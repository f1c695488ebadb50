"""Inference backends behind one interface (:class:`Engine`). Backends import their heavy
dependencies lazily, so importing this package needs neither torch nor onnxruntime."""
from .base import Engine, SearchOutput

__all__ = ["Engine", "SearchOutput"]
