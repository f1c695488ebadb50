"""Serving many camera streams on NVIDIA Triton Inference Server (through PyTriton), and a client.

``python -m siamdeploy.serve MODEL`` starts the server (see :mod:`siamdeploy.serve.__main__`);
``siamdeploy.serve.Client("127.0.0.1:8000")`` talks to it (tritonclient underneath, imported when a client is
made, so ``import siamdeploy`` needs neither PyTriton nor tritonclient). Wire format:
:mod:`siamdeploy.serve.protocol`; docs/serving.md.
"""
from __future__ import annotations

from typing import Any

__all__ = ["Client", "Session", "ServeError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'siamdeploy.serve' has no attribute '{name}'")
