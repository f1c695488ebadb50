"""Backends: which inference library runs the network, and how a model path becomes its artifacts.

:mod:`.registry` holds the :class:`~.registry.Backend` base class and the lookup (names, ``auto`` order,
probes); :mod:`.builtin` registers torch, onnxruntime, onnxruntime's TensorRT provider and TensorRT. A backend
class is the loader (finds or builds exports and engines); its engine (:mod:`siamdeploy.engine`) only runs them.
"""
from .registry import (Backend, Configuration, LoadRequest, backend_names, backends, configurations, get_backend,
                       load_engine, register)

__all__ = ["Backend", "Configuration", "LoadRequest", "backend_names", "backends", "configurations", "get_backend",
           "load_engine", "register"]
