"""The TensorRT names siamdeploy's TensorRT code uses, checked against NVIDIA's published Python bindings.

TensorRT itself needs a GPU, but NVIDIA publishes the compiled Python bindings on PyPI as small wheels
(``tensorrt-bindings`` 8.6, ``tensorrt-cu12-bindings`` 10.x/11.x, ``tensorrt-cu13-bindings`` 11.x). The
extension module's string table (``tensorrt_bindings/tensorrt.so``) holds every class, method, property and
enum value name that version registers with pybind11, and the package's ``__init__.py`` adds a few Python
functions (``nptype``, ...). So, without TensorRT:

1. :func:`collect` parses the TensorRT modules (AST) and lists every attribute used on a TensorRT object:
   chains on the ``trt`` module (``trt.BuilderFlag.FP16``), on objects conventionally named ``builder``,
   ``network``, ``config``, ``parser``, ``layer``, ``tensor``, ``runtime``, ``engine``, ``context``,
   ``inspector`` (and on local names assigned from any of those), plus the methods overridden in classes
   derived from a TensorRT class (``ILogger.log``). A function marked
   :func:`~siamdeploy.tensorrt.versions.trt_path` contributes its names only to those versions; a name tested
   with ``hasattr(obj, "NAME")`` or read with ``getattr(obj, "NAME", default)`` is optional.
2. :func:`read_bindings` reads a bindings wheel (downloaded with ``pip download``) and :func:`missing`
   says which required names of a version are absent from it.

A name counts as present when it occurs in the string table followed by a NUL byte. The linker merges a
string into the tail of a longer one (``INT8`` inside ``UINT8``), so a short name that is the tail of another
string cannot be proven absent; every name the version rules hinge on (``FP16``, ``STRONGLY_TYPED``,
``OBEY_PRECISION_CONSTRAINTS``, ``set_output_type``, ``EXPLICIT_BATCH``) is decided exactly.

3. :func:`collect_cuda_calls` / :func:`cuda_signatures` / :func:`cuda_mismatches` do the same for the
   cuda-python runtime calls (name and number of positional arguments, from the signatures in the
   ``cuda-bindings`` wheels' docstrings).
"""
from __future__ import annotations

import ast
import glob
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .versions import CLAIMED, Version, in_range, parse_version

MODULE_NAMES = frozenset({"trt", "tensorrt"})
OBJECT_NAMES = frozenset({"builder", "network", "config", "parser", "layer", "tensor", "runtime", "engine",
                          "context", "inspector", "timing_cache", "grown", "plan_memory"})
ATTRIBUTE_SEEDS = frozenset({"_trt", "_runtime", "context", "engine"})  # self._trt, plan.context, ...

# The bindings wheels checked: the oldest and newest published release of every claimed range (no 9.x
# bindings wheel exists on PyPI; 8.6.1 stands for 8.5-9.x).
WHEELS: tuple[tuple[str, str, str], ...] = (
    ("8.5-9.x", "tensorrt-bindings", "8.6.1"),
    ("10.x", "tensorrt-cu12-bindings", "10.0.1"),
    ("10.x", "tensorrt-cu12-bindings", "10.16.1.11"),
    ("11.x", "tensorrt-cu13-bindings", "11.0.0.114"),
    ("11.x", "tensorrt-cu13-bindings", "11.4.0.106"),
)
# the wheels are built per CPython version and manylinux flavour; asking for these makes the download
# independent of the machine running the check
WHEEL_PLATFORMS = ("manylinux_2_17_x86_64", "manylinux_2_28_x86_64")
WHEEL_PYTHON = "3.11"


@dataclass(frozen=True)
class UsedName:
    """One use of a TensorRT name: ``name`` (the attribute), ``chain`` (source text, e.g.
    ``trt.BuilderFlag.FP16``), ``file``:``line``, the versions it runs on (``since <= v < below``), and
    whether it is ``optional`` (guarded by ``hasattr`` / ``getattr`` with a default)."""

    name: str
    chain: str
    file: str
    line: int
    since: Version | None = None
    below: Version | None = None
    optional: bool = False

    def applies_to(self, version: Version) -> bool:
        return in_range(version, self.since, self.below)

    @property
    def where(self) -> str:
        return f"{os.path.basename(self.file)}:{self.line}"


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def default_sources() -> list[str]:
    """The modules of :mod:`siamdeploy.tensorrt` (every TensorRT call lives there)."""
    return sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "*.py")))


