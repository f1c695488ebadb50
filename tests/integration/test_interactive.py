"""The interactive window under a virtual display: select the target by dragging on the first frame, track,
quit with q. Needs Xvfb and xdotool (Debian: apt install xvfb xdotool); skipped without them."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import cv2
import pytest

from siamdeploy.synthetic import generate_sequence

pytestmark = pytest.mark.skipif(not (shutil.which("Xvfb") and shutil.which("xdotool")),
                                reason="needs Xvfb and xdotool (apt install xvfb xdotool)")


def _wait(predicate, timeout: float, what: str) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture()
def xvfb():
    display = f":{90 + os.getpid() % 50}"
    server = subprocess.Popen(["Xvfb", display, "-screen", "0", "800x600x24"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    try:
        yield display
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_select_track_quit(xvfb: str, tmp_path, random_checkpoint) -> None:
    video = str(tmp_path / "clip.avi")
    seq = generate_sequence(seed=4, num_frames=40, size=(480, 360))
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 10, (480, 360))
    for frame in seq.frames:
        writer.write(frame)
    writer.release()
    env = {**os.environ, "DISPLAY": xvfb}
    results = tmp_path / "out" / "results.txt"
    proc = subprocess.Popen([sys.executable, "-m", "siamdeploy.run", video, "--model", random_checkpoint("siamfc"),
                             "--out", str(tmp_path / "out")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)

    def xdo(*args: str) -> str:
        return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True).stdout.strip()

    try:
        _wait(lambda: xdo("search", "--name", "siamdeploy") != "", 180, "the window")
        window = xdo("search", "--name", "siamdeploy").splitlines()[0]
        time.sleep(1.0)
        # no window manager: the window sits at (0, 0), so screen = frame coordinates
        xdo("mousemove", "100", "80", "mousedown", "1", "mousemove", "130", "100", "mousemove", "160", "120",
            "mouseup", "1")
        xdo("key", "--window", window, "Return")
        _wait(lambda: results.exists() and len(results.read_text().splitlines()) >= 4, 240, "tracked frames")
        xdo("key", "--window", window, "q")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = results.read_text().splitlines()
    assert lines[0] == "100.0000,80.0000,60.0000,40.0000"  # the dragged box
    assert 4 <= len(lines) < 40  # quit before the end of the clip
    assert "stopped early (interrupted)" in out
