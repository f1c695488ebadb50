"""Filesystem helpers shared by the exporter and the engine cache."""
from __future__ import annotations

import os
import shutil
import uuid


def replace_dir(src: str, dst: str) -> None:
    """Rename the finished folder ``src`` to ``dst``. An existing ``dst`` is moved aside first and removed
    after the rename, so readers never see a half-written ``dst``."""
    if os.path.exists(dst):
        backup = f"{dst}.old-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        os.rename(dst, backup)
        os.rename(src, dst)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.rename(src, dst)
