"""Readers: generated folders in every layout read back to the generator's exact ground truth, and the
layout quirks on hand-made folders."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from siamdeploy.errors import ConfigError, InputError
from siamdeploy.eval.datasets import load_dataset, vot_init_box
from siamdeploy.eval.runner import compute_metrics

from .conftest import SIZE


@pytest.mark.parametrize("layout", ["otb", "got10k", "vot", "lasot"])
def test_round_trip_generate_read(layout, layout_root, generated):
    dataset = load_dataset(layout, layout_root(layout))
    assert [len(s) for s in dataset.sequences] == [len(g.frames) for g in generated]
    for seq, gen in zip(dataset.sequences, generated):
        assert seq.image_size == SIZE
        assert seq.frame(0).shape == (SIZE[1], SIZE[0], 3)
        if layout == "vot":
            np.testing.assert_allclose(seq.polygons, gen.polygons, atol=1e-9)
            np.testing.assert_allclose(seq.boxes, [vot_init_box(p) for p in gen.polygons], atol=1e-9)
            axis_aligned = np.isclose(gen.polygons[:, 1], gen.polygons[:, 3])
            np.testing.assert_allclose(seq.boxes[axis_aligned], gen.boxes[axis_aligned], atol=1e-9)
        else:
            np.testing.assert_allclose(seq.boxes, gen.boxes, atol=1e-9)
        if layout in ("got10k", "lasot"):
            np.testing.assert_array_equal(seq.absent, gen.absent)
        if layout == "got10k":
            np.testing.assert_array_equal(seq.cover, gen.cover)
        if layout == "lasot":
            np.testing.assert_array_equal(seq.extra["full_occlusion"], gen.full_occlusion)
            np.testing.assert_array_equal(seq.extra["out_of_view"], gen.out_of_view)


def test_files_are_one_based(layout_root, generated):
    with open(os.path.join(layout_root("otb"), "Synth01", "groundtruth_rect.txt")) as fh:
        first = [float(v) for v in fh.readline().split(",")]
    np.testing.assert_allclose(first, generated[0].boxes[0] + [1, 1, 0, 0])
    with open(os.path.join(layout_root("vot"), "synth01", "groundtruth.txt")) as fh:
        first = [float(v) for v in fh.readline().split(",")]
    np.testing.assert_allclose(first, generated[0].polygons[0])          # VOT: as is (0-based)


def _touch_images(folder: str, count: int, digits: int = 4) -> None:
    os.makedirs(folder, exist_ok=True)
    for i in range(1, count + 1):
        open(os.path.join(folder, f"{i:0{digits}d}.jpg"), "wb").close()


def test_otb_separators_two_targets_and_start_frame(tmp_path):
    seq = tmp_path / "Jogging"
    _touch_images(str(seq / "img"), 4)
    (seq / "groundtruth_rect.1.txt").write_text("1\t2\t3\t4\n5 6 7 8\n9,10,11,12\n13, 14, 15, 16\n")
    (seq / "groundtruth_rect.2.txt").write_text("2,2,3,3\n" * 4)
    david = tmp_path / "David"
    _touch_images(str(david / "img"), 303)
    (david / "groundtruth_rect.txt").write_text("10,20,30,40\n" * 3)
    football = tmp_path / "Football1"
    _touch_images(str(football / "img"), 10)
    (football / "groundtruth_rect.txt").write_text("1,1,5,5\n" * 6)
    dataset = load_dataset("otb", str(tmp_path))
    by_name = {s.name: s for s in dataset.sequences}
    assert sorted(by_name) == ["David", "Football1", "Jogging.1", "Jogging.2"]
    np.testing.assert_allclose(by_name["Jogging.1"].boxes, [[0, 1, 3, 4], [4, 5, 7, 8], [8, 9, 11, 12],
                                                            [12, 13, 15, 16]])
    assert os.path.basename(by_name["David"].frame_paths[0]) == "0300.jpg"
    assert len(by_name["David"]) == 3
    assert [os.path.basename(p) for p in by_name["Football1"].frame_paths] == [f"{i:04d}.jpg" for i in range(1, 7)]


def test_otb_errors_name_file_and_line(tmp_path):
    seq = tmp_path / "Bad"
    _touch_images(str(seq / "img"), 3)
    (seq / "groundtruth_rect.txt").write_text("1,2,3,4\n1,2,3\n1,2,3,4\n")
    with pytest.raises(InputError, match=r"groundtruth_rect\.txt:2: expected 4 numbers, got 3"):
        load_dataset("otb", str(tmp_path))
    (seq / "groundtruth_rect.txt").write_text("1,2,3,4\n" * 5)
    with pytest.raises(InputError, match="5 annotations .* only 3 images"):
        load_dataset("otb", str(tmp_path))


def test_got10k_subset_detection_and_test_subset(tmp_path):
    seq = tmp_path / "test" / "GOT-10k_Test_000001"
    _touch_images(str(seq), 5, digits=8)
    (seq / "groundtruth.txt").write_text("11,21,30,40\n")
    (tmp_path / "test" / "list.txt").write_text("GOT-10k_Test_000001\n")
    dataset = load_dataset("got10k", str(tmp_path))             # finds test/ under the root
    s = dataset.sequences[0]
    np.testing.assert_allclose(s.boxes[0], [10, 20, 30, 40])
    assert np.isnan(s.boxes[1:]).all() and not s.has_groundtruth
    assert compute_metrics("got10k", dataset.sequences, [s.boxes]) is None
    with pytest.raises(InputError, match="does not exist"):
        load_dataset("got10k", str(tmp_path), subset="val")


def test_got10k_labels_must_match_frames(tmp_path):
    seq = tmp_path / "S1"
    _touch_images(str(seq), 3, digits=8)
    (seq / "groundtruth.txt").write_text("1,1,5,5\n" * 3)
    (seq / "cover.label").write_text("8\n0\n")
    with pytest.raises(InputError, match="cover.label"):
        load_dataset("got10k", str(tmp_path))
    (seq / "cover.label").write_text("8\n0\n8\n")
    (seq / "absence.label").write_text("0\n0\n1\n")
    s = load_dataset("got10k", str(tmp_path)).sequences[0]
    np.testing.assert_array_equal(s.absent, [False, True, True])


def test_vot_plain_folder_and_mixed_regions(tmp_path):
    seq = tmp_path / "ball"
    seq.mkdir()
    for i in range(1, 4):
        cv2.imwrite(str(seq / f"{i:08d}.jpg"), np.zeros((30, 40, 3), np.uint8))
    (seq / "groundtruth.txt").write_text("1,2,10,20\n0,10,10,0,20,10,10,20\n1,2,10,20\n")
    s = load_dataset("vot", str(tmp_path)).sequences[0]            # no list.txt, no color/
    assert s.image_size == (40, 30) and len(s) == 3
    np.testing.assert_allclose(s.boxes[0], [1, 2, 10, 20])           # VOT boxes are not shifted
    np.testing.assert_allclose(s.polygons[0], [1, 2, 11, 2, 11, 22, 1, 22])
    np.testing.assert_allclose(s.boxes[1], vot_init_box([0, 10, 10, 0, 20, 10, 10, 20]))
    (seq / "groundtruth.txt").write_text("1,2,10,20\n1,2,3,4,5\n1,2,10,20\n")
    with pytest.raises(InputError, match="expected 4 or 8 numbers"):
        load_dataset("vot", str(tmp_path))


def test_lasot_flat_layout_absent_flags(tmp_path):
    seq = tmp_path / "cat-3"
    _touch_images(str(seq / "img"), 4, digits=8)
    (seq / "groundtruth.txt").write_text("5,6,7,8\n" * 4)
    (seq / "full_occlusion.txt").write_text("0,1,0,0")
    (seq / "out_of_view.txt").write_text("0,0,0,1\n")
    s = load_dataset("lasot", str(tmp_path)).sequences[0]
    np.testing.assert_array_equal(s.absent, [False, True, False, True])
    np.testing.assert_allclose(s.boxes[0], [4, 5, 7, 8])


def test_unknown_dataset_and_missing_root(tmp_path):
    with pytest.raises(ConfigError, match="known: otb, got10k, vot, lasot"):
        load_dataset("trackingnet", str(tmp_path))
    with pytest.raises(InputError, match="is not a folder"):
        load_dataset("vot", str(tmp_path / "missing"))
    with pytest.raises(InputError, match="no OTB sequences"):
        load_dataset("otb", str(tmp_path))
