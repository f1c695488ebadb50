"""Several targets per call on a CUDA GPU: the multi-target benchmark's check at N = 32 targets, batched vs
32 single calls, for every CUDA configuration of the backend registry whose engine batches (goal: >= 10x).
Skips without a CUDA GPU (and names why each configuration cannot run)."""
from __future__ import annotations

import importlib.util
import json
import os

import pytest

from siamdeploy.backends import configurations

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CUDA_CONFIGS = [c for c in configurations() if c.device.startswith("cuda") and c.precision == "fp32"]


def _benchmark():  # noqa: ANN202 - the benchmark module
    spec = importlib.util.spec_from_file_location("multi_target", os.path.join(ROOT, "benchmarks", "multi_target.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("conf", CUDA_CONFIGS, ids=[c.label for c in CUDA_CONFIGS])
def test_batched_gain_at_32_targets(conf, tmp_path) -> None:
    if not conf.ok:
        pytest.skip(conf.why)
    if conf.backend.name == "tensorrt":
        pytest.skip("the TensorRT runtime runs one engine call per target (its bucket engines are not wired to "
                    "search_many yet)")
    status = _benchmark().main(["--targets", "1,32", "--frames", "10", "--backends", conf.label, "--skip-cpu",
                                "--check", "32", "--min-gain", "10", "--out", str(tmp_path)])
    with open(tmp_path / "multi_target.json") as fh:
        rows = json.load(fh)["rows"]
    row = next(r for r in rows if r["targets"] == 32)
    assert row["calls_per_frame"] == 1.0
    assert status == 0, f"{conf.label}: gain at 32 targets {row['gain']:.2f}x, goal >= 10x"
