"""What every command-line tool shares: the argument groups (model, engine, output), flag checks that run
before any work, and the one error boundary (see docs/architecture.md#errors).

The boundary: a :class:`SiamDeployError` is a user mistake and an :class:`OSError` a file problem (a folder
that cannot be written, a full disk); both become one line on stderr and exit code 1. Ctrl-C and SIGTERM
become one line and exit 130 / 143. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Iterable
from typing import Any

from .errors import InputError, SiamDeployError

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")
ENGINE_PRECISIONS = ("fp32", "fp16", "bf16", "int8")  # each backend refuses the ones it does not run
MAX_ECHO = 80  # characters of a user-supplied value echoed back in a message


# subcommand -> (module whose ``main(argv)`` runs it, one line for ``siamdeploy --help``). A new tool
# (``bench``, ``serve``) is one more row.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("siamdeploy.run.__main__", "track a target through the demo, a camera, a video or an image folder"),
    "export": ("siamdeploy.export.__main__", "export a checkpoint to split ONNX graphs (and TensorRT engines)"),
    "eval": ("siamdeploy.eval.__main__", "run a tracker over a benchmark folder and score it"),
    "generate": ("siamdeploy.eval.generate", "write a synthetic benchmark folder with exact ground truth"),
    "serve": ("siamdeploy.serve.__main__", "serve many camera streams on Triton Inference Server (PyTriton)"),
}


def backend_choices() -> tuple[str, ...]:
    """The values ``--backend`` accepts in every CLI: the backend registry's names and ``auto``."""
    from .backends.registry import backend_names

    return tuple(backend_names())


def clip(value: object, limit: int = MAX_ECHO) -> str:
    """``str(value)`` cut to ``limit`` characters (with a count of what was left out) for messages."""
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


# ---------------------------------------------------------------- argument groups

def add_model_group(ap: argparse.ArgumentParser, model: str = "optional",
                    model_help: str = "checkpoint (.pth/.model) or export folder") -> argparse._ArgumentGroup:
    """``--model`` (``model``: ``optional`` | ``required`` | ``none`` when the parser has its own positional),
    ``--config``, ``--preset``, ``--trust-checkpoint``."""
    group = ap.add_argument_group("model")
    if model != "none":
        group.add_argument("--model", required=model == "required", help=model_help)
    group.add_argument("--config", help="pysot config.yaml of the checkpoint")
    group.add_argument("--preset", help="preset id (see siamdeploy.PRESETS); default: detected from the checkpoint")
    group.add_argument("--trust-checkpoint", action="store_true",
                       help="allow checkpoints that need full unpickling (runs code from the file)")
    return group


def add_engine_group(ap: argparse.ArgumentParser, default_backend: str = "torch") -> argparse._ArgumentGroup:
    """``--backend`` (choices from :func:`backend_choices`), ``--device``, ``--precision``."""
    group = ap.add_argument_group("engine")
    group.add_argument("--backend", default=default_backend, choices=backend_choices(),
                       help=f"inference backend (default: {default_backend}); every backend but torch takes an "
                            "export folder or a checkpoint (exported once into a cache); auto picks the first that "
                            "loads in the registry's order")
    group.add_argument("--device", help="cpu | cuda | cuda:N; default: the backend's")
    group.add_argument("--precision", default=None, choices=ENGINE_PRECISIONS,
                       help="engine precision (default: the backend's, fp16 for tensorrt and fp32 otherwise); a "
                            "precision the backend does not run is refused, never downgraded")
    return group


def add_output_group(ap: argparse.ArgumentParser, out_help: str, required: bool = False
                     ) -> argparse._ArgumentGroup:
    """``--out`` (an output folder) and ``-q/--quiet``; tools add their own outputs to the returned group."""
    group = ap.add_argument_group("output")
    group.add_argument("--out", required=required, default=None, help=out_help)
    group.add_argument("-q", "--quiet", action="store_true", help="less output (no progress bar)")
    return group


