"""Tracking metrics of the standard benchmarks (docs/evaluation.md#metrics), numpy only.

Boxes are ``(N, 4)`` arrays of ``(x, y, w, h)``; centres are ``(x + (w-1)/2, y + (h-1)/2)``. IoU is continuous
(no rasterisation) everywhere, VOT included.

- OTB (one-pass evaluation): per sequence, the success curve (fraction of frames with IoU **>** θ for
  ``θ = linspace(0, 1, 21)``) and the precision curve (fraction with centre error **<=** τ, τ = 0..50 px);
  curves are averaged over sequences; the success score (AUC) is the **mean** of the 21 averaged values (not
  a trapezoid), precision is the averaged curve at 20 px. Frame 1 counts. (got10k ``ExperimentOTB``.)
- LaSOT: the same, with frames where the target is absent (full occlusion or out of view) removed from the
  numerator while the denominator stays all frames (pysot toolkit); plus normalized precision (centre error
  divided by the ground-truth w, h), reported both at 0.20 and as the mean over the 51 thresholds
  ``0, 0.01, .., 0.50``.
- GOT-10k: IoU of every frame but the first whose ``cover`` label is > 0, pooled over all sequences; AO is
  their mean, SR0.50/SR0.75 the fractions above 0.5/0.75. Boxes are clipped to the image the way the got10k
  toolkit does it (see :func:`clip_boxes_got10k`), in the coordinates of the annotation files.
- VOT 2016-2019 supervised ("baseline"): trajectories hold codes ``1`` (initialised), ``2`` (failure: overlap
  <= 0), ``0`` (skipped; re-initialisation happens 5 frames after a failure) or a region. Accuracy is the
  mean overlap with the 10 frames starting at each (re-)initialisation ignored; robustness is the number of
  failures (also per 100 frames); EAO follows pysot's ``EAOBenchmark`` (fragments between re-inits,
  expected-overlap curve, mean over the year's range of lengths), see :func:`vot_eao`.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..geometry import as_boxes, center_error, iou

SUCCESS_THRESHOLDS = np.linspace(0, 1, 21)
PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
NORM_PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100
GOT10K_THRESHOLDS = np.linspace(0, 1, 101)
# pysot toolkit EAOBenchmark: the range of sequence lengths over which the expected overlap is averaged
EAO_RANGES = {2016: (108, 371), 2017: (100, 356), 2018: (100, 356), 2019: (46, 291)}
VOT_INIT, VOT_FAILURE, VOT_SKIP = 1, 2, 0
VOT_SKIP_FRAMES = 5     # re-initialise this many frames after a failure
VOT_BURNIN = 10         # frames ignored by accuracy from each (re-)initialisation on


# ---------------------------------------------------------------------------------------------- boxes
def normalized_center_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Centre error with x divided by the ground-truth width and y by its height (LaSOT), ``(N,)``."""
    pred, gt = as_boxes(pred), as_boxes(gt)
    cp = pred[:, :2] + (pred[:, 2:] - 1) / 2
    cg = gt[:, :2] + (gt[:, 2:] - 1) / 2
    return np.sqrt((((cp - cg) / (gt[:, 2:] + 1e-16)) ** 2).sum(axis=1))


def clip_boxes_got10k(boxes: np.ndarray, size: tuple[float, float]) -> np.ndarray:
    """The got10k toolkit's clipping to an image of ``size = (W, H)``: ``x <- clip(x, 0, W)``, then
    ``w <- clip(w, 0, W - x)`` (same for y, h). Note the quirk: a box hanging over the left/top edge is
    *shifted* to the edge, not cut (``x = -10, w = 30`` becomes ``x = 0, w = 30``)."""
    out = as_boxes(boxes).copy()
    width, height = size
    out[:, 0] = np.clip(out[:, 0], 0, width)
    out[:, 1] = np.clip(out[:, 1], 0, height)
    out[:, 2] = np.clip(out[:, 2], 0, width - out[:, 0])
    out[:, 3] = np.clip(out[:, 3], 0, height - out[:, 1])
    return out


