"""One NaN ground-truth row is an absent frame, not a reason to drop the whole sequence, and is reported."""
from __future__ import annotations

import numpy as np
import pytest

from siamdeploy.eval.datasets import Dataset
from siamdeploy.eval.runner import evaluate_tracker

from .conftest import IndexedSequence, ScriptedTracker

GT = (20.0, 20.0, 40.0, 40.0)


def _dataset(kind: str, nan_rows: tuple[int, ...]) -> Dataset:
    seqs = []
    for k in range(2):
        boxes = np.tile(GT, (10, 1))
        if k == 1:
            boxes[list(nan_rows)] = np.nan
        seqs.append(IndexedSequence(f"seq{k}", [f"{i}.jpg" for i in range(10)], boxes, origin=0, size=(200, 150)))
    return Dataset(kind, "memory", seqs)


@pytest.mark.parametrize("kind", ["otb", "lasot", "got10k"])
def test_nan_row_is_an_absent_frame(kind: str) -> None:
    report = evaluate_tracker(_dataset(kind, (4,)), ScriptedTracker(lambda i: GT), "perfect", plots=False)
    per_seq = report["metrics"]["per_sequence"] if "per_sequence" in report["metrics"] else None
    assert "1 frame(s) have no ground truth" in report["note"] and "seq1" in report["note"]
    if kind == "got10k":  # left out like cover == 0: a perfect tracker stays perfect
        assert report["metrics"]["ao"] == pytest.approx(1.0)
    else:  # both sequences scored; the unknown frame never succeeds but counts: 19 of 20 frames succeed at
        # the 20 thresholds below IoU 1 (of 21)
        assert report["metrics"]["success_auc"] == pytest.approx(19 / 20 * 20 / 21, abs=1e-9)
    if per_seq is not None:
        assert len(per_seq) == 2


def test_all_nan_after_first_frame_is_still_unscored() -> None:
    data = _dataset("otb", tuple(range(1, 10)))
    data.sequences = data.sequences[1:]
    report = evaluate_tracker(data, ScriptedTracker(lambda i: GT), "perfect", plots=False)
    assert report["metrics"] is None and "not scored" in report["note"]
