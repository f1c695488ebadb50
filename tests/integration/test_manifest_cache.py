"""The typed export manifest (format version, schema, file names that stay inside the folder) and the
on-the-fly export cache (keyed by every preset parameter, so an edited config.yaml reaches every backend)."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import yaml

import siamdeploy
from siamdeploy.synthetic import generate_sequence
from siamdeploy.backends.registry import LoadRequest, configurations, load_engine
from siamdeploy.errors import ConfigError, ExportError
from siamdeploy.manifest import FORMAT_VERSION, read_manifest


@pytest.fixture(scope="module")
def siamfc_export(random_checkpoint, tmp_path_factory) -> str:
    from siamdeploy.checkpoint import load_model
    from siamdeploy.export.exporter import export_model

    folder = str(tmp_path_factory.mktemp("manifest") / "siamfc")
    export_model(load_model(random_checkpoint("siamfc"), preset="siamfc"), folder, validate=False, progress=False)
    return folder


def _copy_with(folder: str, tmp_path, edit) -> str:  # noqa: ANN001
    out = str(tmp_path / "copy")
    shutil.copytree(folder, out)
    path = os.path.join(out, "manifest.json")
    with open(path) as fh:
        data = json.load(fh)
    edit(data)
    with open(path, "w") as fh:
        json.dump(data, fh)
    return out


def test_manifest_is_typed(siamfc_export) -> None:
    m = read_manifest(siamfc_export)
    assert m.format_version == FORMAT_VERSION and m.preset.name == "siamfc" and m.family == "siamfc"
    assert m.graph("search", "fp32").file == "search.onnx" and m.kernel_names() == ("kernel",)
    assert m.search_graphs("fp32")[255].name == "search" and m.precisions == ("fp32",)
    with pytest.raises(ExportError, match="no fp16 'search' graph.*--precision fp16"):
        m.graph("search", "fp16")


def test_another_package_version_of_the_same_format_loads(siamfc_export, tmp_path) -> None:
    folder = _copy_with(siamfc_export, tmp_path, lambda d: d.update(siamdeploy_version="0.0.1"))
    siamdeploy.load_tracker(folder, backend="onnxruntime").close()


def test_old_format_is_refused_with_the_reexport_command(siamfc_export, tmp_path) -> None:
    folder = _copy_with(siamfc_export, tmp_path, lambda d: d.update(format_version=1, siamdeploy_version="0.1.0"))
    with pytest.raises(ExportError, match=r"export format 1 \(written by siamdeploy 0.1.0\).*siamdeploy.export"):
        siamdeploy.load_tracker(folder, backend="onnxruntime")


@pytest.mark.parametrize("bad_file", ["../../etc/passwd", "/etc/passwd", "sub/search.onnx", "..", ""])
def test_file_entries_must_stay_inside_the_folder(siamfc_export, tmp_path, bad_file) -> None:
    folder = _copy_with(siamfc_export, tmp_path,
                        lambda d: d["graphs"]["search"]["fp32"].update(file=bad_file))
    with pytest.raises(ExportError, match="not a plain file name"):
        read_manifest(folder)


def test_symlink_leading_out_is_refused(siamfc_export, tmp_path) -> None:
    folder = _copy_with(siamfc_export, tmp_path, lambda d: None)
    outside = tmp_path / "outside.onnx"
    shutil.move(os.path.join(folder, "search.onnx"), outside)
    os.symlink(outside, os.path.join(folder, "search.onnx"))
    with pytest.raises(ExportError, match="leads outside the export folder"):
        read_manifest(folder)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(graphs=[]), "graphs must be dict"),
    (lambda d: d["graphs"]["search"]["fp32"].update(instance_size="255"), "instance_size must be int"),
    (lambda d: d["graphs"]["search"]["fp32"].pop("sha256"), "lacks graphs.search.fp32.sha256"),
    (lambda d: d["graphs"]["search"]["fp32"].update(role="evil"), "unknown role"),
    (lambda d: d["preset"]["track"].update(not_a_field=1), "does not know"),
    (lambda d: d.update(opset=True), "opset must be int"),
])
def test_malformed_manifest_gets_one_line(siamfc_export, tmp_path, edit, message) -> None:  # noqa: ANN001
    folder = _copy_with(siamfc_export, tmp_path, edit)
    with pytest.raises(ExportError, match=message) as info:
        read_manifest(folder)
    assert "\n" not in str(info.value)


def test_changed_file_is_refused(siamfc_export, tmp_path) -> None:
    folder = _copy_with(siamfc_export, tmp_path, lambda d: None)
    with open(os.path.join(folder, "search.onnx"), "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ExportError, match="changed after export"):
        read_manifest(folder)


def test_preset_that_disagrees_with_an_export_folder_is_refused(siamfc_export) -> None:
    refused = "preset 'siamrpn_alex_dwxcorr' disagrees with export folder .* exported for preset 'siamfc'"
    with pytest.raises(ConfigError, match=refused):
        siamdeploy.load_tracker(siamfc_export, backend="onnxruntime", preset="siamrpn_alex_dwxcorr")
    siamdeploy.load_tracker(siamfc_export, backend="onnxruntime", preset="siamfc").close()  # agreeing is fine


def _alex_config(path: str, lr: float) -> str:
    cfg = {"META_ARC": "siamrpn_alex_dwxcorr",
           "BACKBONE": {"TYPE": "alexnetlegacy", "KWARGS": {"width_mult": 1.0}}, "ADJUST": {"ADJUST": False},
           "RPN": {"TYPE": "DepthwiseRPN", "KWARGS": {"anchor_num": 5, "in_channels": 256, "out_channels": 256}},
           "MASK": {"MASK": False},
           "ANCHOR": {"STRIDE": 8, "RATIOS": [0.33, 0.5, 1, 2, 3], "SCALES": [8], "ANCHOR_NUM": 5},
           "TRACK": {"TYPE": "SiamRPNTracker", "PENALTY_K": 0.16, "WINDOW_INFLUENCE": 0.4, "LR": lr,
                     "EXEMPLAR_SIZE": 127, "INSTANCE_SIZE": 287, "BASE_SIZE": 0, "CONTEXT_AMOUNT": 0.5}}
    with open(path, "w") as fh:
        yaml.safe_dump(cfg, fh)
    return path


def test_edited_config_reaches_every_backend(random_checkpoint, tmp_path, monkeypatch) -> None:
    """Regression: the export cache was keyed on preset name + checkpoint, so an edited TRACK.LR kept the old
    value on onnxruntime/TensorRT while torch used the new one."""
    monkeypatch.setenv("SIAMDEPLOY_CACHE", str(tmp_path / "cache"))
    ckpt = random_checkpoint("siamrpn_alex_dwxcorr")
    config = str(tmp_path / "config.yaml")
    seq = generate_sequence(seed=3, num_frames=4, size=(320, 240))
    runnable = sorted({c.backend.name for c in configurations() if c.ok and c.backend.takes_checkpoint
                       and c.precision == "fp32" and c.device == "cpu"})
    assert {"torch", "onnxruntime"} <= set(runnable)
    boxes: dict[tuple[str, float], np.ndarray] = {}
    for lr in (0.3, 0.9):
        _alex_config(config, lr)
        for backend in runnable:
            tracker = siamdeploy.load_tracker(ckpt, config=config, backend=backend, device="cpu")
            assert tracker.params.lr == lr, f"{backend} tracks with lr {tracker.params.lr}, the config says {lr}"
            tracker.init(seq.frames[0], seq.boxes[0])
            boxes[backend, lr] = np.array([tracker.track(f).bbox for f in seq.frames[1:]])
            tracker.close()
    for backend in runnable:  # the new value changes the boxes the same way on every backend
        assert np.abs(boxes[backend, 0.9] - boxes["torch", 0.9]).max() <= 0.05
        assert np.abs(boxes[backend, 0.3] - boxes["torch", 0.3]).max() <= 0.05
    assert np.abs(boxes["torch", 0.9] - boxes["torch", 0.3]).max() > 0.01
    assert len(os.listdir(tmp_path / "cache" / "exports")) == 2  # one export per config, no lock left behind


def test_unknown_backend_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown backend 'onnxruntim'. Did you mean 'onnxruntime'"):
        load_engine("onnxruntim", LoadRequest("model.pth"))


def test_bad_precision_or_device_is_refused_before_loading(tmp_path) -> None:
    missing = str(tmp_path / "nothing.pth")  # never read: the request is refused first
    with pytest.raises(ConfigError, match="runs fp16 on CUDA only"):
        load_engine("torch", LoadRequest(missing, device="cpu", precision="fp16"))
    with pytest.raises(ConfigError, match="runs on cpu, cuda, not 'tpu'"):
        load_engine("torch", LoadRequest(missing, device="tpu"))
    with pytest.raises(ConfigError, match="not 'int4'"):
        load_engine("onnxruntime", LoadRequest(missing, precision="int4"))
