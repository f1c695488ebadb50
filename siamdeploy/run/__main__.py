"""``python -m siamdeploy.run SOURCE``: track a target through the demo, a video or an image folder.

SOURCE is ``demo`` (a generated sequence with ground truth), ``camera`` / ``camera:N``, a video file, or a
folder of images. Without ``--model`` the reference SiamRPN (AlexNet) that ships with siamdeploy is used
(``--preset siamfc`` picks the reference SiamFC); it was trained on generated scenes, a demonstration model. With a display, a window shows the tracking (q quit, r re-select, space pause) and, without
--init, lets you drag a box around the target on the first frame.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from ..cli import run_cli
from ..errors import InputError


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m siamdeploy.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", nargs="?", default="demo",
                    help="demo | camera | camera:N | VIDEO | IMAGE_FOLDER (default: demo)")
    ap.add_argument("--model", help="checkpoint (.pth/.model) or export folder; default: the shipped reference model")
    ap.add_argument("--config", help="pysot config.yaml of the checkpoint")
    ap.add_argument("--preset", help="preset id (see siamdeploy.PRESETS); default: detected from the checkpoint")
    ap.add_argument("--backend", default="torch", choices=("auto", "torch", "onnxruntime", "tensorrt"),
                    help="inference backend (default: torch); onnxruntime/tensorrt take an export folder or a "
                         "checkpoint (exported once into a cache); auto picks the fastest available")
    ap.add_argument("--precision", default=None, choices=("fp32", "fp16"),
                    help="engine precision (default: fp16 for tensorrt, fp32 otherwise)")
    ap.add_argument("--device", help="cpu | cuda | cuda:N (default: CUDA when available)")
    ap.add_argument("--init", action="append", metavar="X,Y,W,H",
                    help="initial box on the first frame (0-based pixels); repeat for several targets")
    ap.add_argument("--out", default=None, help="output folder (default: runs/<source name>)")
    ap.add_argument("--save", help="annotated video path (default: <out>/annotated.mp4); 'none' to skip")
    ap.add_argument("--results", help="results file, one x,y,w,h per frame (default: <out>/results.txt)")
    ap.add_argument("--frames", type=int, default=60, help="demo length in frames (default: 60)")
    ap.add_argument("--trust-checkpoint", action="store_true",
                    help="allow checkpoints that need full unpickling (runs code from the file)")
    ap.add_argument("--no-display", action="store_true",
                    help="headless: no window (also automatic when no display is available)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return ap


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    from ..apps.display import TkDisplay, display_unavailable_reason
    from ..apps.runner import parse_box, run_tracking
    from ..apps.sources import open_source
    from ..runtime import make_tracker

    inits = [parse_box(t) for t in args.init or []]
    if args.frames < 2:
        raise InputError("--frames must be at least 2")
    display = None
    if not args.no_display:
        reason = display_unavailable_reason()
        if reason is None:
            display = TkDisplay("siamdeploy - q quit, r re-select, space pause")
        else:
            logging.getLogger("siamdeploy.run").info("no window (%s): running headless", reason)
    source = open_source(args.source, demo_frames=args.frames)
    try:
        if not inits and source.ground_truth is not None:
            inits = [tuple(float(v) for v in source.ground_truth[0])]
        if not inits and display is None:
            raise InputError("give the target with --init x,y,w,h (interactive selection needs a display)")
        prototype = _make_tracker(args)
        made = [0]

        def new_tracker():  # the first target uses the loaded tracker; others share its engine
            made[0] += 1
            if made[0] == 1:
                return prototype
            return make_tracker(prototype.engine, prototype.params, prototype.name)

        out_dir = args.out or os.path.join("runs", source.name)
        video = None if (args.save or "").lower() == "none" else (args.save or os.path.join(out_dir, "annotated.mp4"))
        results = args.results or os.path.join(out_dir, "results.txt")
        summary = run_tracking(source, new_tracker, inits, results, video, progress=not args.quiet, display=display)
    except BaseException:
        source.close()
        raise
    finally:
        if display is not None:
            display.close()
    print(f"model: {_model_description(args)}")
    print("\n".join(summary.lines()))
    if summary.error:
        print(f"error: {summary.error}", file=sys.stderr)
        return 1
    return 0


def _make_tracker(args: argparse.Namespace):  # noqa: ANN202 - returns a runtime Tracker
    from .. import load_tracker

    if args.model:
        return load_tracker(args.model, config=args.config, preset=args.preset, backend=args.backend,
                            device=args.device, allow_unsafe_pickle=args.trust_checkpoint, precision=args.precision)
    from ..reference import demo_model, reference_model

    ref = reference_model(args.preset) if args.preset else demo_model()
    logging.getLogger("siamdeploy.run").info("no --model given: using the reference model %s", ref.checkpoint)
    return load_tracker(ref.checkpoint, backend=args.backend, device=args.device, precision=args.precision,
                        **ref.load_args())


def _model_description(args: argparse.Namespace) -> str:
    if args.model:
        return args.model
    return (f"reference {args.preset or 'siamrpn_alex_dwxcorr'} (shipped with siamdeploy, trained on generated "
            "scenes by scripts/train_reference.py: a demonstration model, not a benchmark-grade tracker)")


if __name__ == "__main__":
    sys.exit(main())
