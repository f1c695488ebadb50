"""Checkpoint reading and loading: clear one-line errors for bad files, and the supported layouts
(docs/checkpoints.md#key-layouts) load into the right tensors.

Models are randomly initialised small AlexNet-family networks (siamfc, siamrpn_alex_dwxcorr,
dasiamrpn_vot); no forward pass runs.
"""
from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch

from siamdeploy import load_tracker
from siamdeploy.checkpoint import guess_preset, read_state_dict, to_canonical
from siamdeploy.errors import CheckpointError, ConfigError
from siamdeploy.models import SiameseNet
from siamdeploy.presets import PRESETS, get_preset


class TrainingArgs:
    """A custom class, as training scripts pickle into snapshots: needs full unpickling to load."""

    def __init__(self, lr: float) -> None:
        self.lr = lr


def _message(err: pytest.ExceptionInfo, *paths: object) -> str:
    """The one-line message, with the given paths replaced by <path> (tmp folder names contain test
    names, which must not satisfy the substring checks)."""
    msg = str(err.value)
    assert msg and "\n" not in msg, f"error message is not one line: {msg!r}"
    for path in paths:
        msg = msg.replace(str(path), "<path>")
    return msg


def _state(preset: str, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return SiameseNet(get_preset(preset).model).state_dict()


def _without_counters(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def _assert_loaded(tracker, expected: dict[str, torch.Tensor]) -> None:
    """Every expected tensor landed under its siamdeploy name."""
    got = tracker.engine.net.state_dict()
    for key, value in _without_counters(expected).items():
        assert torch.equal(got[key].cpu(), value), key


@pytest.fixture(scope="module")
def siamfc_state() -> dict[str, torch.Tensor]:
    return _state("siamfc", 0)


@pytest.fixture(scope="module")
def siamfc_file(siamfc_state, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("siamfc") / "siamfc_alexnet_e50.pth"
    torch.save(siamfc_state, path)
    return str(path)


SMALL = {"backbone.conv1.0.weight": torch.arange(96 * 3 * 11 * 11, dtype=torch.float32).reshape(96, 3, 11, 11)}


# ---------------------------------------------------------------- unreadable files
def test_missing_file(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    assert "does not exist" in _message(err, path) and "nope.pth" in str(err.value)
    with pytest.raises(CheckpointError):
        load_tracker(path, device="cpu")


def test_directory(tmp_path):
    with pytest.raises(CheckpointError) as err:
        read_state_dict(tmp_path)
    assert "folder" in _message(err, tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "model.pth"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    assert "empty (0 bytes)" in _message(err, path)
    with pytest.raises(CheckpointError):
        load_tracker(path, device="cpu")


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_truncated_checkpoint(tmp_path, zip_format):
    full = tmp_path / "full.pth"
    torch.save(SMALL, full, _use_new_zipfile_serialization=zip_format)
    data = full.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        read_state_dict(cut)
    msg = _message(err, cut)
    assert "truncated" in msg and "<path>" in msg
    assert "allow_unsafe_pickle" not in msg
    # the intact file reads fine
    assert torch.equal(read_state_dict(full)["backbone.conv1.0.weight"], SMALL["backbone.conv1.0.weight"])


RANDOM_BYTES = bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8))
# Files people end up with instead of weights: noise, a config saved under the wrong name, a Git LFS
# pointer (cloned without LFS), the HTML page Google Drive serves instead of a large file.
NOT_CHECKPOINTS = {
    "random_bytes": RANDOM_BYTES,
    "yaml_text": b"META_ARC: siamrpn_alex_dwxcorr\nBACKBONE:\n  TYPE: alexnetlegacy\n",
    "git_lfs_pointer": (b"version https://git-lfs.github.com/spec/v1\n"
                        b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
                        b"size 361377866\n"),
    "html_page": b"<!DOCTYPE html><html><head><title>Virus scan warning</title></head><body></body></html>",
}


@pytest.mark.parametrize("content", list(NOT_CHECKPOINTS.values()), ids=list(NOT_CHECKPOINTS))
def test_not_a_checkpoint_raises_checkpoint_error(tmp_path, content):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    _message(err)
    # even with the opt-in it is not a checkpoint
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path, allow_unsafe_pickle=True)
    _message(err)
    with pytest.raises(CheckpointError):
        load_tracker(path, device="cpu")


@pytest.mark.parametrize("content", list(NOT_CHECKPOINTS.values()), ids=list(NOT_CHECKPOINTS))
def test_not_a_checkpoint_is_not_blamed_on_pickle_safety(tmp_path, content):
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    assert "allow_unsafe_pickle" not in _message(err, path)


def test_plain_text_file(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello world\n")
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    msg = _message(err, path)
    assert "not a PyTorch" in msg and "allow_unsafe_pickle" not in msg


def test_foreign_zip_file(tmp_path):
    import zipfile
    path = tmp_path / "weights.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "not a checkpoint")
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    _message(err)


# ---------------------------------------------------------------- unsafe pickles
@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_custom_class_needs_opt_in(tmp_path, siamfc_state, zip_format):
    path = tmp_path / "snapshot.pth"
    torch.save({"epoch": 7, "state_dict": siamfc_state, "args": TrainingArgs(0.01)}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    msg = _message(err, path)
    assert "allow_unsafe_pickle" in msg and "<path>" in msg
    with pytest.raises(CheckpointError) as err:
        load_tracker(path, device="cpu")
    assert "allow_unsafe_pickle" in _message(err, path)
    # opting in reads the state dict inside the wrapper
    state = read_state_dict(path, allow_unsafe_pickle=True)
    assert set(state) == set(_without_counters(siamfc_state))
    tracker = load_tracker(path, device="cpu", allow_unsafe_pickle=True)
    assert tracker.name == "siamfc"
    _assert_loaded(tracker, siamfc_state)


def test_custom_class_without_state_dict_fails_after_opt_in(tmp_path):
    path = tmp_path / "args.pth"
    torch.save(TrainingArgs(0.1), path)
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path, allow_unsafe_pickle=True)
    assert "state dict" in _message(err, path)


# ---------------------------------------------------------------- wrong content
def test_tensor_instead_of_state_dict(tmp_path):
    path = tmp_path / "t.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    assert "state dict" in _message(err, path) and "Tensor" in str(err.value)


def test_dict_without_tensors(tmp_path):
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "best_acc": 0.5}, path)
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    msg = _message(err, path)
    assert "no tensors" in msg and "epoch" in msg


def test_keys_match_no_layout(tmp_path):
    path = tmp_path / "unet.pth"
    torch.save({"encoder.0.weight": torch.zeros(2), "decoder.0.bias": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError) as err:
        load_tracker(path, device="cpu")
    msg = _message(err, path)
    assert "layout" in msg and "encoder.0.weight" in msg


def test_wrong_family_names_missing_unexpected_and_likely_preset(siamfc_file):
    with pytest.raises(CheckpointError) as err:
        load_tracker(siamfc_file, preset="dasiamrpn_vot", device="cpu")
    msg = _message(err, os.path.dirname(siamfc_file))
    assert "dasiamrpn_vot" in msg
    assert "missing" in msg and "unexpected" in msg
    # a missing key of the UPChannel model and an unexpected siamfc key are named
    assert "rpn_head." in msg or "backbone.features." in msg
    assert "backbone.conv" in msg
    assert "'siamfc'" in msg


def test_wrong_shape_is_named(tmp_path, siamfc_state):
    state = dict(siamfc_state)
    state["backbone.conv1.0.weight"] = torch.zeros(48, 3, 11, 11)
    path = tmp_path / "narrow.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_tracker(path, preset="siamfc", device="cpu")
    msg = _message(err)
    assert "backbone.conv1.0.weight" in msg and "(48, 3, 11, 11)" in msg and "(96, 3, 11, 11)" in msg


# ---------------------------------------------------------------- presets and arguments
def test_unknown_preset_suggests_close_match():
    with pytest.raises(ConfigError) as err:
        get_preset("siamrpn_alex_dwxcor")
    msg = _message(err)
    assert "Did you mean 'siamrpn_alex_dwxcorr'" in msg
    for name in ("siamfc", "dasiamrpn_big", "siammask_r50_l3", "siamrpn_r50_l234_dwxcorr_lt"):
        assert name in msg
    assert all(name in msg for name in PRESETS)


def test_unknown_preset_without_close_match():
    with pytest.raises(ConfigError) as err:
        get_preset("yolo")
    msg = _message(err)
    assert "Did you mean" not in msg and "siamfc" in msg


def test_load_tracker_unknown_preset(siamfc_file):
    with pytest.raises(ConfigError) as err:
        load_tracker(siamfc_file, preset="siamrpn_alex_dwxcor", device="cpu")
    assert "siamrpn_alex_dwxcorr" in _message(err)


def test_load_tracker_unknown_backend(siamfc_file):
    with pytest.raises(ConfigError) as err:
        load_tracker(siamfc_file, backend="tensorflow", device="cpu")
    assert "tensorflow" in _message(err)


def test_load_tracker_config_and_preset_together(siamfc_file, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("BACKBONE:\n  TYPE: alexnetlegacy\n")
    with pytest.raises(ConfigError) as err:
        load_tracker(siamfc_file, config=cfg, preset="siamfc", device="cpu")
    _message(err)


# ---------------------------------------------------------------- supported layouts
def test_plain_siamfc_state_dict_autodetects(siamfc_file, siamfc_state):
    tracker = load_tracker(siamfc_file, device="cpu")
    assert tracker.name == "siamfc"
    assert tracker.params == get_preset("siamfc").track
    _assert_loaded(tracker, siamfc_state)


@pytest.mark.parametrize("wrapper_key", ["state_dict", "model"])
def test_training_snapshot_with_module_prefix(tmp_path, siamfc_state, wrapper_key):
    snapshot = {
        "epoch": 19,
        wrapper_key: {"module." + k: v for k, v in siamfc_state.items()},
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.01, "momentum": 0.9, "params": [0, 1, 2]}]},
    }
    path = tmp_path / "checkpoint_e19.pth"
    torch.save(snapshot, path)
    state = read_state_dict(path)
    assert set(state) == set(_without_counters(siamfc_state))
    tracker = load_tracker(path, preset="siamfc", device="cpu")
    _assert_loaded(tracker, siamfc_state)


