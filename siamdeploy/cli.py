"""The one error boundary of the command-line tools (see docs/architecture.md#errors): a :class:`SiamDeployError` is a
user mistake and becomes one line on stderr with exit code 1; anything else is a bug and keeps its traceback."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from .errors import SiamDeployError


def run_cli(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int], argv: list[str] | None,
            quiet: Callable[[argparse.Namespace], bool] = lambda args: False) -> int:
    """Parse ``argv``, configure logging for the CLI, run ``body(args)`` inside the error boundary."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if quiet(args) else logging.INFO, format="%(levelname)s %(message)s")
    try:
        return body(args)
    except SiamDeployError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
