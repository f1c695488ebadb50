"""Triton Inference Server through PyTriton: the tracking model bound to a :class:`StreamTable`.

``start_server(table, ...)`` starts ``tritonserver`` (bundled in the nvidia-pytriton wheel) and binds the
model :data:`siamdeploy.serve.protocol.MODEL_NAME`, whose dynamic batcher gathers concurrent requests (at
most ``max_batch``, waiting at most ``queue_delay_us``) into one call of :meth:`StreamTable.handle`.
"""
from __future__ import annotations

import errno
import logging
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DependencyError, InputError
from . import protocol as P
from .streams import StreamTable
from .stubenv import prepare_server_environment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerAddress:
    """Where the server listens (``host``: an address to bind; ports of each endpoint)."""

    host: str = "127.0.0.1"
    http_port: int = P.DEFAULT_HTTP_PORT
    grpc_port: int = P.DEFAULT_GRPC_PORT
    metrics_port: int = P.DEFAULT_METRICS_PORT

    @property
    def url(self) -> str:
        """The HTTP endpoint a :class:`siamdeploy.serve.Client` connects to (``host:port``)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"{host}:{self.http_port}"


def check_ports(address: ServerAddress) -> None:
    """Every port is distinct, in 1..65535 and free on ``address.host`` (else an :class:`InputError` naming the
    flag to change)."""
    flags = {"--http-port": address.http_port, "--grpc-port": address.grpc_port,
             "--metrics-port": address.metrics_port}
    seen: dict[int, str] = {}
    for flag, port in flags.items():
        if not 1 <= port <= 65535:
            raise InputError(f"{flag} {port} is not a port; use 1..65535")
        if port in seen:
            raise InputError(f"{flag} and {seen[port]} are both {port}; give each endpoint its own port")
        seen[port] = flag
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address.host, port))
            except OSError as err:
                if err.errno == errno.EADDRINUSE:
                    raise InputError(f"port {port} ({flag}) is in use on {address.host}; stop what holds it or pass "
                                     f"another {flag}") from None
                raise InputError(f"cannot listen on {address.host}:{port} ({flag}): {err.strerror}; pass another "
                                 "--host or port") from None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (for tests and benchmarks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _import_pytriton() -> Any:
    try:
        import pytriton.triton as triton
        from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    except ImportError as err:
        raise DependencyError(f"serving needs PyTriton ({err.name or err}); install it with: pip install "
                              "'siamdeploy[serve]' && pip install --no-deps nvidia-pytriton (see docs/serving.md)"
                              ) from None
    return triton, DynamicBatcher, ModelConfig, Tensor


class TritonServer:
    """A running Triton server with the tracking model (``stop()`` ends it and its child processes)."""

    def __init__(self, triton: Any, table: StreamTable, address: ServerAddress) -> None:
        self.triton, self.table, self.address = triton, table, address
        self._stopped = False
        self._sweeper = threading.Thread(target=self._sweep, name="siamdeploy-expiry", daemon=True)
        self._wake = threading.Event()
        self._sweeper.start()

    def _sweep(self) -> None:
        """Expire idle streams even while no request comes (their kernels are freed)."""
        period = max(0.05, min(self.table.timeout_s / 4.0, 5.0))
        while not self._wake.wait(period):
            with self.table.lock:
                self.table.expire()

    def is_alive(self) -> bool:
        return not self._stopped and bool(self.triton.is_alive())

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        self.triton.stop()
        self.table.close_all()

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(table: StreamTable, address: ServerAddress, max_batch: int = 32, queue_delay_us: int = 2000,
                 exit_timeout_s: int = 5) -> TritonServer:
    """Start Triton with the tracking model on ``address``; returns once the model is ready."""
    if not 1 <= max_batch <= 1024:
        raise InputError(f"--max-batch must be 1..1024, got {max_batch}")
    if queue_delay_us < 0:
        raise InputError(f"--queue-delay-us must be >= 0, got {queue_delay_us}")
    check_ports(address)
    triton_mod, DynamicBatcher, ModelConfig, Tensor = _import_pytriton()
    prepare_server_environment()
    config = triton_mod.TritonConfig(
        http_address=address.host, http_port=address.http_port, grpc_address=address.host,
        grpc_port=address.grpc_port, metrics_address=address.host, metrics_port=address.metrics_port,
        allow_gpu_metrics=False, exit_timeout_secs=exit_timeout_s, log_verbose=0)
    inputs = [Tensor(name=P.IN_STREAM, dtype=np.bytes_, shape=(1,)),
              Tensor(name=P.IN_IMAGE, dtype=np.uint8, shape=(-1, -1, -1), optional=True),
              Tensor(name=P.IN_JPEG, dtype=np.bytes_, shape=(1,), optional=True),
              Tensor(name=P.IN_BOX, dtype=np.float64, shape=(4,), optional=True),
              Tensor(name=P.IN_CLOSE, dtype=np.uint8, shape=(1,), optional=True)]
    outputs = [Tensor(name=P.OUT_BOX, dtype=np.float64, shape=(4,)),
               Tensor(name=P.OUT_SCORE, dtype=np.float32, shape=(1,)),
               Tensor(name=P.OUT_POLYGON, dtype=np.float64, shape=(8,)),
               Tensor(name=P.OUT_ERROR, dtype=np.bytes_, shape=(1,)),
               Tensor(name=P.OUT_INFO, dtype=np.bytes_, shape=(1,))]

    def infer(requests: Sequence[Mapping[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        return table.handle(requests)

    triton = triton_mod.Triton(config=config)
    try:
        triton.bind(P.MODEL_NAME, infer, inputs=inputs, outputs=outputs,
                    config=ModelConfig(max_batch_size=max_batch,
                                       batcher=DynamicBatcher(max_queue_delay_microseconds=queue_delay_us)),
                    strict=False)
        triton.run()
    except BaseException:
        triton.stop()
        raise
    return TritonServer(triton, table, address)