# docs/checkpoints.md#key-layouts: pysot `alexnet` stages layer1..5 <-> alexnetlegacy features indices
ALEXNET_NAMES = {0: "layer1.0", 1: "layer1.1", 4: "layer2.0", 5: "layer2.1", 8: "layer3.0", 9: "layer3.1",
                 11: "layer4.0", 12: "layer4.1", 14: "layer5.0", 15: "layer5.1"}


@pytest.fixture(scope="module")
def alex_state() -> dict[str, torch.Tensor]:
    return _state("siamrpn_alex_dwxcorr", 1)


def _to_pysot_alexnet_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if key.startswith("backbone.features."):
            index, rest = key[len("backbone.features."):].split(".", 1)
            key = f"backbone.{ALEXNET_NAMES[int(index)]}.{rest}"
        out[key] = value
    return out


def test_pysot_alexnet_layer_names_remap(tmp_path, alex_state, caplog):
    renamed = _to_pysot_alexnet_names(alex_state)
    assert "backbone.layer5.1.running_var" in renamed and not any(k.startswith("backbone.features") for k in renamed)
    path = tmp_path / "model.pth"
    torch.save(renamed, path)
    tracker = load_tracker(path, preset="siamrpn_alex_dwxcorr", device="cpu")
    _assert_loaded(tracker, alex_state)
    net = tracker.engine.net
    assert torch.equal(net.backbone.features[4].weight.cpu(), renamed["backbone.layer2.0.weight"])
    assert torch.equal(net.backbone.features[15].running_mean.cpu(), renamed["backbone.layer5.1.running_mean"])
    # without a preset: detected, and the guess is logged with its alternative
    with caplog.at_level(logging.WARNING):
        tracker = load_tracker(path, device="cpu")
    assert tracker.name == "siamrpn_alex_dwxcorr"
    assert "siamrpn_alex_dwxcorr" in caplog.text and "siamrpn_alex_dwxcorr_otb" in caplog.text


