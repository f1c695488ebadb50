"""The one interface every inference backend implements (torch here; onnxruntime and TensorRT later).

Engines are stateless with respect to tracking: ``template`` returns the kernels, the tracker keeps them
and hands them back to ``search`` every frame. Arrays in and out are numpy float32; kernels and the
refine features stay in whatever form (and on whatever device) the backend prefers.
"""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, EngineError, InputError

# the two SiamMask mask heads, as Engine.mask_buckets names them (and the manifest's graph roles)
REFINE = "refine"
MASK_HEAD = "mask_head"


@dataclass
class SearchOutput:
    """``outputs``: named numpy arrays (``cls``/``loc`` or ``response``); ``extras``: backend-specific data
    that :meth:`Engine.refine` needs (SiamMask), opaque to the runtime."""

    outputs: dict[str, np.ndarray]
    extras: Any = field(default=None, repr=False)


class Engine(ABC):
    """A two-branch Siamese network behind ``template`` / ``search`` (/ ``refine``) calls.

    ``backend``: ``torch`` | ``onnxruntime`` | ``tensorrt``; ``precision``: what actually runs (``fp32``,
    ``fp16``); ``device``: where (``cpu``, ``cuda:0``).
    """

    backend: str = "?"
    precision: str = "fp32"
    device: str = "cpu"
    exemplar_size: int = 127
    # search outputs the tracker decodes; the others go to refine/mask_at (see siamdeploy.families)
    head_outputs: tuple[str, ...] = ("cls", "loc")

    def close(self) -> None:  # noqa: B027 - an optional hook: engines without resources keep it empty
        """Release sessions, buffers and device memory; the engine is unusable afterwards."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _split(self, named: dict[str, Any]) -> SearchOutput:
        """Named search outputs -> heads (numpy, for the tracker) and extras (opaque, for refine)."""
        heads = {k: named[k] for k in self.head_outputs}
        extras = {k: v for k, v in named.items() if k not in heads} or None
        return SearchOutput(heads, extras)

    def template(self, z: np.ndarray) -> Any:
        """Exemplar crop ``(1, 3, 127, 127)`` float32 -> kernels (opaque handle)."""
        _check_blob(z, "template input", self.exemplar_size)
        return self._template(z)

    # search calls that reached the network (a batched search_many counts once); for the run summary
    search_calls: int = 0

    def search(self, x: np.ndarray, kernels: Any) -> SearchOutput:
        """Search crops ``(B, 3, S, S)`` float32 + kernels from :meth:`template` -> outputs."""
        _check_blob(x, "search input", None)
        self.search_calls += 1
        out = self._search(x, kernels)
        check_finite_outputs(out.outputs, self.backend)
        return out

    def search_many(self, xs: Sequence[np.ndarray] | np.ndarray, kernels: Sequence[Any]) -> list[SearchOutput]:
        """Several targets' searches: ``xs[i]`` (``(n, 3, S, S)``, the same ``S`` and ``n`` for all) with
        ``kernels[i]`` -> one :class:`SearchOutput` per target, each equal to ``search(xs[i], kernels[i])``.

        ``xs`` may be one float32 ``(N, n, 3, S, S)`` array (e.g. from :meth:`search_input`): its calls then take
        their rows without copying them. This default runs one call per target; engines with batched search
        graphs override :meth:`_search_batch` and run one call per bucket (:attr:`buckets`), the targets split
        into calls by :attr:`batch_policy` (see :func:`bucket_chunks`).
        """
        if len(xs) != len(kernels):
            raise InputError(f"search_many got {len(xs)} search inputs and {len(kernels)} kernel sets; pass one "
                             "kernel set per search input")
        buckets = self.search_buckets(xs[0]) if len(xs) else (1,)
        if len(xs) < 2 or len(buckets) < 2:
            return [self.search(x, k) for x, k in zip(xs, kernels)]
        first = xs[0]
        for x in xs:
            _check_blob(x, "search input", None)
            if x.shape != first.shape:
                raise InputError(f"search_many needs equal search shapes, got {first.shape} and {x.shape}; group "
                                 "the targets by search size (siamdeploy.runtime.batch.track_together does)")
        outs: list[SearchOutput] = []
        for start, stop, bucket in bucket_chunks(len(xs), buckets, self.batch_policy):
            self.search_calls += 1
            rows = xs[start:stop] if isinstance(xs, np.ndarray) else list(xs[start:stop])
            got = self._search_batch(rows, list(kernels[start:stop]), bucket)  # type: ignore[arg-type]
            for out in got:
                check_finite_outputs(out.outputs, self.backend)
            outs += got
        return outs

    # how search_many / template_many cut N targets into calls of the bucket sizes (see bucket_chunks):
    # "pad" (the next bucket up: on a GPU a call costs more than its unused rows), "split" (exactly into bucket
    # sizes, 5 = 4 + 1: on a CPU a padding row costs as much as a real one), "any" (any count up to the
    # largest bucket in one call, nothing padded: torch, which needs no graph per count)
    batch_policy: str = "pad"
    _inputs: threading.local | None = None  # per thread: the reusable search_input arrays

    def search_input(self, count: int, crops: int, size: int) -> np.ndarray:
        """A float32 ``(count, crops, 3, size, size)`` array to write ``count`` targets' search crops into and
        hand to :meth:`search_many` whole (no copy of the crops on the way to the network).

        The array is this engine's, reused by the next call with the same shape from the same thread (no
        fresh pages every frame): its contents are valid until then.
        """
        local: threading.local | None = getattr(self, "_inputs", None)
        if local is None:  # engines do not call Engine.__init__: made on first use
            local = self._inputs = threading.local()
        shapes: dict[tuple[int, int], np.ndarray] = local.__dict__.setdefault("by_shape", {})
        key = (crops, size)
        buffer = shapes.get(key)
        if buffer is None or buffer.shape[0] < count:
            if len(shapes) >= 4:  # a few search sizes at once (the long-term lost search), not every size seen
                shapes.clear()
            buffer = shapes[key] = np.empty((max(count, 1), crops, 3, size, size), np.float32)
        return buffer[:count]

    # targets per batched call this engine has graphs for (ascending, 1 first; the normal search size and the
    # template); (1,): none. The torch engine batches any count (its "buckets" are a cap per call, not padding).
    buckets: tuple[int, ...] = (1,)

    def search_buckets(self, x: np.ndarray) -> tuple[int, ...]:
        """Targets per call :meth:`search_many` can run for searches shaped like ``x`` (``(1,)``: one call per
        target; a secondary search size, e.g. the long-term 831 search, may have fewer buckets)."""
        return (1,)

    def _search_batch(self, xs: list[np.ndarray], kernels: list[Any], bucket: int) -> list[SearchOutput]:
        """One network call for ``len(xs) <= bucket`` targets (padded up to ``bucket`` where the graph needs it)."""
        raise NotImplementedError(f"{self.backend} engine has no batched search")

    def template_many(self, zs: Sequence[np.ndarray]) -> list[Any]:
        """Several targets' templates: ``zs[i]`` ``(1, 3, 127, 127)`` -> one kernel set per target, each equal
        to ``template(zs[i])``. One call per bucket where the engine has batched template graphs."""
        for z in zs:
            _check_blob(z, "template input", self.exemplar_size)
        if len(zs) < 2 or not self.batched_template():
            return [self._template(z) for z in zs]
        out: list[Any] = []
        for start, stop, bucket in bucket_chunks(len(zs), self.buckets, self.batch_policy):
            out += self._template_batch(list(zs[start:stop]), bucket)
        return out

    def batched_template(self) -> bool:
        """Whether :meth:`template_many` runs one call per bucket."""
        return False

    def _template_batch(self, zs: list[np.ndarray], bucket: int) -> list[Any]:
        raise NotImplementedError(f"{self.backend} engine has no batched template")

    def refine(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
        """SiamMask: mask logits ``(127, 127)`` float32 at score cell ``(y, x)`` of the last search."""
        raise NotImplementedError(f"{self.backend} engine has no refine branch for this model")

    def mask_at(self, extras: Any, cell: tuple[int, int]) -> np.ndarray:
        """SiamMask base mode: the mask head's ``(63, 63)`` logits at score cell ``(y, x)``."""
        raise NotImplementedError(f"{self.backend} engine has no mask head for this model")

    # SiamMask mask calls (refine or mask head) that reached the network; a batched call counts once
    refine_calls: int = 0

    def refine_many(self, extras: Sequence[Any], cells: Sequence[tuple[int, int]]) -> list[np.ndarray]:
        """Several targets' SiamMask refine: ``extras[i]`` (target ``i``'s :attr:`SearchOutput.extras`) at its
        score cell ``cells[i] = (y, x)`` -> one ``(127, 127)`` float32 logits array per target, each equal to
        ``refine(extras[i], cells[i])`` (up to the float noise of a batched convolution; one target: exactly).

        This default runs one :meth:`refine` per target; engines with batched refine graphs say so in
        :meth:`mask_buckets` and run one call per bucket (:meth:`_mask_batch`, padded like the search).
        """
        return self._masks_many(REFINE, extras, cells)

    def mask_at_many(self, extras: Sequence[Any], cells: Sequence[tuple[int, int]]) -> list[np.ndarray]:
        """SiamMask base mode, several targets: like :meth:`refine_many` with the mask head's ``(63, 63)``
        logits, each equal to ``mask_at(extras[i], cells[i])``."""
        return self._masks_many(MASK_HEAD, extras, cells)

    def mask_buckets(self, head: str) -> tuple[int, ...]:
        """Targets per call :meth:`refine_many` (``head`` ``"refine"``) or :meth:`mask_at_many` (``"mask_head"``)
        can run, ascending, 1 first; ``(1,)``: one call per target."""
        return (1,)

    def _mask_batch(self, head: str, extras: list[Any], cells: list[tuple[int, int]], bucket: int
                    ) -> list[np.ndarray]:
        """One network call for ``2 <= len(extras) <= bucket`` targets' masks (padded up to ``bucket`` where the
        graph needs it); returns one logits array per target, shaped as :meth:`refine` / :meth:`mask_at` return."""
        raise NotImplementedError(f"{self.backend} engine has no batched {head}")

    def _masks_many(self, head: str, extras: Sequence[Any], cells: Sequence[tuple[int, int]]) -> list[np.ndarray]:
        if len(extras) != len(cells):
            raise InputError(f"{head}: got {len(extras)} search outputs and {len(cells)} cells; pass one cell per "
                             "search output")
        buckets = self.mask_buckets(head)
        chunks = bucket_chunks(len(extras), buckets, self.batch_policy) if len(buckets) > 1 else \
            [(i, i + 1, 1) for i in range(len(extras))]
        single = self.refine if head == REFINE else self.mask_at
        masks: list[np.ndarray] = []
        for start, stop, bucket in chunks:  # a lone target runs the single-target call, as Tracker.track does
            self.refine_calls += 1
            masks += [single(extras[start], cells[start])] if stop - start == 1 else \
                self._mask_batch(head, list(extras[start:stop]), list(cells[start:stop]), bucket)
        return masks

    @abstractmethod
    def _template(self, z: np.ndarray) -> Any: ...

    @abstractmethod
    def _search(self, x: np.ndarray, kernels: Any) -> SearchOutput: ...

    def describe(self) -> str:
        return f"{self.backend} ({self.precision}, {self.device})"


