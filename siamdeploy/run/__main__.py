"""``python -m siamdeploy.run SOURCE``: track a target through the demo, a video or an image folder.

SOURCE is ``demo`` (a generated sequence with ground truth), ``camera`` / ``camera:N``, a video file, or a
folder of images. Without ``--model`` the reference SiamRPN (AlexNet) that ships with siamdeploy is used
(``--preset siamfc`` picks the reference SiamFC); it was trained on generated scenes, a demonstration model.
With a display, a window shows the tracking (q quit, r re-select, space pause) and, without --init, lets you
drag a box around the target on the first frame.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from ..cli import (add_engine_group, add_model_group, add_output_group, attach_negative_values, check_distinct,
                   check_engine_args, check_model_args, check_output_file, check_writable_dir, clip, run_cli)
from ..errors import InputError


VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m siamdeploy.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", nargs="?", default="demo",
                    help="demo | camera | camera:N | VIDEO | IMAGE_FOLDER (default: demo)")
    add_model_group(ap, model_help="checkpoint (.pth/.model) or export folder; default: the shipped reference model")
    add_engine_group(ap)
    ap.add_argument("--init", action="append", metavar="X,Y,W,H",
                    help="initial box on the first frame (0-based pixels); repeat for several targets; a "
                         "negative x works as given (--init -5,10,40,40)")
    ap.add_argument("--server", metavar="HOST:PORT",
                    help="track through a python -m siamdeploy.serve server (its HTTP endpoint, e.g. 127.0.0.1:8000; "
                         "grpc://HOST:PORT for gRPC) instead of a local model")
    ap.add_argument("--frames", type=int, default=60, help="demo length in frames (default: 60)")
    ap.add_argument("--no-display", action="store_true",
                    help="headless: no window (also automatic when no display is available)")
    out = add_output_group(ap, "output folder (default: runs/<source name>)")
    out.add_argument("--save", help="annotated video path (default: <out>/annotated.mp4); 'none' to skip")
    out.add_argument("--results", help="results file, one x,y,w,h per frame, plus the 8 polygon numbers for "
                                       "SiamMask (default: <out>/results.txt)")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_cli(build_parser(), _run, attach_negative_values(argv, ("--init",)), quiet=lambda args: False)


def _outputs(args: argparse.Namespace, source_name: str) -> tuple[str, str | None]:
    """The results and video paths, checked before any work: not a folder, creatable, and never the source,
    the model, the config or each other."""
    out_dir = args.out or os.path.join("runs", source_name)
    if args.out is not None:
        check_writable_dir(args.out, "--out")
    video = None if (args.save or "").lower() == "none" else (args.save or os.path.join(out_dir, "annotated.mp4"))
    results = args.results or os.path.join(out_dir, "results.txt")
    protected = {"the source": args.source if os.path.exists(args.source) else None,
                 "the model": args.model, "the config": args.config}
    if os.path.isdir(args.source):  # an image folder: never one of its images
        from ..images import IMAGE_EXTENSIONS

        for path in (results, video):
            if path and os.path.isfile(path) and path.lower().endswith(IMAGE_EXTENSIONS) and os.path.samefile(
                    os.path.dirname(os.path.abspath(path)), args.source):
                protected[f"an input image of '{args.source}'"] = path
    check_output_file(results, "--results", protected)
    if video is not None:
        check_output_file(video, "--save", protected)
        if not video.lower().endswith(VIDEO_EXTENSIONS):
            raise InputError(f"--save '{clip(video)}' is not a video path; end it in "
                             f"{', '.join(VIDEO_EXTENSIONS)}, or pass --save none")
    check_distinct([("--results", results), ("--save", video)])
    return results, video


def _run(args: argparse.Namespace) -> int:
    from ..apps.display import TkDisplay, display_unavailable_reason
    from ..apps.runner import parse_box, run_tracking
    from ..apps.sources import open_source
    from ..runtime import make_tracker

    inits = [parse_box(t) for t in args.init or []]
    if args.frames < 2:
        raise InputError("--frames must be at least 2")
    check_engine_args(args)
    check_model_args(args, args.model)
    if args.server and args.model:
        raise InputError("--server tracks with the server's model; drop --model (or drop --server to track locally)")
    display = None
    source = open_source(args.source, demo_frames=args.frames)
    try:
        results, video = _outputs(args, source.name)
        if not args.no_display:
            reason = display_unavailable_reason()
            if reason is None:
                display = TkDisplay("siamdeploy - q quit, r re-select, space pause")
            else:
                logging.getLogger("siamdeploy.run").info("no window (%s): running headless", reason)
        if not inits and source.ground_truth is not None:
            inits = [tuple(float(v) for v in source.ground_truth[0])]
        if not inits and display is None:
            raise InputError("give the target with --init x,y,w,h (interactive selection needs a display)")
        prototype = _make_tracker(args, len(inits))
        made = [0]

        def new_tracker():  # the first target uses the loaded tracker; others share its engine
            made[0] += 1
            if made[0] == 1:
                return prototype
            if args.server:  # one stream per target on the server
                return type(prototype)(prototype.client)
            return make_tracker(prototype.engine, prototype.params, prototype.name)

        try:
            summary = run_tracking(source, new_tracker, inits, results, video, progress=not args.quiet,
                                   display=display)
        except KeyboardInterrupt as err:  # Ctrl-C / SIGTERM: outputs are closed; say what was saved
            partial = getattr(err, "summary", None)
            if partial is not None:
                print("\n".join(partial.lines()))
            raise
        finally:
            if args.server:  # close this run's streams on the server
                prototype.engine.close()
    except BaseException:
        source.close()
        raise
    finally:
        if display is not None:
            display.close()
    print(f"model: {_model_description(args)}")
    print("\n".join(summary.lines()))
    if not args.server:  # a server's export and its gate verdict are the server's to report
        _print_gate(prototype.engine)
    if summary.error:
        print(f"error: {summary.error}", file=sys.stderr)
        return 1
    return 0


def _print_gate(engine) -> None:  # noqa: ANN001 - an Engine
    """The export's accuracy-gate verdict for what ran (a miss is a WARNING line)."""
    from ..export.accuracy import gate_notes

    for line in gate_notes(getattr(engine, "folder", None), engine.backend, engine.precision, engine.device):
        print(line)