# ------------------------------------------------------------------------------------------ collecting
def _marked_range(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[Version | None, Version | None] | None:
    """``(since, below)`` from a ``@trt_path(since=..., below=...)`` decorator, else None."""
    for dec in fn.decorator_list:
        if not isinstance(dec, ast.Call):
            continue
        func = dec.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name != "trt_path":
            continue
        values: dict[str, Version | None] = {"since": None, "below": None}
        for kw in dec.keywords:
            if kw.arg in values:
                value = ast.literal_eval(kw.value)
                values[kw.arg] = tuple(value) if value is not None else None
        return values["since"], values["below"]
    return None


def _narrow(outer: tuple[Version | None, Version | None], inner: tuple[Version | None, Version | None]
            ) -> tuple[Version | None, Version | None]:
    since = max((v for v in (outer[0], inner[0]) if v is not None), default=None)
    below = min((v for v in (outer[1], inner[1]) if v is not None), default=None)
    return since, below


def _scope_nodes(body: Iterable[ast.AST]) -> list[ast.AST]:
    """Every node of a scope, not descending into nested functions and classes (visited on their own)."""
    out: list[ast.AST] = []
    stack = list(body)
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return out


class _Collector:
    def __init__(self, file: str) -> None:
        self.file = file
        self.found: list[UsedName] = []
        self.kinds: set[tuple[str, str]] = set()  # ("module", name) for aliases of module chains

    def module_chain(self, node: ast.AST, aliases: set[str]) -> bool:
        """``trt``, ``trt.BuilderFlag``, ``self._trt``, or a local name bound to one of them."""
        if isinstance(node, ast.Name):
            return node.id in MODULE_NAMES or node.id in aliases and ("module", node.id) in self.kinds
        if isinstance(node, ast.Attribute):
            return node.attr == "_trt" or self.module_chain(node.value, aliases)
        return False

    def trtish(self, node: ast.AST, aliases: set[str]) -> bool:
        """Does ``node`` evaluate to the tensorrt module, something in it, or a TensorRT object?

        Objects are recognised by name (:data:`OBJECT_NAMES`, :data:`ATTRIBUTE_SEEDS`), as results of calls on
        TensorRT objects (``layer.get_output(0)``) and as local names bound to either. A plain attribute of an
        object (``layer.name``) is a leaf: it is checked, but what is done with it (a Python str) is not.
        """
        if self.module_chain(node, aliases):
            return True
        if isinstance(node, ast.Name):
            return node.id in OBJECT_NAMES or node.id in aliases
        if isinstance(node, ast.Attribute):
            return node.attr in ATTRIBUTE_SEEDS
        if isinstance(node, ast.Call):
            func = node.func
            method = isinstance(func, ast.Attribute) and self.trtish(func.value, aliases)
            return self.module_chain(func, aliases) or method
        if isinstance(node, ast.Subscript):
            return self.trtish(node.value, aliases)
        return False

    def scope(self, body: Sequence[ast.AST], rng: tuple[Version | None, Version | None], aliases: set[str]) -> None:
        nodes = _scope_nodes(body)
        aliases = set(aliases)
        changed = True
        while changed:  # local names assigned from TensorRT objects (``sev = trt.ILogger.Severity``)
            changed = False
            for node in nodes:
                if isinstance(node, ast.Assign) and self.trtish(node.value, aliases):
                    for target in node.targets:
                        if isinstance(target, ast.Name) and target.id not in aliases:
                            if self.module_chain(node.value, aliases):
                                self.kinds.add(("module", target.id))
                            aliases.add(target.id)
                            changed = True
        guarded: set[str] = set()
        for node in nodes:  # hasattr(obj, "X") / getattr(obj, "X", default): optional names
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("hasattr", "getattr") and len(node.args) >= 2
                    and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
                    and self.trtish(node.args[0], aliases)):
                optional = node.func.id == "hasattr" or len(node.args) > 2
                name = node.args[1].value
                if optional:
                    guarded.add(name)
                self.add(name, f"{ast.unparse(node.args[0])}.{name}", node, rng, optional)
        for node in nodes:
            if isinstance(node, ast.Attribute) and not node.attr.startswith("_") and self.trtish(node.value, aliases):
                self.add(node.attr, ast.unparse(node), node, rng, node.attr in guarded)
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                marked = _marked_range(node)
                self.scope(node.body, _narrow(rng, marked) if marked else rng, aliases)
            elif isinstance(node, ast.ClassDef):
                self.klass(node, rng, aliases)

    def klass(self, node: ast.ClassDef, rng: tuple[Version | None, Version | None], aliases: set[str]) -> None:
        bases = [b for b in node.bases if self.trtish(b, aliases)]
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                marked = _marked_range(item)
                inner = _narrow(rng, marked) if marked else rng
                if bases and not item.name.startswith("_"):  # an override of a TensorRT method
                    self.add(item.name, f"{ast.unparse(bases[0])}.{item.name}", item, inner, False)
                self.scope(item.body, inner, aliases)
            elif isinstance(item, ast.ClassDef):
                self.klass(item, rng, aliases)
        self.scope([n for n in node.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))],
                   rng, aliases)

    def add(self, name: str, chain: str, node: ast.AST, rng: tuple[Version | None, Version | None],
            optional: bool) -> None:
        self.found.append(UsedName(name, chain, self.file, getattr(node, "lineno", 0), rng[0], rng[1], optional))


