"""``python -m siamdeploy.serve`` on free loopback ports, driven by ``siamdeploy.serve.Client``.

A few concurrent streams are compared with local runs of the same frames (same backend, boxes within
1e-3 px); malformed requests get error responses while the server keeps serving; streams expire; the
stream limit holds; SIGTERM stops the server and every process it started.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("pytriton", reason="PyTriton is not installed (bash scripts/install.sh dev installs it)")
pytest.importorskip("tritonclient", reason="tritonclient is not installed (pip install 'siamdeploy[serve]')")

import siamdeploy  # noqa: E402
from siamdeploy.serve import Client, ServeError  # noqa: E402
from siamdeploy.serve.process import ServerProcess  # noqa: E402
from siamdeploy.synthetic import generate_sequence  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def server():
    ref = siamdeploy.reference_model("siamrpn_alex_dwxcorr")
    srv = ServerProcess(ref.checkpoint, ["--config", ref.config, "--max-streams", "4", "--stream-timeout", "6",
                                         "--queue-delay-us", "20000"], cwd=ROOT)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def local():
    ref = siamdeploy.reference_model("siamrpn_alex_dwxcorr")
    tracker = siamdeploy.load_tracker(ref.checkpoint, **ref.load_args())
    yield tracker
    tracker.close()


def _remote_run(url: str, seq) -> np.ndarray:
    with Client(url) as client, client.open(seq.frames[0], seq.boxes[0]) as stream:
        return np.array([stream.track(f).bbox for f in seq.frames[1:]])


def test_concurrent_streams_equal_local_runs(server, local):
    seqs = [generate_sequence(seed=s, num_frames=10) for s in (11, 12, 13)]
    with ThreadPoolExecutor(len(seqs)) as pool:
        remote = list(pool.map(lambda q: _remote_run(server.url, q), seqs))
    for seq, boxes in zip(seqs, remote):
        local.init(seq.frames[0], seq.boxes[0])
        expected = np.array([local.track(f).bbox for f in seq.frames[1:]])
        np.testing.assert_allclose(boxes, expected, atol=1e-3)


def test_error_responses_and_the_server_keeps_serving(server, local):
    seq = generate_sequence(seed=14, num_frames=4)
    with Client(server.url) as client:
        stream = client.open(seq.frames[0], seq.boxes[0])
        with pytest.raises(ServeError, match="unknown stream 'ghost'"):
            client.request("ghost", image=seq.frames[1])
        with pytest.raises(ServeError, match="not an image"):
            client.open(b"\xff\xd8 broken jpeg", (1, 1, 10, 10))
        with pytest.raises(ServeError, match="outside"):
            client.open(seq.frames[0], (9000, 9000, 4, 4))
        with pytest.raises(ServeError, match="UINT8"):  # refused by Triton itself: wrong dtype
            client.request("wrong", image=seq.frames[0].astype(np.float32), box=(1, 1, 10, 10))
        with pytest.raises(ServeError, match="HxWx3"):
            client.request("wrong", image=seq.frames[0][..., :2], box=(1, 1, 10, 10))
        with pytest.raises(ServeError, match="no frame"):
            client.request(stream.stream_id)
        got = [stream.track(f).bbox for f in seq.frames[1:]]
        stream.close()
        with pytest.raises(ServeError, match="closed"):
            stream.track(seq.frames[1])
        with pytest.raises(ServeError, match="was closed"):
            client.request(stream.stream_id, image=seq.frames[1])
    local.init(seq.frames[0], seq.boxes[0])
    np.testing.assert_allclose(np.array(got), [local.track(f).bbox for f in seq.frames[1:]], atol=1e-3)


def test_max_streams_and_expiry(server):
    seq = generate_sequence(seed=15, num_frames=2)
    with Client(server.url) as client:
        streams = [client.open(seq.frames[0], seq.boxes[0]) for _ in range(4)]
        with pytest.raises(ServeError, match="maximum of 4 streams"):
            client.open(seq.frames[0], seq.boxes[0])
        streams[0].close()
        extra = client.open(seq.frames[0], seq.boxes[0])  # a closed stream frees its place
        time.sleep(8)  # --stream-timeout 6: every stream has expired
        with pytest.raises(ServeError, match="expired after 6 s"):
            extra.track(seq.frames[1])
        fresh = [client.open(seq.frames[0], seq.boxes[0]) for _ in range(4)]  # the places are free again
        for s in fresh:
            s.close()


def test_run_cli_through_the_server_equals_a_local_run(server, tmp_path):
    outs = {}
    for name, extra in (("remote", ["--server", server.url]), ("local", [])):
        out = tmp_path / name
        run = subprocess.run([sys.executable, "-m", "siamdeploy.run", "demo", "--frames", "6", "--no-display",
                              "--save", "none", "--out", str(out), "-q", *extra], cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        outs[name] = np.loadtxt(out / "results.txt", delimiter=",")
        if name == "remote":
            assert f"server {server.url}" in run.stdout
    assert outs["remote"].shape == (6, 4)
    np.testing.assert_allclose(outs["remote"], outs["local"], atol=1e-3)
    refused = subprocess.run([sys.executable, "-m", "siamdeploy.run", "demo", "--server", "127.0.0.1:1",
                              "--no-display", "--save", "none", "--out", str(tmp_path / "x"), "-q"], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith("error: cannot reach a tracking server at 127.0.0.1:1")


def test_busy_port_is_one_line_and_sigterm_leaves_no_process(server):
    ref = siamdeploy.reference_model("siamrpn_alex_dwxcorr")
    busy = subprocess.run([sys.executable, "-m", "siamdeploy.serve", ref.checkpoint, "--http-port",
                           str(server.ports[0])], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert busy.returncode == 1
    assert busy.stderr.strip().splitlines()[-1].startswith(f"error: port {server.ports[0]} (--http-port) is in use")
    assert server.proc.poll() is None
    code, left = server.stop()
    assert code == 143, "".join(server.lines[-20:])
    assert not left, f"processes left after SIGTERM: {sorted(left)}"
    assert any(line.startswith("siamdeploy.serve stopped:") for line in server.lines)
