"""One module per upstream code base; each has ``run(case, checkout, checkpoint, frames, init, workdir)``.

``checkout``: path of the upstream repository checked out at the commit in :data:`..cases.UPSTREAM`.
``checkpoint``: path of the weights file in that code base's own format. ``frames``: BGR uint8 ``(H, W, 3)``
images, frame 0 first. ``init``: frame 0's box ``(x, y, w, h)``, 0-based pixels. ``workdir``: a scratch folder.
Returns a :class:`..record.Recording` for frames 1 ... T-1.
"""
from __future__ import annotations

import importlib.util
import sys
import types


def load_file_module(name: str, path: str) -> types.ModuleType:
    """Import the file ``path`` as module ``name`` (for upstream files whose package names clash with
    others, such as SiamMask's ``tools``)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
