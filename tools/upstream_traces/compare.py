"""Compare a regenerated trace with the committed one, field by field."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

PER_FRAME_FIELDS = ("boxes", "scores", "polygons")
# Inputs that must be identical, else the two traces are not of the same experiment.
INPUT_FIELDS = ("case", "preset", "model_seed", "weights", "sequence", "init")


@dataclass(frozen=True)
class Difference:
    """``max_abs``: per numeric per-frame field, max |regenerated - committed| (pixels for boxes and
    polygons, probability for scores); None where both are null. ``mismatched``: names of fields that
    differ otherwise (inputs, per-frame flags, counts, array shapes). ``added``: per-frame fields the
    regenerated trace records and the committed one has as null (scores of haooozi/SiamTrackers, whose first
    traces did not record them)."""

    case: str
    max_abs: dict[str, float | None]
    mismatched: tuple[str, ...]
    added: tuple[str, ...] = ()

    def within(self, tolerance: dict[str, float]) -> bool:
        """No mismatched field and every ``max_abs[field] <= tolerance[field]``."""
        return not self.mismatched and all(v is None or v <= tolerance[k] for k, v in self.max_abs.items())

    def line(self) -> str:
        nums = ", ".join(f"{k} {'-' if v is None else f'{v:.2e}'}" for k, v in self.max_abs.items())
        bad = f"; DIFFERENT: {', '.join(self.mismatched)}" if self.mismatched else ""
        new = f"; not in the committed trace: {', '.join(self.added)}" if self.added else ""
        return f"{self.case:22s} max |delta|: {nums}{bad}{new}"


def compare(new: dict[str, Any], old: dict[str, Any]) -> Difference:
    mismatched = [f for f in INPUT_FIELDS if new.get(f) != old.get(f)]
    max_abs: dict[str, float | None] = {}
    added = []
    for name in PER_FRAME_FIELDS:
        a, b = new.get(name), old.get(name)
        if b is None:
            max_abs[name] = None
            if a is not None:
                added.append(name)
            continue
        if a is None or b is None or np.shape(a) != np.shape(b):
            mismatched.append(name)
            continue
        max_abs[name] = float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max()) if len(a) else 0.0
    skip = set(INPUT_FIELDS) | set(PER_FRAME_FIELDS) | {"environment", "inputs_from", "generated_by", "upstream"}
    for name in sorted((set(new) | set(old)) - skip):
        if new.get(name) != old.get(name):
            mismatched.append(name)
    for key in ("repo", "commit"):
        if new.get("upstream", {}).get(key) != old.get("upstream", {}).get(key):
            mismatched.append(f"upstream.{key}")
    return Difference(new.get("case", "?"), max_abs, tuple(mismatched), tuple(added))
