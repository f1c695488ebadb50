"""Which graphs a preset exports and their static input/output signatures (the per-family "spec").

Derived from the model and the tracker parameters, so the exporter never special-cases a family:
- ``template``: exemplar crop -> every correlation kernel;
- ``search`` (one graph per search size the tracker uses: the long-term 831 search, DaSiamRPN-BIG's 287,
  SiamFC's batch of scales): crop + kernels -> heads [+ SiamMask refine features];
- ``refine`` (SiamMask sharp): pre-cropped features -> 127x127 mask logits;
- ``mask_head`` (SiamMask base): one correlation cell -> 63x63 mask logits;
- per batch bucket ``B > 1`` (docs/multi_target.md#batched-graphs): ``template_b{B}`` (``B`` exemplar crops ->
  the ``B`` targets' kernels concatenated along dim 0) and ``search_b{B}`` / ``search_{size}_b{B}`` (``B``
  targets' crops target-major + concatenated kernels -> target-major outputs), the batch folded into the
  correlation's groups. ONNX ``Conv``'s ``group`` is static, so every bucket is its own graph;
  ``refine_b{B}`` / ``mask_head_b{B}`` (SiamMask): ``B`` targets' pre-cropped features stacked along dim 0 ->
  ``B`` targets' mask logits.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import MASK_HEAD
from ..families import family_of
from ..manifest import DEFAULT_BUCKETS  # noqa: F401 - re-exported
from ..models import SiameseNet
from ..presets import Preset


@dataclass(frozen=True)
class TensorSpec:
    """A named float32 tensor of static shape."""

    name: str
    shape: tuple[int, ...]

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "shape": list(self.shape), "dtype": "float32"}


@dataclass(frozen=True)
class GraphSpec:
    """One exported graph: file name, role, search size (search graphs), inputs, outputs."""

    name: str
    role: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    instance_size: int | None = None
    targets: int = 1

    @property
    def filename(self) -> str:
        return f"{self.name}.onnx"


class _TemplateBranch(nn.Module):
    def __init__(self, net: SiameseNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.net.template(z)


class _SearchBranch(nn.Module):
    def __init__(self, net: SiameseNet, targets: int = 1) -> None:
        super().__init__()
        self.net = net
        self.targets = targets

    def forward(self, x: torch.Tensor, *kernels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.net.search(x, *kernels, targets=self.targets)


class _RefineBranch(nn.Module):
    def __init__(self, net: SiameseNet) -> None:
        super().__init__()
        self.refine = net.refine_head

    def forward(self, p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, p3: torch.Tensor) -> torch.Tensor:
        return self.refine(p0, p1, p2, p3)


class _MaskHeadBranch(nn.Module):
    def __init__(self, net: SiameseNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, corr_cell: torch.Tensor) -> torch.Tensor:
        return self.net.mask_logits_at(corr_cell)


def search_sizes(preset: Preset) -> list[int]:
    """Every search-crop side the preset's tracker can ask for, the normal one first."""
    return family_of(preset.track).search_sizes(preset.track)


def search_batch(preset: Preset) -> int:
    """Crops per search call (SiamFC searches all scales at once)."""
    return family_of(preset.track).search_batch(preset.track)


def _shapes(module: nn.Module, args: tuple[torch.Tensor, ...]) -> list[tuple[int, ...]]:
    with torch.no_grad():
        out = module(*args)
    out = out if isinstance(out, tuple) else (out,)
    return [tuple(t.shape) for t in out]


# secondary search sizes (the long-term 831 search of lost targets, DaSiamRPN-BIG's small-target 287) get
# buckets up to this size only: few targets take them at once, and their crops are large
SECONDARY_MAX_BUCKET = 8


def check_buckets(buckets: object) -> tuple[int, ...]:
    """Bucket sizes as a sorted tuple with 1 first; anything but positive integers is an :class:`ExportError`."""
    from ..errors import ExportError

    try:
        values = sorted({int(b) for b in buckets})  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ExportError(f"batch buckets must be positive integers (e.g. 1,2,4,8), got {buckets!r}") from None
    if not values or values[0] < 1 or values[-1] > 256:
        raise ExportError(f"batch buckets must be integers from 1 to 256 (e.g. 1,2,4,8), got {buckets!r}")
    return tuple(sorted({1, *values}))


