"""What a runner returns for one case, and how it becomes a trace file."""
from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass, field
from typing import Any

from .cases import FRAMES, UPSTREAM, WEIGHTS, Case

GENERATED_BY = "tools/upstream_traces (python -m tools.upstream_traces); see tools/upstream_traces/README.md"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Recording:
    """One upstream run.

    ``boxes``: per tracked frame ``(x, y, w, h)`` in frame pixels, siamdeploy's convention for the code base.
    ``scores``: per frame best score, or None where the upstream tracker returns none. ``polygons``: per
    frame 8 floats (SiamMask's rotated box) or None. ``extras``: case-specific per-frame fields, written after
    ``polygons``. ``upstream``: details of the entry point, merged into the trace's ``upstream`` field.
    """

    boxes: list[list[float]] = field(default_factory=list)
    scores: list[float] | None = None
    polygons: list[list[float]] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    upstream: dict[str, Any] = field(default_factory=dict)


def git_blob_sha(path: str) -> str:
    """``git hash-object PATH``: SHA-1 of ``b"blob <size>\\0" + contents``."""
    with open(path, "rb") as fh:
        data = fh.read()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def environment() -> dict[str, str]:
    import cv2
    import numpy
    import torch

    return {"python": platform.python_version(), "numpy": numpy.__version__, "torch": torch.__version__,
            "opencv": cv2.__version__}


def input_sources(case: Case) -> dict[str, Any]:
    """Where the case's weights and frames came from, with ``git hash-object`` of the files they depend on."""
    from siamdeploy import synthetic
    from siamdeploy.models import random_init
    from siamdeploy.synthetic import photos

    files = [random_init.__file__ if case.weights == "random" else "",
             synthetic.__file__ if case.frames == "synthetic" else photos.__file__]
    if case.weights == "reference":
        from siamdeploy.reference import reference_model

        ref = reference_model(case.preset)
        files += [ref.checkpoint, ref.config or ""]
    blobs = {os.path.relpath(f, REPO_ROOT).replace(os.sep, "/"): git_blob_sha(f) for f in files if f}
    return {"weights": WEIGHTS[case.weights], "frames": FRAMES[case.frames], "source_git_blobs": blobs}


def to_trace(case: Case, init: list[float], rec: Recording) -> dict[str, Any]:
    """The JSON object of ``<case>.json`` (key order as the committed traces)."""
    repo, commit = UPSTREAM[case.codebase]
    trace: dict[str, Any] = {"case": case.name, "preset": case.preset, "model_seed": case.model_seed,
                             "sequence": case.sequence(), "init": [float(v) for v in init],
                             **({"weights": case.weights} if case.weights != "random" else {}),
                             "boxes": rec.boxes, "scores": rec.scores, "polygons": rec.polygons}
    trace.update(rec.extras)
    if case.rejected_seeds:
        trace["rejected_seeds"] = [r.as_json() for r in case.rejected_seeds]
    trace["upstream"] = {"repo": repo, "commit": commit, **rec.upstream}
    trace["environment"] = environment()
    trace["inputs_from"] = input_sources(case)
    trace["generated_by"] = GENERATED_BY
    return trace


def write_trace(path: str, trace: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(trace, fh, indent=1)
        fh.write("\n")