def collect(paths: Iterable[str] | None = None, source: str | None = None) -> list[UsedName]:
    """Every TensorRT name used in ``paths`` (default: the :mod:`siamdeploy.tensorrt` modules), or in the
    ``source`` text (then ``paths`` names it, for the messages)."""
    out: list[UsedName] = []
    files = list(paths) if paths is not None else default_sources()
    for file in files or ["<source>"]:
        text = source if source is not None else _read(file)
        collector = _Collector(file)
        collector.scope(ast.parse(text, file).body, (None, None), set())
        out.extend(collector.found)
        if source is not None:
            break
    return sorted(set(out), key=lambda u: (u.file, u.line, u.chain))


# ------------------------------------------------------------------------------------------ bindings
@dataclass(frozen=True)
class Bindings:
    """What one bindings wheel registers: the extension's string table and the package's Python names."""

    package: str
    version: str
    strings: bytes
    python_names: frozenset[str]

    @property
    def version_tuple(self) -> Version:
        return parse_version(self.version)

    def has(self, name: str) -> bool:
        """``name`` is registered (a NUL-terminated string of the extension) or defined by ``__init__.py``."""
        return name in self.python_names or (name.encode() + b"\0") in self.strings


def _python_names(text: str) -> frozenset[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names.add(target.id)
                elif isinstance(target, ast.Attribute):
                    names.add(target.attr)
    return frozenset(names)


def read_bindings(wheel: str) -> Bindings:
    """Read a ``tensorrt*-bindings`` wheel: the compiled module's bytes and the ``__init__.py`` names."""
    match = re.match(r"(tensorrt[_a-z0-9]*?_bindings)-([0-9][^-]*)-", os.path.basename(wheel))
    if match is None:
        raise ValueError(f"{wheel} is not a TensorRT bindings wheel")
    with zipfile.ZipFile(wheel) as zf:
        members = zf.namelist()
        so = [m for m in members if re.fullmatch(r"tensorrt_bindings/tensorrt[^/]*\.(so|pyd)", m)]
        if not so:
            raise ValueError(f"{wheel} holds no tensorrt_bindings/tensorrt*.so (has {len(members)} files)")
        strings = zf.read(so[0])
        init = zf.read("tensorrt_bindings/__init__.py").decode("utf-8", "replace") \
            if "tensorrt_bindings/__init__.py" in members else ""
    return Bindings(match.group(1).replace("_", "-"), match.group(2), strings, _python_names(init))


def missing(used: Iterable[UsedName], bindings: Bindings) -> list[UsedName]:
    """The required names that apply to the bindings' version and are not registered there."""
    version = bindings.version_tuple
    return [u for u in used if not u.optional and u.applies_to(version) and not bindings.has(u.name)]


def describe(absent: Sequence[UsedName], bindings: Bindings) -> str:
    """One line per missing name: version, attribute chain and where it is used."""
    head = f"TensorRT {bindings.version} ({bindings.package}) lacks {len(absent)} name(s) the code uses"
    return head + ":\n" + "\n".join(f"  {u.chain}  ({u.where}, needs '{u.name}')" for u in absent)


def cache_dir() -> str:
    """Where downloaded wheels are kept: ``$SIAMDEPLOY_TRT_BINDINGS``, else ``$SIAMDEPLOY_CACHE/trt-bindings``
    (``~/.cache/siamdeploy/trt-bindings``)."""
    root = os.environ.get("SIAMDEPLOY_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "siamdeploy")
    return os.environ.get("SIAMDEPLOY_TRT_BINDINGS") or os.path.join(root, "trt-bindings")


def fetch_wheel(package: str, version: str, folder: str | None = None, timeout: float = 180.0
                ) -> tuple[str | None, str]:
    """``(path, "")`` of the wheel of ``package==version`` (from ``folder`` or downloaded into it with pip),
    or ``(None, reason)`` when it cannot be had (offline, index unreachable, no such release)."""
    folder = folder or cache_dir()
    stem = package.replace("-", "_")
    found = sorted(glob.glob(os.path.join(folder, f"{stem}-{version}-*.whl")))
    if found:
        return found[0], ""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        return None, f"cannot create the wheel cache {folder}: {err}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "--retries", "1", "--timeout", "20",
           "--python-version", WHEEL_PYTHON, "--implementation", "cp", "-d", folder]
    for platform in WHEEL_PLATFORMS:
        cmd += ["--platform", platform]
    cmd.append(f"{package}=={version}")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, f"pip download {package}=={version} failed: {err}"
    found = sorted(glob.glob(os.path.join(folder, f"{stem}-{version}-*.whl")))
    if proc.returncode != 0 or not found:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"pip download {package}=={version} failed (offline?): {tail[0]}"
    return found[0], ""


def claimed_without_wheel() -> list[str]:
    """Claimed version ranges (:data:`~siamdeploy.tensorrt.versions.CLAIMED`) that no checked wheel covers."""
    covered = {label for label, (since, below) in CLAIMED.items()
               if any(in_range(parse_version(version), since, below) for _, _, version in WHEELS)}
    return [label for label in CLAIMED if label not in covered]


# ------------------------------------------------------------------------------------------ cuda-python
# cuda-python's runtime module (cuda.bindings.runtime, a Cython extension) keeps each function's signature in
# its docstring (``cudaGraphInstantiate(graph, unsigned long long flags)``), so the number of arguments every
# call passes can be checked against the published cuda-bindings wheels too.
CUDA_WHEELS: tuple[tuple[str, str], ...] = (("cuda-bindings", "12.8.0"), ("cuda-bindings", "13.5.0"))
_CUDA_NAME = re.compile(r"cuda[A-Z]\w*")


@dataclass(frozen=True)
class CudaCall:
    """A cuda-python runtime call: ``name``, how many positional arguments it passes, where."""

    name: str
    nargs: int
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{os.path.basename(self.file)}:{self.line}"


def collect_cuda_calls(paths: Iterable[str] | None = None, source: str | None = None) -> list[CudaCall]:
    """Every runtime call in the TensorRT modules: ``cudart.cudaX(...)`` and the checked form
    ``self._cuda("cudaX", ...)`` / ``self("cudaX", ...)`` (the name as the first argument)."""
    out: list[CudaCall] = []
    files = list(paths) if paths is not None else default_sources()
    for file in files:
        text = source if source is not None else _read(file)
        for node in ast.walk(ast.parse(text, file)):
            if not isinstance(node, ast.Call) or any(isinstance(a, ast.Starred) for a in node.args):
                continue
            func = node.func
            if isinstance(func, ast.Attribute) and _CUDA_NAME.fullmatch(func.attr) \
                    and isinstance(func.value, ast.Name) and func.value.id in ("cudart", "rt"):
                out.append(CudaCall(func.attr, len(node.args), file, node.lineno))
            elif node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str) \
                    and _CUDA_NAME.fullmatch(node.args[0].value):
                out.append(CudaCall(node.args[0].value, len(node.args) - 1, file, node.lineno))
        if source is not None:
            break
    return sorted(set(out), key=lambda c: (c.file, c.line, c.name))


