"""Success, precision and expected-overlap plots as PNG files.

matplotlib is optional (``pip install 'siamdeploy[bench]'``); it is imported only when a plot is drawn,
and only its object-oriented API is used (no pyplot, no global backend switch).
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import DependencyError
from .metrics import (GOT10K_THRESHOLDS, NORM_PRECISION_THRESHOLDS, PRECISION_THRESHOLDS, SUCCESS_THRESHOLDS)


def require_matplotlib() -> None:
    """Raise :class:`DependencyError` with the install hint when matplotlib cannot be imported."""
    try:
        for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
            importlib.import_module(module)
    except ImportError:
        raise DependencyError("plots need matplotlib: pip install 'siamdeploy[bench]' (or pip install matplotlib), "
                              "or pass --no-plots") from None


def _figure() -> tuple[Any, Any]:
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _plot(path: str, x: np.ndarray, curves: Mapping[str, Sequence[float]], scores: Mapping[str, float],
          xlabel: str, ylabel: str, title: str, score_label: str, xlim: tuple[float, float],
          legend_loc: str) -> str:
    fig, ax = _figure()
    for label, curve in sorted(curves.items(), key=lambda kv: -scores.get(kv[0], 0.0)):
        score = scores.get(label)
        text = f"{label} [{score:.3f}]" if score is not None and np.isfinite(score) else label
        ax.plot(x[:len(curve)], curve, linewidth=1.8, label=text)
    ax.set_xlim(*xlim)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title} ({score_label} in brackets)", fontsize=10)
    ax.grid(True, linestyle=":", linewidth=0.6)
    ax.legend(loc=legend_loc, fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    return path


def success_plot(path: str, curves: Mapping[str, Sequence[float]], title: str = "Success plot of OPE") -> str:
    """Success rate against the overlap threshold; 21 points (OTB/LaSOT) or 101 (GOT-10k). The legend shows
    each curve's mean (AUC as OTB defines it)."""
    scores = {k: float(np.mean(v)) for k, v in curves.items()}
    n = len(next(iter(curves.values()))) if curves else 21
    x = GOT10K_THRESHOLDS if n == len(GOT10K_THRESHOLDS) else SUCCESS_THRESHOLDS
    return _plot(path, x, curves, scores, "overlap threshold", "success rate", title, "AUC", (0, 1), "lower left")


def precision_plot(path: str, curves: Mapping[str, Sequence[float]], title: str = "Precision plot of OPE") -> str:
    """Precision against the centre-error threshold (0..50 px); the legend shows the value at 20 px."""
    scores = {k: float(v[20]) for k, v in curves.items()}
    return _plot(path, PRECISION_THRESHOLDS, curves, scores, "location error threshold (px)", "precision", title,
                 "at 20 px", (0, 50), "lower right")


def normalized_precision_plot(path: str, curves: Mapping[str, Sequence[float]],
                              title: str = "Normalized precision plot of OPE") -> str:
    """Normalized precision against the threshold (0..0.5); the legend shows the mean over 0..0.5."""
    scores = {k: float(np.mean(v)) for k, v in curves.items()}
    return _plot(path, NORM_PRECISION_THRESHOLDS, curves, scores, "normalized location error threshold",
                 "normalized precision", title, "mean over 0..0.5", (0, 0.5), "lower right")


def expected_overlap_plot(path: str, curves: Mapping[str, Sequence[float]], eao: Mapping[str, float],
                          eao_range: tuple[int, int], title: str = "Expected overlap (VOT)") -> str:
    """The expected-overlap curve against the sequence length; the legend shows the EAO."""
    longest = max((len(v) for v in curves.values()), default=1)
    x = np.arange(1, longest + 1, dtype=np.float64)
    return _plot(path, x, curves, dict(eao), "sequence length (frames)", "expected overlap",
                 f"{title}, EAO range {eao_range[0]}-{eao_range[1]}", "EAO", (1, max(longest, 2)), "upper right")