def _make_tracker(args: argparse.Namespace, targets: int = 1):  # noqa: ANN202 - returns a runtime Tracker
    """The first target's tracker; with several targets its engine has batched graphs (one call per frame)."""
    from .. import load_multi_tracker, load_tracker

    if args.server:
        from ..serve.client import Client, RemoteTracker

        return RemoteTracker(Client(args.server))
    if targets > 1:
        def load(model: str, **kw: object):  # noqa: ANN202
            multi = load_multi_tracker(model, backend=args.backend, device=args.device, precision=args.precision,
                                       max_targets=max(32, targets), **kw)  # type: ignore[arg-type]
            return multi.new_tracker()
    else:
        def load(model: str, **kw: object):  # noqa: ANN202
            return load_tracker(model, backend=args.backend, device=args.device, precision=args.precision,
                                **kw)  # type: ignore[arg-type]
    if args.model:
        return load(args.model, config=args.config, preset=args.preset, allow_unsafe_pickle=args.trust_checkpoint)
    from ..reference import demo_model, reference_model

    ref = reference_model(args.preset) if args.preset else demo_model()
    logging.getLogger("siamdeploy.run").info("no --model given: using the reference model %s", ref.checkpoint)
    return load(ref.checkpoint, **ref.load_args())


def _model_description(args: argparse.Namespace) -> str:
    if args.server:
        return f"the model of the server at {args.server}"
    if args.model:
        return args.model
    return (f"reference {args.preset or 'siamrpn_alex_dwxcorr'} (shipped with siamdeploy, trained on generated "
            "scenes by scripts/train_reference.py: a demonstration model, not a benchmark-grade tracker)")


if __name__ == "__main__":
    sys.exit(main())