class ExportBuckets:
    """The bucket graphs of an export folder, for the engines that run them (onnxruntime, OpenVINO): which
    ``(search size or None, targets)`` graphs exist, and the :class:`Engine` hooks that follow from that.
    List it before :class:`Engine` among the bases so these methods replace Engine's defaults."""

    _batched: dict[tuple[int | None, int], Any]
    buckets: tuple[int, ...]

    def _load_buckets(self, manifest: Any, precision: str) -> None:
        """Read the bucket graphs of ``precision`` from ``manifest`` (an ``ExportManifest``)."""
        self._batched = {key: g for role in ("template", "search")
                         for key, g in manifest.batched_graphs(role, precision).items()}
        # SiamMask's refine / mask head by bucket (an export from before their buckets has none)
        self._batched_masks = {head: {b: g for (_, b), g in manifest.batched_graphs(head, precision).items()}
                               for head in (REFINE, MASK_HEAD)}
        self.buckets = manifest.buckets(precision)
        self._stacks = KernelStacks()
        self._kernel_rows = [t.shape[0] for t in manifest.graph("template", precision).outputs]

    def search_buckets(self, x: np.ndarray) -> tuple[int, ...]:
        return (1, *sorted(b for (size, b) in self._batched if size == x.shape[-1]))

    def batched_template(self) -> bool:
        return len(self.buckets) > 1 and all((None, b) in self._batched for b in self.buckets[1:])

    def mask_buckets(self, head: str) -> tuple[int, ...]:
        return (1, *sorted(self._batched_masks.get(head, {})))


