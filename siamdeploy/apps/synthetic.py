"""Former home of the demo sequence generator, now :mod:`siamdeploy.synthetic.sequence`; kept so that existing
imports (``from siamdeploy.apps.synthetic import generate_sequence``) keep working."""
from __future__ import annotations

from ..synthetic.sequence import LazySequence, Sequence, generate_sequence, lazy_sequence
from ..synthetic.texture import texture

__all__ = ["LazySequence", "Sequence", "generate_sequence", "lazy_sequence", "texture"]