def attach_negative_values(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    """``--init -5,10,40,40`` -> ``--init=-5,10,40,40``: argparse takes a value starting with ``-`` for an
    option unless it is attached with ``=``; for these flags a following ``-<digit>`` token is a value."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if token in flags and len(nxt) > 1 and nxt[0] == "-" and (nxt[1].isdigit() or nxt[1] == "."):
            out.append(f"{token}={nxt}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


# ---------------------------------------------------------------- checks before any work

def check_engine_args(args: argparse.Namespace) -> None:
    """``--device`` well-formed (``cpu``, ``cuda``, ``cuda:N``)."""
    device = getattr(args, "device", None)
    if device == "tensorrt":
        raise InputError("onnxruntime's TensorRT provider is its own backend now: use --backend onnxruntime-trt "
                         "(or --backend tensorrt for siamdeploy's TensorRT engines)")
    if device is not None and not _DEVICE.match(device):
        raise InputError(f"--device '{clip(device)}' is not a device; use cpu, cuda or cuda:N")


def check_model_args(args: argparse.Namespace, model: str | None) -> None:
    """``--config`` must exist; with an export folder, its manifest must be well-formed and ``--preset``/
    ``--config`` must agree with it (an export carries its own preset and tracker parameters)."""
    config = getattr(args, "config", None)
    if config is not None and not os.path.isfile(config):
        raise InputError(f"--config '{clip(config)}' does not exist or is not a file; check the path")
    if model is None or not os.path.isfile(os.path.join(model, "manifest.json")):
        return
    from .export.cache import check_agrees

    check_agrees(model, config, getattr(args, "preset", None))


def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def check_writable_dir(path: str, flag: str) -> None:
    """``path`` is a folder that exists and is writable, or can be created (its nearest existing parent is a
    writable folder). Creates nothing."""
    probe = os.path.abspath(path)
    if os.path.exists(probe) and not os.path.isdir(probe):
        raise InputError(f"{flag} '{clip(path)}' is a file, not a folder; pass a folder")
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise InputError(f"{flag} '{clip(path)}' cannot be created: '{probe}' is a file; pass another folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{flag} '{clip(path)}' is not writable (no write permission on '{probe}'); pass a "
                         "writable folder")


def check_output_file(path: str, flag: str, protected: dict[str, str | None]) -> None:
    """An output file must not be a folder, must be creatable, and must not be (the real path of) any input:
    ``protected`` maps a description (``"the source"``) to a path that must never be overwritten."""
    if os.path.isdir(path):
        raise InputError(f"{flag} '{clip(path)}' is a folder; pass a file path (e.g. {os.path.join(path, 'out.txt')})")
    real = _real(path)
    for what, other in protected.items():
        if other and os.path.exists(other) and (real == _real(other) or _same_file(path, other)):
            raise InputError(f"{flag} '{clip(path)}' is {what}; writing it would destroy it: pass another path")
    check_writable_dir(os.path.dirname(os.path.abspath(path)), flag)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_distinct(paths: Iterable[tuple[str, str | None]]) -> None:
    """Two outputs of one run must not be the same file."""
    seen: dict[str, str] = {}
    for flag, path in paths:
        if not path:
            continue
        real = _real(path)
        if real in seen:
            raise InputError(f"{flag} and {seen[real]} name the same file '{clip(path)}'; give them different paths")
        seen[real] = flag


# ---------------------------------------------------------------- the error boundary

class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C so every clean-up path for an interrupt also runs for it."""

    signum = signal.SIGTERM


def _on_sigterm(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal handler signature
    raise Terminated()


def interrupt_exit_code(err: BaseException) -> int:
    """130 for Ctrl-C, 143 for SIGTERM (128 + the signal number, as shells report them)."""
    return 128 + (signal.SIGTERM if isinstance(err, Terminated) else signal.SIGINT)


def describe_os_error(err: OSError) -> str:
    """One line naming the path and what to do about it."""
    path = err.filename or ""
    where = f" '{clip(path, 200)}'" if path else ""
    if err.errno == errno.ENOSPC:
        return f"no space left on the device writing{where}; free some space or write elsewhere (--out)"
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"permission denied on{where}; pass a path you can write to"
    if err.errno == errno.EISDIR:
        return f"{where.strip() or 'the path'} is a folder where a file was expected; pass a file path"
    if err.errno == errno.ENOTDIR:
        return f"a part of{where} is a file, not a folder; pass another path"
    if err.errno == errno.ENOENT:
        return f"no such file or folder{where}; check the path"
    return f"{err.strerror or err}{' on' + where if where else ''}"


def run_cli(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int], argv: list[str] | None,
            quiet: Callable[[argparse.Namespace], bool] = lambda args: bool(getattr(args, "quiet", False))) -> int:
    """Parse ``argv``, configure logging for the CLI, run ``body(args)`` inside the error boundary."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if quiet(args) else logging.INFO, format="%(levelname)s %(message)s")
    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (a caller embedding the CLI): leave SIGTERM alone
        pass
    try:
        return body(args)
    except SiamDeployError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: {describe_os_error(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        what = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted (Ctrl-C)"
        print(f"{what}: stopped cleanly", file=sys.stderr)
        return interrupt_exit_code(err)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------- the console script

def _usage() -> str:
    from . import __version__

    width = max(len(name) for name in SUBCOMMANDS)
    rows = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in SUBCOMMANDS.items())
    return (f"usage: siamdeploy [--version] [-h] SUBCOMMAND [ARGS ...]\n\nsiamdeploy {__version__}: Siamese "
            f"trackers from research checkpoints to deployments.\n\nsubcommands:\n{rows}\n\n"
            "'siamdeploy SUBCOMMAND --help' shows a subcommand's options (the same as python -m siamdeploy.<module>).")


def main(argv: list[str] | None = None) -> int:
    """``siamdeploy SUBCOMMAND ARGS``: dispatch to the subcommand's own ``main`` (see :data:`SUBCOMMANDS`)."""
    import importlib

    from . import __version__

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"siamdeploy {__version__}")
        return 0
    name = argv[0]
    if name not in SUBCOMMANDS:
        print(f"error: unknown subcommand '{clip(name)}'; choose one of {', '.join(SUBCOMMANDS)} "
              "(siamdeploy --help)", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(argv[1:]) or 0)