def cuda_signatures(wheel: str) -> dict[str, tuple[int, int]]:
    """``name -> (required, total)`` positional parameters of every runtime function documented in a
    ``cuda-bindings`` wheel's ``cuda/bindings/runtime`` extension."""
    with zipfile.ZipFile(wheel) as zf:
        member = next((m for m in zf.namelist() if re.fullmatch(r"cuda/bindings/runtime[^/]*\.(so|pyd)", m)), None)
        if member is None:
            raise ValueError(f"{wheel} holds no cuda/bindings/runtime extension")
        data = zf.read(member)
    found: dict[str, tuple[int, int]] = {}
    for match in re.finditer(rb"(?<![A-Za-z0-9_])(cuda[A-Z][A-Za-z0-9_]*)\(([^()\n]*)\)\n", data):
        name = match.group(1).decode()
        params = [p.strip() for p in match.group(2).decode("ascii", "replace").split(",") if p.strip()]
        required = sum(1 for p in params if "=" not in p)
        found.setdefault(name, (required, len(params)))
    return found


def cuda_mismatches(calls: Iterable[CudaCall], signatures: dict[str, tuple[int, int]]) -> list[str]:
    """One line per call whose function is undocumented in the wheel or takes another number of arguments."""
    out = []
    for call in calls:
        sig = signatures.get(call.name)
        if sig is None:
            out.append(f"{call.name} ({call.where}) does not exist")
        elif not sig[0] <= call.nargs <= sig[1]:
            want = str(sig[0]) if sig[0] == sig[1] else f"{sig[0]}..{sig[1]}"
            out.append(f"{call.name} ({call.where}) passes {call.nargs} argument(s), the bindings take {want}")
    return out


