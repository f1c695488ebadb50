"""One exception hierarchy for everything a user can get wrong.

Every user-facing error carries a one-line message that names the problem and the fix; the CLIs print
``str(err)`` and exit 1. Anything that is not a :class:`SiamDeployError` is a bug and keeps its traceback.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class SiamDeployError(Exception):
    """Base class: a problem the user can fix (bad file, bad argument, missing optional package)."""


class ConfigError(SiamDeployError):
    """A preset, config file or parameter is unknown, malformed or inconsistent."""


class CheckpointError(SiamDeployError):
    """A checkpoint cannot be read, is not a known layout, or does not match the model it is loaded into."""


class InputError(SiamDeployError):
    """A frame, box or call sequence handed to a tracker is not valid."""


class EngineError(SiamDeployError):
    """An inference backend is unavailable or failed."""


class ExportError(SiamDeployError):
    """An export or its validation failed."""


class ServeError(SiamDeployError):
    """A tracking server refused a request or cannot be reached; the message is the server's."""


class DependencyError(EngineError):
    """An optional dependency is missing; the message says what to install."""


def unknown_name(what: str, name: str, known: Iterable[str], known_label: str = "Known") -> ConfigError:
    """``ConfigError`` for a name that is not in ``known``: the name (cut to 80 characters), the closest known
    one, and the list (``unknown preset 'x'. Did you mean 'y'? Known presets: ...``)."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    shown = name if len(name) <= 80 else f"{name[:80]}... ({len(name)} characters)"
    return ConfigError(f"unknown {what} '{shown}'.{hint} {known_label}: {', '.join(known)}")
