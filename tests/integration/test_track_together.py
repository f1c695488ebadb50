"""Trackers sharing one engine, stepped together by ``track_together`` (one ``search_many`` per search size),
report exactly what each tracker reports alone: the seam under the multi-target tracker and the server."""
from __future__ import annotations

import numpy as np
import pytest

import siamdeploy
from siamdeploy.families import make_tracker
from siamdeploy.runtime.batch import track_together
from siamdeploy.synthetic import generate_sequence


@pytest.mark.parametrize("name", ["siamrpn_alex_dwxcorr", "siamfc"])
def test_streams_stepped_together_equal_alone(name: str) -> None:
    model = siamdeploy.reference_model(name)
    seqs = [generate_sequence(seed=s, num_frames=8, size=(320, 240)) for s in (11, 12, 13)]
    alone = []
    for seq in seqs:
        tracker = siamdeploy.load_tracker(model.checkpoint, **model.load_args())
        tracker.init(seq.frames[0], seq.boxes[0])
        alone.append([tracker.track(f).bbox for f in seq.frames[1:]])
    first = siamdeploy.load_tracker(model.checkpoint, **model.load_args())
    trackers = [first] + [make_tracker(first.engine, first.params) for _ in seqs[1:]]
    for tracker, seq in zip(trackers, seqs):
        tracker.init(seq.frames[0], seq.boxes[0])
    together: list[list[tuple[float, ...]]] = [[] for _ in seqs]
    calls = first.engine.search_calls
    for t in range(1, 8):
        for i, result in enumerate(track_together(trackers, [seq.frames[t] for seq in seqs])):
            together[i].append(result.bbox)
    assert first.engine.search_calls - calls <= 7 * len(seqs)
    np.testing.assert_allclose(np.array(together), np.array(alone), atol=1e-3, rtol=0)
    # the streams really differ, so a mix-up between them would show
    assert np.abs(np.array(alone[0]) - np.array(alone[1])).max() > 5


def test_track_together_refuses_mismatched_inputs() -> None:
    model = siamdeploy.reference_model("siamfc")
    a = siamdeploy.load_tracker(model.checkpoint, **model.load_args())
    b = siamdeploy.load_tracker(model.checkpoint, **model.load_args())
    seq = generate_sequence(seed=1, num_frames=2, size=(160, 120))
    a.init(seq.frames[0], seq.boxes[0])
    b.init(seq.frames[0], seq.boxes[0])
    with pytest.raises(siamdeploy.SiamDeployError, match="one frame per tracker"):
        track_together([a, b], [seq.frames[1]])
    with pytest.raises(siamdeploy.SiamDeployError, match="share one engine"):
        track_together([a, b], [seq.frames[1]] * 2)