def plan_graphs(net: SiameseNet, preset: Preset, buckets: tuple[int, ...] = (1,)
                ) -> list[tuple[GraphSpec, nn.Module, tuple[torch.Tensor, ...]]]:
    """The graphs to export with their torch modules and example inputs (real shapes, zeros); ``buckets``:
    targets per call, one template and one search graph per search size for every bucket above 1 (secondary
    search sizes up to :data:`SECONDARY_MAX_BUCKET`)."""
    p = preset.track
    net = net.eval()
    plans = []
    z = torch.zeros(1, 3, p.exemplar_size, p.exemplar_size)
    template = _TemplateBranch(net).eval()  # torch.onnx.export restores the wrapper's mode on exit
    kernel_shapes = _shapes(template, (z,))
    kernels = tuple(torch.zeros(s) for s in kernel_shapes)
    kernel_specs = tuple(TensorSpec(n, s) for n, s in zip(net.kernel_names, kernel_shapes))
    plans.append((GraphSpec("template", "template", (TensorSpec("template", tuple(z.shape)),), kernel_specs),
                  template, (z,)))
    search = _SearchBranch(net).eval()
    last_outputs: tuple[TensorSpec, ...] = ()
    single_shapes: dict[int, list[tuple[int, ...]]] = {}
    for index, size in enumerate(search_sizes(preset)):
        x = torch.zeros(search_batch(preset), 3, size, size)
        out_shapes = single_shapes[size] = _shapes(search, (x, *kernels))
        outputs = tuple(TensorSpec(n, s) for n, s in zip(net.output_names, out_shapes))
        name = "search" if index == 0 else f"search_{size}"
        plans.append((GraphSpec(name, "search", (TensorSpec("search", tuple(x.shape)), *kernel_specs), outputs, size),
                      search, (x, *kernels)))
        last_outputs = outputs if index == 0 else last_outputs
    for targets in check_buckets(buckets)[1:]:
        zb = torch.zeros(targets, 3, p.exemplar_size, p.exemplar_size)
        kb = tuple(torch.zeros((targets * s[0], *s[1:])) for s in kernel_shapes)
        kb_specs = tuple(TensorSpec(t.name, tuple(k.shape)) for t, k in zip(kernel_specs, kb))
        plans.append((GraphSpec(f"template_b{targets}", "template_batched", (TensorSpec("template", tuple(zb.shape)),),
                                kb_specs, targets=targets), template, (zb,)))
        branch = _SearchBranch(net, targets).eval()
        for index, size in enumerate(search_sizes(preset)):
            if index > 0 and targets > SECONDARY_MAX_BUCKET:
                continue
            x = torch.zeros(targets * search_batch(preset), 3, size, size)
            # the outputs' rows are the targets' single-target rows, target-major (SiameseNet.search): no
            # forward pass of the whole bucket for its shapes (the exporter checks them against the graph)
            out_shapes = [(targets * s[0], *s[1:]) for s in single_shapes[size]]
            outputs = tuple(TensorSpec(n, s) for n, s in zip(net.output_names, out_shapes))
            name = (f"search_b{targets}" if index == 0 else f"search_{size}_b{targets}")
            plans.append((GraphSpec(name, "search_batched", (TensorSpec("search", tuple(x.shape)), *kb_specs),
                                    outputs, size, targets), branch, (x, *kb)))
    if preset.model.mask:
        plans += _mask_plans(net, preset, last_outputs, check_buckets(buckets))
    return plans


def _mask_plans(net: SiameseNet, preset: Preset, search_outputs: tuple[TensorSpec, ...], buckets: tuple[int, ...]
                ) -> list[tuple[GraphSpec, nn.Module, tuple[torch.Tensor, ...]]]:
    """SiamMask's ``refine`` (sharp) or ``mask_head`` (base) graph, and per bucket ``B > 1`` the same graph for
    ``B`` targets (``refine_b{B}`` / ``mask_head_b{B}``: every input and output has ``B`` rows, target ``b`` in
    row ``b``).

    One static graph per bucket rather than one graph with a dynamic batch axis (which the refine network, having
    no grouped convolution, would allow): every graph of an export keeps static shapes, which the exporter's
    checks and the TensorRT builder rely on (a dynamic axis would need an optimization profile there), and the
    engines pick and pad buckets the same way for the search and the masks.
    """
    p = preset.track
    corr = next(o for o in search_outputs if o.name == "mask_corr")
    channels = corr.shape[1]
    plans = []
    for targets in buckets:
        suffix, role = ("", "") if targets == 1 else (f"_b{targets}", "_batched")
        if p.mask_source == MASK_HEAD:
            cell = torch.zeros(targets, channels, 1, 1)
            spec = GraphSpec(f"mask_head{suffix}", f"mask_head{role}", (TensorSpec("corr_cell", tuple(cell.shape)),),
                             (TensorSpec("mask_logits", (targets, 63 * 63, 1, 1)),), targets=targets)
            plans.append((spec, _MaskHeadBranch(net).eval(), (cell,)))
            continue
        f0, f1, f2 = (next(o for o in search_outputs if o.name == n) for n in ("f0", "f1", "f2"))
        args = (torch.zeros(targets, f0.shape[1], 61, 61), torch.zeros(targets, f1.shape[1], 31, 31),
                torch.zeros(targets, f2.shape[1], 15, 15), torch.zeros(targets, channels, 1, 1))
        inputs = tuple(TensorSpec(n, tuple(a.shape)) for n, a in zip(("p0", "p1", "p2", "p3"), args))
        outputs = (TensorSpec("mask_logits", (targets, 1, p.mask_output_size, p.mask_output_size)),)
        plans.append((GraphSpec(f"refine{suffix}", f"refine{role}", inputs, outputs, targets=targets),
                      _RefineBranch(net).eval(), args))
    return plans
