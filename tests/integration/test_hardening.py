"""Adversarial use of the command-line tools: nothing is destroyed, every bad input is one line and exit 1,
interrupts (Ctrl-C, SIGTERM) end cleanly. Real subprocesses on tiny random-weight models."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

import siamdeploy
from siamdeploy.synthetic import generate_sequence


def _cli(module: str, *args: str, cwd: str | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(siamdeploy.__file__))}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=env)


def _one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _snapshot(folder) -> dict[str, bytes]:
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = open(path, "rb").read()
    return out


# ---------------------------------------------------------------- export never destroys

@pytest.fixture()
def project(tmp_path, random_checkpoint):
    """A folder that looks like a user's project: sources, a .git folder, the checkpoint."""
    (tmp_path / "src.py").write_text("print('precious')\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(open(random_checkpoint("siamfc"), "rb").read())
    return tmp_path


@pytest.mark.parametrize("out, needle", [(".", "current folder"), ("src.py", "not a folder"),
                                         (".git", "not a siamdeploy export")])
def test_export_refuses_to_replace_what_is_not_an_export(project, out: str, needle: str) -> None:
    before = _snapshot(project)
    for extra in ((), ("--force",)):
        _one_line_error(_cli("siamdeploy.export", "model.pth", "--preset", "siamfc", "--out", out, *extra,
                             cwd=str(project)), needle)
    assert _snapshot(project) == before, "nothing may change"


def test_export_replaces_an_export_only_with_force(project) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    stale = project / f".e.tmp-{dead}-0123abcd"  # left by an export that was killed with SIGKILL
    stale.mkdir()
    (stale / "template.onnx").write_bytes(b"half")
    old = os.umask(0o022)
    try:
        proc = _cli("siamdeploy.export", "model.pth", "--preset", "siamfc", "--out", "e", "--no-validate",
                    "--buckets", "1", "-q", cwd=str(project))
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stderr
    assert not stale.exists(), "a killed run's temporary folder is swept"
    assert os.stat(project / "e").st_mode & 0o777 == 0o755, "export folders get the umask's permissions"
    first = (project / "e" / "manifest.json").read_text()
    _one_line_error(_cli("siamdeploy.export", "model.pth", "--preset", "siamfc", "--out", "e", "--no-validate",
                         cwd=str(project)), "--force")
    assert (project / "e" / "manifest.json").read_text() == first
    proc = _cli("siamdeploy.export", "model.pth", "--preset", "siamfc", "--out", "e", "--no-validate",
                "--buckets", "1", "-q", "--force", cwd=str(project))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((project / "e" / "manifest.json").read_text())["created"]
    assert sorted(p.name for p in project.iterdir()) == [".git", "e", "model.pth", "src.py"]


@pytest.mark.parametrize("args, needle", [
    (["--opset", "99"], "--opset 99"),
    (["--out", "src.py/sub"], "src.py"),
    (["--preset", "x" * 100_000], "100000 characters"),
])
def test_export_flags_checked_before_work(project, args: list[str], needle: str) -> None:
    if args[0] == "--preset":
        cmd = ["model.pth", *args, "--out", "new"]
    else:
        cmd = ["model.pth", "--preset", "siamfc", *args]
    line = _one_line_error(_cli("siamdeploy.export", *cmd, cwd=str(project)), needle)
    assert len(line) < 2000
    assert not (project / "new").exists() and not (project / "export").exists()


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"process ended early: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("timed out waiting")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_export_interrupted_sweeps_its_temporary_folder(project, signum: int, code: int) -> None:
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(siamdeploy.__file__))}
    proc = subprocess.Popen([sys.executable, "-m", "siamdeploy.export", "model.pth", "--preset", "siamfc", "--out",
                             "e", "--precision", "both"], cwd=str(project), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    _wait_for(lambda: any(p.name.startswith(".e.tmp-") for p in project.iterdir()), proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err
    assert "Traceback" not in err and ("SIGTERM" in err if signum == signal.SIGTERM else "Ctrl-C" in err)
    assert sorted(p.name for p in project.iterdir()) == [".git", "model.pth", "src.py"]


# ---------------------------------------------------------------- run never overwrites its inputs

@pytest.fixture()
def video(tmp_path) -> str:
    path = str(tmp_path / "in.avi")
    seq = generate_sequence(seed=4, num_frames=4, size=(160, 120))
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, seq.frames[0].shape[1::-1])
    for frame in seq.frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.mark.parametrize("flag, target, needle", [
    ("--save", "source", "is the source"), ("--results", "source", "is the source"),
    ("--results", "model", "is the model"), ("--save", "model", "is the model"),
    ("--results", "folder", "is a folder"), ("--results", "under_file", "is a file"),
])
def test_run_refuses_outputs_that_would_destroy_inputs(tmp_path, video: str, random_checkpoint, flag: str,
                                                       target: str, needle: str) -> None:
    model = str(tmp_path / "model.pth")
    with open(model, "wb") as fh:
        fh.write(open(random_checkpoint("siamfc"), "rb").read())
    path = {"source": video, "model": model, "folder": str(tmp_path),
            "under_file": os.path.join(video, "r.txt")}[target]
    before = {p: open(p, "rb").read() for p in (video, model)}
    _one_line_error(_cli("siamdeploy.run", video, "--model", model, "--init", "50,40,30,30", "--no-display",
                         flag, path, cwd=str(tmp_path)), needle)
    assert {p: open(p, "rb").read() for p in (video, model)} == before


def test_run_outputs_must_differ_and_device_is_checked(tmp_path) -> None:
    _one_line_error(_cli("siamdeploy.run", "demo", "--results", "x.mp4", "--save", "x.mp4", cwd=str(tmp_path)),
                    "same file")
    _one_line_error(_cli("siamdeploy.run", "demo", "--device", "tpu", cwd=str(tmp_path)), "--device 'tpu'")
    _one_line_error(_cli("siamdeploy.run", "demo", "--save", "video.txt", cwd=str(tmp_path)), "not a video path")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "x.mp4").exists()
    assert not (tmp_path / "video.txt").exists()


