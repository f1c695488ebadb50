"""Result files in the formats the benchmark toolkits read.

Boxes come in siamdeploy's 0-based ``(x, y, w, h)``; ``origin`` (1 for OTB, GOT-10k and LaSOT, 0 for VOT,
see :mod:`siamdeploy.eval.datasets`) is added to x and y so results line up with the annotation files.

- OTB / LaSOT (pysot toolkit, LaSOT toolkit, got10k ``ExperimentOTB``): ``<out>/<seq>.txt``, one
  ``x,y,w,h`` line per frame (the first frame's line is the initial box).
- GOT-10k (got10k toolkit, evaluation server): ``<out>/<seq>/<seq>_001.txt`` (boxes, comma separated) and
  ``<out>/<seq>/<seq>_time.txt`` (seconds per frame).
- VOT supervised (pysot toolkit, got10k ``ExperimentVOT``): ``<out>/baseline/<seq>/<seq>_001.txt``, one line
  per frame: ``1`` initialised, ``2`` failure, ``0`` skipped, else the region (4 box values or 8 polygon
  values); ``<seq>_time.txt`` beside it.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from .metrics import vot_code

FORMAT = "%.4f"


def _fmt(values: Any) -> str:
    return ",".join(FORMAT % float(v) for v in np.asarray(values, np.float64).reshape(-1))


def _shift(box: Any, origin: int) -> np.ndarray:
    arr = np.asarray(box, np.float64).reshape(-1).copy()
    if arr.size == 4:
        arr[:2] += origin
    else:
        arr += origin
    return arr


def _write_lines(path: str, lines: Sequence[str]) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


def write_box_results(path: str, boxes: np.ndarray, origin: int = 1) -> str:
    """One ``x,y,w,h`` line per frame (``origin`` added to x, y)."""
    return _write_lines(path, [_fmt(_shift(b, origin)) for b in np.atleast_2d(boxes)])


def write_otb_results(out_dir: str, name: str, boxes: np.ndarray, origin: int = 1) -> str:
    """``<out_dir>/<name>.txt`` (OTB and LaSOT)."""
    return write_box_results(os.path.join(out_dir, f"{name}.txt"), boxes, origin)


write_lasot_results = write_otb_results


def write_times(path: str, times: Sequence[float]) -> str:
    """Seconds per frame, one per line (NaN for frames that were not tracked)."""
    return _write_lines(path, ["NaN" if not np.isfinite(t) else f"{t:.8f}" for t in times])


def write_got10k_results(out_dir: str, name: str, boxes: np.ndarray, times: Sequence[float] | None = None,
                         origin: int = 1, repetition: int = 1) -> str:
    """``<out_dir>/<name>/<name>_<rep:03d>.txt`` and, with ``times``, ``<name>_time.txt``."""
    folder = os.path.join(out_dir, name)
    path = write_box_results(os.path.join(folder, f"{name}_{repetition:03d}.txt"), boxes, origin)
    if times is not None:
        write_times(os.path.join(folder, f"{name}_time.txt"), times)
    return path


def write_vot_results(out_dir: str, name: str, trajectory: Sequence[Any], times: Sequence[float] | None = None,
                      origin: int = 0, repetition: int = 1) -> str:
    """``<out_dir>/baseline/<name>/<name>_<rep:03d>.txt``: codes 1/2/0 or regions, one line per frame."""
    lines = []
    for entry in trajectory:
        code = vot_code(entry)
        lines.append(str(code) if code is not None else _fmt(_shift(entry, origin)))
    folder = os.path.join(out_dir, "baseline", name)
    path = _write_lines(os.path.join(folder, f"{name}_{repetition:03d}.txt"), lines)
    if times is not None:
        write_times(os.path.join(folder, f"{name}_time.txt"), times)
    return path


def read_box_results(path: str, origin: int = 1) -> np.ndarray:
    """Boxes written by :func:`write_box_results` (or a toolkit), back in 0-based coordinates."""
    from .datasets import read_rows

    boxes = np.stack(read_rows(path))
    boxes[:, :2] -= origin
    return boxes


def read_vot_results(path: str, origin: int = 0) -> list[Any]:
    """A VOT trajectory file: ints for the codes, float arrays for regions."""
    from .datasets import read_rows

    out: list[Any] = []
    for row in read_rows(path, widths=(1, 4, 8)):
        if row.size == 1:
            if row[0] not in (0, 1, 2):
                raise InputError(f"{path}: a one-value line must be 0, 1 or 2, got {row[0]}")
            out.append(int(row[0]))
        else:
            out.append(_shift(row, -origin))
    return out
