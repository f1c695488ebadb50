"""Generated benchmark scenes with exact ground truth (the layouts are written by :mod:`siamdeploy.eval.generate`).

A target patch moves over a background along a seeded path. Per sequence a mix of attributes (default: a
different mix per sequence, see :data:`DEFAULT_MIXES`):

- ``scale`` / ``aspect``: smooth size and aspect-ratio changes;
- ``fast_motion``: jumps of about 1.5 target sizes between two frames (and back later);
- ``occlusion``: an occluder larger than the target passes over it; for a few frames the target is
  hidden completely (GOT-10k ``cover`` 0 / ``absence`` 1, LaSOT ``full_occlusion``);
- ``out_of_view``: the target leaves the frame completely and comes back (LaSOT ``out_of_view``);
- ``distractor``: two look-alike patches (the target blended with another texture) on their own paths,
  drawn under the target;
- ``blur``: motion blur on some frames (always on the fast-motion jumps); ``noise``: Gaussian noise;
- ``rotation``: in-plane rotation up to about 20 degrees (VOT polygons become rotated quadrilaterals;
  the axis-aligned ground truth is the bounding box of the drawn rectangle).

Images: real CC0 / public-domain photographs from ``skimage.data`` (backgrounds: coffee, rocket, Hubble deep
field, immunohistochemistry, astronaut; targets: crops of chelsea, astronaut, coffee, rocket) when
scikit-image is installed, multi-scale noise textures (:func:`siamdeploy.synthetic.texture.texture`) otherwise
or with ``images="procedural"``. The camera pans slowly over the background.

Ground truth. Without rotation the target is drawn at integer pixel positions: the box is exactly the
drawn extent, 0-based ``(x, y, w, h)`` (the layout writers add the files' 1-based origin, see
:mod:`siamdeploy.eval.datasets`). With rotation, the box and the VOT polygon are the exact corners of the
drawn rotated rectangle rounded to 4 decimals. VOT polygons use the inclusive (pixel-centre) convention
``x .. x+w-1`` that pysot's area-preserving rule inverts. ``visible`` is the fraction of the target's
pixels that are inside the frame and not occluded.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..errors import InputError
from ..images import to_bgr
from .texture import paste, texture

log = logging.getLogger(__name__)

ATTRIBUTES = ("scale", "aspect", "fast_motion", "occlusion", "out_of_view", "distractor", "blur", "noise",
              "rotation")
DEFAULT_MIXES = (
    ("scale", "aspect", "distractor", "occlusion", "noise"),
    ("fast_motion", "blur", "out_of_view", "scale"),
    ("rotation", "distractor", "occlusion", "noise", "aspect"),
    ("scale", "fast_motion", "distractor", "blur", "noise", "out_of_view"),
)
IMAGE_SOURCES = ("auto", "skimage", "procedural")
# (image, (y0, y1, x0, x1) as fractions) crops used as targets when scikit-image is available
_SKIMAGE_TARGETS = (("chelsea", (0.10, 0.75, 0.30, 0.75)), ("astronaut", (0.03, 0.45, 0.30, 0.68)),
                    ("coffee", (0.10, 0.75, 0.25, 0.75)), ("rocket", (0.05, 0.95, 0.40, 0.60)))
_SKIMAGE_BACKGROUNDS = ("coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "astronaut")
# GOT-10k cover labels: 0 invisible, 1..7 by visible fraction, 8 fully visible
_COVER_EDGES = (0.15, 0.30, 0.45, 0.60, 0.75, 0.90)


@dataclass
class GeneratedSequence:
    """frames: ``HxWx3`` uint8 BGR. boxes: ``(T, 4)`` 0-based exact ground truth. polygons: ``(T, 8)`` VOT
    regions (inclusive corners, 0-based). visible: fraction of the target visible per frame.
    full_occlusion / out_of_view: ``(T,)`` bool. target_patch: the patch drawn (resized to each box) as the
    target."""

    name: str
    frames: list[np.ndarray]
    boxes: np.ndarray
    polygons: np.ndarray
    visible: np.ndarray
    full_occlusion: np.ndarray
    out_of_view: np.ndarray
    attributes: tuple[str, ...]
    image_source: str
    meta: dict = field(default_factory=dict)
    target_patch: np.ndarray | None = field(default=None, repr=False)

    @property
    def absent(self) -> np.ndarray:
        """Target not visible at all (hidden or out of view)."""
        return self.visible <= 0

    @property
    def cover(self) -> np.ndarray:
        """GOT-10k cover labels 0..8 (0: invisible; 8: fully visible; 1..7: visible fraction in
        (0, .15], (.15, .30], .., (.90, 1))."""
        v = self.visible
        labels = 1 + np.searchsorted(np.asarray(_COVER_EDGES), v, side="left")
        labels = np.where(v >= 0.999, 8, labels)
        return np.where(v <= 0, 0, labels).astype(np.int64)

    @property
    def cut_by_image(self) -> np.ndarray:
        """The box extends past the image border."""
        height, width = self.frames[0].shape[:2]
        b = self.boxes
        return (b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 0] + b[:, 2] > width) | (b[:, 1] + b[:, 3] > height)


# ---------------------------------------------------------------------------------------------- images
def _skimage_images(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        from skimage import data as skdata
    except ImportError:
        return None
    try:
        bg_name = _SKIMAGE_BACKGROUNDS[int(rng.integers(len(_SKIMAGE_BACKGROUNDS)))]
        tg_name, (y0, y1, x0, x1) = _SKIMAGE_TARGETS[int(rng.integers(len(_SKIMAGE_TARGETS)))]
        background = to_bgr(getattr(skdata, bg_name)())
        source = to_bgr(getattr(skdata, tg_name)())
    except Exception as err:  # noqa: BLE001 - a data file that needs a download: fall back to textures
        log.info("scikit-image data unavailable (%s); using procedural textures", err)
        return None
    h, w = source.shape[:2]
    target = source[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)]
    return background, np.ascontiguousarray(target)


def _images(rng: np.random.Generator, images: str, width: int, height: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(background canvas larger than the frame, target patch, occluder patch, source name)."""
    pan = max(8, int(0.15 * max(width, height)))
    canvas_w, canvas_h = width + pan, height + pan
    found = _skimage_images(rng) if images in ("auto", "skimage") else None
    if images == "skimage" and found is None:
        raise InputError("--images skimage needs scikit-image (pip install scikit-image)")
    if found is not None:
        background, target = found
        scale = max(canvas_w / background.shape[1], canvas_h / background.shape[0])
        size = (max(canvas_w, int(math.ceil(background.shape[1] * scale))),
                max(canvas_h, int(math.ceil(background.shape[0] * scale))))
        background = cv2.resize(background, size, interpolation=cv2.INTER_AREA)
        oy = int(rng.integers(0, background.shape[0] - canvas_h + 1))
        ox = int(rng.integers(0, background.shape[1] - canvas_w + 1))
        background = np.ascontiguousarray(background[oy:oy + canvas_h, ox:ox + canvas_w])
        target = cv2.resize(target, (96, 96), interpolation=cv2.INTER_AREA)
        source = "skimage"
    else:
        background = texture(rng, canvas_h, canvas_w, smooth=8.0)
        target = texture(rng, 96, 96, smooth=3.0)
        source = "procedural"
    cv2.rectangle(target, (3, 3), (92, 92), tuple(int(v) for v in rng.integers(0, 255, 3)), 3)
    occluder = texture(rng, 96, 96, smooth=5.0)
    return background, target, occluder, source


