"""Every registered GPU configuration (backend, CUDA device, precision) against torch FP32 on the CPU,
teacher-forced (same state every frame) with the tolerance table of :mod:`siamdeploy.compare`. Each case
skips with the registry's reason where its backend cannot run (everywhere without a CUDA GPU)."""
from __future__ import annotations

import numpy as np
import pytest

import siamdeploy
from siamdeploy.backends.registry import configurations
from siamdeploy.compare import compare_boxes, teacher_force, tolerance
from siamdeploy.synthetic import generate_sequence

GPU_CONFIGURATIONS = [c for c in configurations() if c.device.startswith("cuda")]
PRESETS = ["siamrpn_alex_dwxcorr", "siamfc"]


@pytest.mark.gpu
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("conf", GPU_CONFIGURATIONS, ids=[c.label for c in GPU_CONFIGURATIONS])
def test_gpu_configuration_agrees_teacher_forced(conf, preset, random_checkpoint, tmp_path, monkeypatch) -> None:
    if not conf.ok:
        pytest.skip(f"{conf.label}: {conf.why}")
    monkeypatch.setenv("SIAMDEPLOY_CACHE", str(tmp_path / "cache"))
    ckpt = random_checkpoint(preset)
    seq = generate_sequence(seed=5, num_frames=12, size=(640, 480))
    reference = siamdeploy.load_tracker(ckpt, preset=preset, backend="torch", device="cpu")
    tracker = siamdeploy.load_tracker(ckpt, preset=preset, backend=conf.backend.name, device=conf.device,
                                      precision=conf.precision)
    assert tracker.engine.device.startswith("cuda") and tracker.engine.precision == conf.precision
    steps = teacher_force(tracker, seq.frames, seq.boxes[0], reference)
    agreement = compare_boxes([s.result.bbox for s in steps], [s.reference.bbox for s in steps])
    failures = agreement.failures(tolerance(conf.backend.name, conf.precision), first_frame=1)
    assert not failures, f"{conf.label} vs torch cpu fp32: " + "; ".join(failures)
    assert np.isfinite([s.result.score for s in steps]).all()
    tracker.close()
