"""scripts/gpu_check.py on CPU: the dry run (plan + what is missing, nothing written) and the step runner's
budget, JUnit counting and summary, without a GPU."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "gpu_check.py")


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_lists_steps_and_gaps(tmp_path) -> None:
    out = tmp_path / "gpu"
    proc = subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu_check.sh"), str(out), "--dry-run"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "tests/gpu -m ''" in text and "--junitxml" in text
    for preset in ("siamrpn_alex_dwxcorr", "siamrpn_mobilev2_l234_dwxcorr", "siamrpn_r50_l234_dwxcorr"):
        assert f"benchmarks/latency.py --presets {preset}" in text
    assert "multi-target throughput" in text and "summary.txt" in text
    if importlib.util.find_spec("tensorrt") is None:
        assert "tensorrt: not installed" in text
    if subprocess.run(["which", "nvidia-smi"], capture_output=True, check=False).returncode != 0:
        assert "GPU: nvidia-smi not found" in text
    assert not out.exists(), "a dry run writes nothing"


def test_step_runner_keeps_the_budget(gpu_check, tmp_path) -> None:
    slow = {"name": "slow", "timeout": 1.0, "cmd": [sys.executable, "-c", "import time; print('hi'); time.sleep(30)"]}
    t0 = time.monotonic()
    record = gpu_check.run_step(slow, str(tmp_path), deadline=time.monotonic() + 100)
    assert record["status"] == "timeout" and time.monotonic() - t0 < 10
    assert "hi" in (tmp_path / "slow.log").read_text()
    quick = {"name": "quick", "timeout": 30.0, "cmd": [sys.executable, "-c", "raise SystemExit(3)"]}
    assert gpu_check.run_step(quick, str(tmp_path), time.monotonic() + 100)["returncode"] == 3
    late = gpu_check.run_step(quick, str(tmp_path), deadline=time.monotonic() + 5)
    assert late["status"] == "skipped" and "no time left" in late["why"]


def test_counts_merge_and_summary(gpu_check, tmp_path) -> None:
    (tmp_path / "gpu_tests.xml").write_text(
        '<testsuites><testsuite tests="7" failures="1" errors="0" skipped="4"></testsuite></testsuites>')
    counts = gpu_check.test_counts(str(tmp_path / "gpu_tests.xml"))
    assert counts == {"tests": 7, "failures": 1, "errors": 0, "skipped": 4}
    assert gpu_check.test_counts(str(tmp_path / "none.xml")) is None
    stat = {"p50": 2.0, "p90": 3.0, "p99": 4.0, "mean": 2.5, "n": 5}
    for preset, fps in (("siamrpn_alex_dwxcorr", 400.0), ("siamrpn_r50_l234_dwxcorr", 90.0)):
        data = {"machine": {"platform": "x", "processor": "x"}, "versions": {},
                "presets": {preset: {"results": {"torch cuda fp16": {"frame_ms": stat, "search_ms": stat, "fps": fps,
                                                                     "runtime_overhead_ms": stat}},
                                     "skipped": {"tensorrt fp32/fp16": "needs tensorrt"}}}}
        (tmp_path / f"latency_{preset}.json").write_text(json.dumps(data))
    merged = gpu_check.merge_latency(str(tmp_path))
    assert set(merged["presets"]) == {"siamrpn_alex_dwxcorr", "siamrpn_r50_l234_dwxcorr"}
    assert json.loads((tmp_path / "latency.json").read_text())["presets"] == merged["presets"]
    env = {"nvidia_smi": {"available": True, "driver_cuda": "13.0",
                          "gpus": [{"name": "NVIDIA H200", "driver_version": "580.1", "compute_cap": "9.0",
                                    "memory.total": "143771 MiB"}]}, "torch": "2.13.0", "tensorrt": "11.4.0.106"}
    steps = [{"name": "gpu tests", "status": "ok", "seconds": 12.0}]
    text = gpu_check.summary(env, steps, counts, merged, 30.0)
    assert "NVIDIA H200 (driver 580.1, sm 9.0" in text and "tensorrt 11.4.0.106" in text
    assert "7 run, 1 failed" in text and "siamrpn_r50_l234_dwxcorr" in text and "90.0" in text
    assert "skipped: needs tensorrt" in text