# ---------------------------------------------------------------------------------------------- OTB / LaSOT
def success_curve(pred: np.ndarray, gt: np.ndarray, thresholds: np.ndarray | None = None,
                  valid: np.ndarray | None = None) -> np.ndarray:
    """Fraction of frames with IoU **>** each threshold (default ``linspace(0, 1, 21)``).

    ``valid``: frames that may count (LaSOT: target present); the others never succeed but stay in the
    denominator."""
    thresholds = SUCCESS_THRESHOLDS if thresholds is None else np.asarray(thresholds, np.float64)
    overlaps = iou(pred, gt)
    if valid is not None:
        overlaps = np.where(np.asarray(valid, bool), overlaps, -1.0)
    return (overlaps[:, None] > thresholds[None, :]).mean(axis=0)


def success_auc(pred: np.ndarray, gt: np.ndarray) -> float:
    """OTB success score: the **mean** of the 21-point success curve (not a trapezoid)."""
    return float(success_curve(pred, gt).mean())


def precision_curve(pred: np.ndarray, gt: np.ndarray, thresholds: np.ndarray | None = None,
                    valid: np.ndarray | None = None) -> np.ndarray:
    """Fraction of frames whose centre error is **<=** each threshold (default 0..50 px)."""
    thresholds = PRECISION_THRESHOLDS if thresholds is None else np.asarray(thresholds, np.float64)
    return _fraction_within(center_error(pred, gt), thresholds, valid)


def precision_at(pred: np.ndarray, gt: np.ndarray, pixels: float = 20.0) -> float:
    """Fraction of frames whose centre error is **<=** ``pixels``."""
    return float((center_error(pred, gt) <= pixels).mean())


def normalized_precision_curve(pred: np.ndarray, gt: np.ndarray, thresholds: np.ndarray | None = None,
                               valid: np.ndarray | None = None) -> np.ndarray:
    """Fraction of frames whose normalized centre error is **<=** each threshold (default 0..0.5 by 0.01)."""
    thresholds = NORM_PRECISION_THRESHOLDS if thresholds is None else np.asarray(thresholds, np.float64)
    return _fraction_within(normalized_center_error(pred, gt), thresholds, valid)


def _fraction_within(errors: np.ndarray, thresholds: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """Per threshold, the fraction of all frames with error **<=** it; invalid frames never count but stay
    in the denominator."""
    if valid is not None:
        errors = np.where(np.asarray(valid, bool), errors, np.inf)
    with np.errstate(invalid="ignore"):
        return (errors[:, None] <= thresholds[None, :]).mean(axis=0)


def _check_pairs(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> None:
    if len(preds) != len(gts) or not preds:
        raise ValueError(f"need one prediction per ground-truth sequence (got {len(preds)} and {len(gts)})")
    for i, (p, g) in enumerate(zip(preds, gts)):
        if as_boxes(p).shape != as_boxes(g).shape:
            raise ValueError(f"sequence {i}: prediction shape {as_boxes(p).shape} != ground truth {as_boxes(g).shape}")


def ope_metrics(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], names: Sequence[str] | None = None,
                valid: Sequence[np.ndarray | None] | None = None, normalized: bool = False) -> dict[str, Any]:
    """One-pass evaluation over sequences (OTB; LaSOT with ``valid`` = present frames and ``normalized``).

    Returns ``success_auc``, ``precision_20px``, ``success_rate_50`` (curve at 0.5), the averaged curves and
    per-sequence scores; with ``normalized`` also ``norm_precision_at_0.20`` and ``norm_precision_auc_0_0.5``
    (the mean over thresholds 0..0.5)."""
    _check_pairs(preds, gts)
    names = list(names) if names is not None else [f"seq{i}" for i in range(len(preds))]
    valid = list(valid) if valid is not None else [None] * len(preds)
    succ = np.stack([success_curve(p, g, valid=v) for p, g, v in zip(preds, gts, valid)])
    prec = np.stack([precision_curve(p, g, valid=v) for p, g, v in zip(preds, gts, valid)])
    succ_mean, prec_mean = succ.mean(axis=0), prec.mean(axis=0)
    out: dict[str, Any] = {
        "sequences": len(preds),
        "frames": int(sum(len(as_boxes(g)) for g in gts)),
        "success_auc": float(succ_mean.mean()),
        "precision_20px": float(prec_mean[20]),
        "success_rate_50": float(succ_mean[10]),
        "success_curve": succ_mean.tolist(),
        "precision_curve": prec_mean.tolist(),
        "per_sequence": {n: {"success_auc": float(s.mean()), "precision_20px": float(q[20])}
                         for n, s, q in zip(names, succ, prec)},
    }
    if normalized:
        norm = np.stack([normalized_precision_curve(p, g, valid=v) for p, g, v in zip(preds, gts, valid)])
        norm_mean = norm.mean(axis=0)
        out["norm_precision_at_0.20"] = float(norm_mean[20])
        out["norm_precision_auc_0_0.5"] = float(norm_mean.mean())
        out["norm_precision_curve"] = norm_mean.tolist()
        for n, q in zip(names, norm):
            out["per_sequence"][n]["norm_precision_at_0.20"] = float(q[20])
    return out


def otb_metrics(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray],
                names: Sequence[str] | None = None) -> dict[str, Any]:
    """OTB-2013/2015 one-pass evaluation (every frame counts, first included)."""
    return ope_metrics(preds, gts, names)


