"""The GPU check: everything siamdeploy can only verify on a CUDA machine, in one command, in <= 8 minutes.

    python scripts/gpu_check.py OUT_DIR            # or: bash scripts/gpu_check.sh OUT_DIR
    python scripts/gpu_check.py OUT_DIR --dry-run  # what would run, what is missing; runs nothing

Steps (each under its own time limit, all within ``--budget-s``, default 480 s):

1. environment: GPU, driver, CUDA, and the versions of torch, onnxruntime (and its providers), tensorrt,
   cuda-python, onnx, numpy -> ``environment.json``;
2. the GPU tests: ``python -m pytest tests/gpu -m ""`` -> ``gpu_tests.log``, ``gpu_tests.xml`` (JUnit);
3. the latency benchmark (``benchmarks/latency.py``) for alex, mobilev2 and r50: torch CUDA FP32 / FP16 /
   FP16 + CUDA graph, onnxruntime CUDA when onnxruntime-gpu is installed, TensorRT FP32/FP16 when tensorrt
   and cuda-python are; one run per preset (a slow preset cannot lose the others) -> ``latency.json``,
   ``latency.png``;
4. multi-target throughput (``benchmarks/multi_target.py``): N = 1, 8, 32 targets on the GPU rows, batched vs
   single calls, checking a gain of at least 10x at N = 32 -> ``multi_target.json``, ``multi_target.png``;
5. ``summary.txt`` (short, human-readable) and ``gpu_check.json`` (every step: command, status, seconds).

TensorRT plans (and the timing cache) of all steps go to one engine cache, ``$SIAMDEPLOY_ENGINES`` when set,
else a temporary folder removed at the end: the multi-target step reuses the plans the GPU tests built for
the same export (single-target and bucket plans for N = 1, 8, 32), instead of building them again.

Assumes no network: install beforehand (see the README's "GPU check" section). Exit status 0 when every step
ran to the end and no GPU test failed, else 1.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = ("siamrpn_alex_dwxcorr", "siamrpn_mobilev2_l234_dwxcorr", "siamrpn_r50_l234_dwxcorr")
MULTI_TARGET_SCRIPT = os.path.join("benchmarks", "multi_target.py")  # multi-target throughput (run when present)
DEFAULT_BUDGET_S = 480.0
TEST_SHARE_S = 240.0
BENCH_SHARE_S = {"siamrpn_alex_dwxcorr": 50.0, "siamrpn_mobilev2_l234_dwxcorr": 60.0, "siamrpn_r50_l234_dwxcorr": 90.0}
RESERVE_S = 10.0  # kept for the summary
ENGINES_ENV = "SIAMDEPLOY_ENGINES"  # the TensorRT engine cache root (siamdeploy.tensorrt.cache.ENV_ROOT)

ENV_PROBE = r"""
import json, platform, sys
out = {"python": platform.python_version(), "platform": platform.platform()}
def version(mod):
    try:
        from importlib.metadata import version as v
        return v(mod)
    except Exception:
        return None
try:
    import numpy; out["numpy"] = numpy.__version__
