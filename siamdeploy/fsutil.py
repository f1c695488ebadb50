"""Filesystem helpers shared by the exporter and the engine cache: what may be replaced, temporary folders
that honour the umask and are swept when their process is gone, and an atomic, concurrency-safe replace."""
from __future__ import annotations

import errno
import os
import shutil
import time
import uuid
from collections.abc import Callable

from .errors import ExportError
from .manifest import is_export_folder
# A temporary folder whose name carries no process id is swept once it is this old (seconds).
STALE_AFTER_S = 3600.0
_TMP_MARK = ".tmp-"


def check_export_destination(out_dir: str, force: bool) -> None:
    """Refuse an export destination that must not be replaced, before any work starts.

    Allowed: a path that does not exist, or (with ``force``) an existing siamdeploy export folder. Refused
    with :class:`ExportError`: a file, any other folder (the current folder, a source tree, an empty folder),
    a folder holding the current working directory, and an existing export without ``force``."""
    real = os.path.realpath(out_dir)
    if not os.path.lexists(out_dir):
        return
    cwd = os.path.realpath(os.getcwd())
    if cwd == real or cwd.startswith(real.rstrip(os.sep) + os.sep):
        raise ExportError(f"export destination '{out_dir}' is (or holds) the current folder; pass a new "
                          "folder, e.g. --out export/NAME")
    if not os.path.isdir(out_dir) or os.path.islink(out_dir):
        raise ExportError(f"export destination '{out_dir}' exists and is not a folder; pass a path that does "
                          "not exist yet")
    if not is_export_folder(out_dir):
        raise ExportError(f"export destination '{out_dir}' exists and is not a siamdeploy export folder; "
                          "refusing to replace it: pass a path that does not exist yet")
    if not force:
        raise ExportError(f"export destination '{out_dir}' already holds an export; pass --force to replace it, "
                          "or another --out")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_temp_dir(parent: str, name: str) -> str:
    """Create ``parent/.NAME.tmp-<pid>-<hex>`` with the permissions a plain ``mkdir`` gives (the umask's),
    not the 0700 of :func:`tempfile.mkdtemp`. The pid lets :func:`sweep_stale_temp_dirs` tell a live
    writer's folder from one a killed process left behind."""
    os.makedirs(parent, exist_ok=True)
    for _ in range(100):
        path = os.path.join(parent, f".{name}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            os.mkdir(path, 0o777 & ~_umask() | 0o700)
            return path
        except FileExistsError:
            continue
    raise ExportError(f"cannot create a temporary folder in '{parent}'; check it is writable")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def sweep_stale_temp_dirs(parent: str, name: str, now: float | None = None) -> list[str]:
    """Remove ``parent/.NAME.tmp-*`` folders left by processes that no longer run (killed by SIGKILL, a
    power cut). Folders of live processes are kept; a name without a pid is removed after
    :data:`STALE_AFTER_S` seconds. Returns the removed paths."""
    prefix = f".{name}{_TMP_MARK}"
    removed: list[str] = []
    try:
        entries = os.listdir(parent)
    except OSError:
        return removed
    now = time.time() if now is None else now
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        path = os.path.join(parent, entry)
        pid_text = entry[len(prefix):].split("-", 1)[0]
        if pid_text.isdigit():
            stale = int(pid_text) != os.getpid() and not _pid_alive(int(pid_text))
        else:
            try:
                stale = now - os.path.getmtime(path) > STALE_AFTER_S
            except OSError:
                continue
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def replace_dir(src: str, dst: str, replaceable: Callable[[str], bool] | None = None, keep_existing: bool = False
                ) -> None:
    """Rename the finished folder ``src`` to ``dst`` atomically; readers never see a half-written ``dst``.

    An existing ``dst`` is moved aside, ``src`` renamed into place, and the old one removed. ``replaceable``
    (default: any folder) decides whether the old ``dst`` may go; it is asked about the moved-aside copy,
    which no other process can touch. When it says no, the old ``dst`` is put back, :class:`ExportError`
    is raised and ``src`` is left for the caller to remove. Safe when several processes replace the same
    ``dst`` at once: a ``dst`` that another process put in place meanwhile counts as success (``src`` is
    then removed), and a ``dst`` that vanished meanwhile is simply retried. ``keep_existing``: a ``dst``
    that exists (and is ``replaceable``) is kept and ``src`` removed, for callers that were told not to
    replace but raced with another writer of the same folder. Callers should refuse a destination up front
    (:func:`check_export_destination`); this check is the last line.
    """
    def allowed(path: str) -> bool:
        return os.path.isdir(path) and not os.path.islink(path) and (replaceable is None or replaceable(path))

    for _ in range(100):
        if keep_existing and os.path.lexists(dst):  # keep what stands: nothing is moved aside
            if allowed(dst):
                shutil.rmtree(src, ignore_errors=True)
                return
            if os.path.lexists(dst):  # (not merely swapped by another writer while we looked)
                raise ExportError(f"'{dst}' exists and is not a folder this may replace; pass a path that does not "
                                  "exist yet")
            continue
        if not os.path.lexists(dst):
            try:
                os.rename(src, dst)
                return
            except OSError as err:
                if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                # another process renamed its folder into place between the check and the rename
                shutil.rmtree(src, ignore_errors=True)
                return
        backup = f"{dst}.old-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        try:
            os.rename(dst, backup)
        except FileNotFoundError:  # another process moved it aside first: look again
            continue
        except OSError as err:
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                continue
            raise
        if not allowed(backup):
            try:
                os.rename(backup, dst)
                kept = dst
            except OSError:
                kept = backup
            raise ExportError(f"'{dst}' exists and is not a folder this may replace (left as it was in '{kept}'); "
                              "pass a path that does not exist yet")
        try:
            os.rename(src, dst)
        except OSError as err:
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                try:  # put the old folder back before reporting
                    os.rename(backup, dst)
                except OSError:
                    pass
                raise
            shutil.rmtree(src, ignore_errors=True)  # the destination appeared meanwhile: theirs stands
        shutil.rmtree(backup, ignore_errors=True)
        return
    raise ExportError(f"could not move a finished folder into '{dst}' (it kept changing under concurrent "
                      "writers); try again")
