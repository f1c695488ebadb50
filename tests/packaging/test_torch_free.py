"""The deployed runtime needs no torch: an export folder loads and tracks with numpy + OpenCV + onnxruntime.

Two checks: a fast one in this environment with ``import torch`` made to fail, and the real one, a fresh
virtual environment without torch where ``pip install <project> onnxruntime`` is all that was installed.
"""
from __future__ import annotations

import os
import subprocess
import sys
import venv

import cv2
import pytest

from siamdeploy.synthetic import generate_sequence

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRACK = """
import sys, numpy as np, cv2, siamdeploy
from siamdeploy.synthetic import generate_sequence
seq = generate_sequence(seed=4, num_frames=5, size=(320, 240))
with siamdeploy.load_tracker(sys.argv[1], backend="onnxruntime") as tracker:
    tracker.init(seq.frames[0], seq.boxes[0])
    boxes = [tracker.track(f).bbox for f in seq.frames[1:]]
assert sys.modules.get("torch") is None, "torch was imported"
print(len(boxes), tracker.engine.describe())
"""
# makes `import torch` fail the way it does where torch is not installed
BLOCK = "import sys; sys.modules['torch'] = None\n"


@pytest.fixture(scope="module")
def export_folder(random_checkpoint, tmp_path_factory) -> str:
    from siamdeploy.checkpoint import load_model
    from siamdeploy.export.exporter import export_model

    folder = str(tmp_path_factory.mktemp("torchfree") / "alex")
    export_model(load_model(random_checkpoint("siamrpn_alex_dwxcorr"), preset="siamrpn_alex_dwxcorr"), folder,
                 validate=False, progress=False)
    return folder


def _frames(folder: str) -> str:
    seq = generate_sequence(seed=4, num_frames=4, size=(320, 240))
    os.makedirs(folder, exist_ok=True)
    for i, frame in enumerate(seq.frames):
        cv2.imwrite(os.path.join(folder, f"{i:04d}.png"), frame)
    return ",".join(str(round(v)) for v in seq.boxes[0])


def test_runtime_and_run_cli_without_torch(export_folder, tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-c", BLOCK + TRACK, export_folder], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("4 onnxruntime (fp32, cpu)")
    init = _frames(str(tmp_path / "frames"))
    cli = BLOCK + "import runpy; runpy.run_module('siamdeploy.run', run_name='__main__')"
    proc = subprocess.run([sys.executable, "-c", cli, str(tmp_path / "frames"), "--model", export_folder, "--backend",
                           "onnxruntime", "--init", init, "--no-display", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    # a checkpoint needs torch: one line with the install hint, no traceback
    proc = subprocess.run([sys.executable, "-c", BLOCK + TRACK, os.path.join(ROOT, "pyproject.toml")],
                          capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert proc.returncode != 0


@pytest.mark.venv
def test_fresh_venv_without_torch(export_folder, tmp_path) -> None:
    """``pip install <project> onnxruntime`` in an empty virtual environment tracks an export folder (network to
    the package index needed; skipped with the reason when pip cannot install)."""
    env_dir = str(tmp_path / "venv")
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = os.path.join(env_dir, "bin", "python")
    proc = subprocess.run([python, "-m", "pip", "install", "-q", ROOT, "onnxruntime"], capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        pytest.skip(f"pip could not install into a fresh venv here: {proc.stderr.strip().splitlines()[-1:]}")
    probe = subprocess.run([python, "-c", "import importlib.util; print(importlib.util.find_spec('torch'))"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "None", "the venv must not have torch"
    proc = subprocess.run([python, "-c", TRACK, export_folder], capture_output=True, text=True, timeout=300,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("4 onnxruntime (fp32, cpu)")
