"""Readers for benchmark folders in the layouts of OTB, GOT-10k, VOT and LaSOT.

Coordinates. siamdeploy boxes are 0-based ``(x, y, w, h)`` (the top-left pixel of an image is ``(0, 0)``).
The OTB, GOT-10k and LaSOT annotation files are **1-based** (MATLAB convention: the top-left pixel is
``(1, 1)``; the GOT-10k and LaSOT authors confirm it): the readers subtract 1 from x and y, w and h are
unchanged, and the writers add the 1 back so result files line up with the files' ground truth.
VOT region files are used **as they are** (0-based, as the VOT toolkit, pysot and got10k use them).
Every :class:`BenchmarkSequence` records its file ``origin`` (1 or 0).

VOT regions. A line of 4 values is a box; a line of 8 values is a polygon (x1, y1, .., x4, y4). The box a
tracker is (re-)initialised with comes from pysot's area-preserving rule (``get_axis_aligned_bbox``,
docs/evaluation.md#vot-polygons): centre = mean of the corners, ``s = sqrt(A1 / A2)`` with ``A1`` the product of the
lengths of the edges p1p2 and p2p3 (the polygon's area for a rectangle) and ``A2`` the area of the
axis-aligned bounding box ``(x2-x1)(y2-y1)``; ``w = s(x2-x1) + 1``, ``h = s(y2-y1) + 1``; the box is
``(cx - (w-1)/2, cy - (h-1)/2, w, h)``. Polygon corners are pixel centres (inclusive convention): the box
``(x, y, w, h)`` is the polygon ``x..x+w-1``, which is what that rule inverts.

Layout quirks handled:

- OTB: ``<seq>/img/*.jpg`` + ``groundtruth_rect.txt`` separated by commas, spaces or tabs (files mix them);
  two targets as ``groundtruth_rect.1.txt`` / ``.2.txt`` (sequences ``<seq>.1``, ``<seq>.2``); sequences
  whose annotation starts later than the first image (David 300, BlurCar1 247, BlurCar3 3, BlurCar4 18, the
  benchmark's ``startFrame``) and ones with more images than annotations (Football1, Freeman3, Freeman4,
  Diving: the first N images from the start frame are used).
- GOT-10k: ``list.txt`` (or the sequence folders) in the root or in ``train/``, ``val/``, ``test/``;
  ``absence.label``, ``cover.label`` (0..8, 0 = target invisible), ``cut_by_image.label``,
  ``meta_info.ini`` (resolution); the test subset annotates only the first frame (the sequence then has no
  ground truth after frame 1 and can be tracked but not scored).
- VOT: ``list.txt`` (or the folders), images in ``<seq>/color/`` (VOT2016+ toolkit) or in ``<seq>/``.
- LaSOT: ``<category>/<category>-<n>/img/`` (or sequence folders directly under the root), optional
  ``testing_set.txt``; ``full_occlusion.txt`` and ``out_of_view.txt`` (one comma-separated line of 0/1):
  a frame with either flag set is *absent*.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError
from ..images import list_images, natural_key, read_image

log = logging.getLogger(__name__)

DATASETS = ("otb", "got10k", "vot", "lasot")
FILE_ORIGIN = {"otb": 1, "got10k": 1, "lasot": 1, "vot": 0}
# OTB-2015 sequences whose annotation starts after the first image (the benchmark's startFrame, 1-based)
OTB_START_FRAMES = {"david": 300, "blurcar1": 247, "blurcar3": 3, "blurcar4": 18}
_SEPARATORS = re.compile(r"[,\s;]+")


@dataclass
class BenchmarkSequence:
    """One annotated sequence.

    boxes: ``(T, 4)`` float64, 0-based ``(x, y, w, h)``; NaN rows where the ground truth is unknown (GOT-10k
    test). For VOT these are the initialisation boxes of each frame (area-preserving rule).
    polygons: ``(T, 8)`` 0-based VOT regions when the file has polygons (box lines become their corners),
    else None. absent: ``(T,)`` bool, target not visible (GOT-10k ``cover == 0`` / ``absence``, LaSOT full
    occlusion or out of view). cover: GOT-10k visibility labels 0..8, else None. origin: 1 when the
    annotation files are 1-based. extra: other per-frame labels and metadata read from the folder.
    """

    name: str
    frame_paths: list[str]
    boxes: np.ndarray
    origin: int = 0
    polygons: np.ndarray | None = None
    absent: np.ndarray | None = None
    cover: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.absent is None:
            self.absent = np.zeros(len(self.frame_paths), bool)

    def __len__(self) -> int:
        return len(self.frame_paths)

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as an ``HxWx3`` uint8 BGR image."""
        return read_image(self.frame_paths[index])

    @property
    def image_size(self) -> tuple[int, int]:
        """``(W, H)`` of the frames (from the metadata, else the first image)."""
        if self.size is None:
            height, width = self.frame(0).shape[:2]
            self.size = (int(width), int(height))
        return self.size

    @property
    def has_groundtruth(self) -> bool:
        """False when only the first frame is annotated (GOT-10k test subset)."""
        return bool(np.all(np.isfinite(self.boxes[1:]))) if len(self.boxes) > 1 else True

    def regions(self) -> list[np.ndarray]:
        """Per-frame ground-truth regions for VOT overlaps: the polygons if any, else the boxes."""
        src = self.polygons if self.polygons is not None else self.boxes
        return [row for row in src]


