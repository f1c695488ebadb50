"""The server's stream table without Triton: batches of raw requests -> responses (siamdeploy.serve.streams).

Every stream's boxes equal a local tracker's on the same frames; a malformed request in a batch gets its own
error response and the others are served; idle streams expire; --max-streams is enforced.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import siamdeploy
from siamdeploy.errors import InputError
from siamdeploy.serve import protocol as P
from siamdeploy.serve.streams import StreamTable
from siamdeploy.synthetic import generate_sequence


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def reference():
    ref = siamdeploy.reference_model("siamrpn_alex_dwxcorr")
    tracker = siamdeploy.load_tracker(ref.checkpoint, **ref.load_args())
    yield tracker
    tracker.close()


def _req(stream: str, frame: np.ndarray | None = None, box=None, jpeg: bytes | None = None, close: bool = False):
    req = {P.IN_STREAM: np.array([[stream.encode()]], dtype=np.object_)}
    if frame is not None:
        req[P.IN_IMAGE] = frame[None]
    if jpeg is not None:
        req[P.IN_JPEG] = np.array([[jpeg]], dtype=np.object_)
    if box is not None:
        req[P.IN_BOX] = np.asarray(box, np.float64).reshape(1, 4)
    if close:
        req[P.IN_CLOSE] = np.ones((1, 1), np.uint8)
    return req


def _error(resp) -> str:
    return resp[P.OUT_ERROR][0, 0].decode()


def _table(reference, **kw) -> StreamTable:
    return StreamTable(reference.engine, reference.params, reference.name, **kw)


def test_streams_in_one_batch_equal_local_runs(reference):
    seqs = [generate_sequence(seed=s, num_frames=6) for s in (1, 2, 3)]
    table = _table(reference)
    opened = table.handle([_req(f"s{i}", q.frames[0], q.boxes[0]) for i, q in enumerate(seqs)])
    assert [_error(r) for r in opened] == ["", "", ""]
    assert opened[0][P.OUT_INFO][0, 0]  # the model description comes with an open
    remote = [[], [], []]
    for t in range(1, 6):
        # every batch carries all streams, in a different order each frame
        order = [(t + k) % 3 for k in range(3)]
        out = table.handle([_req(f"s{i}", seqs[i].frames[t]) for i in order])
        for i, resp in zip(order, out):
            assert _error(resp) == ""
            remote[i].append(resp[P.OUT_BOX][0])
    assert table.stats.search_groups[3] == 5  # one track_together call for the three streams per frame
    for i, seq in enumerate(seqs):
        reference.init(seq.frames[0], seq.boxes[0])
        local = np.array([reference.track(f).bbox for f in seq.frames[1:]])
        np.testing.assert_allclose(np.array(remote[i]), local, atol=1e-3)


def test_bad_requests_get_their_own_errors_and_the_rest_is_served(reference):
    seq = generate_sequence(seed=4, num_frames=3)
    table = _table(reference)
    table.handle([_req("good", seq.frames[0], seq.boxes[0])])
    frame = seq.frames[1]
    batch = [
        _req("good", frame),
        _req("never-opened", frame),
        _req("bad-jpeg", jpeg=b"not an image", box=(1, 1, 10, 10)),
        _req("outside", frame, box=(5000, 5000, 10, 10)),
        {P.IN_STREAM: np.array([[b"float"]], dtype=np.object_), P.IN_IMAGE: frame[None].astype(np.float32)},
        _req("no-frame"),
        {P.IN_IMAGE: frame[None]},
        _req("twochannels", frame[..., :2], box=(1, 1, 10, 10)),
    ]
    out = table.handle(batch)
    errors = [_error(r) for r in out]
    assert errors[0] == ""
    assert "unknown stream 'never-opened'" in errors[1]
    assert "not an image" in errors[2]
    assert "outside" in errors[3]
    assert "uint8" in errors[4]
    assert "no frame" in errors[5]
    assert "STREAM is missing" in errors[6]
    assert "HxWx3" in errors[7]
    assert all(np.isnan(r[P.OUT_BOX]).all() for r in out[1:])
    reference.init(seq.frames[0], seq.boxes[0])
    np.testing.assert_allclose(out[0][P.OUT_BOX][0], reference.track(frame).bbox, atol=1e-3)
    assert "outside" not in table.streams and "bad-jpeg" not in table.streams


def test_jpeg_frames_track_like_decoded_frames(reference):
    seq = generate_sequence(seed=5, num_frames=3)
    table = _table(reference)
    jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in seq.frames]
    table.handle([_req("j", jpeg=jpegs[0], box=seq.boxes[0])])
    got = [table.handle([_req("j", jpeg=j)])[0][P.OUT_BOX][0] for j in jpegs[1:]]
    decoded = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR) for j in jpegs]
    reference.init(decoded[0], seq.boxes[0])
    np.testing.assert_allclose(np.array(got), [reference.track(f).bbox for f in decoded[1:]], atol=1e-3)


def test_close_expiry_and_max_streams(reference):
    seq = generate_sequence(seed=6, num_frames=3)
    clock = Clock()
    table = _table(reference, max_streams=2, timeout_s=10.0, clock=clock)
    f0, box = seq.frames[0], seq.boxes[0]
    assert [_error(r) for r in table.handle([_req("a", f0, box), _req("b", f0, box)])] == ["", ""]
    third = _error(table.handle([_req("c", f0, box)])[0])
    assert "maximum of 2 streams" in third and "--max-streams" in third
    assert _error(table.handle([_req("a", f0, box)])[0]) == ""  # re-opening a held stream is not a new one
    assert _error(table.handle([_req("a", close=True)])[0]) == ""
    assert "was closed" in _error(table.handle([_req("a", seq.frames[1])])[0])
    assert _error(table.handle([_req("c", f0, box)])[0]) == ""  # the closed stream's place is free
    clock.now = 5.0
    assert _error(table.handle([_req("c", seq.frames[1])])[0]) == ""
    clock.now = 12.0  # b idle 12 s (> 10), c idle 7 s
    assert table.expire() == ["b"]
    assert "expired after 10 s" in _error(table.handle([_req("b", seq.frames[2])])[0])
    assert _error(table.handle([_req("c", seq.frames[2])])[0]) == ""
    assert table.stats.expired == 1 and set(table.streams) == {"c"}


def test_same_stream_twice_in_a_batch_is_served_in_order(reference):
    seq = generate_sequence(seed=7, num_frames=3)
    table = _table(reference)
    table.handle([_req("s", seq.frames[0], seq.boxes[0])])
    out = table.handle([_req("s", seq.frames[1]), _req("s", seq.frames[2])])
    reference.init(seq.frames[0], seq.boxes[0])
    local = [reference.track(f).bbox for f in seq.frames[1:]]
    np.testing.assert_allclose(np.array([r[P.OUT_BOX][0] for r in out]), local, atol=1e-3)


def test_limits_are_checked(reference):
    with pytest.raises(InputError, match="--max-streams"):
        _table(reference, max_streams=0)
    with pytest.raises(InputError, match="--stream-timeout"):
        _table(reference, timeout_s=0)


def test_polygons_travel_through_the_response():
    from siamdeploy.runtime.types import TrackResult
    from siamdeploy.serve.client import _result
    from siamdeploy.serve.streams import _response

    poly = np.array([[10.5, 20.25], [40.0, 21.0], [39.0, 50.0], [9.0, 49.5]])
    out = _response(TrackResult(bbox=(9.0, 20.25, 31.0, 29.75), score=0.75, polygon=poly))
    back = _result({k: v[0] for k, v in out.items()})
    np.testing.assert_array_equal(back.polygon, poly)
    assert back.bbox == (9.0, 20.25, 31.0, 29.75) and back.score == 0.75
    plain = _result({k: v[0] for k, v in _response(TrackResult(bbox=(1, 2, 3, 4), score=0.5)).items()})
    assert plain.polygon is None


def test_import_siamdeploy_needs_no_serving_packages():
    import subprocess
    import sys

    code = ("import sys, siamdeploy, siamdeploy.serve; from siamdeploy.serve import protocol; "
            "bad = [m for m in ('tritonclient', 'pytriton') if m in sys.modules]; sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=str(__import__("pathlib").Path(__file__).parents[2])
                          ).returncode == 0


def test_serve_is_a_subcommand():
    from siamdeploy.cli import SUBCOMMANDS
    from siamdeploy.serve.__main__ import build_parser

    assert SUBCOMMANDS["serve"][0] == "siamdeploy.serve.__main__"
    args = build_parser().parse_args(["model.pth"])
    assert args.host == "127.0.0.1" and args.max_batch == 32
