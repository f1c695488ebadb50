"""Checkpoints: safe reading, layout detection and key remapping, preset detection, strict loading."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from ..errors import CheckpointError, ConfigError
from ..models import SiameseNet
from ..presets import Preset, get_preset
from .detect import Guess, guess_preset
from .layouts import LAYOUTS, Layout, to_canonical
from .reader import normalise_state_dict, read_checkpoint, read_state_dict

log = logging.getLogger(__name__)

__all__ = ["LoadedModel", "load_model", "resolve_preset", "read_state_dict", "normalise_state_dict",
           "to_canonical", "guess_preset", "LAYOUTS", "Layout", "Guess"]


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
    """Pick the preset: an explicit config or preset id wins; otherwise guess from the keys and log it."""
    if config is not None and preset is not None:
        raise ConfigError("give either a config file or a preset id, not both")
    if config is not None:
        from ..pysot_config import read_pysot_config
        return read_pysot_config(config)
    if isinstance(preset, Preset):
        return preset
    if preset is not None:
        return get_preset(preset)
    guess = guess_preset(state, layout, path, wrapper)
    if guess.preset is None:
        raise CheckpointError(f"cannot tell which tracker '{os.path.basename(path)}' is: {guess.reason} "
                              "(or pass --preset)")
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
    load_strict(net, state, chosen, layout, path)
    net.eval()
    log.info("loaded %s (%s layout) as preset '%s'", os.path.basename(path), layout.name, chosen.name)
    return LoadedModel(net=net, preset=chosen, layout=layout, path=path)


def load_strict(net: SiameseNet, state: dict[str, torch.Tensor], preset: Preset, layout: Layout, path: str) -> None:
    """Load with exact key and shape checks; the error names the differences and the likely cause."""
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_few(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_few(unexpected)})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with other shapes ({k}: checkpoint {got[k]}, model {expected[k]})")
        guess = guess_preset(state, layout, path)
        cause = (f"the checkpoint looks like preset '{guess.preset}', not '{preset.name}'; pass the matching "
                 "config/preset" if guess.preset and guess.preset != preset.name else
                 f"the config/preset '{preset.name}' does not describe this checkpoint; pass the matching one")
        raise CheckpointError(f"checkpoint '{os.path.basename(path)}' does not fit preset '{preset.name}': "
                              + "; ".join(parts) + f". Likely cause: {cause}")
    net.load_state_dict(state, strict=False)  # strictness checked above; BN counters are not stored upstream


def _few(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")
