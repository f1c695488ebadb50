"""Result-file formats, the sequence generator's ground truth, and the plots."""
from __future__ import annotations

import os
import sys

import cv2
import numpy as np
import pytest

from siamdeploy.errors import DependencyError, InputError
from siamdeploy.eval.generate import generate_benchmark_sequence
from siamdeploy.eval.writers import (read_box_results, read_vot_results, write_got10k_results, write_otb_results,
                                     write_vot_results)


def test_otb_results_one_based_lines(tmp_path):
    boxes = np.array([[0, 0, 10, 20], [1.5, 2.25, 3, 4]])
    path = write_otb_results(str(tmp_path), "Basketball", boxes)
    assert path == str(tmp_path / "Basketball.txt")
    assert open(path).read().splitlines() == ["1.0000,1.0000,10.0000,20.0000", "2.5000,3.2500,3.0000,4.0000"]
    np.testing.assert_allclose(read_box_results(path), boxes)


def test_got10k_results_layout(tmp_path):
    boxes = np.array([[4, 5, 6, 7], [8, 9, 10, 11]], np.float64)
    path = write_got10k_results(str(tmp_path), "GOT-10k_Val_000001", boxes, times=[0.5, 0.025])
    folder = tmp_path / "GOT-10k_Val_000001"
    assert path == str(folder / "GOT-10k_Val_000001_001.txt")
    assert open(path).read().splitlines()[1] == "9.0000,10.0000,10.0000,11.0000"
    assert [float(v) for v in open(folder / "GOT-10k_Val_000001_time.txt").read().split()] == [0.5, 0.025]


def test_vot_baseline_codes_and_regions(tmp_path):
    polygon = np.arange(8, dtype=np.float64)
    trajectory = [1, np.array([1.0, 2.0, 3.0, 4.0]), 2, 0, 0, 0, 0, 1, polygon]
    path = write_vot_results(str(tmp_path), "ball1", trajectory, times=[0.1] * 9)
    assert path == str(tmp_path / "baseline" / "ball1" / "ball1_001.txt")
    lines = open(path).read().splitlines()
    assert lines[0] == "1" and lines[2] == "2" and lines[3:7] == ["0"] * 4 and lines[7] == "1"
    assert lines[1] == "1.0000,2.0000,3.0000,4.0000"
    assert len(lines[8].split(",")) == 8
    back = read_vot_results(path)
    assert back[0] == 1 and back[2] == 2 and back[5] == 0
    np.testing.assert_allclose(back[8], polygon)
    assert os.path.isfile(tmp_path / "baseline" / "ball1" / "ball1_time.txt")


def test_generator_is_seeded_and_exact():
    a = generate_benchmark_sequence(seed=3, num_frames=6, size=(96, 72), attributes=("scale", "aspect"),
                                    images="procedural")
    b = generate_benchmark_sequence(seed=3, num_frames=6, size=(96, 72), attributes=("scale", "aspect"),
                                    images="procedural")
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames))
    assert not np.array_equal(a.boxes[0], a.boxes[-1])            # scale / aspect change
    for frame, (x, y, w, h) in zip(a.frames, a.boxes.astype(int)):
        drawn = cv2.resize(a.target_patch, (w, h), interpolation=cv2.INTER_LINEAR)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, 96), min(y + h, 72)
        np.testing.assert_array_equal(frame[y0:y1, x0:x1], drawn[y0 - y:y1 - y, x0 - x:x1 - x])
    assert np.all(a.visible == 1.0) and np.all(a.cover == 8)


def test_generator_attributes_set_the_labels(generated):
    occluded, out_of_view, rotated = generated
    for seq in generated:
        assert seq.visible[0] == 1.0                                   # the first frame shows the target
    assert occluded.full_occlusion.any() and not occluded.out_of_view.any()
    assert (occluded.cover[occluded.full_occlusion] == 0).all()
    assert ((occluded.cover > 0) & (occluded.cover < 8)).any()         # partial occlusion on the way
    assert out_of_view.out_of_view.any() and not out_of_view.full_occlusion.any()
    height, width = out_of_view.frames[0].shape[:2]
    for x, y, w, h in out_of_view.boxes[out_of_view.out_of_view]:
        assert x >= width or y >= height or x + w <= 0 or y + h <= 0
    corners = rotated.polygons.reshape(-1, 4, 2)
    assert not np.allclose(corners[:, 0, 1], corners[:, 1, 1])         # rotated quadrilaterals somewhere
    np.testing.assert_allclose(corners.min(axis=1)[:, 0], rotated.boxes[:, 0] + 0.5, atol=0.51)


def test_generator_rejects_bad_arguments():
    with pytest.raises(InputError, match="unknown attribute"):
        generate_benchmark_sequence(num_frames=3, attributes=("wobble",))
    with pytest.raises(InputError, match="at least 1 frame"):
        generate_benchmark_sequence(num_frames=0)


def test_plots_write_png(tmp_path):
    pytest.importorskip("matplotlib")
    from siamdeploy.eval.plots import precision_plot, success_plot

    curve = np.linspace(1, 0, 21)
    path = success_plot(str(tmp_path / "s.png"), {"a": curve, "b": curve * 0.5})
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    path = precision_plot(str(tmp_path / "p.png"), {"a": np.linspace(0, 1, 51)})
    assert os.path.getsize(path) > 1000


def test_plots_without_matplotlib_say_what_to_install(monkeypatch, tmp_path):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    from siamdeploy.eval.plots import success_plot

    with pytest.raises(DependencyError, match=r"pip install 'siamdeploy\[bench\]'"):
        success_plot(str(tmp_path / "s.png"), {"a": np.ones(21)})
