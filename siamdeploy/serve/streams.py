"""The server's side of serving: every stream's tracker, and one batch of requests -> one response each.

This module knows nothing of Triton: :class:`StreamTable.handle` takes the requests of one batch as mappings
of input name -> numpy array (batch dimension 1 in front, as Triton delivers them) and returns one mapping of
output name -> array per request (see :mod:`siamdeploy.serve.protocol`). Every stream has its own tracker;
all trackers share one engine, and the streams tracked in one batch run one
:func:`siamdeploy.runtime.batch.track_together` call (one batched search per search size).
"""
from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ..config import TrackParams
from ..engine.base import Engine
from ..errors import InputError, SiamDeployError
from ..runtime import Tracker, TrackResult, make_tracker
from ..runtime.batch import track_together
from ..runtime.frames import as_bgr
from . import protocol as P

log = logging.getLogger(__name__)

FORGET = 4096  # closed / expired stream ids remembered for the message of a late request


@dataclass
class _Stream:
    tracker: Tracker
    last_used: float
    frames: int = 0


@dataclass
class _Item:
    """One request of a batch, parsed: ``kind`` is ``open`` | ``track`` | ``close`` | ``bad``."""

    index: int
    kind: str
    stream: str = ""
    frame: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    error: str = ""


@dataclass
class ServeStats:
    """Counts since the server started: requests by outcome, Triton batch sizes, track_together group sizes."""

    requests: int = 0
    errors: int = 0
    opened: int = 0
    closed: int = 0
    expired: int = 0
    batch_sizes: Counter = field(default_factory=Counter)
    search_groups: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "opened": self.opened, "closed": self.closed,
                "expired": self.expired, "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
                "tracked_together": {str(k): v for k, v in sorted(self.search_groups.items())}}


def _text(value: np.ndarray | None) -> str | None:
    """The first element of a BYTES tensor as text (None when absent)."""
    if value is None:
        return None
    flat = np.asarray(value).reshape(-1)
    if flat.size != 1:
        raise InputError(f"expected one value, got {flat.size}; send one stream id per request")
    raw = flat[0]
    if isinstance(raw, (bytes, np.bytes_)):
        return bytes(raw).decode("utf-8", errors="strict")
    return str(raw)


