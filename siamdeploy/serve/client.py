"""``Client``: track streams through a ``python -m siamdeploy.serve`` server (tritonclient underneath).

```python
from siamdeploy.serve import Client

with Client("127.0.0.1:8000") as client:
    with client.open(first_frame, (x, y, w, h)) as stream:   # the stream's kernels and state live on the server
        for frame in frames:
            result = stream.track(frame)                     # TrackResult: bbox, score, polygon (SiamMask)
```

Every refusal of the server (unknown or expired stream, a bad frame or box, the stream limit) and every
transport failure raises :class:`ServeError` (a :class:`siamdeploy.SiamDeployError`) with the server's message.
One client holds one connection; use one client per thread.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DependencyError, ServeError
from ..runtime.types import TrackResult
from . import protocol as P

__all__ = ["Client", "Session", "ServeError"]


def _tritonclient(protocol: str) -> Any:
    try:
        if protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
        from tritonclient.utils import InferenceServerException
    except ImportError as err:
        raise DependencyError(f"the serving client needs tritonclient ({err.name or err}); install it with: pip "
                              "install 'siamdeploy[serve]'") from None
    return module, InferenceServerException


class Client:
    """A connection to a siamdeploy tracking server.

    url: ``host:port`` of its HTTP endpoint (``127.0.0.1:8000``), or ``grpc://host:port`` for gRPC (8001).
    timeout_s: network timeout per request, seconds.
    """

    def __init__(self, url: str = "127.0.0.1:8000", timeout_s: float = 60.0) -> None:
        self.protocol = "grpc" if url.startswith("grpc://") else "http"
        self.url = url.split("://", 1)[1] if "://" in url else url
        self._module, self._exc = _tritonclient(self.protocol)
        try:
            if self.protocol == "grpc":
                self._client = self._module.InferenceServerClient(self.url)
            else:
                self._client = self._module.InferenceServerClient(self.url, connection_timeout=timeout_s,
                                                                  network_timeout=timeout_s)
        except Exception as err:  # tritonclient raises plain exceptions for a malformed url
            raise ServeError(f"cannot make a client for '{url}': {err}; pass host:port") from None
        self.timeout_s = timeout_s
        self.info: dict[str, Any] = {}
        self.sessions: dict[str, Session] = {}  # open streams, closed by close()

    # ------------------------------------------------------------ raw requests

    def request(self, stream: str, image: np.ndarray | None = None, jpeg: bytes | None = None,
                box: Sequence[float] | None = None, close: bool = False) -> dict[str, np.ndarray]:
        """Send one raw request (see :mod:`siamdeploy.serve.protocol`); returns the outputs (batch dim dropped).
        Raises :class:`ServeError` with the server's message when it answers with an error."""
        inputs = [self._input(P.IN_STREAM, np.array([[stream.encode("utf-8")]], dtype=np.object_))]
        if image is not None:
            arr = np.ascontiguousarray(image)
            inputs.append(self._input(P.IN_IMAGE, arr[None]))
        if jpeg is not None:
            inputs.append(self._input(P.IN_JPEG, np.array([[bytes(jpeg)]], dtype=np.object_)))
        if box is not None:
            inputs.append(self._input(P.IN_BOX, np.asarray(box, np.float64).reshape(1, -1)))
        if close:
            inputs.append(self._input(P.IN_CLOSE, np.ones((1, 1), np.uint8)))
        if self.protocol == "grpc":
            outputs = [self._module.InferRequestedOutput(name) for name in P.OUTPUTS]
        else:
            outputs = [self._module.InferRequestedOutput(name, binary_data=True) for name in P.OUTPUTS]
        try:
            result = self._client.infer(P.MODEL_NAME, inputs, outputs=outputs,
                                        **({"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}))
        except self._exc as err:
            raise ServeError(f"the server at {self.url} refused the request: {err.message()}") from None
        except (ConnectionError, OSError) as err:
            raise ServeError(f"cannot reach a tracking server at {self.url} ({err}); start one with python -m "
                             "siamdeploy.serve MODEL, or check the address") from None
        out = {name: result.as_numpy(name)[0] for name in P.OUTPUTS}
        error = out[P.OUT_ERROR][0]
        error = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
        if error:
            raise ServeError(error)
        return out

    def _input(self, name: str, array: np.ndarray) -> Any:
        from tritonclient.utils import np_to_triton_dtype

        dtype = "BYTES" if array.dtype == np.object_ else np_to_triton_dtype(array.dtype)
        item = self._module.InferInput(name, list(array.shape), dtype)
        if self.protocol == "grpc":
            item.set_data_from_numpy(array)
        else:
            item.set_data_from_numpy(array, binary_data=True)
        return item

    # ------------------------------------------------------------ streams

    def open(self, frame: np.ndarray | bytes, box: Sequence[float], stream_id: str | None = None) -> Session:
        """Open a stream on the server with its first frame (``HxWx3`` uint8 BGR, or encoded image bytes) and
        the target's box ``(x, y, w, h)``; returns its :class:`Session`. ``stream_id``: default a random one."""
        sid = stream_id or uuid.uuid4().hex
        out = self.request(sid, box=box, **_frame_args(frame))
        info = out[P.OUT_INFO][0]
        if info:
            self.info = json.loads(info.decode("utf-8") if isinstance(info, bytes) else str(info))
        session = Session(self, sid, _result(out))
        self.sessions[sid] = session
        return session

    def ready(self) -> bool:
        """True when the server answers and its tracking model is ready."""
        try:
            return bool(self._client.is_server_live() and self._client.is_model_ready(P.MODEL_NAME))
        except Exception:  # connection refused while it starts, and similar
            return False

    def close(self) -> None:
        """Close every stream this client opened (their state is freed on the server), then the connection."""
        for session in list(self.sessions.values()):
            try:
                session.close()
            except ServeError:  # already gone on the server (expired): nothing to free
                pass
        try:
            self._client.close()
        except Exception:  # closing a broken connection: nothing left to release
            pass

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Session:
    """One stream on a server: ``track(frame) -> TrackResult`` per frame, ``close()`` at the end (frees its
    state on the server; a stream left open expires after the server's ``--stream-timeout``)."""

    def __init__(self, client: Client, stream_id: str, first: TrackResult) -> None:
        self.client, self.stream_id, self.first = client, stream_id, first
        self.closed = False

    def track(self, frame: np.ndarray | bytes) -> TrackResult:
        """The target in the next frame (``HxWx3`` uint8 BGR, or encoded image bytes)."""
        if self.closed:
            raise ServeError(f"stream '{self.stream_id}' is closed; open a new one with client.open(frame, box)")
        return _result(self.client.request(self.stream_id, **_frame_args(frame)))

    def reinit(self, frame: np.ndarray | bytes, box: Sequence[float]) -> TrackResult:
        """Start the stream again on ``frame`` from ``box`` (same stream id)."""
        return _result(self.client.request(self.stream_id, box=box, **_frame_args(frame)))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.client.sessions.pop(self.stream_id, None)
        self.client.request(self.stream_id, close=True)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.close()
        except ServeError:
            if exc[0] is None:
                raise


def _frame_args(frame: np.ndarray | bytes) -> dict[str, Any]:
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return {"jpeg": bytes(frame)}
    if not isinstance(frame, np.ndarray):
        raise ServeError(f"frame must be a numpy array (HxWx3 uint8 BGR) or encoded image bytes, got "
                         f"{type(frame).__name__}")
    return {"image": frame}


def _result(out: dict[str, np.ndarray]) -> TrackResult:
    poly = np.asarray(out[P.OUT_POLYGON], np.float64)
    polygon = poly.reshape(4, 2) if np.isfinite(poly).all() else None
    box = tuple(float(v) for v in out[P.OUT_BOX])
    return TrackResult(bbox=box, score=float(out[P.OUT_SCORE][0]), polygon=polygon)  # type: ignore[arg-type]


class _ServerEngine:
    """What the run loop asks of a tracker's engine, for a tracker whose engine is on a server."""

    backend = "server"

    def __init__(self, client: Client) -> None:
        self.client = client
        self.search_calls = 0

    def describe(self) -> str:
        engine = self.client.info.get("engine", "?")
        return f"server {self.client.url} ({engine})"

    def close(self) -> None:
        self.client.close()


class RemoteTracker:
    """A single-target tracker whose network and state live on a server: ``init(frame, box)`` opens a stream,
    ``track(frame) -> TrackResult``, ``close()`` closes it. Used by ``python -m siamdeploy.run --server``.

    ``timings["engine"]``: the last request's round trip, seconds.
    """

    def __init__(self, client: Client) -> None:
        self.client = client
        self.engine = _ServerEngine(client)
        self.session: Session | None = None
        self.timings: dict[str, float] = {}

    @property
    def name(self) -> str:
        return str(self.client.info.get("preset", "?"))

    @property
    def reports_polygon(self) -> bool:
        """The server's tracker reports SiamMask polygons (known after :meth:`init`)."""
        return bool(self.client.info.get("polygon", False))

    @property
    def initialised(self) -> bool:
        return self.session is not None

    def init(self, frame: np.ndarray, box: Sequence[float]) -> None:
        if self.session is not None:
            self.session.reinit(frame, box)
            return
        self.session = self.client.open(frame, box)

    def track(self, frame: np.ndarray) -> TrackResult:
        if self.session is None:
            raise ServeError("track() called before init(); call tracker.init(frame, (x, y, w, h)) first")
        import time

        t0 = time.perf_counter()
        result = self.session.track(frame)
        self.engine.search_calls += 1  # one request: the server may batch it with other streams' requests
        self.timings = {"engine": time.perf_counter() - t0}
        return result

    def close(self) -> None:
        if self.session is not None:
            try:
                self.session.close()
            except ServeError:
                pass
            self.session = None