def lasot_metrics(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], absent: Sequence[np.ndarray],
                  names: Sequence[str] | None = None) -> dict[str, Any]:
    """LaSOT: ``absent[i]`` marks frames with full occlusion or out of view; they are removed from the
    numerators, the denominators stay all frames. Frames whose ground truth has no area are treated as
    absent too (the pysot toolkit's ``w, h > 0`` mask)."""
    valid = []
    for g, a in zip(gts, absent):
        g = as_boxes(g)
        valid.append(~np.asarray(a, bool) & (g[:, 2] > 0) & (g[:, 3] > 0))
    return ope_metrics(preds, gts, names, valid=valid, normalized=True)


# ---------------------------------------------------------------------------------------------- GOT-10k
def got10k_metrics(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], covers: Sequence[np.ndarray | None],
                   sizes: Sequence[tuple[float, float]], names: Sequence[str] | None = None) -> dict[str, Any]:
    """GOT-10k: AO, SR0.50, SR0.75 over the IoUs of all frames but the first with ``cover > 0``, pooled over
    sequences. ``sizes``: ``(W, H)`` of each sequence's images (boxes are clipped to them, got10k's way).
    ``covers[i] is None``: every frame counts. Boxes must be in the annotation files' coordinates (the clip
    is not translation invariant)."""
    _check_pairs(preds, gts)
    names = list(names) if names is not None else [f"seq{i}" for i in range(len(preds))]
    pooled, per_seq = [], {}
    for name, p, g, c, size in zip(names, preds, gts, covers, sizes):
        p, g = as_boxes(p)[1:], as_boxes(g)[1:]
        overlaps = _got10k_iou(clip_boxes_got10k(p, size), clip_boxes_got10k(g, size))
        if c is not None:
            overlaps = overlaps[np.asarray(c)[1:] > 0]
        pooled.append(overlaps)
        per_seq[name] = {"ao": _mean(overlaps), "sr_0.50": _mean(overlaps > 0.5), "frames": int(overlaps.size)}
    ious = np.concatenate(pooled)
    curve = (ious[:, None] > GOT10K_THRESHOLDS[None, :]).mean(axis=0) if ious.size else np.full(101, np.nan)
    return {"sequences": len(preds), "frames": int(ious.size), "ao": _mean(ious), "sr_0.50": _mean(ious > 0.5),
            "sr_0.75": _mean(ious > 0.75), "success_curve": curve.tolist(), "per_sequence": per_seq}


