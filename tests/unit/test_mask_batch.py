"""The SiamMask seam of ``track_together``: every target decodes its own search output, the masks of all
targets run as one ``Engine.refine_many`` / ``mask_at_many`` call (per bucket), and every target finishes
with its own logits, so each result equals what the target's tracker reports alone.

The engine is the content-driven test double (no network): each target's mask depends on its own crop, so
logits handed to the wrong target would change its polygon and mask."""
from __future__ import annotations

import numpy as np
import pytest

from siamdeploy.errors import InputError
from siamdeploy.families import make_tracker
from siamdeploy.presets import get_preset
from siamdeploy.runtime.batch import track_together
from siamdeploy.synthetic import generate_sequence

from .content_engine import ContentEngine


class BucketMasks(ContentEngine):
    """The test double with mask buckets (1, 4): a batched call computes each target's mask as the single call
    does and records ``(head, targets, bucket)``."""

    def __init__(self, params) -> None:
        super().__init__(params)
        self.batches: list[tuple[str, int, int]] = []

    def mask_buckets(self, head: str) -> tuple[int, ...]:
        return (1, 4)

    def _mask_batch(self, head, extras, cells, bucket):
        self.batches.append((head, len(extras), bucket))
        single = ContentEngine.refine if head == "refine" else ContentEngine.mask_at
        return [single(self, e, c) for e, c in zip(extras, cells)]


BOXES = [(120.0, 90.0, 60.0, 50.0), (40.0, 50.0, 50.0, 40.0), (200.0, 120.0, 60.0, 50.0),
         (250.0, 30.0, 35.0, 60.0), (10.0, 150.0, 70.0, 60.0)]


@pytest.mark.parametrize("preset, head", [("siammask_r50_l3", "refine"), ("siammask_vot", "refine"),
                                          ("siammask_base", "mask_head")])
@pytest.mark.parametrize("count", [3, 5])
def test_masks_of_all_targets_in_one_call(preset: str, head: str, count: int) -> None:
    params = get_preset(preset).track
    seq = generate_sequence(seed=3, num_frames=4, size=(320, 240))
    engine = BucketMasks(params)
    together = [make_tracker(engine, params, preset) for _ in range(count)]
    alone = [make_tracker(ContentEngine(params), params, preset) for _ in range(count)]
    for tracker, single, box in zip(together, alone, BOXES):
        tracker.init(seq.frames[0], box)
        single.init(seq.frames[0], box)
    polygons = []
    for frame in seq.frames[1:]:
        calls, batches = engine.refine_calls, len(engine.batches)
        results = track_together(together, [frame] * count)
        # 3 targets: one 4-bucket call (padded); 5: a 4-bucket call and a single one
        assert engine.refine_calls - calls == (1 if count <= 4 else 2)
        assert engine.batches[batches:] == ([(head, 4, 4)] if count == 5 else [(head, 3, 4)])
        for got, single in zip(results, alone):
            want = single.track(frame)
            assert got.bbox == want.bbox and got.score == want.score
            assert got.polygon is not None and np.array_equal(got.polygon, want.polygon)
            assert got.mask is not None and np.array_equal(got.mask, want.mask)
        polygons.append([r.polygon for r in results])
    # the targets' masks really differ, so a mix-up between them would show
    assert np.abs(polygons[-1][0] - polygons[-1][1]).max() > 5


def test_single_tracker_runs_one_mask_call_per_frame() -> None:
    params = get_preset("siammask_r50_l3").track
    seq = generate_sequence(seed=3, num_frames=3, size=(320, 240))
    engine = BucketMasks(params)
    tracker = make_tracker(engine, params, "siammask_r50_l3")
    tracker.init(seq.frames[0], BOXES[0])
    for frame in seq.frames[1:]:
        calls = engine.refine_calls
        result = tracker.track(frame)
        assert engine.refine_calls - calls == 1 and result.polygon is not None
    assert engine.batches == []  # one target: the single refine, never a bucket graph
    assert set(tracker.timings) == {"preprocess", "engine", "postprocess"}


def test_default_refine_many_loops_and_checks_lengths() -> None:
    params = get_preset("siammask_r50_l3").track
    engine = ContentEngine(params)
    extras = [np.full((25, 25), v, np.float32) for v in (0.1, 0.5, 0.9)]
    cells = [(3, 4), (12, 12), (20, 1)]
    got = engine.refine_many(extras, cells)
    assert engine.refine_calls == 3
    for e, c, g in zip(extras, cells, got):
        assert np.array_equal(g, engine.refine(e, c))
    assert [m.shape for m in engine.mask_at_many(extras, cells)] == [(63, 63)] * 3
    with pytest.raises(InputError, match="one cell per search output"):
        engine.refine_many(extras, cells[:2])
