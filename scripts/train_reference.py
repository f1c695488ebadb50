#!/usr/bin/env python
"""Train siamdeploy's reference models from scratch on generated photo scenes.

    python scripts/train_reference.py siamrpn_alex_dwxcorr --minutes 35 --ship
    python scripts/train_reference.py siamfc --minutes 20 --ship

Models:
- ``siamrpn_alex_dwxcorr``: pysot layout (``model.pth`` + a pysot ``config.yaml``). Anchor labels as pysot
  assigns them (IoU > 0.6 positive, < 0.3 negative, at most 16 positives and 64 labelled anchors in all;
  negative pairs label 16 anchors around the wrong object), cross-entropy on the classification map and
  the anchor-weighted L1 loss on the box deltas (weight 1 / #positives per pair), total ``cls + 1.2 loc``.
- ``siamfc``: siamfc-pytorch layout (``siamfc_alexnet_e1.pth``), balanced logistic loss on the 17x17
  response (cells within 2 cells, city-block, of the target centre positive; both classes weigh half).

Training pairs: a template frame and a search frame up to 100 frames apart from the same generated scene
(:mod:`siamdeploy.synthetic.photos`, training photographs only), cropped as pysot does (template: context
0.5, 127 px; search: 255 px, scale jitter 18 %, shift up to 64 px)
[here at --search 207 by default, shift up to (search - 127) / 2 px]. Every run is seeded: with ``--steps``
the weights are reproducible bit for bit on one machine; ``--minutes`` stops on time (and sets the learning
rate schedule by elapsed time), so the step count depends on the machine's speed.

The first two conv blocks keep their seeded random initialisation by default (``--train-stem`` trains them
too): on a CPU their backward pass is most of a step, and in a budget of minutes they would barely move.

Precision: bfloat16 autocast on CUDA and on CPUs with AMX (``amx_bf16``), float32 otherwise (bfloat16 on a
CPU without AMX is emulated and many times slower). Writes to ``--out`` (default ``runs/train/<model>``):
the checkpoint (float32), ``loss.png``, ``losses.csv`` and ``report.json`` (held-out success per sequence).
``--ship`` also stores the weights in float16 under ``siamdeploy/reference/`` (package data).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from siamdeploy.models import SiameseNet  # noqa: E402
from siamdeploy.models.heads import DepthwiseXCorr  # noqa: E402
from siamdeploy.presets import Preset, get_preset  # noqa: E402
from siamdeploy.runtime.anchors import anchor_grid  # noqa: E402
from siamdeploy.synthetic.photos import (  # noqa: E402
    heldout_photos,
    make_scene,
    photo_sequence,
    training_photos,
)

MODELS = ("siamrpn_alex_dwxcorr", "siamfc")
EXEMPLAR, STRIDE = 127, 8
SEARCH = 207   # training search crop (pysot trains at 255; 207 costs 2/3 of it on a CPU; --search to change)
REF_DIR = os.path.join(os.path.dirname(HERE), "siamdeploy", "reference")
CHECKPOINT_NAMES = {"siamrpn_alex_dwxcorr": "model.pth", "siamfc": "siamfc_alexnet_e1.pth"}

PYSOT_ALEX_CONFIG = """\
META_ARC: "siamrpn_alex_dwxcorr"

BACKBONE:
    TYPE: "alexnetlegacy"
    KWARGS:
        width_mult: 1.0

ADJUST:
    ADJUST: False

RPN:
    TYPE: 'DepthwiseRPN'
    KWARGS:
        anchor_num: 5
        in_channels: 256
        out_channels: 256

MASK:
    MASK: False

ANCHOR:
    STRIDE: 8
    RATIOS: [0.33, 0.5, 1, 2, 3]
    SCALES: [8]
    ANCHOR_NUM: 5

TRACK:
    TYPE: 'SiamRPNTracker'
    PENALTY_K: {penalty_k}
    WINDOW_INFLUENCE: {window_influence}
    LR: {lr}
    EXEMPLAR_SIZE: 127
    INSTANCE_SIZE: {instance_size}
    BASE_SIZE: {base_size}
    CONTEXT_AMOUNT: 0.5
