"""Evaluation on tracking benchmarks (numpy + OpenCV; no torch import).

- :mod:`.metrics`: OTB success/precision, LaSOT normalized precision, GOT-10k AO/SR, VOT accuracy,
  robustness and EAO (docs/evaluation.md#metrics);
- :mod:`.datasets`: readers for OTB, GOT-10k, VOT and LaSOT folders (1-based files -> 0-based boxes);
- :mod:`.writers`: result files in the toolkits' formats;
- :mod:`.runner`: one-pass and supervised loops, ``python -m siamdeploy.eval``;
- :mod:`.generate`: benchmark folders with exact ground truth, ``python -m siamdeploy.eval.generate``;
- :mod:`.plots`: success / precision / expected-overlap plots (matplotlib, optional).
"""
from .datasets import DATASETS, BenchmarkSequence, Dataset, load_dataset, vot_init_box
from .metrics import (center_error, got10k_metrics, iou, lasot_metrics, otb_metrics, precision_at, region_overlap,
                      success_auc, success_curve, vot_eao, vot_metrics)

__all__ = ["iou", "center_error", "success_curve", "success_auc", "precision_at", "otb_metrics", "lasot_metrics",
           "got10k_metrics", "vot_metrics", "vot_eao", "region_overlap", "DATASETS", "BenchmarkSequence", "Dataset",
           "load_dataset", "vot_init_box"]