# enum values (``rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice``): both names are identifiers of the runtime
# extension, so they occur in its string table as whole words
@dataclass(frozen=True)
class CudaEnum:
    """A cuda-python runtime enum value used by the code: ``enum`` (``cudaMemcpyKind``), ``value``
    (``cudaMemcpyDeviceToDevice``), where."""

    enum: str
    value: str
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{os.path.basename(self.file)}:{self.line}"


def collect_cuda_enums(paths: Iterable[str] | None = None, source: str | None = None) -> list[CudaEnum]:
    """Every ``<runtime>.cudaEnum.cudaValue`` in the TensorRT modules, the runtime module being a name ``rt`` /
    ``cudart`` or an attribute ``.rt`` (``self.rt``, ``self._cuda.rt``)."""
    out: list[CudaEnum] = []
    files = list(paths) if paths is not None else default_sources()
    for file in files:
        text = source if source is not None else _read(file)
        for node in ast.walk(ast.parse(text, file)):
            if not (isinstance(node, ast.Attribute) and _CUDA_NAME.fullmatch(node.attr)
                    and isinstance(node.value, ast.Attribute) and _CUDA_NAME.fullmatch(node.value.attr)):
                continue
            base = node.value.value
            if (isinstance(base, ast.Name) and base.id in ("rt", "cudart")) or \
                    (isinstance(base, ast.Attribute) and base.attr == "rt"):
                out.append(CudaEnum(node.value.attr, node.attr, file, node.lineno))
        if source is not None:
            break
    return sorted(set(out), key=lambda c: (c.file, c.line, c.enum, c.value))


def cuda_enum_mismatches(enums: Iterable[CudaEnum], wheel: str) -> list[str]:
    """One line per enum or value name that does not occur in a ``cuda-bindings`` wheel's runtime extension."""
    with zipfile.ZipFile(wheel) as zf:
        member = next((m for m in zf.namelist() if re.fullmatch(r"cuda/bindings/runtime[^/]*\.(so|pyd)", m)), None)
        if member is None:
            raise ValueError(f"{wheel} holds no cuda/bindings/runtime extension")
        data = zf.read(member)
    out = []
    for e in enums:
        for name in (e.enum, e.value):
            if not re.search(rb"(?<![A-Za-z0-9_])" + re.escape(name.encode()) + rb"(?![A-Za-z0-9_])", data):
                out.append(f"{e.enum}.{e.value} ({e.where}): {name} does not exist")
                break
    return out
