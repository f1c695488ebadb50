"""Tracking scenes built from real photographs, with exact ground truth.

An object cut from one photograph (or a procedural pattern) moves over a slowly panning crop of another
photograph, changing scale, aspect and rotation, under motion blur, sensor noise and illumination change;
distractors (some of the same appearance as the target) move on their own paths and an occluder can pass
in front of the target. Every random choice comes from the scene seed, so a scene renders the same frame
for the same time ``t`` on every machine.

Photographs: :func:`heldout_photos` reads the few JPEGs shipped with siamdeploy (no extra package needed);
:func:`training_photos` reads the images bundled in the scikit-image and scikit-learn wheels (only the
training script needs those packages). The two sets do not overlap, so evaluation on held-out photographs
measures generalisation to unseen backgrounds and objects.

Boxes are ``(x, y, w, h)`` in frame pixels, 0-based, float64: the axis-aligned bounding box of the rotated
object shape (they may extend past the frame when the object leaves it).
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ConfigError

PHOTO_DIR = os.path.join(os.path.dirname(__file__), "photos")
HELDOUT_NAMES = ("chelsea", "coffee", "flower")  # shipped as package data (see docs/reference_models.md)
_SKIMAGE_TRAIN = ("astronaut", "camera", "rocket", "hubble_deep_field", "immunohistochemistry", "coins",
                  "horse", "moon", "page", "text", "brick", "grass", "gravel", "retina", "cell", "colorwheel",
                  "logo", "microaneurysms", "clock", "checkerboard")
_SKLEARN_TRAIN = ("china.jpg",)


@dataclass
class PhotoSequence:
    """frames: list of ``HxWx3`` uint8 BGR; boxes: ``(T, 4)`` float64 ground truth ``(x, y, w, h)``."""

    name: str
    frames: list[np.ndarray]
    boxes: np.ndarray


def _as_bgr(img: np.ndarray) -> np.ndarray:
    """Any skimage/sklearn image (grey, RGB, RGBA, bool, float) -> ``HxWx3`` uint8 BGR."""
    arr = np.asarray(img)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        hi = 1.0 if arr.max() <= 1.0 else 255.0
        arr = np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr[:, :, ::-1])


def heldout_photos() -> dict[str, np.ndarray]:
    """The held-out photographs shipped with siamdeploy: name -> ``HxWx3`` uint8 BGR."""
    out = {}
    for name in HELDOUT_NAMES:
        path = os.path.join(PHOTO_DIR, f"{name}.jpg")
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise ConfigError(f"held-out photograph '{path}' is missing; reinstall siamdeploy")
        out[name] = img
    return out


def training_photos() -> dict[str, np.ndarray]:
    """The training photographs: images bundled in the scikit-image and scikit-learn wheels (no download).

    Raises :class:`ConfigError` when those packages are missing (``pip install -e '.[train]'``).
    """
    try:
        import skimage.data
        from sklearn.datasets import load_sample_image
    except ImportError:
        raise ConfigError("training photographs need scikit-image and scikit-learn; "
                          "run pip install -e '.[train]'") from None
    out = {name: _as_bgr(getattr(skimage.data, name)()) for name in _SKIMAGE_TRAIN}
    out.update({name.split(".")[0]: _as_bgr(load_sample_image(name)) for name in _SKLEARN_TRAIN})
    return out


def _pattern(rng: np.random.Generator, side: int = 96) -> np.ndarray:
    """A procedural object texture ``side x side x 3`` uint8: stripes, checks or blobs in random colours."""
    kind = int(rng.integers(0, 3))
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if kind == 0:
        ang, freq = rng.uniform(0, math.pi), rng.uniform(2, 8)
        v = 0.5 + 0.5 * np.sin(2 * math.pi * freq * (xx * math.cos(ang) + yy * math.sin(ang)))
    elif kind == 1:
        f = int(rng.integers(2, 7))
        v = ((np.floor(xx * f) + np.floor(yy * f)) % 2).astype(np.float32)
    else:
        noise = rng.standard_normal((side, side)).astype(np.float32)
        v = cv2.GaussianBlur(noise, (0, 0), rng.uniform(3, 10))
        v = (v > 0).astype(np.float32)
    img = c0[None, None, :] * (1 - v[:, :, None]) + c1[None, None, :] * v[:, :, None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _photo_patch(rng: np.random.Generator, photo: np.ndarray, side: int = 96) -> np.ndarray:
    """A random region of ``photo`` (10-45 % of its shorter side) resized to ``side x side``."""
    h, w = photo.shape[:2]
    s = int(min(h, w) * rng.uniform(0.10, 0.45))
    ar = rng.uniform(0.6, 1.6)
    pw, ph = max(8, min(w, int(s * math.sqrt(ar)))), max(8, min(h, int(s / math.sqrt(ar))))
    x0, y0 = int(rng.integers(0, w - pw + 1)), int(rng.integers(0, h - ph + 1))
    return cv2.resize(photo[y0:y0 + ph, x0:x0 + pw], (side, side), interpolation=cv2.INTER_AREA)


def _recolour(rng: np.random.Generator, patch: np.ndarray, amount: float) -> np.ndarray:
    """Per-channel gain/offset of up to ``amount`` (0..1): a look-alike of ``patch``."""
    gain = 1.0 + rng.uniform(-amount, amount, 3)
    offset = rng.uniform(-40 * amount, 40 * amount, 3)
    return np.clip(patch.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


@dataclass
class _Mover:
    """One object: appearance, shape and a smooth path (sums of sinusoids over ``t`` in frames)."""

    patch: np.ndarray
    ellipse: bool
    base: tuple[float, float, float, float]  # cx, cy (fractions of the frame), width, height (pixels)
    amp: np.ndarray       # (5, K): cx, cy, log-scale, log-aspect, angle
    freq: np.ndarray      # (5, K) cycles per frame
    phase: np.ndarray     # (5, K)
    drift: np.ndarray     # (2,) frame fractions per frame

    def state(self, t: float, frame_w: int, frame_h: int) -> tuple[float, float, float, float, float]:
        """``(cx, cy, w, h, angle_deg)`` at time ``t``."""
        v = (self.amp * np.sin(2 * math.pi * self.freq * t + self.phase)).sum(axis=1)
        cx = (self.base[0] + self.drift[0] * t + v[0]) * frame_w
        cy = (self.base[1] + self.drift[1] * t + v[1]) * frame_h
        scale, aspect = math.exp(v[2]), math.exp(v[3])
        return cx, cy, self.base[2] * scale * aspect, self.base[3] * scale / aspect, float(v[4])

    def bbox(self, t: float, frame_w: int, frame_h: int) -> tuple[float, float, float, float]:
        """Axis-aligned box ``(x, y, w, h)`` of the rotated shape at time ``t``."""
        cx, cy, w, h, ang = self.state(t, frame_w, frame_h)
        c, s = abs(math.cos(math.radians(ang))), abs(math.sin(math.radians(ang)))
        if self.ellipse:
            hw = math.sqrt((w / 2 * c) ** 2 + (h / 2 * s) ** 2)
            hh = math.sqrt((w / 2 * s) ** 2 + (h / 2 * c) ** 2)
        else:
            hw, hh = (w * c + h * s) / 2, (w * s + h * c) / 2
        return cx - hw, cy - hh, 2 * hw, 2 * hh


def _random_mover(rng: np.random.Generator, patch: np.ndarray, size: tuple[float, float], motion: float,
                  start: tuple[float, float] | None = None, rotate: float = 15.0) -> _Mover:
    k = 3
    amp = np.stack([rng.uniform(0, 0.18, k) * motion, rng.uniform(0, 0.18, k) * motion,
                    rng.uniform(0, 0.12, k), rng.uniform(0, 0.08, k), rng.uniform(0, rotate / k, k)])
    freq = rng.uniform(0.003, 0.02, (5, k))
    phase = rng.uniform(0, 2 * math.pi, (5, k))
    if start is None:
        start = (float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8)))
    # shift the base so that the object sits exactly at `start` at t = 0
    v0 = (amp[:2] * np.sin(phase[:2])).sum(axis=1)
    base = (start[0] - v0[0], start[1] - v0[1], size[0], size[1])
    drift = rng.uniform(-0.0015, 0.0015, 2) * motion
    return _Mover(patch, bool(rng.random() < 0.35), base, amp, freq, phase, drift)


def _draw(canvas: np.ndarray, mover: _Mover, t: float, alpha_scale: float = 1.0) -> None:
    """Alpha-composite ``mover`` at time ``t`` into float32 ``canvas`` (in place)."""
    fh, fw = canvas.shape[:2]
    cx, cy, w, h, ang = mover.state(t, fw, fh)
    if w < 1 or h < 1:
        return
    side = mover.patch.shape[0]
    bx, by, bw, bh = mover.bbox(t, fw, fh)
    x0, y0 = max(math.floor(bx) - 2, 0), max(math.floor(by) - 2, 0)
    x1, y1 = min(math.ceil(bx + bw) + 2, fw), min(math.ceil(by + bh) + 2, fh)
    if x1 <= x0 or y1 <= y0:
        return
    # Pixel i covers [i, i+1); a patch pixel u maps to frame position centre + R S (u + 0.5 - side/2),
    # so in cv2's pixel-index convention the sub-image (origin x0, y0) gets the affine map below.
    a = math.radians(ang)
    ca, sa = math.cos(a), math.sin(a)
    rs = np.array([[ca * w / side, -sa * h / side], [sa * w / side, ca * h / side]])
    m = np.empty((2, 3))
    m[:, :2] = rs
    m[:, 2] = np.array([cx - x0, cy - y0]) - 0.5 - rs @ np.array([side / 2 - 0.5, side / 2 - 0.5])
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpAffine(mover.patch, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask = np.zeros((side * 2, side * 2), np.uint8)  # supersampled shape for smooth edges
    if mover.ellipse:
        cv2.ellipse(mask, (side, side), (side, side), 0, 0, 360, 255, -1, lineType=cv2.LINE_AA)
    else:
        mask[:] = 255
    m2 = m.copy()
    m2[:, :2] /= 2.0
    m2[:, 2] = np.array([cx - x0, cy - y0]) - 0.5 - m2[:, :2] @ np.array([side - 0.5, side - 0.5])
    alpha = cv2.warpAffine(mask, m2, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0).astype(np.float32) / 255.0 * alpha_scale
    region = canvas[y0:y1, x0:x1]
    region += alpha[:, :, None] * (warped.astype(np.float32) - region)


@dataclass
class PhotoScene:
    """A seeded scene; :meth:`render` draws the frame and the target box at any time ``t`` (frames)."""

    seed: int
    size: tuple[int, int]                      # frame (width, height)
    background: np.ndarray                     # panning source, larger than the frame
    pan: np.ndarray                            # (2, 3): amplitude (px), frequency, phase per axis
    target: _Mover
    distractors: list[_Mover]
    occluder: _Mover | None
    occlusion_window: tuple[float, float]      # the occluder is drawn for t in this window
    blur: float                                # motion-blur length per pixel of target speed
    noise: float                               # Gaussian noise std (grey levels)
    light: np.ndarray                          # (3,): gain amplitude, frequency, phase

    def _background(self, t: float) -> np.ndarray:
        fw, fh = self.size
        bh, bw = self.background.shape[:2]
        ox = (bw - fw) / 2 + self.pan[0, 0] * math.sin(2 * math.pi * self.pan[0, 1] * t + self.pan[0, 2])
        oy = (bh - fh) / 2 + self.pan[1, 0] * math.sin(2 * math.pi * self.pan[1, 1] * t + self.pan[1, 2])
        m = np.array([[1.0, 0.0, -ox], [0.0, 1.0, -oy]])
        return cv2.warpAffine(self.background, m, (fw, fh), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT).astype(np.float32)

    def box(self, t: float) -> tuple[float, float, float, float]:
        """Ground-truth target box ``(x, y, w, h)`` at time ``t``."""
        return self.target.bbox(t, *self.size)

    def render(self, t: float) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        """``(frame HxWx3 uint8 BGR, target box (x, y, w, h))`` at time ``t``."""
        fw, fh = self.size
        canvas = self._background(t)
        for d in self.distractors:
            _draw(canvas, d, t)
        _draw(canvas, self.target, t)
        lo, hi = self.occlusion_window
        if self.occluder is not None and lo <= t <= hi:
            _draw(canvas, self.occluder, t)
        x0, y0, _, _ = self.target.bbox(t, fw, fh)
        x1, y1, _, _ = self.target.bbox(t + 1, fw, fh)
        speed = math.hypot(x1 - x0, y1 - y0)
        length = round(self.blur * speed)
        if length >= 2:
            kernel = np.zeros((length, length), np.float32)
            kernel[length // 2, :] = 1.0 / length
            rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2),
                                          math.degrees(math.atan2(y1 - y0, x1 - x0)), 1.0)
            kernel = cv2.warpAffine(kernel, rot, (length, length))
            kernel /= max(kernel.sum(), 1e-6)
            canvas = cv2.filter2D(canvas, -1, kernel)
        gain = 1.0 + self.light[0] * math.sin(2 * math.pi * self.light[1] * t + self.light[2])
        canvas *= gain
        if self.noise > 0:
            rng = np.random.default_rng((self.seed, int(t * 1000) & 0x7FFFFFFF))
            canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(self.noise)
        return np.clip(canvas, 0, 255).astype(np.uint8), self.box(t)


def make_scene(seed: int, photos: dict[str, np.ndarray], size: tuple[int, int] = (480, 360),
               difficulty: float = 1.0) -> PhotoScene:
    """A random scene from ``photos`` (name -> BGR image), reproducible from ``seed``.

    ``difficulty`` (0..1.5) scales motion, distractor count, occlusion, blur, noise and lighting change.
    """
    if not photos:
        raise ConfigError("make_scene needs at least one photograph; pass heldout_photos() or training_photos()")
    rng = np.random.default_rng(seed)
    names = sorted(photos)
    fw, fh = size

    def photo() -> np.ndarray:
        return photos[names[int(rng.integers(0, len(names)))]]

    # background: a scaled crop of a photograph, larger than the frame so the camera can pan
    src = photo()
    margin = 1.0 + 0.25 * difficulty
    need_w, need_h = int(fw * margin) + 2, int(fh * margin) + 2
    zoom = max(need_w / src.shape[1], need_h / src.shape[0]) * rng.uniform(1.0, 1.8)
    big = cv2.resize(src, (max(need_w, int(src.shape[1] * zoom)), max(need_h, int(src.shape[0] * zoom))))
    bx = int(rng.integers(0, big.shape[1] - need_w + 1))
    by = int(rng.integers(0, big.shape[0] - need_h + 1))
    background = big[by:by + need_h, bx:bx + need_w]
    if rng.random() < 0.5:
        background = background[:, ::-1]
    background = np.ascontiguousarray(background)
    pan_amp = np.array([(need_w - fw) / 2 - 1, (need_h - fh) / 2 - 1]) * rng.uniform(0, 1, 2)
    pan = np.stack([pan_amp, rng.uniform(0.002, 0.01, 2), rng.uniform(0, 2 * math.pi, 2)], axis=1)

    def patch() -> np.ndarray:
        return _pattern(rng) if rng.random() < 0.25 else _photo_patch(rng, photo())

    side = min(fw, fh)
    area = side * rng.uniform(0.10, 0.25)
    ar = math.exp(rng.uniform(-0.6, 0.6))
    tsize = (area * math.sqrt(ar), area / math.sqrt(ar))
    tpatch = patch()
    target = _random_mover(rng, tpatch, tsize, motion=difficulty, start=(rng.uniform(0.35, 0.65),
                                                                          rng.uniform(0.35, 0.65)))
    distractors = []
    n_same = int(rng.integers(0, 2 + int(difficulty >= 1.0)))
    for _ in range(n_same):  # same appearance, slightly recoloured, elsewhere in the frame
        start = (float(rng.choice([rng.uniform(0.05, 0.3), rng.uniform(0.7, 0.95)])), float(rng.uniform(0.1, 0.9)))
        distractors.append(_random_mover(rng, _recolour(rng, tpatch, 0.15), tsize, difficulty, start))
    for _ in range(int(rng.integers(0, 1 + int(3 * difficulty)))):
        s = area * rng.uniform(0.6, 1.4)
        start = (float(rng.choice([rng.uniform(0.0, 0.3), rng.uniform(0.7, 1.0)])), float(rng.uniform(0, 1)))
        distractors.append(_random_mover(rng, patch(), (s * math.sqrt(ar), s / math.sqrt(ar)), difficulty, start))
    occluder, window = None, (0.0, -1.0)
    if rng.random() < 0.5 * min(difficulty, 1.0):
        # follows the target's path at a fixed sideways offset, so 0-35 % of the target is covered
        t0 = float(rng.uniform(10, 80))
        osize = (tsize[0] * rng.uniform(0.3, 0.6), tsize[1] * rng.uniform(0.8, 1.4))
        offset = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.45, 0.7) * tsize[0] / fw)
        occluder = _Mover(patch(), False, (target.base[0] + offset, target.base[1], *osize), target.amp.copy(),
                          target.freq.copy(), target.phase.copy(), target.drift.copy())
        occluder.amp[2:] = 0.0
        window = (t0, t0 + float(rng.uniform(8, 25)))
    blur = float(rng.uniform(0, 0.6) * difficulty)
    noise = float(rng.uniform(0, 6) * difficulty)
    light = np.array([rng.uniform(0, 0.25) * difficulty, rng.uniform(0.005, 0.03), rng.uniform(0, 2 * math.pi)])
    return PhotoScene(seed, (fw, fh), background, pan, target, distractors, occluder, window, blur, noise, light)


def photo_sequence(seed: int = 0, num_frames: int = 100, size: tuple[int, int] = (480, 360),
                   difficulty: float = 1.0, photos: dict[str, np.ndarray] | None = None) -> PhotoSequence:
    """A seeded sequence of ``num_frames`` frames on the held-out photographs (default) or ``photos``."""
    name, frames, boxes = lazy_photo_sequence(seed, num_frames, size, difficulty, photos)
    return PhotoSequence(name, list(frames), boxes)


def lazy_photo_sequence(seed: int = 0, num_frames: int = 100, size: tuple[int, int] = (480, 360),
                        difficulty: float = 1.0, photos: dict[str, np.ndarray] | None = None
                        ) -> tuple[str, Iterator[np.ndarray], np.ndarray]:
    """The frames of :func:`photo_sequence` drawn one at a time (memory bounded by one frame, whatever
    ``num_frames``): ``(name, frame iterator, boxes (T, 4))``; the boxes need no rendering."""
    scene = make_scene(seed, heldout_photos() if photos is None else photos, size, difficulty)
    boxes = np.asarray([scene.box(float(t)) for t in range(num_frames)], np.float64)
    return f"photo_{seed}", (scene.render(float(t))[0] for t in range(num_frames)), boxes
