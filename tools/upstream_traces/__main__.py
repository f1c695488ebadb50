"""Regenerate the upstream traces: ``python -m tools.upstream_traces --pysot PATH ... [--cases a,b]``.

Each case runs in its own Python process (the upstream code bases use clashing top-level module names and
pysot keeps a global config). See README.md in this folder.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

from .cases import CASES, UPSTREAM, Case, get_case
from .compare import compare
from .record import REPO_ROOT, to_trace, write_trace

COMMITTED = os.path.join(REPO_ROOT, "tests", "data", "upstream_traces")
# Code base -> module in runners/ (SiamTrackers' SiamRPN is haooozi's tracker with other defaults).
RUNNER_MODULE = {"pysot": "pysot", "dasiamrpn": "dasiamrpn", "siamfc": "siamfc", "siammask": "siammask",
                 "haooozi": "haooozi", "siamtrackers": "haooozi"}
# Regenerated vs committed, "the same within float noise": boxes and polygons in pixels, scores absolute.
# random_model's weights depend on the CPU's convolution kernels at the ~1e-6 level (its BN calibration and
# head rescaling run convolutions), which moved the committed tracks by up to ~3e-3 px; see README.md.
TOLERANCE = {"boxes": 5e-3, "scores": 1e-4, "polygons": 5e-3}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.upstream_traces", description=__doc__.splitlines()[0])
    group = p.add_argument_group("upstream checkouts (each at the commit in tools/upstream_traces/cases.py)")
    for codebase, (repo, commit) in UPSTREAM.items():
        group.add_argument(f"--{codebase}", metavar="PATH", help=f"checkout of {repo} at {commit[:12]}")
    p.add_argument("--cases", default="", help="comma-separated case names (default: every case whose "
                                               "code base has a checkout)")
    p.add_argument("--out", default="", help="folder for the regenerated traces (default: a new temp folder)")
    p.add_argument("--write", action="store_true", help="also write tests/data/upstream_traces/<case>.json for "
                                                        "the cases that match the committed trace or are new")
    p.add_argument("--force", action="store_true", help="with --write: also overwrite traces that differ "
                                                        "(after a deliberate change of random_model or the "
                                                        "synthetic frames)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for the weights and the upstream "
                                                          "run (default 1)")
    p.add_argument("--one", default="", help=argparse.SUPPRESS)  # internal: run one case in this process
    p.add_argument("--checkout", default="", help=argparse.SUPPRESS)
    return p


def _check_commit(path: str, commit: str) -> str:
    """'ok', or why the checkout's commit could not be confirmed."""
    try:
        head = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout: commit not verified"
    return "ok" if head == commit else f"HEAD is {head}, expected {commit}"


def case_frames(case: Case) -> tuple[list[Any], list[float]]:
    """The case's frames (``HxWx3`` uint8 BGR) and init box ``(x, y, w, h)`` pixels (the sequence's first box),
    from the generator ``case.frames`` names."""
    if case.frames == "photos":
        from siamdeploy.synthetic.photos import photo_sequence

        seq: Any = photo_sequence(seed=case.sequence_seed, num_frames=case.num_frames, size=case.size)
    else:
        from siamdeploy.synthetic import generate_sequence

        extra = {} if case.target_size is None else {"target_size": (float(case.target_size[0]),
                                                                     float(case.target_size[1]))}
        seq = generate_sequence(seed=case.sequence_seed, num_frames=case.num_frames, size=case.size, **extra)
    return list(seq.frames), [float(v) for v in seq.boxes[0]]


def case_weights(case: Case) -> dict[str, Any]:
    """The case's float32 state dict in siamdeploy's (pysot) key names, from the source ``case.weights`` names."""
    if case.weights == "reference":
        from siamdeploy.checkpoint import load_model
        from siamdeploy.reference import reference_model

        ref = reference_model(case.preset)
        return load_model(ref.checkpoint, **ref.load_args()).net.state_dict()
    from siamdeploy.models.random_init import random_model
    from siamdeploy.presets import get_preset

    return random_model(get_preset(case.preset), seed=case.model_seed).state_dict()


def run_one(name: str, checkout: str, out_dir: str, threads: int) -> str:
    """Run one case in this process; writes ``<out_dir>/<name>.json`` and returns its path."""
    import torch

    torch.set_num_threads(threads)

    from .checkpoints import round_trip_error, upstream_checkpoint
    case = get_case(name)
    runner = importlib.import_module(f".runners.{RUNNER_MODULE[case.codebase]}", __package__)
    frames, init = case_frames(case)
    state = case_weights(case)
    written = upstream_checkpoint(case.preset, state)
    err = round_trip_error(state, written)
    if err > 1e-4:
        raise SystemExit(f"{name}: the upstream checkpoint does not read back to the same weights ({err:.2e})")
    with tempfile.TemporaryDirectory(prefix=f"trace-{name}-") as work:
        ckpt = os.path.join(work, str(case.options.get("checkpoint", "model.pth")))
        torch.save(written, ckpt)
        rec = runner.run(case, os.path.abspath(checkout), ckpt, frames, init, work)
    assert len(rec.boxes) == case.num_frames - 1, (len(rec.boxes), case.num_frames)
    path = os.path.join(out_dir, f"{name}.json")
    write_trace(path, to_trace(case, init, rec))
    return path


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.one:
        run_one(args.one, args.checkout, args.out, args.threads)
        return 0
    parser = _parser()
    checkouts = {c: getattr(args, c) for c in UPSTREAM if getattr(args, c)}
    for codebase, path in checkouts.items():
        if not os.path.isdir(path):
            parser.error(f"--{codebase} {path}: no such folder; pass the path of a {UPSTREAM[codebase][0]} checkout")
    names = [n for n in args.cases.split(",") if n] or [c.name for c in CASES if c.codebase in checkouts]
    known = {c.name for c in CASES}
    if unknown := [n for n in names if n not in known]:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if not names:
        parser.error("no cases selected: pass at least one upstream checkout")
    out_dir = args.out or tempfile.mkdtemp(prefix="upstream-traces-")
    os.makedirs(out_dir, exist_ok=True)
    for codebase, path in checkouts.items():
        print(f"{codebase}: {path} ({_check_commit(path, UPSTREAM[codebase][1])})")
    failed = []
    for name in names:
        case = get_case(name)
        if case.codebase not in checkouts:
            print(f"{name}: skipped, no --{case.codebase} checkout given")
            continue
        start = time.time()
        cmd = [sys.executable, "-m", "tools.upstream_traces", "--one", name, "--checkout", checkouts[case.codebase],
               "--out", out_dir, "--threads", str(args.threads)]
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            failed.append(name)
            print(f"{name}: FAILED\n{proc.stdout}{proc.stderr}")
            continue
        with open(os.path.join(out_dir, f"{name}.json"), encoding="utf-8") as fh:
            new = json.load(fh)
        committed = os.path.join(COMMITTED, f"{name}.json")
        same = True
        if os.path.exists(committed):
            with open(committed, encoding="utf-8") as fh:
                diff = compare(new, json.load(fh))
            same = diff.within(TOLERANCE)
            print(f"{diff.line()}  [{'same' if same else 'DIFFERS'}, {time.time() - start:.0f} s]")
            if not same:
                failed.append(name)
        else:
            print(f"{name}: new trace (nothing committed to compare with)")
        if args.write and (same or args.force):
            write_trace(committed, new)
            print(f"  wrote {os.path.relpath(committed, REPO_ROOT)}")
    print(f"regenerated traces in {out_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
