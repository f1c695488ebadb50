"""Which preset a checkpoint is, derived from the preset table.

Each preset's network is built on the meta device (no memory, no initialisation cost) and reduced to its
state-dict *signature*: key -> shape, BatchNorm counters left out. A canonical state dict (see
:func:`siamdeploy.checkpoint.layouts.to_canonical`) is compared with every distinct signature; the presets
whose signature it matches exactly are the candidates. Several presets can share a network (pysot's
``_otb`` variants, DaSiamRPN's VOT/OTB files, the three foolwood SiamMask configs); the evidence that tells
them apart is data, the :data:`siamdeploy.presets.DETECT_HINTS` rows, so adding a preset row is enough for it
to be detected. When no signature matches exactly, the closest one is reported with its differences.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch

from ..config import ModelSpec
from ..presets import PRESETS, DetectHint, Preset, detect_hint
from .layouts import Layout

Signature = Mapping[str, tuple[int, ...]]


def _counter(key: str) -> bool:
    return key.endswith("num_batches_tracked")


@functools.cache
def model_signature(spec: ModelSpec) -> Signature:
    """Key -> shape of the state dict of ``SiameseNet(spec)`` without BatchNorm counters (cached per spec)."""
    from ..models import SiameseNet  # imports the model zoo; kept local so this module loads quickly

    with torch.device("meta"):
        net = SiameseNet(spec)
    return MappingProxyType({k: tuple(v.shape) for k, v in net.state_dict().items() if not _counter(k)})


def state_signature(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a state dict, BatchNorm counters left out (upstream files often have none)."""
    return {k: tuple(v.shape) for k, v in state.items() if not _counter(k)}


@dataclass(frozen=True)
class KeyDiff:
    """How a checkpoint's keys and shapes differ from a network's.

    ``missing``: keys the network has and the checkpoint lacks; ``unexpected``: the reverse;
    ``wrong_shape``: ``(key, checkpoint shape, network shape)`` for keys both have; ``matched``: keys with
    the same name and shape. All sorted by key.
    """

    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    wrong_shape: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]
    matched: int

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.wrong_shape)

    @property
    def count(self) -> int:
        """Number of differing keys."""
        return len(self.missing) + len(self.unexpected) + len(self.wrong_shape)

    def describe(self, n: int = 3) -> str:
        """One line naming the first ``n`` keys of each kind, e.g.
        ``2 missing (a, b); 1 with other shapes (c: checkpoint (1, 2), model (2, 2))``."""
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({_few(self.missing, n)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({_few(self.unexpected, n)})")
        if self.wrong_shape:
            shown = [f"{k}: checkpoint {got}, model {want}" for k, got, want in self.wrong_shape[:n]]
            more = ", ..." if len(self.wrong_shape) > n else ""
            parts.append(f"{len(self.wrong_shape)} with other shapes ({', '.join(shown)}{more})")
        return "; ".join(parts) if parts else "no differences"


def compare(got: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]]) -> KeyDiff:
    """The differences of checkpoint signature ``got`` against network signature ``expected``."""
    common = sorted(set(got) & set(expected))
    wrong = tuple((k, got[k], expected[k]) for k in common if got[k] != expected[k])
    return KeyDiff(missing=tuple(sorted(set(expected) - set(got))),
                   unexpected=tuple(sorted(set(got) - set(expected))), wrong_shape=wrong,
                   matched=len(common) - len(wrong))


def _few(keys: tuple[str, ...], n: int) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def structure_groups() -> list[tuple[Signature, tuple[Preset, ...]]]:
    """The preset table grouped by network signature, in table order (first appearance of each)."""
    groups: dict[frozenset[tuple[str, tuple[int, ...]]], tuple[Signature, list[Preset]]] = {}
    for preset in PRESETS.values():
        signature = model_signature(preset.model)
        groups.setdefault(frozenset(signature.items()), (signature, []))[1].append(preset)
    return [(signature, tuple(members)) for signature, members in groups.values()]


@dataclass(frozen=True)
class Guess:
    """``preset``: the chosen id (None: no preset shares a key with the checkpoint); ``alternatives``: other
    presets with the same network that the evidence did not rule out; ``reason``: why, for the log;
    ``exact``: whether the checkpoint has exactly the chosen preset's keys and shapes (if not, ``diff`` says
    how it differs from this closest preset)."""

    preset: str | None
    alternatives: tuple[str, ...]
    reason: str
    exact: bool = True
    diff: KeyDiff | None = None


def closest_presets(state: Mapping[str, torch.Tensor]) -> list[tuple[KeyDiff, tuple[Preset, ...]]]:
    """Every network structure of the table with the checkpoint's differences against it, closest first:
    most keys with the same name and shape, then most shared names, then fewest differences."""
    got = state_signature(state)
    scored = [(compare(got, signature), members) for signature, members in structure_groups()]
    return sorted(scored, key=lambda s: (-s[0].matched, -(s[0].matched + len(s[0].wrong_shape)), s[0].count))


def guess_preset(state: Mapping[str, torch.Tensor], layout: Layout, filename: str = "",
                 wrapper: str | None = None) -> Guess:
    """Best preset for a canonical state dict (see :func:`siamdeploy.checkpoint.layouts.to_canonical`).

    ``layout``: the layout the file's keys were in; ``filename``: its path (only the base name is read);
    ``wrapper``: the key the tensors were stored under in the file (e.g. SiamTrackers saves DaSiamRPN's key
    names under ``'model'``; DaSiamRPN's own files are plain state dicts)."""
    ranked = closest_presets(state)
    diff, members = ranked[0]
    if diff.matched + len(diff.wrong_shape) == 0:
        return Guess(None, (), "no preset's network has any of its keys", exact=False)
    chosen, alternatives, why = _break_tie(members, layout.name, os.path.basename(filename).lower(), wrapper)
    if not diff.exact:
        return Guess(chosen, alternatives, f"no preset's network has exactly its keys and shapes; the closest is "
                     f"'{chosen}' ({diff.describe()})", exact=False, diff=diff)
    names = ", ".join(f"'{p.name}'" for p in members)
    structure = f"{layout.name} keys and shapes match " + (f"preset {names}" if len(members) == 1
                                                            else f"presets {names} (one network)")
    return Guess(chosen, alternatives, structure + (f"; {why}" if why else ""), diff=diff)


def _break_tie(members: tuple[Preset, ...], layout: str, name: str, wrapper: str | None
               ) -> tuple[str, tuple[str, ...], str]:
    """(chosen id, the others not ruled out, why) among presets with one network, from their detection hints."""
    if len(members) == 1:
        return members[0].name, (), ""
    hints = [detect_hint(p.name) for p in members]
    fits = [h for h in hints
            if (not h.layouts or layout in h.layouts) and (h.wrapper is None or h.wrapper == wrapper)]
    if not fits:  # no row allows this layout/wrapper: choose among all of them rather than none
        fits = hints

    def found(h: DetectHint) -> str | None:
        return next((s for s in h.names if s in name), None)

    ranked = sorted(fits, key=lambda h: (h.wrapper is None, found(h) is None, not h.default))  # stable: table order
    best = ranked[0]
    hint = found(best)
    if best.wrapper is not None and best.wrapper == wrapper:
        why = f"tensors stored under '{best.wrapper}' in the file"
    elif hint is not None:
        why = f"'{hint}' in the file name"
    elif len(fits) == 1:
        why = f"the only one of them written in the {layout} layout"
    else:
        why = "the default for this network" if best.default else "the first of them in the preset table"
    return best.preset, tuple(h.preset for h in fits if h is not best), f"chose '{best.preset}': {why}"