def test_full_disk_is_one_line(tmp_path, random_checkpoint) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    _one_line_error(_cli("siamdeploy.run", "demo", "--frames", "3", "--model", random_checkpoint("siamfc"),
                         "--results", "/dev/full", "--save", "none", "--no-display", "-q", cwd=str(tmp_path)),
                    "no space left", "/dev/full")


def test_negative_init_x_without_equals(tmp_path, random_checkpoint) -> None:
    proc = _cli("siamdeploy.run", "demo", "--frames", "3", "--model", random_checkpoint("siamfc"), "--init",
                "-10,40,60,50", "--save", "none", "--out", str(tmp_path), "-q", "--no-display")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "results.txt").read_text().splitlines()[0] == "-10.0000,40.0000,60.0000,50.0000"


def test_demo_fp16_is_not_silently_ignored(tmp_path) -> None:
    _one_line_error(_cli("siamdeploy.run", "demo", "--precision", "fp16", "--device", "cpu", cwd=str(tmp_path)),
                    "fp16", "CUDA")


def test_export_folder_with_disagreeing_preset(tmp_path, random_checkpoint) -> None:
    folder = tmp_path / "e"
    proc = _cli("siamdeploy.export", random_checkpoint("siamfc"), "--preset", "siamfc", "--out", str(folder),
                "--no-validate", "--buckets", "1", "-q")
    assert proc.returncode == 0, proc.stderr
    _one_line_error(_cli("siamdeploy.run", "demo", "--model", str(folder), "--backend", "onnxruntime", "--preset",
                         "siamrpn_alex_dwxcorr", cwd=str(tmp_path)), "disagrees", "siamfc")
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["graphs"]
    for text in ("{ not json", "[1, 2]", json.dumps(manifest)):
        (folder / "manifest.json").write_text(text)
        _one_line_error(_cli("siamdeploy.run", "demo", "--model", str(folder), "--backend", "onnxruntime",
                             cwd=str(tmp_path)), "manifest.json")


