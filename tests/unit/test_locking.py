"""The generic cross-process lock (siamdeploy.locking) on its own: exclusion, timeout, dead holders."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from siamdeploy.errors import SiamDeployError
from siamdeploy.locking import FileLock, LockTimeout, exclusive_lock


def test_lock_excludes_and_releases(tmp_path) -> None:
    path = str(tmp_path / "sub" / "x.lock")
    order: list[str] = []
    with exclusive_lock(path, timeout=5, poll=0.01) as lock:
        assert os.path.isfile(path) and json.load(open(path))["token"] == lock.token

        def other() -> None:
            with exclusive_lock(path, timeout=5, poll=0.01):
                order.append("other")

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.2)
        order.append("first")  # the other holder is still waiting
    thread.join(5)
    assert order == ["first", "other"] and not os.path.exists(path)


def test_live_holder_times_out_with_one_line(tmp_path) -> None:
    path = str(tmp_path / "x.lock")
    with exclusive_lock(path):
        with pytest.raises(LockTimeout, match="waiting for another process that holds the cache") as info:
            with exclusive_lock(path, timeout=0.2, poll=0.02, what="the cache"):
                pass
    assert isinstance(info.value, SiamDeployError) and "\n" not in str(info.value) and path in str(info.value)


def test_dead_holder_is_broken(tmp_path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = str(tmp_path / "x.lock")
    json.dump({"pid": dead.pid, "host": socket.gethostname(), "token": "t", "created": "then"}, open(path, "w"))
    with exclusive_lock(path, timeout=2, poll=0.01) as lock:
        assert json.load(open(path))["token"] == lock.token


def test_release_leaves_a_lock_that_changed_hands(tmp_path) -> None:
    path = str(tmp_path / "x.lock")
    lock = FileLock(path)
    lock.acquire()
    json.dump({"pid": 1, "host": "elsewhere", "token": "someone else"}, open(path, "w"))  # broken and retaken
    lock.release()
    assert os.path.exists(path) and json.load(open(path))["token"] == "someone else"