BATCH_POLICIES = ("pad", "split", "any")


def bucket_chunks(count: int, buckets: Sequence[int], policy: str = "pad") -> list[tuple[int, int, int]]:
    """Split ``count`` targets into calls: ``(start, stop, bucket)`` with ``stop - start <= bucket``.

    ``buckets``: the targets per call there are graphs for (1 among them). ``policy``:

    - ``pad``: full calls of the largest bucket first, then the smallest bucket that holds the rest (5 targets
      with buckets 1, 2, 4, 8 -> one 8-call padded by 3; 40 with ..32 -> 32 + 8): fewest calls;
    - ``split``: exactly into bucket sizes, nothing padded, the fewest calls that do it, larger calls first
      (5 -> 4 + 1; 12 -> 8 + 4; 40 with ..32 -> 32 + 8);
    - ``any``: any count up to the largest bucket is one call of that count (40 with a largest of 32 ->
      32 + 8, ``bucket`` = the count itself).
    """
    if policy not in BATCH_POLICIES:
        raise ConfigError(f"unknown batch policy '{policy}'; use one of {', '.join(BATCH_POLICIES)}")
    largest = max(buckets)
    if policy == "split":
        return _exact_chunks(count, sorted(set(buckets) | {1}))
    chunks = []
    start = 0
    while count - start > largest:
        chunks.append((start, start + largest, largest))
        start += largest
    rest = count - start
    if rest:
        chunks.append((start, count, rest if policy == "any" else min(b for b in buckets if b >= rest)))
    return chunks


