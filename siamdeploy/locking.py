"""One cross-process lock for every cache (TensorRT engines, on-the-fly exports).

``with exclusive_lock(path, timeout=600):`` creates ``path`` with ``os.open(O_CREAT | O_EXCL)`` and writes
``{pid, host, token, created}`` into it; a second process entering the same lock polls until the file is
gone. A lock whose holder is provably dead (same host, process gone) is broken at once; one older than
``stale_after`` seconds is broken whoever holds it (a build on another host that crashed). Breaking checks the
token again just before unlinking, so a lock that changed hands meanwhile is left alone.

Pure Python, no third-party imports; usable on any POSIX or Windows file system that honours ``O_EXCL``.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

from .errors import SiamDeployError

log = logging.getLogger(__name__)

DEFAULT_STALE_S = 3600.0    # a holder older than this (and not provably alive) is dead
DEFAULT_TIMEOUT_S = 3 * 3600.0


class LockTimeout(SiamDeployError):
    """Waited ``timeout`` seconds for a lock that a live process still holds."""


def _pid_alive(pid: int) -> bool:
    """True unless ``pid`` provably does not exist on this host (permission errors count as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class FileLock:
    """An exclusive lock file; see the module doc. Prefer :func:`exclusive_lock`.

    path: the lock file. timeout: seconds to wait for a live holder before :class:`LockTimeout`.
    stale_after: seconds after which any holder is presumed dead. poll: seconds between attempts.
    what: what the lock protects, for the messages.
    """

    def __init__(self, path: str, timeout: float = DEFAULT_TIMEOUT_S, stale_after: float = DEFAULT_STALE_S,
                 poll: float = 0.2, what: str = "") -> None:
        self.path = path
        self.timeout = timeout
        self.stale_after = stale_after
        self.poll = poll
        self.what = what or path
        self.token = uuid.uuid4().hex
        self.held = False

    def _info(self) -> dict[str, Any] | None:
        """The holder's record; None when there is no lock file, ``{}`` when it is unreadable."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # being written right now, or garbage
            return {}

    def _stale(self, info: dict[str, Any]) -> bool:
        try:
            age = time.time() - os.path.getmtime(self.path)
        except FileNotFoundError:
            return False
        if age > self.stale_after:
            return True
        if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int):
            return not _pid_alive(info["pid"])  # the holder died (a crashed build)
        return False

    def _break(self, info: dict[str, Any]) -> None:
        """Remove a stale lock, unless it changed hands since it was judged (token differs)."""
        again = self._info()
        if again is None or again.get("token") != info.get("token"):
            return
        log.warning("removing stale lock %s (held by pid %s on %s since %s)", self.path, info.get("pid"),
                    info.get("host"), info.get("created"))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def acquire(self) -> None:
        """Take the lock, waiting for a live holder (up to ``timeout``) and breaking a dead one."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        deadline = time.monotonic() + self.timeout
        told = False
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                info = self._info()
                if info is not None and self._stale(info):
                    self._break(info)
                    continue
                if time.monotonic() > deadline:
                    raise LockTimeout(f"gave up after {self.timeout:.0f} s waiting for another process that holds "
                                      f"{self.what} (lock {self.path}); if no such process runs, delete that "
                                      "file") from None
                if not told:
                    log.info("another process holds %s; waiting for it (lock %s)", self.what, self.path)
                    told = True
                time.sleep(self.poll)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(), "token": self.token,
                           "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}, fh)
            self.held = True
            return

    def release(self) -> None:
        """Remove the lock file if this object still holds it (never someone else's)."""
        if not self.held:
            return
        self.held = False
        info = self._info()
        if info is not None and info.get("token") == self.token:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def exclusive_lock(path: str, timeout: float = DEFAULT_TIMEOUT_S, stale_after: float = DEFAULT_STALE_S,
                   poll: float = 0.2, what: str = "") -> Iterator[FileLock]:
    """Hold the lock file ``path`` for the ``with`` block (see the module doc).

    timeout, stale_after, poll: seconds. Raises :class:`LockTimeout` (a :class:`SiamDeployError`) when a
    live holder keeps it longer than ``timeout``.
    """
    lock = FileLock(path, timeout=timeout, stale_after=stale_after, poll=poll, what=what)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
