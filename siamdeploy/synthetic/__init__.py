"""Generated images and sequences with exact ground truth (no downloads).

- :mod:`.texture`: procedural noise textures and the one pasting routine;
- :mod:`.sequence`: the demo sequence (:func:`generate_sequence`, all frames in memory, and
  :func:`lazy_sequence`, the same frames drawn on demand); the committed upstream traces depend on it;
- :mod:`.photos`: scenes on photographs for the reference models' training and held-out demo;
- :mod:`.scenes`: benchmark sequences with attributes (occlusion, fast motion, rotation, ...), written in the
  benchmark layouts by :mod:`siamdeploy.eval.generate`.
"""
from __future__ import annotations

from .scenes import GeneratedSequence, generate_benchmark_sequence
from .sequence import LazySequence, Sequence, generate_sequence, lazy_sequence
from .texture import paste, texture

__all__ = ["GeneratedSequence", "LazySequence", "Sequence", "generate_benchmark_sequence", "generate_sequence",
           "lazy_sequence", "paste", "texture"]