def _exact_chunks(count: int, buckets: list[int]) -> list[tuple[int, int, int]]:
    """``count`` as a sum of bucket sizes with the fewest terms (1 is a bucket, so one always exists)."""
    fewest = [0] + [count + 1] * count  # fewest[n]: calls for n targets
    last = [0] * (count + 1)             # last[n]: the bucket of one of those calls
    for n in range(1, count + 1):
        for b in buckets:
            if b <= n and fewest[n - b] + 1 < fewest[n]:
                fewest[n], last[n] = fewest[n - b] + 1, b
    sizes = []
    while count:
        sizes.append(last[count])
        count -= last[count]
    chunks, start = [], 0
    for b in sorted(sizes, reverse=True):
        chunks.append((start, start + b, b))
        start += b
    return chunks


def pad_rows(parts: Sequence[np.ndarray] | np.ndarray, bucket: int) -> np.ndarray:
    """Concatenate per-target arrays along dim 0, repeating the last target until there are ``bucket`` of them
    (padding rows are computed and dropped; a copy of a real target keeps them finite).

    ``parts`` may be one contiguous float32 array ``(count, rows, ...)``: with nothing to pad it comes back
    as a ``(count * rows, ...)`` view, not copied.
    """
    if isinstance(parts, np.ndarray) and parts.dtype == np.float32 and parts.flags.c_contiguous:
        flat = parts.reshape(-1, *parts.shape[2:])
        if len(parts) == bucket:
            return flat
        return np.concatenate([flat] + [parts[-1]] * (bucket - len(parts)), axis=0)
    parts = list(parts) + [parts[-1]] * (bucket - len(parts))
    return np.ascontiguousarray(np.concatenate(parts, axis=0), np.float32)


def split_rows(named: dict[str, Any], count: int, rows: dict[str, int]) -> list[dict[str, Any]]:
    """Target-major batched outputs -> ``count`` per-target dicts; ``rows[name]``: rows per target of output
    ``name`` (the padding targets after ``count`` are dropped)."""
    return [{n: v[i * rows[n]:(i + 1) * rows[n]] for n, v in named.items()} for i in range(count)]


class KernelStacks:
    """Concatenated kernels of a set of targets, kept while the same targets (the same kernel objects) come
    back frame after frame; a few sets at once (a long-term tracker's lost targets form a second one)."""

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self._stacks: list[tuple[list[Any], Any, Any]] = []

    def get(self, kernels: Sequence[Any], tag: Any, build: Any) -> Any:
        """The stack for ``kernels`` (compared by identity) and ``tag`` (e.g. the bucket), built by
        ``build(kernels)`` when missing."""
        for index, (held, held_tag, stack) in enumerate(self._stacks):
            if held_tag == tag and len(held) == len(kernels) and all(a is b for a, b in zip(held, kernels)):
                if index:
                    self._stacks.insert(0, self._stacks.pop(index))
                return stack
        stack = build(list(kernels))
        self._stacks.insert(0, (list(kernels), tag, stack))
        del self._stacks[self.keep:]
        return stack

    def clear(self) -> None:
        self._stacks.clear()


