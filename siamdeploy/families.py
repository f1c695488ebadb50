"""Tracker families: what the export, the engines and the runtime need to know about each tracker loop.

A family is named by ``TrackParams.tracker`` (``siamrpn``, ``siamrpn_lt``, ``siammask``, ``siamfc``). Its
descriptor says which search outputs are heads (the rest are features a later branch needs), which
search-crop sides the loop can ask for, how many crops one search call carries, whether it decodes anchors,
and which tracker class runs it. Adding a family = one tracker module + one :func:`register` call here.
Network structure (backbones, heads) is described separately by :class:`siamdeploy.config.ModelSpec`.

No torch import: the deployed runtime uses this module.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import TrackParams
from .errors import unknown_name

if TYPE_CHECKING:
    from .engine.base import Engine
    from .runtime.trackers.base import Tracker


def _normal_size(p: TrackParams) -> list[int]:
    sizes = [p.instance_size]
    if p.small_target_instance_size is not None:  # DaSiamRPN-BIG: a larger search for small targets
        sizes.append(p.small_target_instance_size)
    return sizes


@dataclass(frozen=True)
class Family:
    """One tracker loop.

    ``head_outputs``: search-graph outputs the loop decodes (the others, e.g. SiamMask's refine features, are
    handed back opaque to :meth:`Engine.refine`). ``search_sizes(params)``: every search-crop side in network
    pixels, the normal one first. ``search_batch(params)``: crops per search call (SiamFC: one per scale).
    ``anchored``: RPN anchors and score maps (manifest ``anchors``/``score_sizes``). ``tracker``: ``module:Class``
    of the loop, imported when a tracker is made.
    """

    name: str
    tracker: str
    head_outputs: tuple[str, ...] = ("cls", "loc")
    search_sizes: Callable[[TrackParams], list[int]] = _normal_size
    search_batch: Callable[[TrackParams], int] = lambda p: 1
    anchored: bool = True

    def tracker_class(self) -> type[Tracker]:
        import importlib

        module, _, cls = self.tracker.partition(":")
        found: type[Tracker] = getattr(importlib.import_module(module), cls)
        return found


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add a family; its name is the ``TrackParams.tracker`` value that selects it."""
    if family.name in FAMILIES:
        raise ValueError(f"family '{family.name}' is registered twice")
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    """The family ``name``; an unknown one fails with the known ones and the closest match."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise unknown_name("tracker family", name, FAMILIES) from None


def family_of(params: TrackParams) -> Family:
    return get_family(params.tracker)


def make_tracker(engine: Engine, params: TrackParams, name: str = "") -> Tracker:
    """The tracker loop of ``params.tracker`` driving ``engine``."""
    return family_of(params).tracker_class()(engine, params, name)


register(Family("siamrpn", "siamdeploy.runtime.trackers.rpn:RPNTracker"))
register(Family("siamrpn_lt", "siamdeploy.runtime.trackers.rpn:LongTermTracker",
                search_sizes=lambda p: [p.instance_size, p.lost_instance_size]))
register(Family("siammask", "siamdeploy.runtime.trackers.mask:MaskTracker"))
register(Family("siamfc", "siamdeploy.runtime.trackers.siamfc:SiamFCTracker", head_outputs=("response",),
                search_batch=lambda p: p.scale_num, anchored=False))
