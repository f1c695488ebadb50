"""Image files: the extensions a frame folder may hold, natural ordering, and the one image reader."""
from __future__ import annotations

import os
import re

import cv2
import numpy as np

from .errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def natural_key(name: str) -> list[object]:
    """Sort key that orders digit runs by value, case-insensitively (``2.jpg`` before ``10.jpg``)."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def list_images(folder: str) -> list[str]:
    """Paths of the image files directly in ``folder``, sorted naturally; ``[]`` when the folder is missing."""
    try:
        names = [n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS)]
    except FileNotFoundError:
        return []
    return [os.path.join(folder, n) for n in sorted(names, key=natural_key)]


def read_image(path: str) -> np.ndarray:
    """The image at ``path`` as ``HxWx3`` uint8 BGR; :class:`InputError` naming the file when it cannot be read."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read image '{path}' (missing, empty or not an image); check the file")
    return img


def to_bgr(img: np.ndarray) -> np.ndarray:
    """An RGB, RGBA or grayscale uint8 image (as scikit-image and PIL give them) as contiguous BGR ``HxWx3``."""
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(img[:, :, 2::-1])