def test_tiny_frames_name_the_size(tmp_path, random_checkpoint) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), np.zeros((1, 1, 3), np.uint8))
    line = _one_line_error(_cli("siamdeploy.run", str(folder), "--model", random_checkpoint("siamfc"), "--init",
                                "0,0,1,1", "--no-display", "-q", "--out", str(tmp_path / "o")), "1x1")
    assert "--save none" in line


def test_truncated_video_says_so(tmp_path, random_checkpoint) -> None:
    path = str(tmp_path / "cut.avi")
    seq = generate_sequence(seed=4, num_frames=8, size=(160, 120))
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for frame in seq.frames:
        writer.write(frame)
    writer.release()
    data = open(path, "rb").read()
    cap = cv2.VideoCapture(path)
    announced = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    with open(path, "wb") as fh:  # cut the file in half: the header still announces every frame
        fh.write(data[: len(data) // 2])
    proc = _cli("siamdeploy.run", path, "--model", random_checkpoint("siamfc"), "--init", "50,40,30,30",
                "--no-display", "-q", "--save", "none", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert f"of the {announced} frames it announced" in proc.stdout


def test_sigterm_finishes_video_and_summary(tmp_path, random_checkpoint) -> None:
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(siamdeploy.__file__))}
    proc = subprocess.Popen([sys.executable, "-m", "siamdeploy.run", "demo", "--frames", "400", "--model",
                             random_checkpoint("siamfc"), "--out", str(tmp_path), "-q", "--no-display"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    results = tmp_path / "results.txt"
    _wait_for(lambda: results.exists() and len(results.read_text().splitlines()) >= 3, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "stopped early (interrupted)" in out and "frames:" in out
    lines = results.read_text().splitlines()
    frames = int(out.split("frames:")[1].split()[0])
    assert len(lines) == frames and all(len(line.split(",")) == 4 for line in lines)
    cap = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == frames, "the annotated video is finished, not cut off"


# ---------------------------------------------------------------- the console script

def test_console_script_lists_subcommands_and_version(tmp_path) -> None:
    proc = _cli("siamdeploy", "--help")
    assert proc.returncode == 0
    for name in ("run", "export", "eval", "generate"):
        assert f"  {name}" in proc.stdout
    proc = _cli("siamdeploy", "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"siamdeploy {siamdeploy.__version__}"
    assert "None" not in proc.stdout
    proc = _cli("siamdeploy", "generate", "--layout", "otb", "--out", str(tmp_path / "g"), "--sequences", "1",
                "--frames", "3", "--images", "procedural")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "g").is_dir()
    _one_line_error(_cli("siamdeploy", "eval", "--dataset", "otb", "--root", str(tmp_path / "g"), "--model",
                         "missing.pth", "--device", "tpu"), "--device 'tpu'")


@pytest.mark.parametrize("module, args", [
    ("siamdeploy.run", ["demo"]),
    ("siamdeploy.export", ["model.pth", "--preset", "siamfc"]),
    ("siamdeploy.eval", ["--dataset", "otb", "--root", ".", "--model", "model.pth"]),
    ("siamdeploy.eval.generate", ["--layout", "otb"]),
])
def test_unwritable_out_in_every_cli(tmp_path, module: str, args: list[str]) -> None:
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "model.pth").write_bytes(b"unused")
    _one_line_error(_cli(module, *args, "--out", "a_file/sub", cwd=str(tmp_path)), "a_file")
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        _one_line_error(_cli(module, *args, "--out", "locked/sub", cwd=str(tmp_path)), "not writable")
    assert sorted(p.name for p in tmp_path.iterdir()) in (["a_file", "model.pth"], ["a_file", "locked", "model.pth"])