# ---------------------------------------------------------------------------------------------- motion
def _window(t: np.ndarray, start: float, end: float, edge: float = 0.25, smooth: bool = True) -> np.ndarray:
    """0 outside [start, end], rising over the first ``edge`` of it to a plateau of 1 and falling over the
    last ``edge`` (smoothstep or linear edges)."""
    span = max(end - start, 1e-9)
    u = np.clip((t - start) / span, 0, 1)
    ramp = np.clip(np.minimum(u, 1 - u) / edge, 0, 1)
    return ramp * ramp * (3 - 2 * ramp) if smooth else ramp


def _rect_mask(shape: tuple[int, int], x: int, y: int, w: int, h: int) -> np.ndarray:
    mask = np.zeros(shape, bool)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, shape[1]), min(y + h, shape[0])
    if x1 > x0 and y1 > y0:
        mask[y0:y1, x0:x1] = True
    return mask


def _draw_rotated(frame: np.ndarray, patch: np.ndarray, centre: tuple[float, float], w: int, h: int,
                  angle: float) -> np.ndarray:
    """Draw ``patch`` resized to ``w x h`` rotated by ``angle`` (radians) about ``centre`` (continuous
    coordinates, pixel i spans [i, i+1]); returns the drawn-pixel mask (coverage > 0.5)."""
    resized = cv2.resize(patch, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    c, s = math.cos(angle), math.sin(angle)
    src_c = ((w - 1) / 2, (h - 1) / 2)
    dst_c = (centre[0] - 0.5, centre[1] - 0.5)   # pixel-index coordinates
    m = np.array([[c, -s, dst_c[0] - (c * src_c[0] - s * src_c[1])],
                  [s, c, dst_c[1] - (s * src_c[0] + c * src_c[1])]], np.float64)
    fh, fw = frame.shape[:2]
    warped = cv2.warpAffine(resized, m, (fw, fh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = cv2.warpAffine(np.ones((h, w), np.float32), m, (fw, fh), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT)[:, :, None]
    frame[:] = np.clip(frame * (1 - alpha) + warped * alpha + 0.5, 0, 255).astype(np.uint8)
    return alpha[:, :, 0] > 0.5


def _rotated_corners(centre: tuple[float, float], half_w: float, half_h: float, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    pts = np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])
    rot = np.array([[c, -s], [s, c]])
    return pts @ rot.T + np.asarray(centre)


def _motion_blur(img: np.ndarray, rng: np.random.Generator, length: int = 9) -> np.ndarray:
    kernel = np.zeros((length, length), np.float32)
    angle = float(rng.uniform(0, 180))
    c = (length - 1) / 2
    dx, dy = math.cos(math.radians(angle)) * c, math.sin(math.radians(angle)) * c
    cv2.line(kernel, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1)
    kernel /= kernel.sum()
    return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT)


# ---------------------------------------------------------------------------------------------- generator
def generate_benchmark_sequence(seed: int = 0, num_frames: int = 40, size: tuple[int, int] = (320, 240),
                                attributes: Sequence[str] | None = None, images: str = "auto",
                                name: str | None = None) -> GeneratedSequence:
    """One seeded sequence of ``num_frames`` frames of ``size = (width, height)`` with the given attributes
    (default: ``DEFAULT_MIXES[seed % 4]``). The first frame always shows the whole target."""
    if num_frames < 1:
        raise InputError(f"a sequence needs at least 1 frame, got {num_frames}")
    width, height = size
    if width < 32 or height < 32:
        raise InputError(f"frames must be at least 32x32 pixels, got {width}x{height}")
    attrs = tuple(DEFAULT_MIXES[seed % len(DEFAULT_MIXES)] if attributes is None else attributes)
    unknown = [a for a in attrs if a not in ATTRIBUTES]
    if unknown:
        raise InputError(f"unknown attribute(s) {', '.join(unknown)}; known: {', '.join(ATTRIBUTES)}")
    if images not in IMAGE_SOURCES:
        raise InputError(f"images must be one of {', '.join(IMAGE_SOURCES)}, got '{images}'")
    rng = np.random.default_rng(seed)
    background, target, occluder, source = _images(rng, images, width, height)
    look_alikes = [cv2.addWeighted(target, 0.75, texture(rng, 96, 96, smooth=3.0), 0.25, 0) for _ in range(2)]
    n = num_frames
    t = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)

    # size: base about a fifth of the short side
    base_w = min(width, height) * rng.uniform(0.18, 0.26)
    base_h = base_w * rng.uniform(0.7, 1.3)
    scale = np.exp(0.35 * np.sin(2 * np.pi * t * rng.uniform(0.8, 1.5))) if "scale" in attrs else np.ones(n)
    aspect = np.exp(0.22 * np.sin(2 * np.pi * t * rng.uniform(0.6, 1.2) + 1.0)) if "aspect" in attrs else np.ones(n)
    w_f = base_w * scale * aspect
    h_f = base_h * scale / aspect
    # a smooth path that stays inside the frame
    margin_x, margin_y = 0.5 * w_f.max() + 2, 0.5 * h_f.max() + 2
    phase = rng.uniform(0, 2 * np.pi, 2)
    cx = width / 2 + (width / 2 - margin_x) * 0.8 * np.sin(2 * np.pi * t * rng.uniform(0.5, 1.0) + phase[0]) * t
    cy = height / 2 + (height / 2 - margin_y) * 0.8 * np.sin(2 * np.pi * t * rng.uniform(0.7, 1.3) + phase[1]) * t
    cx = cx + rng.normal(0, 1.0, n) * (t > 0)
    cy = cy + rng.normal(0, 1.0, n) * (t > 0)
    jumps = np.zeros(n, bool)
    if "fast_motion" in attrs and n >= 4:
        for k0, k1 in ((int(0.25 * n), int(0.4 * n)), (int(0.6 * n), int(0.75 * n))):
            k0, k1 = max(k0, 1), max(k1, k0 + 1)
            dirn = rng.normal(size=2)
            dirn /= np.linalg.norm(dirn) + 1e-9
            step = 1.5 * max(base_w, base_h) * dirn
            # jump towards the frame centre side with room
            step[0] = -abs(step[0]) if cx[k0] > width / 2 else abs(step[0])
            step[1] = -abs(step[1]) if cy[k0] > height / 2 else abs(step[1])
            cx[k0:k1] += step[0]
            cy[k0:k1] += step[1]
            jumps[k0] = True
            if k1 < n:
                jumps[k1] = True
    cx = np.clip(cx, margin_x, width - margin_x) if width > 2 * margin_x else np.full(n, width / 2)
    cy = np.clip(cy, margin_y, height - margin_y) if height > 2 * margin_y else np.full(n, height / 2)
    if "out_of_view" in attrs and n >= 4:
        b = _window(t, 0.5, 0.85)
        exit_x = width + 0.6 * w_f.max() + 4      # the whole box beyond the right edge
        cx = (1 - b) * cx + b * exit_x
    angle = (np.radians(20.0) * np.sin(2 * np.pi * t * rng.uniform(0.7, 1.2) + 0.3) * np.minimum(t * 4, 1)
             if "rotation" in attrs else np.zeros(n))
    occ = _window(t, 0.25, 0.65, edge=0.35, smooth=False) if "occlusion" in attrs and n >= 3 else np.zeros(n)
    occ_dir = 1 if rng.random() < 0.5 else -1
    distractor_paths = []
    if "distractor" in attrs:
        for k in range(2):
            p = rng.uniform(0, 2 * np.pi, 2)
            dx = width * (0.5 + 0.38 * np.sin(2 * np.pi * t * rng.uniform(0.4, 0.9) + p[0]))
            dy = height * (0.5 + 0.38 * np.sin(2 * np.pi * t * rng.uniform(0.4, 0.9) + p[1] + k))
            distractor_paths.append((dx, dy))
    blur_frames = (jumps | (rng.random(n) < 0.25)) if "blur" in attrs else np.zeros(n, bool)
    blur_frames[0] = False
    noise_sigma = rng.uniform(5, 10) if "noise" in attrs else 0.0
    pan_x = np.round((background.shape[1] - width) * (0.5 + 0.5 * np.sin(2 * np.pi * t * 0.5))).astype(int)
    pan_y = np.round((background.shape[0] - height) * (0.5 + 0.5 * np.cos(2 * np.pi * t * 0.4))).astype(int)

    frames, boxes, polygons, visible = [], [], [], []
    fully_hidden, outside = [], []
    for i in range(n):
        frame = background[pan_y[i]:pan_y[i] + height, pan_x[i]:pan_x[i] + width].copy()
        wi, hi = max(int(round(w_f[i])), 2), max(int(round(h_f[i])), 2)
        for (dx, dy), patch in zip(distractor_paths, look_alikes):
            paste(frame, patch, int(round(dx[i] - wi / 2)), int(round(dy[i] - hi / 2)), wi, hi)
        if angle[i] == 0.0:
            xi, yi = int(round(cx[i] - wi / 2)), int(round(cy[i] - hi / 2))
            paste(frame, target, xi, yi, wi, hi)
            target_mask = _rect_mask((height, width), xi, yi, wi, hi)
            box = np.array([xi, yi, wi, hi], np.float64)
            poly = np.array([xi, yi, xi + wi - 1, yi, xi + wi - 1, yi + hi - 1, xi, yi + hi - 1], np.float64)
        else:
            centre = (round(float(cx[i]) * 2) / 2, round(float(cy[i]) * 2) / 2)
            target_mask = _draw_rotated(frame, target, centre, wi, hi, float(angle[i]))
            outer = _rotated_corners(centre, wi / 2, hi / 2, float(angle[i]))
            lo, hi_ = outer.min(axis=0), outer.max(axis=0)
            box = np.round(np.array([lo[0], lo[1], hi_[0] - lo[0], hi_[1] - lo[1]]), 4)
            inner = _rotated_corners((centre[0] - 0.5, centre[1] - 0.5), (wi - 1) / 2, (hi - 1) / 2, float(angle[i]))
            poly = np.round(inner.reshape(-1), 4)
        if occ[i] > 0:
            # the occluder travels across the target; at the window's middle it covers it entirely
            ow, oh = int(math.ceil(1.6 * max(wi, hi))) + 4, int(math.ceil(1.6 * max(wi, hi))) + 4
            travel = (1 - occ[i]) * (ow + wi) / 2 * occ_dir * (1 if t[i] < 0.45 else -1)
            ox = int(round(cx[i] + travel - ow / 2))
            oy = int(round(cy[i] - oh / 2))
            paste(frame, occluder, ox, oy, ow, oh)
            target_mask &= ~_rect_mask((height, width), ox, oy, ow, oh)
        seen = float(target_mask.sum()) / float(wi * hi)
        in_frame = bool(_rect_mask((height, width), int(math.floor(box[0])), int(math.floor(box[1])),
                                   int(math.ceil(box[2])) + 1, int(math.ceil(box[3])) + 1).any())
        if blur_frames[i]:
            frame = _motion_blur(frame, rng)
        if noise_sigma > 0:
            noisy = frame.astype(np.float32) + rng.normal(0, noise_sigma, frame.shape).astype(np.float32)
            frame = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
        frames.append(frame)
        boxes.append(box)
        polygons.append(poly)
        visible.append(min(seen, 1.0))
        fully_hidden.append(in_frame and seen <= 0)
        outside.append(not in_frame)
    vis = np.asarray(visible)
    return GeneratedSequence(name=name or f"synth{seed:03d}", frames=frames, boxes=np.asarray(boxes),
                             polygons=np.asarray(polygons), visible=vis, full_occlusion=np.asarray(fully_hidden),
                             out_of_view=np.asarray(outside), attributes=attrs, image_source=source,
                             meta={"seed": seed, "size": [width, height], "noise_sigma": float(noise_sigma)},
                             target_patch=target)