def _got10k_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU as the got10k toolkit computes it: ``inter / (union + eps)``, clipped to [0, 1]."""
    x0 = np.maximum(a[:, 0], b[:, 0])
    y0 = np.maximum(a[:, 1], b[:, 1])
    x1 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y1 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.maximum(x1 - x0, 0) * np.maximum(y1 - y0, 0)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.clip(inter / (union + np.finfo(float).eps), 0.0, 1.0)


def _mean(values: np.ndarray) -> float:
    values = np.asarray(values, np.float64)
    return float(values.mean()) if values.size else float("nan")


# ---------------------------------------------------------------------------------------------- polygons
def region_polygon(region: Any) -> np.ndarray:
    """A region as ``(K, 2)`` corners: 4 values ``(x, y, w, h)`` are the box ``[x, x+w] x [y, y+h]``; 8 values
    (or a ``(4, 2)`` array) are polygon corners."""
    arr = np.asarray(region, np.float64).reshape(-1)
    if arr.size == 4:
        x, y, w, h = arr
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
    if arr.size >= 6 and arr.size % 2 == 0:
        return arr.reshape(-1, 2)
    raise ValueError(f"a region has 4 (x, y, w, h) or 2K >= 6 polygon values, got {arr.size}")


def polygon_area(poly: np.ndarray) -> float:
    """Absolute shoelace area of a simple polygon ``(K, 2)``."""
    return abs(_signed_area(poly))


def _signed_area(poly: np.ndarray) -> float:
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _is_convex(poly: np.ndarray) -> bool:
    d1 = np.roll(poly, -1, axis=0) - poly
    d2 = np.roll(d1, -1, axis=0)
    cross = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    cross = cross[np.abs(cross) > 1e-12]
    return bool(np.all(cross > 0) or np.all(cross < 0))


def _convex_hull(points: np.ndarray) -> np.ndarray:
    pts = sorted(map(tuple, np.asarray(points, np.float64)))
    if len(pts) < 3:
        return np.asarray(pts)

    def half(seq: list) -> list:
        out: list = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return np.asarray(lower[:-1] + upper[:-1])


def clip_polygon(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman: the part of ``subject`` (any simple polygon) inside the **convex** ``clip``."""
    if len(subject) == 0 or len(clip) < 3:
        return np.zeros((0, 2))
    clip = clip if _signed_area(clip) > 0 else clip[::-1]
    out = [tuple(p) for p in subject]
    for i in range(len(clip)):
        a, b = clip[i], clip[(i + 1) % len(clip)]
        ex, ey = b[0] - a[0], b[1] - a[1]

        def side(p: tuple, ex: float = ex, ey: float = ey, a: tuple = a) -> float:
            return ex * (p[1] - a[1]) - ey * (p[0] - a[0])   # > 0: left of a->b = inside (ccw clip)

        inp, out = out, []
        if not inp:
            break
        prev = inp[-1]
        for cur in inp:
            sc, sp = side(cur), side(prev)
            if sc >= 0:
                if sp < 0:
                    t = sp / (sp - sc)
                    out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
                out.append(cur)
            elif sp >= 0:
                t = sp / (sp - sc)
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            prev = cur
    return np.asarray(out, np.float64).reshape(-1, 2)


def region_overlap(a: Any, b: Any, bound: tuple[float, float] | None = None) -> float:
    """Continuous IoU of two regions (boxes or polygons), optionally both clipped to ``[0, W] x [0, H]``.

    This is the exact area ratio of the polygons, **not** the VOT toolkit's rasterised overlap (which counts
    whole pixels and hides sub-pixel differences, docs/evaluation.md#overlap). The intersection clips one polygon by the
    other, which must be convex (boxes, rotated boxes and VOT quadrilaterals are); if neither is, the second
    is replaced by its convex hull. Bounds follow pysot: ``(W, H)`` is the rectangle ``[0, W] x [0, H]``."""
    pa, pb = region_polygon(a), region_polygon(b)
    if not (np.all(np.isfinite(pa)) and np.all(np.isfinite(pb))):
        return float("nan")
    if bound is not None:
        rect = np.array([[0, 0], [bound[0], 0], [bound[0], bound[1]], [0, bound[1]]], np.float64)
        pa, pb = clip_polygon(pa, rect), clip_polygon(pb, rect)
    area_a, area_b = polygon_area(pa), polygon_area(pb)
    if area_a <= 0 or area_b <= 0:
        return 0.0
    if _is_convex(pb):
        inter = polygon_area(clip_polygon(pa, pb))
    elif _is_convex(pa):
        inter = polygon_area(clip_polygon(pb, pa))
    else:
        inter = polygon_area(clip_polygon(pa, _convex_hull(pb)))
    union = area_a + area_b - inter
    return float(min(max(inter / union, 0.0), 1.0)) if union > 0 else 0.0


