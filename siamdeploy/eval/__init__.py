"""Evaluation: overlap metrics (OTB-style success and precision)."""
from .metrics import center_error, iou, precision_at, success_auc, success_curve

__all__ = ["iou", "center_error", "success_curve", "success_auc", "precision_at"]
