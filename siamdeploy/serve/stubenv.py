"""The Python environment Triton's Python-backend stub runs in, and ``python -m siamdeploy.serve.stubenv``.

PyTriton starts ``tritonserver``, whose Python backend runs PyTriton's proxy model in a stub process that
embeds libpython. Two things measured with nvidia-pytriton 0.7.0 decide how that process is set up:

- the stub loads the first ``libpython3.X.so`` the dynamic loader finds; with another Python's library it
  fails at start (``AttributeError: ... RLock ... _recursion_count``). The launcher puts the running
  interpreter's own library folder (``sysconfig``'s ``LIBDIR``) first on ``LD_LIBRARY_PATH`` of the server
  process (PyTriton copies ``os.environ`` into it when it starts the server);
- the stub is built against NumPy 1.x: under NumPy 2 it answers every request with empty output tensors
  (``cannot reshape array of size 0``). PyTriton runs the stub in the environment ``sys.exec_prefix``; where
  the running NumPy is 2.x the launcher points it at a small virtual environment that sees this one's
  packages and has its own NumPy < 2 (made once by ``python -m siamdeploy.serve.stubenv``; the tracking
  itself stays in this process, with its own NumPy).
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from ..errors import DependencyError


def default_stub_env() -> Path:
    """``$SIAMDEPLOY_TRITON_STUB_ENV``, else ``<cache>/triton-stub-env-py3.X`` (cache: ``$SIAMDEPLOY_CACHE`` or
    ``~/.cache/siamdeploy``)."""
    explicit = os.environ.get("SIAMDEPLOY_TRITON_STUB_ENV")
    if explicit:
        return Path(explicit)
    from ..backends.registry import default_cache_dir

    return Path(default_cache_dir()) / f"triton-stub-env-py{sys.version_info[0]}.{sys.version_info[1]}"


def needs_stub_env() -> bool:
    """True where the running NumPy is 2.x (the stub needs an environment with NumPy < 2)."""
    import numpy as np

    return int(np.__version__.split(".")[0]) >= 2


def _env_python(env: Path) -> Path:
    return env / "bin" / "python"


def stub_env_ok(env: Path) -> bool:
    """``env`` is a virtual environment of this Python version whose NumPy is < 2 and that imports zmq."""
    python = _env_python(env)
    if not python.exists():
        return False
    code = ("import sys, numpy, zmq; v = sys.version_info; "
            f"sys.exit(0 if (v[0], v[1]) == {tuple(sys.version_info[:2])} and int(numpy.__version__.split('.')[0]) < 2 "
            "else 3)")
    try:
        return subprocess.run([str(python), "-c", code], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def make_stub_env(env: Path | None = None) -> Path:
    """Create (or repair) the stub environment: ``venv --system-site-packages`` + ``pip install 'numpy<2'``.
    Needs the package index once. Returns its path."""
    env = env or default_stub_env()
    if stub_env_ok(env):
        return env
    env.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env)], check=True)
    subprocess.run([str(_env_python(env)), "-m", "pip", "install", "-q", "numpy>=1.21,<2"], check=True)
    if not stub_env_ok(env):
        raise DependencyError(f"the Triton stub environment {env} was made but does not import numpy<2 and zmq; "
                              "delete it and run python -m siamdeploy.serve.stubenv again")
    return env


def prepare_server_environment() -> Path:
    """Before PyTriton starts the server: put this interpreter's libpython first on ``LD_LIBRARY_PATH`` and pick
    the stub's Python environment (this one, or the NumPy < 2 one). Returns the stub environment."""
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    if libdir:
        rest = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p and p != libdir]
        os.environ["LD_LIBRARY_PATH"] = ":".join([libdir, *rest])
    if not needs_stub_env():
        return Path(sys.exec_prefix)
    env = default_stub_env()
    if not stub_env_ok(env):
        raise DependencyError(f"Triton's Python-backend stub needs NumPy < 2 and this Python has NumPy 2; make its "
                              f"environment once with: python -m siamdeploy.serve.stubenv (creates {env}; or set "
                              "SIAMDEPLOY_TRITON_STUB_ENV to a virtual environment with numpy<2 and pyzmq)")
    import pytriton.server.triton_server as triton_server

    triton_server.get_triton_python_backend_python_env = lambda: env  # read when the server process starts
    return env


def main(argv: list[str] | None = None) -> int:
    """``python -m siamdeploy.serve.stubenv [PATH]``: make the stub environment (default: see
    :func:`default_stub_env`); prints its path."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if not needs_stub_env() and not args:
        print(f"NumPy < 2 is installed: the Triton stub runs in {sys.exec_prefix}; nothing to make")
        return 0
    print(make_stub_env(Path(args[0]) if args else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
