"""``python -m siamdeploy.run`` as a user runs it: real subprocesses, real files."""
from __future__ import annotations

import subprocess
import sys

import cv2
import pytest

from siamdeploy.synthetic import generate_sequence


def _run(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "siamdeploy.run", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def _frame_count(path: str) -> int:
    cap = cv2.VideoCapture(path)
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    return count


def test_demo_runs_end_to_end(tmp_path) -> None:
    proc = _run("demo", "--frames", "6", "--out", str(tmp_path), "-q")
    assert proc.returncode == 0, proc.stderr
    assert "model: reference siamrpn_alex_dwxcorr" in proc.stdout  # says which model ran, and what it is
    assert "not a benchmark-grade tracker" in proc.stdout
    assert "success score" in proc.stdout
    lines = (tmp_path / "results.txt").read_text().splitlines()
    assert len(lines) == 6 and all(len(line.split(",")) == 4 for line in lines)
    assert _frame_count(str(tmp_path / "annotated.mp4")) == 6


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("frames")
    seq = generate_sequence(seed=3, num_frames=5, size=(320, 240))
    for i, frame in enumerate(seq.frames):  # natural order: 2 before 10
        cv2.imwrite(str(folder / f"img{i * 4}.png"), frame)
    return str(folder)


def test_image_folder_headless(image_folder: str, random_checkpoint, tmp_path) -> None:
    results = tmp_path / "r.txt"
    proc = _run(image_folder, "--model", random_checkpoint("siamfc"), "--init", "130,100,50,40",
                "--results", str(results), "--save", "none", "-q")
    assert proc.returncode == 0, proc.stderr
    lines = results.read_text().splitlines()
    assert len(lines) == 5 and lines[0] == "130.0000,100.0000,50.0000,40.0000"


def test_video_file_two_targets(tmp_path, random_checkpoint) -> None:
    video = str(tmp_path / "in.avi")
    seq = generate_sequence(seed=4, num_frames=4, size=(320, 240))
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for frame in seq.frames:
        writer.write(frame)
    writer.release()
    proc = _run(video, "--model", random_checkpoint("siamfc"), "--init", "100,80,40,40", "--init", "10,10,30,30",
                "--out", str(tmp_path / "o"), "-q")
    assert proc.returncode == 0, proc.stderr
    for i in range(2):
        assert len((tmp_path / "o" / f"results_target{i}.txt").read_text().splitlines()) == 4
    assert _frame_count(str(tmp_path / "o" / "annotated.mp4")) == 4


def _assert_one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr


@pytest.mark.parametrize("args, needle", [
    (["no_such_video.mp4", "--init", "1,2,3,4"], "no_such_video.mp4"),
    (["demo", "--init", "1,2,3"], "--init must be x,y,w,h"),
    (["demo", "--init", "a,b,c,d"], "--init must be x,y,w,h"),
    (["demo", "--preset", "siamrpn_alex_dwxcor"], "siamrpn_alex_dwxcorr"),
    (["demo", "--model", "missing.pth"], "does not exist"),
])
def test_bad_input_one_line_exit_1(args: list[str], needle: str, tmp_path) -> None:
    _assert_one_line_error(_run(*args, cwd=str(tmp_path)), needle)
    assert not (tmp_path / "runs").exists(), "nothing may be written after a failure"


def test_model_that_does_not_load(tmp_path) -> None:
    bad = tmp_path / "model.pth"
    bad.write_text("not a checkpoint")
    _assert_one_line_error(_run("demo", "--model", str(bad), cwd=str(tmp_path)), "model.pth")


def test_init_box_outside_frame(random_checkpoint, tmp_path) -> None:
    _assert_one_line_error(_run("demo", "--frames", "3", "--model", random_checkpoint("siamfc"),
                                "--init", "5000,5000,20,20", cwd=str(tmp_path)), "outside")
    assert not (tmp_path / "runs").exists(), "nothing may be written after a failure"


def test_folder_without_images(tmp_path) -> None:
    _assert_one_line_error(_run(str(tmp_path), "--init", "1,1,5,5"), "no .jpg/.png/.bmp")


def test_unreadable_frame_mid_stream_ends_cleanly(tmp_path, random_checkpoint) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    seq = generate_sequence(seed=3, num_frames=5, size=(320, 240))
    for i, frame in enumerate(seq.frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame)
    (folder / "002.png").write_bytes(b"this is not a png")
    results = tmp_path / "r.txt"
    proc = _run(str(folder), "--model", random_checkpoint("siamfc"), "--init", "130,100,50,40",
                "--results", str(results), "--save", "none", "-q", "--no-display")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "stopped early" in proc.stdout and "frames: 2" in proc.stdout  # the summary still prints
    assert "002.png" in proc.stderr
    assert len(results.read_text().splitlines()) == 2


def test_camera_that_does_not_exist(tmp_path) -> None:
    _assert_one_line_error(_run("camera:57", "--init", "1,1,5,5", "--no-display", cwd=str(tmp_path)), "camera 57")