# docs/checkpoints.md#key-layouts: DaSiamRPN names
DASIAM_NAMES = [("backbone.features.", "featureExtract."), ("rpn_head.template_loc_conv.", "conv_r1."),
                ("rpn_head.template_cls_conv.", "conv_cls1."), ("rpn_head.search_loc_conv.", "conv_r2."),
                ("rpn_head.search_cls_conv.", "conv_cls2."), ("rpn_head.loc_adjust.", "regress_adjust.")]


def _to_dasiam_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):       # torch 0.3 files have none
            continue
        for ours, theirs in DASIAM_NAMES:
            if key.startswith(ours):
                out[theirs + key[len(ours):]] = value
                break
        else:
            raise AssertionError(f"unmapped key {key}")
    return out


@pytest.fixture(scope="module")
def dasiam_vot(tmp_path_factory) -> tuple[str, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    state = _state("dasiamrpn_vot", 2)
    theirs = _to_dasiam_names(state)
    folder = tmp_path_factory.mktemp("dasiam")
    path = folder / "SiamRPNVOT.model"
    torch.save(theirs, path, _use_new_zipfile_serialization=False)
    return str(path), state, theirs


@pytest.mark.parametrize("file_name, preset", [("SiamRPNVOT.model", "dasiamrpn_vot"),
                                               ("SiamRPNOTB.model", "dasiamrpn_otb")])
def test_dasiamrpn_keys_load_and_detect_by_name(dasiam_vot, file_name, preset):
    path, state, theirs = dasiam_vot
    if os.path.basename(path) != file_name:
        link = os.path.join(os.path.dirname(path), file_name)
        if not os.path.exists(link):
            os.symlink(path, link)
        path = link
    tracker = load_tracker(path, device="cpu")
    assert tracker.name == preset
    assert tracker.params == get_preset(preset).track
    _assert_loaded(tracker, state)
    net = tracker.engine.net
    assert torch.equal(net.rpn_head.template_loc_conv.weight.cpu(), theirs["conv_r1.weight"])
    assert torch.equal(net.rpn_head.template_cls_conv.weight.cpu(), theirs["conv_cls1.weight"])
    assert torch.equal(net.rpn_head.search_loc_conv.weight.cpu(), theirs["conv_r2.weight"])
    assert torch.equal(net.rpn_head.search_cls_conv.weight.cpu(), theirs["conv_cls2.weight"])
    assert torch.equal(net.rpn_head.loc_adjust.bias.cpu(), theirs["regress_adjust.bias"])
    assert torch.equal(net.backbone.features[0].weight.cpu(), theirs["featureExtract.0.weight"])


def _guess_for(path) -> str | None:
    state, layout = to_canonical(read_state_dict(path))
    return guess_preset(state, layout, str(path)).preset


def test_dasiamrpn_detection_by_width_and_default(tmp_path):
    """Stand-in tensors with only the first conv at its real shape: no network matches exactly, and the
    closest one is told by that conv's width (the full width-1 load is tested above)."""
    def stand_in(width: int) -> dict[str, torch.Tensor]:
        return {"featureExtract.0.weight": torch.zeros(width, 3, 11, 11), "featureExtract.0.bias": torch.zeros(width),
                "conv_r1.weight": torch.zeros(1), "conv_cls1.weight": torch.zeros(1), "conv_r2.weight": torch.zeros(1),
                "conv_cls2.weight": torch.zeros(1), "regress_adjust.weight": torch.zeros(1)}
    big = tmp_path / "SiamRPNBIG.model"
    torch.save(stand_in(192), big)
    assert _guess_for(big) == "dasiamrpn_big"
    renamed_big = tmp_path / "weights_vot.model"       # width wins over the file name
    torch.save(stand_in(192), renamed_big)
    assert _guess_for(renamed_big) == "dasiamrpn_big"
    neutral = tmp_path / "dasiamrpn.model"              # width 1, no hint in the name -> VOT
    torch.save(stand_in(96), neutral)
    assert _guess_for(neutral) == "dasiamrpn_vot"
    otb = tmp_path / "my_otb_weights.model"
    torch.save(stand_in(96), otb)
    assert _guess_for(otb) == "dasiamrpn_otb"


def test_siamtrackers_wrapper_with_dasiam_names(tmp_path, dasiam_vot):
    """HonglinChu/SiamTrackers: DaSiamRPN key names inside {'epoch', 'model', 'optimizer'}."""
    _, state, theirs = dasiam_vot
    path = tmp_path / "siamrpn_50.pth"
    torch.save({"epoch": 50, "model": theirs, "optimizer": {"state": {}, "param_groups": []}}, path)
    canonical, layout = to_canonical(read_state_dict(path))
    assert layout.name == "dasiamrpn"
    assert set(canonical) == set(_without_counters(state))
    for key, value in _without_counters(state).items():
        assert torch.equal(canonical[key], value), key