# ---------------------------------------------------------------------------------------------- VOT
def vot_code(entry: Any) -> int | None:
    """The code of a trajectory entry (``1`` init, ``2`` failure, ``0`` skipped) or None for a region."""
    if isinstance(entry, (int, np.integer)):
        return int(entry)
    arr = np.asarray(entry).reshape(-1)
    return int(arr[0]) if arr.size == 1 else None


def vot_failures(trajectory: Sequence[Any]) -> list[int]:
    """Frame indices (0-based) marked as failures."""
    return [i for i, e in enumerate(trajectory) if vot_code(e) == VOT_FAILURE]


def vot_overlaps(trajectory: Sequence[Any], gt: Sequence[Any], bound: tuple[float, float] | None = None,
                 burnin: int = 0) -> np.ndarray:
    """Per-frame overlap of a supervised trajectory with the ground truth: NaN for coded frames and, with
    ``burnin``, for the ``burnin`` frames starting at each initialisation (pysot ``calculate_accuracy``)."""
    n = min(len(trajectory), len(gt))
    entries = list(trajectory[:n])
    if burnin > 0:
        for i, e in enumerate(list(entries)):
            if vot_code(e) == VOT_INIT:
                for j in range(i, min(i + burnin, n)):
                    entries[j] = VOT_SKIP
    out = np.full(n, np.nan)
    for i, e in enumerate(entries):
        if vot_code(e) is None:
            out[i] = region_overlap(e, gt[i], bound)
    return out


def vot_eao(overlaps: Sequence[np.ndarray], failures: Sequence[Sequence[int]], lengths: Sequence[int],
            eao_range: tuple[int, int], skipping: int = VOT_SKIP_FRAMES) -> dict[str, Any]:
    """Expected average overlap, the procedure of pysot's ``EAOBenchmark`` (tag ``all``).

    ``overlaps[k]``: per-frame overlaps of trajectory k without burn-in (NaN at coded frames);
    ``failures[k]``: its failure frames; ``lengths[k]``: its ground-truth length. Each trajectory is cut at
    its re-initialisations (failure + ``skipping``; a failure whose re-init would fall past the end does
    not cut). A fragment that ended in a failure is padded with zeros to the longest trajectory (the tracker
    counts as failed for the rest), the last fragment is not padded; NaN inside fragments counts as 0. The
    expected overlap for length L is the weighted mean, over fragments at least L long, of the mean overlap
    of their frames 2..L (the initialisation frame is skipped); the weights are the fraction of each
    fragment's frames carrying the tag (1 for ``all``; pysot's off-by-one denominators are kept). EAO is the
    mean of that curve over lengths ``eao_range = (low, high)`` inclusive; NaN when every trajectory is
    shorter than ``low``.
    """
    low, high = eao_range
    max_len = max((len(o) for o in overlaps), default=0)
    rows: list[np.ndarray] = []
    weights: list[float] = []
    for ov, fails, traj_len in zip(overlaps, failures, lengths):
        ov = np.asarray(ov, np.float64)
        n = len(ov)
        if len(fails) > 0:
            points = [0] + [f + skipping for f in fails if f + skipping <= n]
            for i, start in enumerate(points):
                last = i == len(points) - 1
                row = np.full(max_len, np.nan)
                if not last:
                    frag = ov[start:points[i + 1] + 1].copy()
                    row[:] = 0.0
                    weight = (min(points[i + 1] + 1, traj_len) - start) / (points[i + 1] - start + 1)
                else:
                    frag = ov[start:].copy()
                    weight = (n - start) / (traj_len - start + 1e-16)
                frag[np.isnan(frag)] = 0.0
                row[:len(frag)] = frag
                rows.append(row)
                weights.append(weight)
        else:
            row = np.full(max_len, np.nan)
            row[:n] = ov
            rows.append(row)
            weights.append(1.0)
    fragments = np.asarray(rows).reshape(-1, max_len)
    fweights = np.asarray(weights, np.float64)
    expected = np.zeros(max_len)
    if max_len:
        expected[0] = 1.0
        present = ~np.isnan(fragments)
        sums = np.cumsum(fragments[:, 1:], axis=1)  # NaN propagates, but only past a fragment's end
        for length in range(1, max_len):
            mask = present[:, length]
            if mask.any():
                means = sums[mask, length - 1] / length
                expected[length] = float(np.sum(means * fweights[mask]) / np.sum(fweights[mask]))
    weight = np.zeros(max_len)
    weight[low - 1:high] = 1.0
    valid = ~np.isnan(expected)
    total = weight[valid].sum()
    eao = float(np.sum(expected[valid] * weight[valid]) / total) if total > 0 else float("nan")
    return {"eao": eao, "range": [low, high], "expected_overlap": expected.tolist(), "fragments": len(rows)}


