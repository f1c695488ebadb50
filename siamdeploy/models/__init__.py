"""PyTorch models (imports torch): backbones, necks, heads and the two-branch :class:`SiameseNet`."""
from .siamese import SiameseNet

__all__ = ["SiameseNet"]
