"""Reference models shipped with siamdeploy: small trackers trained from scratch on generated photo scenes.

They are a demonstration and test fixture (trained by ``scripts/train_reference.py`` on generated data,
weights stored in float16 and loaded into float32), not benchmark-grade trackers. Their score maps are
peaked, so precision and decode checks that random weights cannot make become meaningful.

``reference_model(name)`` gives the files; ``demo_model()`` / ``demo_sequence()`` are what the demo runs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np

    from ..synthetic.photos import PhotoSequence

REFERENCE_DIR = os.path.dirname(os.path.abspath(__file__))
# preset id -> (checkpoint file, pysot config file or None)
_FILES = {
    "siamrpn_alex_dwxcorr": ("model.pth", "config.yaml"),
    "siamfc": ("siamfc_alexnet_e1.pth", None),
}
REFERENCE_MODELS: tuple[str, ...] = tuple(_FILES)
DEMO_SEED = 1000           # the demo sequence: held-out photographs, a seed the training never draws
DEMO_FRAMES = 60          # the demo CLI's default length


@dataclass(frozen=True)
class ReferenceModel:
    """A shipped model: ``checkpoint`` (path, upstream layout), ``config`` (pysot ``config.yaml`` path or
    None) and ``preset`` (the preset id it tracks with)."""

    name: str
    checkpoint: str
    config: str | None
    preset: str

    def load_args(self) -> dict[str, str | None]:
        """Keyword arguments for :func:`siamdeploy.load_tracker` besides the checkpoint: the config when
        there is one, else the preset."""
        return {"config": self.config} if self.config else {"preset": self.preset}


def reference_model(name: str = "siamrpn_alex_dwxcorr") -> ReferenceModel:
    """The shipped reference model for preset ``name`` (``siamrpn_alex_dwxcorr`` or ``siamfc``).

    Usage: ``m = reference_model("siamfc"); load_tracker(m.checkpoint, **m.load_args())``.
    """
    if name not in _FILES:
        raise ConfigError(f"no reference model '{name}'; available: {', '.join(REFERENCE_MODELS)}")
    ckpt_name, config_name = _FILES[name]
    folder = os.path.join(REFERENCE_DIR, name)
    ckpt = os.path.join(folder, ckpt_name)
    config = os.path.join(folder, config_name) if config_name else None
    for path in (ckpt, config):
        if path is not None and not os.path.isfile(path):
            raise ConfigError(f"reference model file '{path}' is missing; reinstall siamdeploy or retrain it with "
                              f"python scripts/train_reference.py {name} --ship")
    return ReferenceModel(name, ckpt, config, name)


def demo_model() -> ReferenceModel:
    """The model ``python -m siamdeploy.run demo`` runs without ``--model``."""
    return reference_model("siamrpn_alex_dwxcorr")


def demo_sequence(num_frames: int = DEMO_FRAMES, seed: int = DEMO_SEED) -> PhotoSequence:
    """The demo's generated sequence on held-out photographs: ``frames`` (``HxWx3`` uint8 BGR, 480x360)
    and exact ground-truth ``boxes`` ``(T, 4)`` (x, y, w, h)."""
    from ..synthetic.photos import photo_sequence

    return photo_sequence(seed=seed, num_frames=num_frames)


def lazy_demo_sequence(num_frames: int = DEMO_FRAMES, seed: int = DEMO_SEED
                       ) -> tuple[str, Iterator[np.ndarray], np.ndarray]:
    """:func:`demo_sequence` drawn one frame at a time: ``(name, frames, boxes (T, 4))``."""
    from ..synthetic.photos import lazy_photo_sequence

    return lazy_photo_sequence(seed=seed, num_frames=num_frames)
