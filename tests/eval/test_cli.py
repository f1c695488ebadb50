"""``python -m siamdeploy.eval`` and ``python -m siamdeploy.eval.generate``: outputs, and user errors as one
line on stderr with exit status 1."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import siamdeploy.api
from siamdeploy.eval.__main__ import main as eval_main
from siamdeploy.eval.generate import generate_benchmark_sequence, main as generate_main, write_layout
from siamdeploy.runtime.types import TrackResult


class _Engine:
    backend, precision, device = "fake", "fp32", "cpu"


class _FollowTheCentre:
    """Keeps the initial box: enough to exercise the CLI without a network."""

    engine = _Engine()
    name = "fake"

    def init(self, frame, box):
        self.box = tuple(box)

    def track(self, frame):
        return TrackResult(bbox=self.box, score=0.5)


@pytest.fixture
def fake_tracker(monkeypatch):
    monkeypatch.setattr(siamdeploy.api, "load_tracker", lambda *a, **k: _FollowTheCentre())


def _one_line_error(capsys, code: int, needle: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err


@pytest.mark.parametrize("layout", ["otb", "vot", "got10k", "lasot"])
def test_eval_cli_writes_results_metrics_and_plots(layout, layout_root, fake_tracker, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    code = eval_main(["--dataset", layout, "--root", layout_root(layout), "--model", "dummy.pth", "--out", str(out),
                      "--eao-range", "2", "8", "-q"])
    assert code == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "metrics.json").read_text())
    assert report["metrics"]["sequences"] == 3 and report["backend"] == "fake"
    names = {"otb": "Synth01.txt", "lasot": "synthetic-1.txt",
             "got10k": "GOT-10k_Val_000001/GOT-10k_Val_000001_001.txt", "vot": "baseline/synth01/synth01_001.txt"}
    assert (out / names[layout]).is_file()
    plot = "expected_overlap.png" if layout == "vot" else "success.png"
    assert (out / plot).is_file()
    headline = {"otb": "success AUC", "lasot": "norm. prec.@0.20", "got10k": "AO", "vot": "EAO"}[layout]
    assert headline in printed and "dummy_fake_fp32" in printed


def test_eval_cli_bad_inputs_one_line(tmp_path, capsys, fake_tracker):
    _one_line_error(capsys, eval_main(["--dataset", "otb", "--root", str(tmp_path / "nope"), "--model", "m.pth"]),
                    "is not a folder")
    _one_line_error(capsys, eval_main(["--dataset", "lasot", "--root", str(tmp_path), "--model", "m.pth"]),
                    "no LaSOT sequences")
    seq = tmp_path / "otb" / "Bad" / "img"
    seq.mkdir(parents=True)
    (seq / "0001.jpg").write_bytes(b"")
    (seq.parent / "groundtruth_rect.txt").write_text("1,2,x,4\n")
    _one_line_error(capsys, eval_main(["--dataset", "otb", "--root", str(tmp_path / "otb"), "--model", "m.pth"]),
                    "groundtruth_rect.txt:1: not a list of numbers")


def test_eval_cli_unknown_sequence_and_unreadable_image(tmp_path, capsys, fake_tracker):
    seq = tmp_path / "S" / "img"
    seq.mkdir(parents=True)
    (seq / "0001.jpg").write_bytes(b"not an image")
    (seq.parent / "groundtruth_rect.txt").write_text("1,2,3,4\n")
    args = ["--dataset", "otb", "--root", str(tmp_path), "--model", "m.pth", "--out", str(tmp_path / "o"), "--no-plots"]
    _one_line_error(capsys, eval_main(args + ["--sequences", "Other"]), "unknown sequence(s) Other")
    _one_line_error(capsys, eval_main(args), "cannot read image")


def test_cli_errors_in_a_subprocess(tmp_path):
    """The real entry points: exit status 1, one line, no traceback."""
    runs = [[sys.executable, "-m", "siamdeploy.eval", "--dataset", "vot", "--root", str(tmp_path / "none"),
             "--model", "m.pth"],
            [sys.executable, "-m", "siamdeploy.eval.generate", "--layout", "otb", "--out", str(tmp_path / "g"),
             "--frames", "0"]]
    for cmd in runs:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1, proc.stderr
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr


def test_generate_cli_all_layouts(tmp_path, capsys):
    code = generate_main(["--layout", "all", "--out", str(tmp_path), "--sequences", "1", "--frames", "3",
                          "--size", "64x48", "--images", "procedural"])
    assert code == 0
    assert (tmp_path / "otb" / "Synth01" / "img" / "0003.jpg").is_file()
    assert (tmp_path / "got10k" / "val" / "list.txt").read_text().split() == ["GOT-10k_Val_000001"]
    assert (tmp_path / "vot" / "synth01" / "color" / "00000001.jpg").is_file()
    assert (tmp_path / "lasot" / "synthetic" / "synthetic-1" / "out_of_view.txt").is_file()
    _one_line_error(capsys, generate_main(["--layout", "otb", "--out", str(tmp_path / "x"), "--size", "64by48"]),
                    "WIDTHxHEIGHT")
    _one_line_error(capsys, generate_main(["--layout", "otb", "--out", str(tmp_path / "x"), "--attributes", "warp"]),
                    "unknown attribute")


def test_eval_with_a_real_tracker(random_checkpoint, tmp_path):
    """One short sequence through load_tracker (seeded random weights) and the whole evaluation path."""
    seq = generate_benchmark_sequence(seed=1, num_frames=3, size=(96, 72), attributes=(), images="procedural")
    root = write_layout([seq], str(tmp_path / "data"), "otb")
    ckpt = random_checkpoint("siamfc")
    from siamdeploy.eval.runner import evaluate

    report = evaluate("otb", root, ckpt, preset="siamfc", device="cpu", out=str(tmp_path / "o"),
                      plots=False)
    boxes = np.loadtxt(tmp_path / "o" / "Synth01.txt", delimiter=",")
    assert boxes.shape == (3, 4)
    np.testing.assert_allclose(boxes[0], seq.boxes[0] + [1, 1, 0, 0])
    assert report["preset"] == "siamfc" and report["backend"] == "torch"
    assert 0.0 <= report["metrics"]["success_auc"] <= 1.0
    assert os.path.isfile(tmp_path / "o" / "metrics.txt")
