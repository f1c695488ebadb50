"""``ServerProcess``: ``python -m siamdeploy.serve`` as a child process on free loopback ports (benchmarks,
tests, scripts): waits for its ready line, stops it with SIGTERM and reports processes it left behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from ..errors import ServeError
from .server import free_port


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (read from /proc; empty where there is no /proc)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set()
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def alive(pid: int) -> bool:
    """``pid`` runs (a zombie does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class ServerProcess:
    """Start ``python -m siamdeploy.serve MODEL ARGS`` on three free 127.0.0.1 ports and wait until it is ready
    (``start_timeout_s``). ``url``: its HTTP endpoint; ``metrics_url``; ``lines``: its output so far."""

    def __init__(self, model: str, args: Sequence[str] = (), start_timeout_s: float = 180.0,
                 cwd: str | None = None) -> None:
        ports: list[int] = []
        while len(set(ports)) < 3:
            ports = [free_port() for _ in range(3)]
        self.ports = ports
        cmd = [sys.executable, "-m", "siamdeploy.serve", model, "--host", "127.0.0.1", "--http-port", str(ports[0]),
               "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2]), *args]
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(start_timeout_s) or self.proc.poll() is not None:
            self.stop()
            raise ServeError("the server did not start: " + " | ".join(line.strip() for line in self.lines[-5:]))
        self.url = f"127.0.0.1:{ports[0]}"
        self.metrics_url = f"http://127.0.0.1:{ports[2]}/metrics"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("siamdeploy.serve ready"):
                self._ready.set()
        self._ready.set()

    def stop(self, timeout_s: float = 60.0) -> tuple[int, set[int]]:
        """SIGTERM, wait; returns the exit code and the pids of processes it started that still run."""
        below = descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(p) for p in below):
            time.sleep(0.2)
        return code, {p for p in below if alive(p)}

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
