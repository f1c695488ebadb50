"""The torch engine's CPU bf16: backbone and neck under bf16 autocast, correlation and heads in FP32, close to
FP32 within the bf16 tolerance; an explicit opt-in, refused (one line) where torch has no bf16 CPU kernels.

On a CPU without them (AVX2) the numerical tests run torch's emulated bf16 (``allow_emulated_bf16=True``),
which is slow but rounds the same way."""
from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch

from siamdeploy.backends.registry import LoadRequest, configurations, load_engine
from siamdeploy.compare import OutputComparison, compare_boxes, teacher_force, tolerance
from siamdeploy.engine import torch_engine
from siamdeploy.engine.torch_engine import TorchEngine, cpu_bf16_support
from siamdeploy.errors import ConfigError, EngineError

HAS_BF16 = cpu_bf16_support()[0]
_MODELS: dict[str, object] = {}


def _loaded(preset: str, random_checkpoint):
    from siamdeploy.checkpoint import load_model

    if preset not in _MODELS:
        _MODELS[preset] = load_model(random_checkpoint(preset), preset=preset)
    return _MODELS[preset]


def test_support_check_is_torchs_own() -> None:
    ok, how = cpu_bf16_support()
    assert ok == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert (how in ("native", "AVX-512")) if ok else ("use precision='fp32'" in how)


@pytest.mark.parametrize("preset", ["siamrpn_alex_dwxcorr", pytest.param("siammask_r50_l3", marks=pytest.mark.slow)])
def test_bf16_close_to_fp32(preset: str, random_checkpoint) -> None:
    from siamdeploy.export.validate import _crops

    loaded = _loaded(preset, random_checkpoint)
    net = loaded.net
    fp32 = TorchEngine(net, "cpu")
    bf16 = TorchEngine(net, "cpu", precision="bf16", allow_emulated_bf16=True)
    assert net._autocast is None, "the caller's net stays FP32"
    assert all(p.dtype == torch.float32 for p in bf16.net.parameters()), "autocast: the weights stay FP32"
    assert bf16.describe().startswith("torch (bf16, cpu, backbone/neck bf16 autocast")
    outputs = OutputComparison.for_backend("torch", "bf16", reference="torch fp32")
    label, z, searches = _crops(loaded)[0]  # the real crops (bf16 may be emulated here: one set is enough)
    k32, k16 = fp32.template(z), bf16.template(z)
    assert all(k.dtype == torch.float32 for k in k16), "kernels leave the neck as FP32"
    for i, (a, b) in enumerate(zip(k32, k16)):
        outputs.add(f"kernel {i} ({label})", a, b)
    for x in searches.values():
        a, b = fp32.search(x, k32), bf16.search(x, k16)
        for name in a.outputs:
            assert b.outputs[name].dtype == np.float32
            outputs.add(f"{name} ({label})", a.outputs[name], b.outputs[name])
        if a.extras:
            n = a.outputs["cls"].shape[-1]
            outputs.add(f"refine ({label})", fp32.refine(a.extras, (n // 2, n // 2)),
                        bf16.refine(b.extras, (n // 2, n // 2)))
    outputs.check(preset)
    assert max(d.max_rel for d in outputs.diffs) > 1e-4, "bf16 changed nothing: autocast did not run"


def test_bf16_boxes_teacher_forced(random_checkpoint) -> None:
    from siamdeploy.runtime.trackers import make_tracker
    from siamdeploy.synthetic import generate_sequence

    loaded = _loaded("siamrpn_alex_dwxcorr", random_checkpoint)
    seq = generate_sequence(seed=3, num_frames=4, size=(320, 240))
    ref = make_tracker(TorchEngine(loaded.net, "cpu"), loaded.preset.track, loaded.preset.name)
    got = make_tracker(TorchEngine(loaded.net, "cpu", precision="bf16", allow_emulated_bf16=True),
                       loaded.preset.track, loaded.preset.name)
    steps = teacher_force(got, seq.frames, seq.boxes[0], reference=ref)
    assert all(s.reference is not None for s in steps)
    agreement = compare_boxes([s.result.bbox for s in steps], [s.reference.bbox for s in steps])  # type: ignore[union-attr]
    assert not agreement.failures(tolerance("torch", "bf16"), first_frame=1)


def test_bf16_is_opt_in_and_cpu_only(random_checkpoint) -> None:
    from siamdeploy.backends.registry import get_backend

    ok, why = get_backend("torch").supports("cuda:0", "bf16")
    assert not ok and "bf16 on the CPU only" in why
    assert "bf16" in get_backend("torch").explicit_precisions
    ckpt = random_checkpoint("siamrpn_alex_dwxcorr")
    # auto never picks it: every backend that could run bf16 wants it asked for by name
    with pytest.raises(EngineError, match=r"torch: bf16 is opt-in here: ask for backend='torch' by name"):
        load_engine("auto", LoadRequest(ckpt, preset="siamrpn_alex_dwxcorr", device="cpu", precision="bf16"))


def test_refused_where_torch_has_no_bf16(random_checkpoint, monkeypatch) -> None:
    why = "this CPU has no bf16 support in torch (test); use precision='fp32'"
    monkeypatch.setattr(torch_engine, "cpu_bf16_support", lambda: (False, why))
    ckpt = random_checkpoint("siamrpn_alex_dwxcorr")
    with pytest.raises(ConfigError, match=r"backend 'torch' cannot run bf16 on 'cpu': this CPU has no bf16"):
        load_engine("torch", LoadRequest(ckpt, preset="siamrpn_alex_dwxcorr", precision="bf16"))
    with pytest.raises(EngineError, match=r"torch cannot run bf16 here: this CPU has no bf16"):
        TorchEngine(copy.deepcopy(_loaded("siamrpn_alex_dwxcorr", random_checkpoint).net), "cpu", precision="bf16")
    conf = {c.label: c for c in configurations()}["torch cpu bf16"]
    assert not conf.ok and "no bf16 support" in conf.why  # the benchmark lists it as skipped, with the reason


@pytest.mark.skipif(HAS_BF16, reason="torch has bf16 CPU kernels here")
def test_cli_bf16_without_it_is_one_line_exit_1(random_checkpoint) -> None:
    ckpt = random_checkpoint("siamrpn_alex_dwxcorr")
    proc = subprocess.run([sys.executable, "-m", "siamdeploy.run", "demo", "--model", ckpt, "--preset",
                           "siamrpn_alex_dwxcorr", "--backend", "torch", "--precision", "bf16", "--no-display",
                           "--save", "none", "--frames", "2"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "has no bf16 support in torch" in lines[0], proc.stderr[-2000:]
