"""The generated sequences are frozen: the committed upstream traces were recorded on these exact frames.

The digests below were computed from the generator before it moved into :mod:`siamdeploy.synthetic`; any
change to the frames (texture, motion, pasting, rounding) or boxes fails here before it fails a trace replay.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from siamdeploy.synthetic import generate_sequence, texture
from siamdeploy.synthetic import generate_benchmark_sequence

# (generate_sequence kwargs, sha256[:32] of the frames' bytes in order, sha256[:32] of the float64 boxes)
SEQUENCES = [
    (dict(seed=0, num_frames=60), "93711811fc48d0f7875b546c0a2ddab6", "61643242f747fc18d8b0915c336148af"),
    (dict(seed=3, num_frames=12, size=(320, 240)), "cc8829037e4a355dbb98b25c62769d1a",
     "5059bae27a11ddece24bf02fceef0653"),
    (dict(seed=7, num_frames=5, size=(480, 360), target_size=(200.0, 160.0)), "c00a24ec60c940f442e9b7dab7d24344",
     "2920d3801d3e0301d59169d358c47058"),
    (dict(seed=1, num_frames=4, distractor=False), "bbd6e4be1b156f6649f1b41f30ab18b0",
     "0eb9346bc7d804276d5c8c051a941e84"),
]
# generate_benchmark_sequence with procedural images (scikit-image photographs are optional):
# (kwargs, frames digest, digest of boxes + polygons + visible fractions)
BENCHMARK = [
    (dict(seed=2, num_frames=6, attributes=("rotation", "occlusion", "distractor"), images="procedural"),
     "cd383c4a4c48aefa82ebc3aa3b5b0fa2", "0fd025f73e28a6586c5a4585630694bf"),
    (dict(seed=1, num_frames=10, images="procedural"), "fb10ccbf7e35e270d71232677d134a7c",
     "f82091e1afa3afc5e41f50967071f15f"),
]


def _digest(frames) -> str:
    h = hashlib.sha256()
    for frame in frames:
        h.update(np.ascontiguousarray(frame).tobytes())
    return h.hexdigest()[:32]


@pytest.mark.parametrize("kwargs, frames_digest, boxes_digest", SEQUENCES)
def test_generate_sequence_is_bit_identical(kwargs, frames_digest: str, boxes_digest: str) -> None:
    seq = generate_sequence(**kwargs)
    assert len(seq.frames) == kwargs["num_frames"]
    assert _digest(seq.frames) == frames_digest
    assert seq.boxes.dtype == np.float64
    assert hashlib.sha256(seq.boxes.tobytes()).hexdigest()[:32] == boxes_digest


def test_texture_is_bit_identical() -> None:
    img = texture(np.random.default_rng(5), 40, 30)
    assert img.shape == (40, 30, 3) and img.dtype == np.uint8
    assert hashlib.sha256(img.tobytes()).hexdigest()[:32] == "687c7434e3e201a7b87c538e73f41020"


@pytest.mark.parametrize("kwargs, frames_digest, truth_digest", BENCHMARK)
def test_benchmark_sequence_is_bit_identical(kwargs, frames_digest: str, truth_digest: str) -> None:
    seq = generate_benchmark_sequence(**kwargs)
    assert seq.image_source == "procedural"
    assert _digest(seq.frames) == frames_digest
    truth = np.concatenate([seq.boxes.ravel(), seq.polygons.ravel(), seq.visible])
    assert hashlib.sha256(truth.tobytes()).hexdigest()[:32] == truth_digest