"""


# ----------------------------------------------------------------------------------------------- data
def crop(frame: np.ndarray, centre: tuple[float, float], side: float, out: int) -> np.ndarray:
    """Square ``side``-pixel window around ``centre`` (continuous coordinates, pixel i covers [i, i+1))
    resized to ``out x out``; outside the frame: the frame's mean colour (as the trackers pad)."""
    scale = out / side
    m = np.array([[scale, 0.0, out / 2 - centre[0] * scale - 0.5 + 0.5 * scale],
                  [0.0, scale, out / 2 - centre[1] * scale - 0.5 + 0.5 * scale]])
    fill = tuple(float(v) for v in cv2.mean(frame)[:3])
    return cv2.warpAffine(frame, m, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=fill)


def context_side(w: float, h: float) -> float:
    """pysot's exemplar side: ``sqrt((w + p)(h + p))`` with ``p = (w + h) / 2``."""
    p = (w + h) / 2
    return math.sqrt((w + p) * (h + p))


@dataclass
class Pair:
    z: np.ndarray          # 127x127x3 uint8 BGR
    x: np.ndarray          # 255x255x3 uint8 BGR
    box: np.ndarray        # target (x1, y1, x2, y2) in search-crop pixels
    negative: bool         # the search crop shows another object where the target would be


class PairSampler:
    """Seeded training pairs from generated scenes on the training photographs."""

    def __init__(self, seed: int, neg_fraction: float) -> None:
        self.rng = np.random.default_rng(seed)
        self.photos = training_photos()
        self.neg_fraction = neg_fraction

    def _scene(self):  # noqa: ANN202
        return make_scene(int(self.rng.integers(0, 2 ** 31)), self.photos,
                          difficulty=float(self.rng.uniform(0.3, 1.3)))

    def sample(self) -> Pair:
        rng = self.rng
        scene = self._scene()
        t1 = float(rng.uniform(0, 100))
        t2 = float(np.clip(t1 + rng.uniform(-100, 100), 0, 200))
        zf, zb = scene.render(t1)
        zc = (zb[0] + zb[2] / 2 + rng.uniform(-2, 2), zb[1] + zb[3] / 2 + rng.uniform(-2, 2))
        z = crop(zf, zc, context_side(zb[2], zb[3]) * math.exp(rng.uniform(-0.05, 0.05)), EXEMPLAR)
        negative = rng.random() < self.neg_fraction
        if negative:  # search crop from another scene, around some other object (or a look-alike)
            other = self._scene()
            xf, xb = other.render(t2)
            if other.distractors and rng.random() < 0.7:
                d = other.distractors[int(rng.integers(0, len(other.distractors)))]
                xb = d.bbox(t2, *other.size)
        else:
            xf, xb = scene.render(t2)
        side = context_side(xb[2], xb[3]) * SEARCH / EXEMPLAR * math.exp(rng.uniform(-0.18, 0.18))
        scale = SEARCH / side
        shift = rng.uniform(-1, 1, 2) * (SEARCH - EXEMPLAR) / 2 / scale
        centre = (xb[0] + xb[2] / 2 + shift[0], xb[1] + xb[3] / 2 + shift[1])
        x = crop(xf, centre, side, SEARCH)
        x0, y0 = centre[0] - side / 2, centre[1] - side / 2
        box = np.array([(xb[0] - x0) * scale, (xb[1] - y0) * scale,
                        (xb[0] + xb[2] - x0) * scale, (xb[1] + xb[3] - y0) * scale])
        return Pair(z, x, box, negative)