@dataclass
class Dataset:
    kind: str
    root: str
    sequences: list[BenchmarkSequence]

    def __len__(self) -> int:
        return len(self.sequences)

    def __iter__(self):
        return iter(self.sequences)


# ---------------------------------------------------------------------------------------------- helpers
def vot_init_box(region: Any) -> tuple[float, float, float, float]:
    """The 0-based ``(x, y, w, h)`` a tracker is initialised with for a VOT region (pysot's rule, see the
    module docstring). A 4-value region is returned unchanged."""
    arr = np.asarray(region, np.float64).reshape(-1)
    if arr.size == 4:
        return tuple(float(v) for v in arr)  # type: ignore[return-value]
    if arr.size != 8:
        raise InputError(f"a VOT region has 4 or 8 values, got {arr.size}")
    xs, ys = arr[0::2], arr[1::2]
    cx, cy = float(xs.mean()), float(ys.mean())
    x1, x2, y1, y2 = float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max())
    a1 = float(np.linalg.norm(arr[0:2] - arr[2:4]) * np.linalg.norm(arr[2:4] - arr[4:6]))
    a2 = (x2 - x1) * (y2 - y1)
    s = float(np.sqrt(a1 / a2)) if a2 > 0 else 1.0
    w = s * (x2 - x1) + 1
    h = s * (y2 - y1) + 1
    return (cx - (w - 1) / 2, cy - (h - 1) / 2, w, h)


def box_to_vot_polygon(box: Any) -> np.ndarray:
    """A 0-based box as VOT polygon corners in the inclusive convention (``x .. x+w-1``), 8 values; the
    inverse of :func:`vot_init_box` for axis-aligned boxes."""
    x, y, w, h = (float(v) for v in box)
    return np.array([x, y, x + w - 1, y, x + w - 1, y + h - 1, x, y + h - 1], np.float64)


def read_rows(path: str, widths: tuple[int, ...] = (4,)) -> list[np.ndarray]:
    """Numbers per non-empty line (separated by commas, spaces, tabs or semicolons); each line must have one
    of ``widths`` values. Errors name the file and line."""
    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as err:
        raise InputError(f"cannot read '{path}': {err.strerror or err}") from None
    for lineno, line in enumerate(lines, start=1):
        text = line.strip().strip(",")
        if not text:
            continue
        try:
            values = np.array([float(t) for t in _SEPARATORS.split(text) if t], np.float64)
        except ValueError:
            raise InputError(f"{path}:{lineno}: not a list of numbers: '{line.strip()[:60]}'") from None
        if values.size not in widths:
            want = " or ".join(str(w) for w in widths)
            raise InputError(f"{path}:{lineno}: expected {want} numbers, got {values.size}")
        rows.append(values)
    if not rows:
        raise InputError(f"'{path}' has no annotations")
    return rows


