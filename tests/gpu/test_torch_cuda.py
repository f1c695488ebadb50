"""The torch engine on a CUDA GPU without TensorRT: FP16 backbone/neck (correlation and heads FP32) and
CUDA-graph replay of the search step. The CUDA tests skip without a CUDA GPU; the two refusals run anywhere."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from siamdeploy.compare import REPLAY_BOX_PX, OutputComparison, compare_boxes, teacher_force, tolerance
from siamdeploy.errors import EngineError

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU visible to torch")
FAST = ["siamrpn_alex_dwxcorr", "dasiamrpn_vot", "siamfc"]
FAMILIES = FAST + [pytest.param(p, marks=pytest.mark.slow) for p in
                   ("siamrpn_r50_l234_dwxcorr", "siammask_r50_l3", "siammask_base", "siamrpn_r50_l234_dwxcorr_lt")]
_MODELS: dict[str, object] = {}


def _loaded(preset: str, random_checkpoint):
    from siamdeploy.checkpoint import load_model

    if preset not in _MODELS:
        _MODELS[preset] = load_model(random_checkpoint(preset), preset=preset)
    return _MODELS[preset]


def test_fp16_and_graphs_refused_on_cpu(random_checkpoint) -> None:
    from siamdeploy.engine.torch_engine import TorchEngine

    net = _loaded("siamfc", random_checkpoint).net
    with pytest.raises(EngineError, match="FP16 on the torch backend need a CUDA device"):
        TorchEngine(net, "cpu", precision="fp16")
    with pytest.raises(EngineError, match="CUDA graphs on the torch backend need a CUDA device"):
        TorchEngine(net, "cpu", cuda_graph=True)
    with pytest.raises(EngineError, match="fp32 or fp16"):
        TorchEngine(net, "cpu", precision="int8")
    assert TorchEngine(net, "cpu").describe() == "torch (fp32, cpu)"


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("preset", FAMILIES)
def test_fp16_close_to_fp32(preset: str, random_checkpoint) -> None:
    from siamdeploy.engine.torch_engine import TorchEngine
    from siamdeploy.export.validate import _crops

    loaded = _loaded(preset, random_checkpoint)
    net = copy.deepcopy(loaded.net)
    fp32 = TorchEngine(copy.deepcopy(net), "cuda")
    fp16 = TorchEngine(net, "cuda", precision="fp16")
    assert next(net.parameters()).dtype == torch.float32, "the caller's net stays FP32"
    assert next(fp16.net.backbone.parameters()).dtype == torch.float16
    head = fp16.net.rpn_head if fp16.net.rpn_head is not None else None
    if head is not None:
        assert next(head.parameters()).dtype == torch.float32
    outputs = OutputComparison.for_backend("torch", "fp16", reference="torch fp32")  # per output
    for label, z, searches in _crops(loaded):
        k32, k16 = fp32.template(z), fp16.template(z)
        assert all(k.dtype == torch.float32 for k in k16)
        for x in searches.values():
            a, b = fp32.search(x, k32), fp16.search(x, k16)
            for name in a.outputs:
                outputs.add(f"{name} ({label})", a.outputs[name], b.outputs[name])
            if a.extras:  # SiamMask: refine (sharp) or the mask head (base) on FP32 features
                n = a.outputs["cls"].shape[-1]
                cell = (n // 2, n // 2)
                fn = "refine" if fp16.net.spec.refine else "mask_at"
                outputs.add(f"{fn} ({label})", getattr(fp32, fn)(a.extras, cell), getattr(fp16, fn)(b.extras, cell))
    outputs.check(preset)


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("preset", FAMILIES)
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_graph_same_as_plain(preset: str, precision: str, random_checkpoint) -> None:
    from siamdeploy.synthetic import generate_sequence
    from siamdeploy.engine.torch_engine import TorchEngine
    from siamdeploy.runtime import make_tracker

    loaded = _loaded(preset, random_checkpoint)
    p = loaded.preset
    plain = make_tracker(TorchEngine(copy.deepcopy(loaded.net), "cuda", precision=precision), p.track, p.name)
    graph = make_tracker(TorchEngine(copy.deepcopy(loaded.net), "cuda", precision=precision, cuda_graph=True),
                         p.track, p.name)
    seq = generate_sequence(seed=4, num_frames=8, size=(480, 360))
    plain.init(seq.frames[0], seq.boxes[0])
    graph.init(seq.frames[0], seq.boxes[0])
    for frame in seq.frames[1:]:
        a, b = plain.track(frame), graph.track(frame)
        np.testing.assert_allclose(a.bbox, b.bbox, rtol=0, atol=REPLAY_BOX_PX)
    assert graph.engine._graphs, "no CUDA graph was captured"
    assert "CUDA graph" in graph.engine.describe()


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("preset", FAMILIES)
def test_fp16_teacher_forced_boxes(preset: str, random_checkpoint) -> None:
    from siamdeploy.synthetic import generate_sequence
    from siamdeploy.engine.torch_engine import TorchEngine
    from siamdeploy.runtime import make_tracker

    loaded = _loaded(preset, random_checkpoint)
    p = loaded.preset
    ref = make_tracker(TorchEngine(copy.deepcopy(loaded.net), "cuda"), p.track, p.name)
    half = make_tracker(TorchEngine(copy.deepcopy(loaded.net), "cuda", precision="fp16"), p.track, p.name)
    seq = generate_sequence(seed=11, num_frames=20, size=(480, 360))
    steps = teacher_force(half, seq.frames, seq.boxes[0], ref)
    assert len(steps) == len(seq.frames) - 1
    agreement = compare_boxes([s.result.bbox for s in steps], [s.reference.bbox for s in steps])
    failures = agreement.failures(tolerance("torch", "fp16"), first_frame=1)
    assert not failures, f"{failures}; per-frame IoU {np.round(agreement.iou, 3).tolist()}"
