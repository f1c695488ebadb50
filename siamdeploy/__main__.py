"""``siamdeploy SUBCOMMAND ...`` (the console script) and ``python -m siamdeploy SUBCOMMAND ...``.

Each subcommand is the same parser as ``python -m siamdeploy.<module>``; the table is
:data:`siamdeploy.cli.SUBCOMMANDS`.
"""
from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