def _decode_image(data: np.ndarray) -> np.ndarray:
    flat = np.asarray(data).reshape(-1)
    if flat.size != 1 or not isinstance(flat[0], (bytes, np.bytes_)):
        raise InputError("JPEG must hold one encoded image (bytes); send the file's bytes as one BYTES element")
    buf = np.frombuffer(bytes(flat[0]), np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise InputError(f"JPEG: the {buf.size} bytes sent are not an image OpenCV can decode (JPEG, PNG); send an "
                         "encoded image, or the frame itself as IMAGE (uint8 HxWx3)")
    return img


def _frame(req: Mapping[str, np.ndarray]) -> np.ndarray | None:
    image, jpeg = req.get(P.IN_IMAGE), req.get(P.IN_JPEG)
    if image is not None and jpeg is not None:
        raise InputError("the request has both IMAGE and JPEG; send the frame once")
    if jpeg is not None:
        return _decode_image(jpeg)
    if image is None:
        return None
    arr = np.asarray(image)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.dtype != np.uint8:
        raise InputError(f"IMAGE must be uint8, got {arr.dtype}; send the frame as OpenCV reads it (HxWx3 uint8 BGR)")
    return as_bgr(arr)


def _box(req: Mapping[str, np.ndarray]) -> tuple[float, float, float, float] | None:
    value = req.get(P.IN_BOX)
    if value is None:
        return None
    flat = np.asarray(value, np.float64).reshape(-1)
    if flat.size != 4:
        raise InputError(f"BOX must be 4 numbers (x, y, w, h), got {flat.size}")
    return tuple(float(v) for v in flat)  # type: ignore[return-value]


class StreamTable:
    """Every open stream's tracker over one shared ``engine``; thread-safe (one lock around each batch).

    max_streams: open streams at most (an open beyond it is refused with an error response); timeout_s: a
    stream unused this long (seconds) is dropped; ``clock``: the time source (seconds, monotonic).
    """

    def __init__(self, engine: Engine, params: TrackParams, name: str, max_streams: int = 64,
                 timeout_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        if max_streams < 1:
            raise InputError(f"--max-streams must be at least 1, got {max_streams}")
        if not timeout_s > 0:
            raise InputError(f"--stream-timeout must be positive seconds, got {timeout_s}")
        self.engine, self.params, self.name = engine, params, name
        self.max_streams, self.timeout_s, self.clock = max_streams, float(timeout_s), clock
        self.streams: dict[str, _Stream] = {}
        self.gone: OrderedDict[str, str] = OrderedDict()
        self.stats = ServeStats()
        self.lock = threading.Lock()
        from ..runtime.trackers.mask import MaskTracker

        self.polygons = issubclass(type(make_tracker(engine, params, name)), MaskTracker)
        self.info = json.dumps({"preset": name, "engine": engine.describe(), "polygon": self.polygons})

    # ------------------------------------------------------------ bookkeeping

    def _forget(self, stream: str, why: str) -> None:
        self.streams.pop(stream, None)
        self.gone[stream] = why
        self.gone.move_to_end(stream)
        while len(self.gone) > FORGET:
            self.gone.popitem(last=False)

    def expire(self) -> list[str]:
        """Drop every stream idle for longer than the timeout; returns their ids."""
        now = self.clock()
        old = [sid for sid, s in self.streams.items() if now - s.last_used > self.timeout_s]
        for sid in old:
            self._forget(sid, f"expired after {self.timeout_s:g} s without a request")
        self.stats.expired += len(old)
        if old:
            log.info("expired %d idle stream(s): %s", len(old), ", ".join(old[:8]))
        return old

    def _unknown(self, stream: str) -> str:
        why = self.gone.get(stream)
        if why is not None:
            return f"stream '{stream}' {why}; open it again with an init box (BOX)"
        return (f"unknown stream '{stream}': it was never opened on this server; send its first frame with an "
                "init box (BOX)")

    # ------------------------------------------------------------ one batch

    def _parse(self, index: int, req: Mapping[str, np.ndarray]) -> _Item:
        try:
            stream = _text(req.get(P.IN_STREAM))
            if not stream:
                raise InputError("STREAM is missing or empty; give every request its stream id")
            if len(stream) > P.MAX_STREAM_ID:
                raise InputError(f"stream id is {len(stream)} characters long; use at most {P.MAX_STREAM_ID}")
            close = req.get(P.IN_CLOSE)
            if close is not None and np.asarray(close).reshape(-1).any():
                return _Item(index, "close", stream)
            frame = _frame(req)
            box = _box(req)
            if frame is None:
                raise InputError(f"stream '{stream}': the request has no frame; send IMAGE (uint8 HxWx3) or JPEG")
            return _Item(index, "open" if box is not None else "track", stream, frame, box)
        except UnicodeDecodeError:
            return _Item(index, "bad", error="STREAM is not UTF-8 text; send the stream id as UTF-8")
        except SiamDeployError as err:
            return _Item(index, "bad", error=str(err))

    def handle(self, requests: Sequence[Mapping[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """One Triton batch: ``requests[i]`` -> ``responses[i]``. Never raises for a bad request: its response
        carries the message in ``ERROR`` and the others are served."""
        items = [self._parse(i, dict(r.items())) for i, r in enumerate(requests)]
        responses: list[dict[str, np.ndarray] | None] = [None] * len(items)
        with self.lock:
            self.stats.requests += len(items)
            self.stats.batch_sizes[len(items)] += 1
            self.expire()
            pending: list[_Item] = []
            for item in items:
                if item.kind == "bad":
                    responses[item.index] = _error(item.error)
                    continue
                if any(p.stream == item.stream for p in pending):
                    self._track(pending, responses)  # a stream's requests are served in the order they came
                    pending = []
                if item.kind == "track":
                    pending.append(item)
                elif item.kind == "close":
                    responses[item.index] = self._close(item)
                else:
                    responses[item.index] = self._open(item)
            self._track(pending, responses)
            self.stats.errors += sum(1 for r in responses if r is not None and r[P.OUT_ERROR][0, 0])
        return [r if r is not None else _error("internal error: no response was made") for r in responses]

    def _close(self, item: _Item) -> dict[str, np.ndarray]:
        if item.stream not in self.streams:
            return _error(self._unknown(item.stream))
        self._forget(item.stream, "was closed")
        self.stats.closed += 1
        return _response(None)

    def _open(self, item: _Item) -> dict[str, np.ndarray]:
        assert item.frame is not None and item.box is not None
        if item.stream not in self.streams and len(self.streams) >= self.max_streams:
            return _error(f"stream '{item.stream}' refused: the server holds its maximum of {self.max_streams} "
                          f"streams (--max-streams); close a stream, wait for idle ones to expire "
                          f"({self.timeout_s:g} s), or use another server")
        tracker = make_tracker(self.engine, self.params, self.name)
        try:
            tracker.init(item.frame, item.box)
        except SiamDeployError as err:
            return _error(f"stream '{item.stream}': {err}")
        self.streams[item.stream] = _Stream(tracker, self.clock())
        self.gone.pop(item.stream, None)
        self.stats.opened += 1
        polygon = None
        if self.polygons:
            x, y, w, h = item.box
            polygon = np.array([x, y, x + w, y, x + w, y + h, x, y + h], np.float64)
        return _response(TrackResult(bbox=item.box, score=1.0, polygon=polygon), info=self.info)

    def _track(self, pending: list[_Item], responses: list[dict[str, np.ndarray] | None]) -> None:
        ready: list[tuple[_Item, _Stream]] = []
        for item in pending:
            stream = self.streams.get(item.stream)
            if stream is None:
                responses[item.index] = _error(self._unknown(item.stream))
            else:
                ready.append((item, stream))
        if not ready:
            return
        self.stats.search_groups[len(ready)] += 1
        try:
            results = track_together([s.tracker for _, s in ready], [i.frame for i, _ in ready])  # type: ignore
        except SiamDeployError as err:
            for item, _ in ready:
                responses[item.index] = _error(f"stream '{item.stream}': {err}")
            return
        except Exception:  # a bug: answer every request of the call, log it, keep serving
            log.error("tracking failed:\n%s", traceback.format_exc())
            for item, _ in ready:
                responses[item.index] = _error("internal error while tracking (see the server log)")
            return
        now = self.clock()
        for (item, stream), result in zip(ready, results):
            stream.last_used = now
            stream.frames += 1
            responses[item.index] = _response(result)

    def close_all(self) -> None:
        with self.lock:
            for sid in list(self.streams):
                self._forget(sid, "was closed (server shut down)")


def _bytes(text: str) -> np.ndarray:
    return np.array([[text.encode("utf-8")]], dtype=np.object_)


def _response(result: TrackResult | None, info: str = "") -> dict[str, np.ndarray]:
    if result is None:
        box, score, poly = np.full(4, np.nan), np.nan, np.full(8, np.nan)
    else:
        box, score = np.asarray(result.bbox, np.float64), float(result.score)
        poly = np.asarray(result.polygon, np.float64).reshape(-1) if result.polygon is not None else np.full(8, np.nan)
    return {P.OUT_BOX: box.astype(np.float64).reshape(1, 4), P.OUT_SCORE: np.array([[score]], np.float32),
            P.OUT_POLYGON: poly.astype(np.float64).reshape(1, 8), P.OUT_ERROR: _bytes(""), P.OUT_INFO: _bytes(info)}


def _error(message: str) -> dict[str, np.ndarray]:
    out = _response(None)
    out[P.OUT_ERROR] = _bytes(message)
    return out