def vot_metrics(trajectories: Sequence[Sequence[Any]], gts: Sequence[Sequence[Any]],
                sizes: Sequence[tuple[float, float]], names: Sequence[str] | None = None, year: int = 2018,
                eao_range: tuple[int, int] | None = None, burnin: int = VOT_BURNIN,
                skipping: int = VOT_SKIP_FRAMES) -> dict[str, Any]:
    """VOT supervised metrics for one trajectory per sequence.

    Accuracy: overlaps with ``burnin`` frames ignored from each initialisation, bounded by ``(W, H)``, pooled
    over all frames of all sequences (pysot ``AccuracyRobustnessBenchmark``). Robustness: the total number of
    failures, and failures per 100 frames. EAO: :func:`vot_eao` over overlaps bounded by ``(W-1, H-1)`` (as
    pysot's ``EAOBenchmark`` does), for the ``year``'s range unless ``eao_range`` is given.
    """
    if eao_range is None:
        if year not in EAO_RANGES:
            raise ValueError(f"no EAO range for VOT{year}; known: {sorted(EAO_RANGES)}")
        eao_range = EAO_RANGES[year]
    names = list(names) if names is not None else [f"seq{i}" for i in range(len(trajectories))]
    acc_all, per_seq = [], {}
    eao_overlaps, eao_failures, lengths = [], [], []
    total_frames = total_failures = 0
    for name, traj, gt, (width, height) in zip(names, trajectories, gts, sizes):
        acc = vot_overlaps(traj, gt, (width, height), burnin=burnin)
        fails = vot_failures(traj)
        acc_all.append(acc)
        eao_overlaps.append(vot_overlaps(traj, gt, (width - 1, height - 1), burnin=0))
        eao_failures.append(fails)
        lengths.append(len(gt))
        total_frames += len(acc)
        total_failures += len(fails)
        per_seq[name] = {"accuracy": _nanmean(acc), "failures": len(fails), "frames": len(acc)}
    eao = vot_eao(eao_overlaps, eao_failures, lengths, eao_range, skipping)
    pooled = np.concatenate(acc_all) if acc_all else np.zeros(0)
    return {"sequences": len(trajectories), "frames": total_frames, "accuracy": _nanmean(pooled),
            "failures": total_failures,
            "failures_per_100_frames": 100.0 * total_failures / total_frames if total_frames else float("nan"),
            "eao": eao["eao"], "eao_range": eao["range"], "expected_overlap": eao["expected_overlap"],
            "per_sequence": per_seq}


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")