# ---------------------------------------------------------------------------------------------- labels
class AnchorLabeller:
    """pysot's anchor targets for one search crop (``A x 17 x 17`` anchors, anchor-major)."""

    def __init__(self, preset: Preset, rng: np.random.Generator) -> None:
        p = preset.track
        self.score = score_size()
        grid = anchor_grid(STRIDE, p.ratios, p.scales, self.score).astype(np.float64)  # centre-relative cx,cy,w,h
        grid[:, :2] += SEARCH / 2
        self.anchors = grid
        self.num = len(p.ratios) * len(p.scales)
        self.rng = rng

    def _select(self, idx: np.ndarray, keep: int) -> np.ndarray:
        if len(idx) <= keep:
            return idx
        return self.rng.permutation(idx)[:keep]

    def __call__(self, box: np.ndarray, negative: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> cls ``(A*N*N,)`` int64 in {-1, 0, 1}, delta ``(4, A*N*N)`` float32, weight ``(A*N*N,)`` float32."""
        a = self.anchors
        n = len(a)
        cls = -np.ones(n, np.int64)
        delta = np.zeros((4, n), np.float32)
        weight = np.zeros(n, np.float32)
        tcx, tcy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        tw, th = max(box[2] - box[0], 1.0), max(box[3] - box[1], 1.0)
        if negative:  # 16 anchors within 3 cells of the (wrong) object's cell
            n_side = self.score
            cell = n_side // 2 + np.ceil((np.array([tcx, tcy]) - SEARCH // 2) / STRIDE + 0.5).astype(int)
            ci = np.tile(np.arange(n_side * n_side), self.num)
            row, col = ci // n_side, ci % n_side
            near = np.flatnonzero((np.abs(col - cell[0]) <= 3) & (np.abs(row - cell[1]) <= 3))
            cls[self._select(near, 16)] = 0
            return cls, delta, weight
        delta[0] = (tcx - a[:, 0]) / a[:, 2]
        delta[1] = (tcy - a[:, 1]) / a[:, 3]
        delta[2] = np.log(tw / a[:, 2])
        delta[3] = np.log(th / a[:, 3])
        ax1, ay1 = a[:, 0] - a[:, 2] / 2, a[:, 1] - a[:, 3] / 2
        ax2, ay2 = a[:, 0] + a[:, 2] / 2, a[:, 1] + a[:, 3] / 2
        iw = np.clip(np.minimum(ax2, box[2]) - np.maximum(ax1, box[0]), 0, None)
        ih = np.clip(np.minimum(ay2, box[3]) - np.maximum(ay1, box[1]), 0, None)
        inter = iw * ih
        iou = inter / (a[:, 2] * a[:, 3] + tw * th - inter)
        pos = self._select(np.flatnonzero(iou > 0.6), 16)
        neg = self._select(np.flatnonzero(iou < 0.3), 64 - 16)
        cls[pos] = 1
        weight[pos] = 1.0 / (len(pos) + 1e-6)
        cls[neg] = 0
        return cls, delta, weight


def score_size() -> int:
    """Score-map side for the training search size (17 at 255, 11 at 207)."""
    return (SEARCH - EXEMPLAR) // STRIDE + 1


def siamfc_labels(box: np.ndarray, negative: bool) -> np.ndarray:
    """``(N, N)`` float32: 1 within city-block distance 2 cells of the target centre, else 0."""
    SCORE = score_size()
    c = (SCORE - 1) / 2
    tx = ((box[0] + box[2]) / 2 - SEARCH / 2) / STRIDE + c
    ty = ((box[1] + box[3]) / 2 - SEARCH / 2) / STRIDE + c
    yy, xx = np.mgrid[0:SCORE, 0:SCORE]
    lab = (np.abs(xx - tx) + np.abs(yy - ty) <= 2.0).astype(np.float32)
    return np.zeros_like(lab) if negative else lab


# ---------------------------------------------------------------------------------------------- losses
def rpn_loss(cls: torch.Tensor, loc: torch.Tensor, label: torch.Tensor, delta: torch.Tensor,
             weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cls ``(B, 2A, N, N)`` (background channels first), loc ``(B, 4A, N, N)``; labels flattened per pair
    anchor-major. Cross-entropy, averaged separately over positives and negatives (each weighs half), and
    the L1 distance of the 4 deltas summed, weighted per anchor, summed over the batch and divided by B."""
    b = cls.shape[0]
    logp = F.log_softmax(cls.float().view(b, 2, -1), dim=1)        # (B, 2, A*N*N)
    label = label.view(b, -1)
    losses = []
    for value in (1, 0):
        sel = label == value
        if sel.any():
            losses.append(-logp[:, value][sel].mean())
        else:
            losses.append(logp.sum() * 0.0)
    cls_loss = 0.5 * losses[0] + 0.5 * losses[1]
    diff = (loc.float().view(b, 4, -1) - delta).abs().sum(dim=1)   # (B, A*N*N)
    loc_loss = (diff * weight.view(b, -1)).sum() / b
    return cls_loss, loc_loss


def balanced_logistic_loss(response: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SiamFC: BCE with logits on ``(B, 1, 17, 17)``, positives and negatives each weighing half."""
    pos = labels == 1
    neg = ~pos
    w = torch.zeros_like(labels)
    w[pos] = 0.5 / max(int(pos.sum()), 1)
    w[neg] = 0.5 / max(int(neg.sum()), 1)
    return F.binary_cross_entropy_with_logits(response.float(), labels, w, reduction="sum")


# ------------------------------------------------------------------------------------------- networks
def batched_depthwise(m: DepthwiseXCorr, zf: torch.Tensor, xf: torch.Tensor) -> torch.Tensor:
    """One :class:`DepthwiseXCorr` branch for a batch of (template, search) pairs."""
    k = m.conv_kernel(zf)
    s = m.conv_search(xf)
    b, c = k.shape[:2]
    out = F.conv2d(s.reshape(1, b * c, *s.shape[2:]), k.reshape(b * c, 1, *k.shape[2:]), groups=b * c)
    return m.head(out.reshape(b, c, *out.shape[2:]))


def split_backbone(net: SiameseNet) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(stem, rest) of the AlexNet backbones: the stem is the first two conv blocks (conv, BN, pool, ReLU)."""
    bb = net.backbone
    if hasattr(bb, "features"):  # alexnetlegacy: one Sequential
        return bb.features[:8], bb.features[8:]
    return torch.nn.Sequential(bb.conv1, bb.conv2), torch.nn.Sequential(bb.conv3, bb.conv4, bb.conv5)


def features(net: SiameseNet, img: torch.Tensor, freeze_stem: bool) -> torch.Tensor:
    stem, rest = split_backbone(net)
    if freeze_stem:  # no gradients through the stem: its backward is most of a step's cost
        with torch.no_grad():
            h = stem(img)
        return rest(h)
    return rest(stem(img))


def forward(net: SiameseNet, z: torch.Tensor, x: torch.Tensor, freeze_stem: bool = False) -> tuple[torch.Tensor, ...]:
    """Training forward for a batch: RPN -> (cls, loc); SiamFC -> (response,)."""
    zf = features(net, z, freeze_stem)
    xf = features(net, x, freeze_stem)
    if net.rpn_head is None:
        b, c = zf.shape[:2]
        out = F.conv2d(xf.reshape(1, b * c, *xf.shape[2:]), zf, groups=b)
        return (out.reshape(b, 1, *out.shape[2:]) * net.spec.out_scale,)
    return batched_depthwise(net.rpn_head.cls, zf, xf), batched_depthwise(net.rpn_head.loc, zf, xf)


def pick_precision(requested: str, device: torch.device) -> tuple[str, str]:
    if requested != "auto":
        return requested, "requested"
    if device.type == "cuda":
        return "bf16", "CUDA device"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = fh.read()
    except OSError:
        flags = ""
    if "amx_bf16" in flags:
        return "bf16", "CPU has AMX"
    return "fp32", "CPU without AMX: bfloat16 would be emulated (many times slower)"


# ---------------------------------------------------------------------------------------------- outputs
def write_outputs(name: str, net: SiameseNet, preset: Preset, out: str) -> tuple[str, str | None]:
    os.makedirs(out, exist_ok=True)
    ckpt = os.path.join(out, CHECKPOINT_NAMES[name])
    torch.save(net.state_dict(), ckpt)
    config = None
    if name == "siamrpn_alex_dwxcorr":
        config = os.path.join(out, "config.yaml")
        p = preset.track
        with open(config, "w", encoding="utf-8") as fh:
            fh.write(PYSOT_ALEX_CONFIG.format(penalty_k=p.penalty_k, window_influence=p.window_influence, lr=p.lr,
                                              instance_size=p.instance_size, base_size=p.base_size))
    return ckpt, config


def ship(name: str, ckpt: str, config: str | None) -> None:
    """float16 copy of the weights (integer buffers kept) + config into siamdeploy/reference/<name>/."""
    dst = os.path.join(REF_DIR, name)
    os.makedirs(dst, exist_ok=True)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    torch.save(half, os.path.join(dst, os.path.basename(ckpt)))
    if config:
        shutil.copyfile(config, os.path.join(dst, "config.yaml"))
    print(f"shipped {name} to {dst}")


def plot_losses(rows: list[dict[str, float]], path: str, title: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no loss plot")
        return
    steps = np.array([r["step"] for r in rows])
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    keys = [k for k in rows[0] if k not in ("step", "seconds", "lr")]
    for k in keys:
        v = np.array([r[k] for r in rows])
        win = max(1, len(v) // 40)
        smooth = np.convolve(v, np.ones(win) / win, mode="valid")
        ax.plot(steps[win - 1:], smooth, label=f"{k} (mean of {win})")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def evaluate(ckpt: str, config: str | None, preset: str, seeds: list[int], frames: int) -> dict[str, object]:
    """Held-out report: success (OTB AUC) and precision@20 per generated sequence on held-out photos."""
    import siamdeploy
    from siamdeploy.eval.metrics import precision_at, success_auc

    tracker = siamdeploy.load_tracker(ckpt, config=config, preset=None if config else preset, device="cpu")
    photos = heldout_photos()
    per = {}
    for seed in seeds:
        seq = photo_sequence(seed, frames, photos=photos)
        tracker.init(seq.frames[0], tuple(seq.boxes[0]))
        pred = [seq.boxes[0]] + [np.asarray(tracker.track(f).bbox) for f in seq.frames[1:]]
        pred_arr = np.asarray(pred, np.float64)
        per[seq.name] = {"success": success_auc(pred_arr, seq.boxes),
                         "precision20": precision_at(pred_arr, seq.boxes)}
    return {"sequences": per, "mean_success": float(np.mean([v["success"] for v in per.values()])),
            "mean_precision20": float(np.mean([v["precision20"] for v in per.values()]))}


# ------------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    global SEARCH
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", choices=MODELS)
    ap.add_argument("--steps", type=int, default=100000, help="stop after this many steps")
    ap.add_argument("--minutes", type=float, default=None, help="stop after this much training time")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=None, help="peak AdamW learning rate (default 2e-3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    ap.add_argument("--search", type=int, default=207, help="training search crop side (127 + 8k)")
    ap.add_argument("--train-stem", dest="freeze_stem", action="store_false",
                    help="also train the first two conv blocks (default: they keep their seeded random "
                         "initialisation, which makes a CPU step about 1.7x cheaper)")
    ap.add_argument("--neg", type=float, default=0.1, help="fraction of negative pairs")
    ap.add_argument("--eval-sequences", type=int, default=3)
    ap.add_argument("--eval-frames", type=int, default=60)
    ap.add_argument("--out", default=None, help="output folder (default runs/train/<model>)")
    ap.add_argument("--ship", action="store_true", help="store float16 weights in siamdeploy/reference/")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args(argv)
    if (args.search - EXEMPLAR) % STRIDE or args.search <= EXEMPLAR + 2 * STRIDE:
        ap.error("--search must be 127 + 8k with k >= 3 (e.g. 207, 255)")
    SEARCH = args.search
    if args.steps <= 0 or (args.minutes is not None and args.minutes <= 0) or args.batch <= 0:
        ap.error("--steps, --minutes and --batch must be positive")
    from tqdm import tqdm

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    precision, why = pick_precision(args.precision, device)
    out = args.out or os.path.join("runs", "train", args.model)
    os.makedirs(out, exist_ok=True)
    print(f"{args.model}: device {device}, precision {precision} ({why}), batch {args.batch}, seed {args.seed}")

    torch.manual_seed(args.seed)
    preset = get_preset(args.model)
    net = SiameseNet(preset.model).to(device).train()
    rgb = preset.track.colour == "rgb"
    sampler = PairSampler(args.seed, args.neg)
    labeller = AnchorLabeller(preset, np.random.default_rng(args.seed + 1))
    lr = args.lr or 2e-3
    if args.freeze_stem:
        for prm in split_backbone(net)[0].parameters():
            prm.requires_grad_(False)
    opt = torch.optim.AdamW([prm for prm in net.parameters() if prm.requires_grad], lr=lr, weight_decay=1e-4)
    budget_s = args.minutes * 60 if args.minutes else math.inf
    warmup = 20

    def to_tensor(imgs: list[np.ndarray]) -> torch.Tensor:
        arr = np.stack(imgs)
        if rgb:
            arr = arr[..., ::-1]
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2), dtype=np.float32)).to(device)

    rows: list[dict[str, float]] = []
    start = time.monotonic()
    train_s = 0.0
    bar = tqdm(total=args.steps if budget_s == math.inf else None, unit="step", dynamic_ncols=True)
    step = 0
    while step < args.steps and train_s < budget_s:
        t0 = time.monotonic()
        progress = max(step / args.steps, train_s / budget_s)
        cur_lr = lr * min(1.0, (step + 1) / warmup) * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(progress, 1))))
        for g in opt.param_groups:
            g["lr"] = cur_lr
        pairs = [sampler.sample() for _ in range(args.batch)]
        z, x = to_tensor([p.z for p in pairs]), to_tensor([p.x for p in pairs])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            outs = forward(net, z, x, args.freeze_stem)
        if net.rpn_head is None:
            labels = torch.from_numpy(np.stack([siamfc_labels(p.box, p.negative) for p in pairs])[:, None]).to(device)
            loss = balanced_logistic_loss(outs[0], labels)
            parts = {"loss": loss.item()}
        else:
            lab = [labeller(p.box, p.negative) for p in pairs]
            cls_t = torch.from_numpy(np.stack([v[0] for v in lab])).to(device)
            delta_t = torch.from_numpy(np.stack([v[1] for v in lab])).to(device)
            weight_t = torch.from_numpy(np.stack([v[2] for v in lab])).to(device)
            cls_loss, loc_loss = rpn_loss(outs[0], outs[1], cls_t, delta_t, weight_t)
            loss = cls_loss + 1.2 * loc_loss
            parts = {"loss": loss.item(), "cls": cls_loss.item(), "loc": loc_loss.item()}
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([prm for prm in net.parameters() if prm.requires_grad], 10.0)
        opt.step()
        step += 1
        train_s += time.monotonic() - t0
        rows.append({"step": step, "seconds": round(train_s, 2), "lr": cur_lr, **parts})
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in parts.items()})
        if step % 10 == 0:
            recent = np.mean([r["loss"] for r in rows[-10:]])
            print(f"step {step} {train_s:.0f}s loss(mean 10) {recent:.4f} lr {cur_lr:.2e}", flush=True)
    bar.close()
    net.eval()
    net.cpu()
    ckpt, config = write_outputs(args.model, net, preset, out)
    with open(os.path.join(out, "losses.csv"), "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot_losses(rows, os.path.join(out, "loss.png"), f"{args.model}: {step} steps, {train_s / 60:.1f} min")
    k = max(1, min(20, len(rows) // 4))
    first = float(np.mean([r["loss"] for r in rows[:k]]))
    last = float(np.mean([r["loss"] for r in rows[-k:]]))
    print(f"trained {step} steps in {train_s / 60:.1f} min; loss {first:.4f} (first {k}) -> {last:.4f} (last {k})")
    if args.ship:
        ship(args.model, ckpt, config)
    seeds = list(range(1000, 1000 + args.eval_sequences))
    t_eval = time.monotonic()
    report = evaluate(ckpt, config, args.model, seeds, args.eval_frames) if args.eval_sequences else {}
    report.update({"model": args.model, "steps": step, "train_minutes": round(train_s / 60, 2),
                   "wall_minutes": round((time.monotonic() - start) / 60, 2), "batch": args.batch,
                   "seed": args.seed, "precision": precision, "freeze_stem": args.freeze_stem, "device": str(device),
                   "machine": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
                   "loss_first": first, "loss_last": last, "loss_window": k, "search_size": SEARCH,
                   "eval_seconds": round(time.monotonic() - t_eval, 1),
                   "command": " ".join(["python", "scripts/train_reference.py", *(argv or sys.argv[1:])])})
    with open(os.path.join(out, "report.json"), "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2)
    if "mean_success" in report:
        print(f"held-out success {report['mean_success']:.3f}, precision@20 {report['mean_precision20']:.3f} "
              f"over {len(seeds)} sequences")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