def check_finite_outputs(outputs: dict[str, Any], backend: str) -> None:
    """Raise :class:`EngineError` naming the first numpy output with NaN or infinite values (broken weights or
    an FP16 overflow would otherwise track a constant box without a word)."""
    for name, arr in outputs.items():
        if isinstance(arr, np.ndarray) and arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            raise EngineError(f"the {backend} engine's output '{name}' has {bad} NaN or infinite value(s) of "
                              f"{arr.size}; the weights or the export are broken: check the checkpoint, or "
                              "export it again")


def _check_blob(blob: np.ndarray, what: str, side: int | None) -> None:
    if not isinstance(blob, np.ndarray) or blob.dtype != np.float32 or blob.ndim != 4 or blob.shape[1] != 3:
        shape = getattr(blob, "shape", None)
        raise InputError(f"{what} must be a float32 (B, 3, S, S) array, got {getattr(blob, 'dtype', type(blob))} "
                         f"{shape}")
    if side is not None and blob.shape[2:] != (side, side):
        raise InputError(f"{what} must be {side}x{side}, got {blob.shape[2]}x{blob.shape[3]}")


def crop_refine_inputs_np(f0: np.ndarray, f1: np.ndarray, f2: np.ndarray, corr: np.ndarray, y: int, x: int
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The refine inputs at score cell ``(y, x)`` (docs/networks.md#siammask-refine), in numpy."""
    p0 = np.pad(f0, ((0, 0), (0, 0), (16, 16), (16, 16)))[:, :, 4 * y:4 * y + 61, 4 * x:4 * x + 61]
    p1 = np.pad(f1, ((0, 0), (0, 0), (8, 8), (8, 8)))[:, :, 2 * y:2 * y + 31, 2 * x:2 * x + 31]
    p2 = np.pad(f2, ((0, 0), (0, 0), (4, 4), (4, 4)))[:, :, y:y + 15, x:x + 15]
    p3 = corr[:, :, y, x].reshape(corr.shape[0], corr.shape[1], 1, 1)
    return p0, p1, p2, p3


def mask_feeds(head: str, extras: Sequence[Any], cells: Sequence[tuple[int, int]], bucket: int
               ) -> dict[str, np.ndarray]:
    """The inputs of a ``refine_b{bucket}`` / ``mask_head_b{bucket}`` graph for several targets (numpy
    extras): each target's crop at its cell (:func:`crop_refine_inputs_np`; the mask head: the correlation
    cell ``(1, C, 1, 1)``) stacked along dim 0 and padded to ``bucket`` rows (:func:`pad_rows`). Refine:
    ``p0 (B, 64, 61, 61)``, ``p1 (B, 256, 31, 31)``, ``p2 (B, 512, 15, 15)``, ``p3 (B, 256, 1, 1)``; mask head:
    ``corr_cell (B, C, 1, 1)``."""
    if head == MASK_HEAD:
        return {"corr_cell": pad_rows([e["mask_corr"][:, :, y:y + 1, x:x + 1] for e, (y, x) in zip(extras, cells)],
                                      bucket)}
    parts = [crop_refine_inputs_np(e["f0"], e["f1"], e["f2"], e["mask_corr"], *cell) for e, cell in zip(extras, cells)]
    return {name: pad_rows(list(rows), bucket) for name, rows in zip(("p0", "p1", "p2", "p3"), zip(*parts))}


def split_masks(head: str, logits: np.ndarray, count: int) -> list[np.ndarray]:
    """A batched ``mask_logits`` output (refine ``(B, 1, 127, 127)``, mask head ``(B, 3969, 1, 1)``) -> the first
    ``count`` targets' logits, shaped as ``Engine.refine`` (``(127, 127)``) / ``Engine.mask_at`` (``(63, 63)``)
    return them (the padding rows are dropped)."""
    if head == MASK_HEAD:
        return [logits[i].reshape(63, 63) for i in range(count)]
    return [logits[i, 0] for i in range(count)]
