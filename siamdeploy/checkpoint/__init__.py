"""Checkpoints: safe reading, layout detection and key remapping, preset detection, strict loading."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from ..errors import CheckpointError
from ..models import SiameseNet
from ..presets import Preset, get_preset
from .detect import Guess, KeyDiff, compare, guess_preset, model_signature, state_signature
from .layouts import LAYOUTS, Layout, to_canonical
from .reader import normalise_state_dict, read_checkpoint, read_state_dict

log = logging.getLogger(__name__)

__all__ = ["LoadedModel", "load_model", "resolve_preset", "read_state_dict", "normalise_state_dict",
           "to_canonical", "guess_preset", "LAYOUTS", "Layout", "Guess", "KeyDiff", "compare", "model_signature",
           "state_signature", "load_strict"]


@dataclass
class LoadedModel:
    """A network with its weights, the preset that describes it, and where the weights came from."""

    net: SiameseNet
    preset: Preset
    layout: Layout
    path: str


def resolve_preset(state: dict[str, torch.Tensor], layout: Layout, path: str,
                   config: str | os.PathLike[str] | None, preset: str | Preset | None,
                   wrapper: str | None = None) -> Preset:
    """Pick the preset: an explicit config or preset id wins; otherwise detect it from the keys and shapes
    and log the choice (a checkpoint no preset's network fits exactly fails, naming the differences from the
    closest)."""
    from ..pysot_config import explicit_preset

    chosen = explicit_preset(config, preset)
    if chosen is not None:
        return chosen
    guess = guess_preset(state, layout, path, wrapper)
    if guess.preset is None or not guess.exact:
        raise CheckpointError(f"cannot tell which tracker '{os.path.basename(path)}' is: {guess.reason}; pass the "
                              "model's config.yaml (or --preset)")
    others = f"; if it is another, pass preset= one of {', '.join(guess.alternatives)}" if guess.alternatives else ""
    log.warning("no config or preset given: assuming preset '%s' (%s)%s", guess.preset, guess.reason, others)
    return get_preset(guess.preset)


def load_model(path: str | os.PathLike[str], config: str | os.PathLike[str] | None = None,
               preset: str | Preset | None = None, allow_unsafe_pickle: bool = False) -> LoadedModel:
    """Read a checkpoint from any supported code base and load it strictly into its network (eval mode)."""
    path = os.fspath(path)
    raw, wrapper = read_checkpoint(path, allow_unsafe_pickle)
    state, layout = to_canonical(raw)
    if layout.note:
        log.info("%s: %s", os.path.basename(path), layout.note)
    chosen = resolve_preset(state, layout, path, config, preset, wrapper)
    net = SiameseNet(chosen.model)
    load_strict(net, state, chosen, layout, path, wrapper)
    net.eval()
    log.info("loaded %s (%s layout) as preset '%s'", os.path.basename(path), layout.name, chosen.name)
    return LoadedModel(net=net, preset=chosen, layout=layout, path=path)


def load_strict(net: SiameseNet, state: dict[str, torch.Tensor], preset: Preset, layout: Layout, path: str,
                wrapper: str | None = None) -> None:
    """Load with exact key and shape checks (BatchNorm counters aside). A mismatch raises
    :class:`CheckpointError` naming the missing, unexpected and wrong-shape keys against ``preset``, and the
    preset whose network the checkpoint does match exactly, or else the closest one and its differences."""
    diff = compare(state_signature(state), state_signature(net.state_dict()))
    if not diff.exact:
        guess = guess_preset(state, layout, path, wrapper)
        if guess.preset is None:
            cause = "the checkpoint is not a network of any preset; pass the model's config.yaml"
        elif guess.exact and guess.preset == preset.name:  # a config that reuses a built-in preset's name
            cause = (f"the checkpoint matches the built-in preset '{guess.preset}' exactly, whose network differs "
                     "from the one the config describes; pass that preset")
        elif guess.exact:
            also = f" (same network: {', '.join(guess.alternatives)})" if guess.alternatives else ""
            cause = (f"the checkpoint matches preset '{guess.preset}' exactly{also}, not '{preset.name}'; pass that "
                     "preset or its config")
        elif guess.preset == preset.name:
            cause = (f"no preset matches the checkpoint exactly and '{preset.name}' is the closest; pass the model's "
                     "config.yaml")
        else:
            detail = f" ({guess.diff.describe()})" if guess.diff is not None else ""
            cause = (f"no preset matches the checkpoint exactly; the closest is '{guess.preset}'{detail}; pass the "
                     "model's config.yaml")
        raise CheckpointError(f"checkpoint '{os.path.basename(path)}' does not fit preset '{preset.name}': "
                              f"{diff.describe()}. Likely cause: {cause}")
    net.load_state_dict(state, strict=False)  # strictness checked above; BN counters are not stored upstream