except Exception as e: out["numpy"] = None
try:
    import torch
    out["torch"] = torch.__version__; out["torch_cuda"] = torch.version.cuda
    out["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    out["torch_cuda_available"] = bool(torch.cuda.is_available())
    if torch.cuda.is_available():
        out["torch_device"] = torch.cuda.get_device_name(0)
        out["torch_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
except Exception as e:
    out["torch"] = None; out["torch_error"] = str(e).splitlines()[0] if str(e) else type(e).__name__
try:
    import onnxruntime as ort
    out["onnxruntime"] = ort.__version__; out["onnxruntime_providers"] = ort.get_available_providers()
    out["onnxruntime_package"] = "onnxruntime-gpu" if version("onnxruntime-gpu") else "onnxruntime"
except Exception as e: out["onnxruntime"] = None
try:
    import onnx; out["onnx"] = onnx.__version__
except Exception: out["onnx"] = None
try:
    import tensorrt; out["tensorrt"] = tensorrt.__version__
except Exception as e:
    out["tensorrt"] = None; out["tensorrt_error"] = str(e).splitlines()[0] if str(e) else type(e).__name__
out["cuda_python"] = version("cuda-python") or version("cuda-bindings")
try:
    from siamdeploy.tensorrt.device import probe
    out["tensorrt_probe"] = list(probe())
except Exception as e: out["tensorrt_probe"] = [False, str(e)]
try:
    import matplotlib; out["matplotlib"] = matplotlib.__version__
except Exception: out["matplotlib"] = None
print(json.dumps(out))
"""


def nvidia_smi() -> dict[str, Any]:
    """GPU name, driver, memory and compute capability from ``nvidia-smi`` (or why not)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"available": False, "why": "nvidia-smi not found (no NVIDIA driver on this machine)"}
    query = "name,driver_version,memory.total,compute_cap"
    try:
        proc = subprocess.run([exe, f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=30, check=False)
        head = subprocess.run([exe], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"available": False, "why": f"nvidia-smi failed: {err}"}
    if proc.returncode != 0:
        return {"available": False, "why": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["failed"]}
    gpus = [dict(zip(query.split(","), (v.strip() for v in line.split(",")))) for line in proc.stdout.splitlines()
            if line.strip()]
    cuda = next((line.split("CUDA Version:")[1].split()[0] for line in head.splitlines() if "CUDA Version:" in line),
                None)
    return {"available": bool(gpus), "gpus": gpus, "driver_cuda": cuda}


def environment() -> dict[str, Any]:
    """Everything the summary names: GPU, driver and library versions (a child process imports them)."""
    env: dict[str, Any] = {"nvidia_smi": nvidia_smi()}
    try:
        child_env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.run([sys.executable, "-c", ENV_PROBE], capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env=child_env, check=False)
        env.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as err:
        env["probe_error"] = str(err)
    return env


def missing(env: dict[str, Any]) -> list[str]:
    """What keeps steps (or parts of them) from running here, one line each."""
    out = []
    if not env["nvidia_smi"].get("available"):
        out.append(f"GPU: {env['nvidia_smi'].get('why')}")
    if not env.get("torch"):
        out.append("torch: not importable (pip install torch, a CUDA build)")
    elif not env.get("torch_cuda_available"):
        out.append(f"torch {env['torch']}: no CUDA (a CPU build, or no GPU): torch CUDA rows and GPU tests skip")
    if not env.get("onnxruntime"):
        out.append("onnxruntime: not installed (pip install onnxruntime-gpu): onnxruntime rows skip")
    elif "CUDAExecutionProvider" not in env.get("onnxruntime_providers", []):
        out.append(f"onnxruntime {env['onnxruntime']}: no CUDAExecutionProvider (needs onnxruntime-gpu): "
                   "onnxruntime CUDA rows skip")
    if not env.get("tensorrt"):
        out.append("tensorrt: not installed (pip install tensorrt): TensorRT tests and rows skip")
    if not env.get("cuda_python"):
        out.append("cuda-python: not installed (pip install cuda-python): TensorRT tests and rows skip")
    elif env.get("tensorrt") and not env.get("tensorrt_probe", [False])[0]:
        out.append(f"TensorRT cannot run: {env['tensorrt_probe'][1]}")
    if not env.get("matplotlib"):
        out.append("matplotlib: not installed (pip install matplotlib): no latency.png")
    if importlib.util.find_spec("pytest") is None:
        out.append("pytest: not installed (pip install pytest): the GPU tests cannot run")
    if not os.path.isfile(os.path.join(ROOT, MULTI_TARGET_SCRIPT)):
        out.append(f"multi-target throughput: {MULTI_TARGET_SCRIPT} does not exist yet (hook only)")
    return out


def plan(out_dir: str) -> list[dict[str, Any]]:
    """The steps after the environment: name, command, time limit (seconds), outputs."""
    steps = [{"name": "gpu tests", "timeout": TEST_SHARE_S, "outputs": ["gpu_tests.log", "gpu_tests.xml"],
              "cmd": [sys.executable, "-m", "pytest", "tests/gpu", "-m", "", "-rs", "-p", "no:cacheprovider",
                      f"--junitxml={os.path.join(out_dir, 'gpu_tests.xml')}"]}]
    for preset in PRESETS:
        heavy = preset != PRESETS[0]  # the CPU rows (a baseline) only for the small AlexNet model
        steps.append({"name": f"latency {preset}", "timeout": BENCH_SHARE_S[preset],
                      "outputs": [f"latency_{preset}.json"],
                      "cmd": [sys.executable, "benchmarks/latency.py", "--presets", preset,
                              "--frames", "30" if heavy else "50", "--warmup", "5" if heavy else "10",
                              *(["--skip-cpu"] if heavy else []),
                              "--json", os.path.join(out_dir, f"latency_{preset}.json")]})
    steps.append({"name": "multi-target throughput", "timeout": 60.0, "outputs": ["multi_target.json"],
                  "hook": True,  # runs when benchmarks/multi_target.py exists
                  "cmd": [sys.executable, MULTI_TARGET_SCRIPT, "--targets", "1,8,32", "--frames", "10", "--skip-cpu",
                          "--check", "32", "--min-gain", "10", "--out", out_dir]})
    return steps


def run_step(step: dict[str, Any], out_dir: str, deadline: float) -> dict[str, Any]:
    """Run one step under min(its limit, the time left); output to ``<out>/<name>.log``."""
    record = {"name": step["name"], "cmd": step["cmd"], "status": "skipped", "seconds": 0.0}
    if step.get("hook") and not os.path.isfile(os.path.join(ROOT, MULTI_TARGET_SCRIPT)):
        record["why"] = f"{MULTI_TARGET_SCRIPT} does not exist yet"
        return record
    left = deadline - time.monotonic() - RESERVE_S
    if left < 15:
        record["why"] = "no time left in the budget"
        return record
    limit = min(step["timeout"], left)
    log_name = "gpu_tests.log" if step["name"] == "gpu tests" else f"{step['name'].replace(' ', '_')}.log"
    t0 = time.monotonic()
    with open(os.path.join(out_dir, log_name), "w", encoding="utf-8") as log:
        log.write(f"$ {shlex.join(step['cmd'])}\n")
        log.flush()
        try:
            proc = subprocess.run(step["cmd"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=limit,
                                  env={**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                                       "PYTHONUNBUFFERED": "1", **step.get("env", {})}, check=False)
            record.update(status="ok" if proc.returncode == 0 else "failed", returncode=proc.returncode)
        except subprocess.TimeoutExpired:
            record.update(status="timeout", why=f"stopped after {limit:.0f} s (its share of the budget)")
    record["seconds"] = round(time.monotonic() - t0, 1)
    record["log"] = log_name
    return record


def test_counts(xml_path: str) -> dict[str, int] | None:
    """tests / failures / errors / skipped from the JUnit file (None when pytest did not finish)."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    return {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}


def merge_latency(out_dir: str) -> dict[str, Any] | None:
    """One ``latency.json`` (and ``latency.png``) from the per-preset runs that finished."""
    merged: dict[str, Any] | None = None
    for preset in PRESETS:
        path = os.path.join(out_dir, f"latency_{preset}.json")
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if merged is None:
            merged = {**data, "presets": {}}
        merged["presets"].update(data["presets"])
    if merged is None:
        return None
    with open(os.path.join(out_dir, "latency.json"), "w", encoding="utf-8") as fh:
        json.dump(merged, fh, indent=2)
    spec = importlib.util.spec_from_file_location("siamdeploy_latency", os.path.join(ROOT, "benchmarks", "latency.py"))
    if spec is not None and spec.loader is not None:
        try:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            module.plot(merged, os.path.join(out_dir, "latency.png"))
        except Exception as err:  # noqa: BLE001 - the chart is optional
            merged["chart_error"] = str(err)
    return merged


def summary(env: dict[str, Any], steps: list[dict[str, Any]], counts: dict[str, int] | None,
            latency: dict[str, Any] | None, total_s: float) -> str:
    smi = env["nvidia_smi"]
    gpus = "; ".join(f"{g.get('name')} (driver {g.get('driver_version')}, sm {g.get('compute_cap')}, "
                     f"{g.get('memory.total')})" for g in smi.get("gpus", [])) or f"none ({smi.get('why')})"
    lines = [f"siamdeploy GPU check ({total_s:.0f} s)", f"GPU: {gpus}; driver CUDA {smi.get('driver_cuda')}",
             "versions: " + ", ".join(f"{k} {env.get(k)}" for k in ("python", "torch", "torch_cuda", "cudnn",
                                                                      "onnxruntime", "tensorrt", "cuda_python",
                                                                      "onnx", "numpy")),
             f"onnxruntime providers: {', '.join(env.get('onnxruntime_providers', [])) or 'none'}", ""]
    for step in steps:
        extra = f" ({step['why']})" if step.get("why") else ""
        lines.append(f"{step['name']:<40} {step['status']:<8} {step['seconds']:6.1f} s{extra}")
    if counts is not None:
        lines.append(f"GPU tests: {counts['tests']} run, {counts['failures']} failed, {counts['errors']} errors, "
                     f"{counts['skipped']} skipped (details: gpu_tests.log)")
    else:
        lines.append("GPU tests: no result file (see gpu_tests.log)")
    if latency:
        lines.append("")
        lines.append(f"{'preset':<32}{'backend':<26}{'frame p50 ms':>13}{'search p50 ms':>14}{'FPS':>8}")
        for preset, block in latency["presets"].items():
            for label, row in block["results"].items():
                lines.append(f"{preset:<32}{label:<26}{row['frame_ms']['p50']:13.2f}{row['search_ms']['p50']:14.2f}"
                             f"{row['fps']:8.1f}")
            for label, why in block.get("skipped", {}).items():
                lines.append(f"{preset:<32}{label:<26} skipped: {why}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="folder for the results (created)")
    ap.add_argument("--dry-run", action="store_true", help="list the steps and what is missing; run nothing")
    ap.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="total time limit (default 480)")
    args = ap.parse_args(argv)
    started = time.monotonic()
    out_dir = os.path.abspath(args.out)
    env = environment()
    gaps = missing(env)
    steps = plan(out_dir)
    if args.dry_run:
        print(f"siamdeploy GPU check, dry run (results would go to {out_dir}; budget {args.budget_s:.0f} s)")
        print("would run:")
        print(f"  {'environment':<40} nvidia-smi + library versions -> environment.json")
        for step in steps:
            hook = " [hook: skipped until the script exists]" if step.get("hook") else ""
            print(f"  {step['name']:<40} <= {step['timeout']:.0f} s: python {shlex.join(step['cmd'][1:])}{hook}")
        print(f"  {'summary':<40} summary.txt, gpu_check.json, latency.json + latency.png")
        print("missing here:" if gaps else "nothing missing")
        for gap in gaps:
            print(f"  - {gap}")
        return 0
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        print(f"error: {out_dir} exists and is not a folder; pass another OUT folder", file=sys.stderr)
        return 1
    os.makedirs(out_dir, exist_ok=True)
    deadline = started + args.budget_s
    with open(os.path.join(out_dir, "environment.json"), "w", encoding="utf-8") as fh:
        json.dump({**env, "missing": gaps}, fh, indent=2)
    records = []
    engines = os.environ.get(ENGINES_ENV) or tempfile.mkdtemp(prefix="siamdeploy-gpu-check-engines-")
    try:
        for step in steps:
            print(f"[gpu_check] {step['name']} ...", flush=True)
            records.append(run_step({**step, "env": {ENGINES_ENV: engines}}, out_dir, deadline))
            print(f"[gpu_check]   {records[-1]['status']} in {records[-1]['seconds']} s", flush=True)
    finally:
        if not os.environ.get(ENGINES_ENV):
            shutil.rmtree(engines, ignore_errors=True)
    counts = test_counts(os.path.join(out_dir, "gpu_tests.xml"))
    latency = merge_latency(out_dir)
    total = time.monotonic() - started
    text = summary(env, records, counts, latency, total)
    with open(os.path.join(out_dir, "summary.txt"), "w", encoding="utf-8") as fh:
        fh.write(text)
    with open(os.path.join(out_dir, "gpu_check.json"), "w", encoding="utf-8") as fh:
        json.dump({"seconds": round(total, 1), "budget_s": args.budget_s, "steps": records, "tests": counts,
                   "missing": gaps}, fh, indent=2)
    print(text)
    ran = all(r["status"] == "ok" or r.get("why", "").endswith("does not exist yet") for r in records)
    tests_ok = counts is not None and counts["failures"] == 0 and counts["errors"] == 0
    return 0 if ran and tests_ok else 1


if __name__ == "__main__":
    sys.exit(main())