def read_flags(path: str) -> np.ndarray:
    """All integers in a label file (one per line, or one comma-separated line)."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    try:
        return np.array([int(float(t)) for t in _SEPARATORS.split(text.strip()) if t], np.int64)
    except ValueError:
        raise InputError(f"'{path}' must hold integers (one per frame)") from None


def _boxes(rows: list[np.ndarray], origin: int) -> np.ndarray:
    boxes = np.stack(rows).astype(np.float64)
    boxes[:, :2] -= origin
    return boxes


def _require_dir(root: str, kind: str) -> str:
    if not os.path.isdir(root):
        raise InputError(f"{kind} root '{root}' is not a folder")
    return os.path.abspath(root)


def _listed_sequences(base: str) -> list[tuple[str, str]]:
    """``(name, folder)`` of the sequences in ``base``: as ``list.txt`` orders them, else every subfolder
    with a ``groundtruth.txt``. A listed sequence whose folder is missing is an error."""
    list_path = os.path.join(base, "list.txt")
    if os.path.isfile(list_path):
        names = _list_file(list_path)
    else:
        names = [d for d in _subdirs(base) if os.path.isfile(os.path.join(base, d, "groundtruth.txt"))]
    out = []
    for name in names:
        seq_dir = os.path.join(base, name)
        if not os.path.isdir(seq_dir):
            raise InputError(f"sequence '{name}' is listed in {list_path} but '{seq_dir}' does not exist")
        out.append((name, seq_dir))
    return out


def _subdirs(folder: str) -> list[str]:
    return sorted((d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d))), key=natural_key)


def _list_file(path: str) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


def _check_lengths(name: str, frames: int, annotations: int, where: str) -> None:
    if frames != annotations:
        raise InputError(f"sequence '{name}': {frames} images but {annotations} annotations in {where}")


# ---------------------------------------------------------------------------------------------- OTB
def read_otb(root: str) -> Dataset:
    """OTB-2013/2015 layout (see the module docstring)."""
    root = _require_dir(root, "OTB")
    seq_dirs = [root] if _is_otb_sequence(root) else [os.path.join(root, d) for d in _subdirs(root)
                                                       if _is_otb_sequence(os.path.join(root, d))]
    sequences = []
    for seq_dir in seq_dirs:
        base = os.path.basename(seq_dir)
        annos = sorted(f for f in os.listdir(seq_dir) if re.fullmatch(r"groundtruth_rect(\.\d+)?\.txt", f))
        images = list_images(os.path.join(seq_dir, "img"))
        start = OTB_START_FRAMES.get(base.lower(), 1)
        for anno in annos:
            match = re.fullmatch(r"groundtruth_rect\.(\d+)\.txt", anno)
            name = f"{base}.{match.group(1)}" if match and len(annos) > 1 else base
            path = os.path.join(seq_dir, anno)
            rows = read_rows(path)
            frames = images[start - 1:start - 1 + len(rows)]
            if len(frames) < len(rows):
                raise InputError(f"sequence '{name}': {len(rows)} annotations in {path} but only {len(frames)} "
                                 f"images in {os.path.join(seq_dir, 'img')} from frame {start}")
            if len(images) - (start - 1) > len(rows):
                log.info("%s: using images %d..%d of %d (annotated range)", name, start, start + len(rows) - 1,
                         len(images))
            sequences.append(BenchmarkSequence(name, frames, _boxes(rows, 1), origin=1))
    if not sequences:
        raise InputError(f"no OTB sequences under '{root}' (expected <sequence>/img/*.jpg and "
                         "<sequence>/groundtruth_rect.txt)")
    return Dataset("otb", root, sequences)


def _is_otb_sequence(folder: str) -> bool:
    return os.path.isdir(os.path.join(folder, "img")) and any(
        re.fullmatch(r"groundtruth_rect(\.\d+)?\.txt", f) for f in os.listdir(folder))


# ---------------------------------------------------------------------------------------------- GOT-10k
def read_got10k(root: str, subset: str | None = None) -> Dataset:
    """GOT-10k layout; ``subset`` picks ``train``/``val``/``test`` under a dataset root (default: the root
    itself if it holds sequences, else ``val``, then ``test``, then ``train``)."""
    root = _require_dir(root, "GOT-10k")
    base = _got10k_base(root, subset)
    sequences = []
    for name, seq_dir in _listed_sequences(base):
        gt_path = os.path.join(seq_dir, "groundtruth.txt")
        frames = list_images(seq_dir)
        rows = read_rows(gt_path)
        boxes = _boxes(rows, 1)
        if len(rows) == 1 and len(frames) > 1:   # test subset: only the first frame is annotated
            boxes = np.vstack([boxes, np.full((len(frames) - 1, 4), np.nan)])
        else:
            _check_lengths(name, len(frames), len(rows), gt_path)
        extra: dict[str, Any] = {}
        labels = {}
        for label in ("absence", "cover", "cut_by_image"):
            path = os.path.join(seq_dir, f"{label}.label")
            if os.path.isfile(path):
                values = read_flags(path)
                _check_lengths(name, len(frames), len(values), path)
                labels[label] = values
                extra[label] = values
        cover = labels.get("cover")
        absent = np.zeros(len(frames), bool)
        if "absence" in labels:
            absent |= labels["absence"] > 0
        if cover is not None:
            absent |= cover == 0
        meta = _read_meta(os.path.join(seq_dir, "meta_info.ini"))
        extra.update(meta)
        size = _parse_resolution(meta.get("resolution"))
        sequences.append(BenchmarkSequence(name, frames, boxes, origin=1, absent=absent, cover=cover,
                                           extra=extra, size=size))
    if not sequences:
        raise InputError(f"no GOT-10k sequences under '{base}' (expected list.txt or <sequence>/groundtruth.txt)")
    return Dataset("got10k", base, sequences)


def _got10k_base(root: str, subset: str | None) -> str:
    if subset is not None:
        base = os.path.join(root, subset)
        if not os.path.isdir(base):
            raise InputError(f"GOT-10k subset folder '{base}' does not exist")
        return base
    if os.path.isfile(os.path.join(root, "list.txt")) or any(
            os.path.isfile(os.path.join(root, d, "groundtruth.txt")) for d in _subdirs(root)):
        return root
    for name in ("val", "test", "train"):
        if os.path.isdir(os.path.join(root, name)):
            log.info("GOT-10k: using the '%s' subset under %s", name, root)
            return os.path.join(root, name)
    return root


def _read_meta(path: str) -> dict[str, str]:
    """``meta_info.ini``: a section line, then ``key: value`` lines."""
    if not os.path.isfile(path):
        return {}
    meta = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if ":" in line and not line.lstrip().startswith("["):
                key, value = line.split(":", 1)
                meta[key.strip()] = value.strip()
    return meta


def _parse_resolution(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    nums = re.findall(r"\d+", text)
    return (int(nums[0]), int(nums[1])) if len(nums) >= 2 else None


# ---------------------------------------------------------------------------------------------- VOT
def read_vot(root: str) -> Dataset:
    """VOT 2016-2019 layout (see the module docstring)."""
    root = _require_dir(root, "VOT")
    sequences = []
    for name, seq_dir in _listed_sequences(root):
        color = os.path.join(seq_dir, "color")
        frames = list_images(color if os.path.isdir(color) else seq_dir)
        gt_path = os.path.join(seq_dir, "groundtruth.txt")
        rows = read_rows(gt_path, widths=(4, 8))
        _check_lengths(name, len(frames), len(rows), gt_path)
        boxes = np.array([vot_init_box(r) if np.all(np.isfinite(r)) else (np.nan,) * 4 for r in rows], np.float64)
        polygons = None
        if any(r.size == 8 for r in rows):
            polygons = np.stack([r if r.size == 8 else _box_corners(r) for r in rows])
        extra = {}
        for tag in sorted(f for f in os.listdir(seq_dir) if f.endswith(".tag")):
            extra[tag[:-4]] = read_flags(os.path.join(seq_dir, tag))
        sequences.append(BenchmarkSequence(name, frames, boxes, origin=0, polygons=polygons, extra=extra))
    if not sequences:
        raise InputError(f"no VOT sequences under '{root}' (expected list.txt or <sequence>/groundtruth.txt)")
    return Dataset("vot", root, sequences)


def _box_corners(box: np.ndarray) -> np.ndarray:
    x, y, w, h = box
    return np.array([x, y, x + w, y, x + w, y + h, x, y + h], np.float64)


# ---------------------------------------------------------------------------------------------- LaSOT
def read_lasot(root: str) -> Dataset:
    """LaSOT layout (see the module docstring)."""
    root = _require_dir(root, "LaSOT")
    testing = os.path.join(root, "testing_set.txt")
    if os.path.isfile(testing):
        seq_dirs = []
        for name in _list_file(testing):
            category = name.rsplit("-", 1)[0]
            candidates = [os.path.join(root, category, name), os.path.join(root, name)]
            found = next((c for c in candidates if os.path.isdir(c)), None)
            if found is None:
                raise InputError(f"sequence '{name}' is listed in {testing} but not found under '{root}'")
            seq_dirs.append(found)
    else:
        seq_dirs = []
        for d in _subdirs(root):
            path = os.path.join(root, d)
            if _is_lasot_sequence(path):
                seq_dirs.append(path)
            else:
                seq_dirs += [os.path.join(path, s) for s in _subdirs(path) if _is_lasot_sequence(os.path.join(path, s))]
    sequences = []
    for seq_dir in seq_dirs:
        name = os.path.basename(seq_dir)
        frames = list_images(os.path.join(seq_dir, "img"))
        gt_path = os.path.join(seq_dir, "groundtruth.txt")
        rows = read_rows(gt_path)
        _check_lengths(name, len(frames), len(rows), gt_path)
        absent = np.zeros(len(frames), bool)
        extra: dict[str, Any] = {}
        for label in ("full_occlusion", "out_of_view"):
            path = os.path.join(seq_dir, f"{label}.txt")
            if os.path.isfile(path):
                flags = read_flags(path)
                _check_lengths(name, len(frames), len(flags), path)
                extra[label] = flags
                absent |= flags > 0
        nlp = os.path.join(seq_dir, "nlp.txt")
        if os.path.isfile(nlp):
            with open(nlp, encoding="utf-8") as fh:
                extra["nlp"] = fh.read().strip()
        sequences.append(BenchmarkSequence(name, frames, _boxes(rows, 1), origin=1, absent=absent, extra=extra))
    if not sequences:
        raise InputError(f"no LaSOT sequences under '{root}' (expected <category>/<category>-<n>/img/ and "
                         "groundtruth.txt)")
    return Dataset("lasot", root, sequences)


def _is_lasot_sequence(folder: str) -> bool:
    return os.path.isdir(os.path.join(folder, "img")) and os.path.isfile(os.path.join(folder, "groundtruth.txt"))


# ---------------------------------------------------------------------------------------------- entry point
READERS = {"otb": read_otb, "got10k": read_got10k, "vot": read_vot, "lasot": read_lasot}


def load_dataset(kind: str, root: str, subset: str | None = None) -> Dataset:
    """Read a benchmark folder: ``kind`` is one of :data:`DATASETS`."""
    if kind not in READERS:
        raise ConfigError(f"unknown dataset '{kind}'; known: {', '.join(DATASETS)}")
    if kind == "got10k":
        return read_got10k(root, subset)
    if subset is not None:
        raise ConfigError(f"--subset applies to GOT-10k only, not {kind}")
    return READERS[kind](root)
