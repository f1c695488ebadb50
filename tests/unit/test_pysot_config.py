"""pysot ``config.yaml`` reading (docs/checkpoints.md#pysot-configyaml). The configs are written here from the
preset table (docs/codebases.md#presets) in pysot's file structure; the expected values are the table's."""
from __future__ import annotations

import logging
from typing import Any

import pytest
import yaml

from siamdeploy.errors import ConfigError
from siamdeploy.pysot_config import read_pysot_config

PYSOT_ANCHOR = {"STRIDE": 8, "RATIOS": [0.33, 0.5, 1, 2, 3], "SCALES": [8], "ANCHOR_NUM": 5}
RATIOS = (0.33, 0.5, 1.0, 2.0, 3.0)


def _track(tracker: str, k: float, wi: float, lr: float, instance: int, base: int, **extra: Any) -> dict:
    return {"TYPE": tracker, "PENALTY_K": k, "WINDOW_INFLUENCE": wi, "LR": lr, "EXEMPLAR_SIZE": 127,
            "INSTANCE_SIZE": instance, "BASE_SIZE": base, "CONTEXT_AMOUNT": 0.5, **extra}


def _alex(k: float, wi: float, lr: float) -> dict:
    return {"META_ARC": "siamrpn_alex_dwxcorr",
            "BACKBONE": {"TYPE": "alexnetlegacy", "KWARGS": {"width_mult": 1.0}},
            "ADJUST": {"ADJUST": False},
            "RPN": {"TYPE": "DepthwiseRPN", "KWARGS": {"anchor_num": 5, "in_channels": 256, "out_channels": 256}},
            "MASK": {"MASK": False}, "ANCHOR": PYSOT_ANCHOR,
            "TRACK": _track("SiamRPNTracker", k, wi, lr, 287, 0)}


def _r50(k: float, wi: float, lr: float, weighted: bool, out: list[int], tracker: str, **extra: Any) -> dict:
    return {"META_ARC": "siamrpn_r50_l234_dwxcorr",
            "BACKBONE": {"TYPE": "resnet50", "KWARGS": {"used_layers": [2, 3, 4]}},
            "ADJUST": {"ADJUST": True, "TYPE": "AdjustAllLayer",
                       "KWARGS": {"in_channels": [512, 1024, 2048], "out_channels": out}},
            "RPN": {"TYPE": "MultiRPN", "KWARGS": {"anchor_num": 5, "in_channels": out, "weighted": weighted}},
            "MASK": {"MASK": False}, "ANCHOR": PYSOT_ANCHOR,
            "TRACK": _track(tracker, k, wi, lr, 255, 8, **extra),
            # training-only sections, present in the real files
            "CUDA": True, "TRAIN": {"EPOCH": 20, "BATCH_SIZE": 28, "BASE_LR": 0.005},
            "DATASET": {"NAMES": ["VID", "COCO"]}}


CONFIGS: dict[str, dict] = {
    "siamrpn_alex_dwxcorr": _alex(0.16, 0.40, 0.30),
    "siamrpn_alex_dwxcorr_otb": _alex(0.16, 0.40, 0.30),
    "siamrpn_mobilev2_l234_dwxcorr": {
        "META_ARC": "siamrpn_mobilev2_l234_dwxcorr",
        "BACKBONE": {"TYPE": "mobilenetv2", "KWARGS": {"used_layers": [3, 5, 7], "width_mult": 1.4}},
        "ADJUST": {"ADJUST": True, "TYPE": "AdjustAllLayer",
                   "KWARGS": {"in_channels": [44, 134, 448], "out_channels": [256, 256, 256]}},
        "RPN": {"TYPE": "MultiRPN", "KWARGS": {"anchor_num": 5, "in_channels": [256, 256, 256], "weighted": False}},
        "MASK": {"MASK": False}, "ANCHOR": PYSOT_ANCHOR,
        "TRACK": _track("SiamRPNTracker", 0.04, 0.4, 0.5, 255, 8)},
    "siamrpn_r50_l234_dwxcorr": _r50(0.05, 0.42, 0.38, True, [256, 256, 256], "SiamRPNTracker"),
    "siamrpn_r50_l234_dwxcorr_otb": _r50(0.24, 0.50, 0.25, False, [256, 256, 256], "SiamRPNTracker"),
    "siammask_r50_l3": {
        "META_ARC": "siamrpn_r50_l234_dwxcorr",
        "BACKBONE": {"TYPE": "resnet50", "KWARGS": {"used_layers": [0, 1, 2, 3]}},
        "ADJUST": {"ADJUST": True, "TYPE": "AdjustAllLayer", "KWARGS": {"in_channels": [1024], "out_channels": [256]}},
        "RPN": {"TYPE": "DepthwiseRPN", "KWARGS": {"anchor_num": 5, "in_channels": 256, "out_channels": 256}},
        "MASK": {"MASK": True, "TYPE": "MaskCorr", "KWARGS": {"in_channels": 256, "hidden": 256, "out_channels": 3969}},
        "REFINE": {"REFINE": True, "TYPE": "Refine"},
        "ANCHOR": PYSOT_ANCHOR,
        "TRACK": _track("SiamMaskTracker", 0.10, 0.41, 0.32, 255, 8, MASK_THERSHOLD=0.15)},
    "siamrpn_r50_l234_dwxcorr_lt": _r50(0.05, 0.28, 0.22, True, [128, 256, 512], "SiamRPNLTTracker",
                                        CONFIDENCE_LOW=0.8, CONFIDENCE_HIGH=0.998),
}

# (backbone, width, used_layers, neck_in, neck_out, head, head_in, weighted, mask, refine)
MODEL = {
    "siamrpn_alex_dwxcorr": ("alexnetlegacy", 1.0, (), (), (), "depthwise_rpn", (256,), False, False, False),
    "siamrpn_alex_dwxcorr_otb": ("alexnetlegacy", 1.0, (), (), (), "depthwise_rpn", (256,), False, False, False),
    "siamrpn_mobilev2_l234_dwxcorr": ("mobilenetv2", 1.4, (3, 5, 7), (44, 134, 448), (256, 256, 256), "multi_rpn",
                                      (256, 256, 256), False, False, False),
    "siamrpn_r50_l234_dwxcorr": ("resnet50", 1.0, (2, 3, 4), (512, 1024, 2048), (256, 256, 256), "multi_rpn",
                                 (256, 256, 256), True, False, False),
    "siamrpn_r50_l234_dwxcorr_otb": ("resnet50", 1.0, (2, 3, 4), (512, 1024, 2048), (256, 256, 256), "multi_rpn",
                                     (256, 256, 256), False, False, False),
    "siammask_r50_l3": ("resnet50", 1.0, (0, 1, 2, 3), (1024,), (256,), "depthwise_rpn", (256,), False, True, True),
    "siamrpn_r50_l234_dwxcorr_lt": ("resnet50", 1.0, (2, 3, 4), (512, 1024, 2048), (128, 256, 512), "multi_rpn",
                                    (128, 256, 512), True, False, False),
}

# (tracker, penalty_k, window_influence, lr, instance, base, score size N = (instance-127)//8 + 1 + base)
TRACK = {
    "siamrpn_alex_dwxcorr": ("siamrpn", 0.16, 0.40, 0.30, 287, 0, 21),        # 160//8 + 1 + 0 = 21
    "siamrpn_alex_dwxcorr_otb": ("siamrpn", 0.16, 0.40, 0.30, 287, 0, 21),
    "siamrpn_mobilev2_l234_dwxcorr": ("siamrpn", 0.04, 0.40, 0.50, 255, 8, 25),  # 128//8 + 1 + 8 = 25
    "siamrpn_r50_l234_dwxcorr": ("siamrpn", 0.05, 0.42, 0.38, 255, 8, 25),
    "siamrpn_r50_l234_dwxcorr_otb": ("siamrpn", 0.24, 0.50, 0.25, 255, 8, 25),
    "siammask_r50_l3": ("siammask", 0.10, 0.41, 0.32, 255, 8, 25),
    "siamrpn_r50_l234_dwxcorr_lt": ("siamrpn_lt", 0.05, 0.28, 0.22, 255, 8, 25),
}


def _write(tmp_path, name: str, content: dict | str) -> str:
    folder = tmp_path / name
    folder.mkdir()
    path = folder / "config.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
    return str(path)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_pysot_experiment_configs(tmp_path, caplog, name):
    path = _write(tmp_path, name, CONFIGS[name])
    with caplog.at_level(logging.WARNING):
        preset = read_pysot_config(path)
    assert preset.name == name                      # named after the experiment folder
    m, t = preset.model, preset.track
    backbone, width, used, neck_in, neck_out, head, head_in, weighted, mask, refine = MODEL[name]
    assert (m.backbone, m.width_mult, m.used_layers) == (backbone, width, used)
    assert (m.neck_in, m.neck_out) == (neck_in, neck_out)
    assert (m.head, m.head_in, m.anchor_num, m.weighted) == (head, head_in, 5, weighted)
    assert (m.mask, m.refine) == (mask, refine)
    tracker, k, wi, lr, instance, base, n = TRACK[name]
    assert t.tracker == tracker
    assert (t.penalty_k, t.window_influence, t.lr) == pytest.approx((k, wi, lr))
    assert (t.exemplar_size, t.instance_size, t.base_size, t.context_amount) == (127, instance, base, 0.5)
    assert t.score_size() == n
    assert (t.stride, t.ratios, t.scales, t.anchor_num) == (8, RATIOS, (8.0,), 5)
    if name == "siammask_r50_l3":
        assert t.mask_threshold == pytest.approx(0.15)
    if name == "siamrpn_r50_l234_dwxcorr_lt":
        assert (t.confidence_low, t.confidence_high) == pytest.approx((0.8, 0.998))
        assert t.lost_instance_size == 831 and t.score_size(831) == 97     # 704//8 + 1 + 8 = 97
    # clean configs (training sections included) are read without warnings
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_configs_agree_with_preset_table(tmp_path, name):
    from siamdeploy.presets import get_preset
    preset = read_pysot_config(_write(tmp_path, name, CONFIGS[name]))
    table = get_preset(name)
    assert preset.model == table.model
    assert preset.track == table.track


def test_legacy_keys_only(tmp_path, caplog):
    """Keys stock pysot rejects carry the information here (no KWARGS for layers/channels/weighting)."""
    cfg = {"META_ARC": "siamrpn_r50_l234_dwxcorr",
           "BACKBONE": {"TYPE": "resnet50", "LAYERS": [2, 3, 4], "CHANNELS": [512, 1024, 2048]},
           "ADJUST": {"ADJUST": True, "TYPE": "AdjustAllLayer", "ADJUST_CHANNEL": [256, 256, 256]},
           "RPN": {"TYPE": "MultiRPN", "WEIGHTED": True, "KWARGS": {"anchor_num": 5, "in_channels": [256, 256, 256]}},
           "MASK": {"MASK": False}, "ANCHOR": PYSOT_ANCHOR,
           "TRACK": _track("SiamRPNTracker", 0.05, 0.42, 0.38, 255, 8)}
    with caplog.at_level(logging.WARNING):
        preset = read_pysot_config(_write(tmp_path, "legacy", cfg))
    m = preset.model
    assert m.used_layers == (2, 3, 4)
    assert m.neck_in == (512, 1024, 2048) and m.neck_out == (256, 256, 256)
    assert m.weighted is True
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    for key in ("BACKBONE.LAYERS", "BACKBONE.CHANNELS", "ADJUST.ADJUST_CHANNEL", "RPN.WEIGHTED"):
        assert key in warnings


def test_legacy_keys_next_to_kwargs(tmp_path, caplog):
    """The long-term model's published config carries the legacy keys as well as KWARGS."""
    cfg = CONFIGS["siamrpn_r50_l234_dwxcorr_lt"]
    cfg = {**cfg, "BACKBONE": {**cfg["BACKBONE"], "CHANNELS": [512, 1024, 2048]},
           "ADJUST": {**cfg["ADJUST"], "ADJUST_CHANNEL": [128, 256, 512]},
           "RPN": {**cfg["RPN"], "WEIGHTED": True}}
    with caplog.at_level(logging.WARNING):
        preset = read_pysot_config(_write(tmp_path, "siamrpn_r50_l234_dwxcorr_lt", cfg))
    assert preset.model.neck_out == (128, 256, 512) and preset.model.head_in == (128, 256, 512)
    assert preset.model.weighted is True and preset.track.tracker == "siamrpn_lt"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings
    text = " ".join(r.getMessage() for r in warnings)
    for key in ("BACKBONE.CHANNELS", "ADJUST.ADJUST_CHANNEL", "RPN.WEIGHTED"):
        assert key in text


# ---------------------------------------------------------------- errors
def _config_error(path) -> str:
    """The one-line ConfigError message, with the path replaced by <path> (tmp folder names contain
    test names, which must not satisfy the substring checks)."""
    with pytest.raises(ConfigError) as err:
        read_pysot_config(path)
    msg = str(err.value)
    assert msg and "\n" not in msg
    return msg.replace(str(path), "<path>")


def test_missing_file(tmp_path):
    assert "does not exist" in _config_error(tmp_path / "config.yaml")


def test_directory(tmp_path):
    _config_error(tmp_path)


def test_malformed_yaml(tmp_path):
    path = _write(tmp_path, "bad", "BACKBONE:\n  TYPE: [resnet50\nRPN:\n  TYPE: MultiRPN\n")
    assert "YAML" in _config_error(path)


@pytest.mark.parametrize("content", ["- BACKBONE\n- RPN\n", "42\n", "just a sentence\n", ""],
                         ids=["list", "number", "string", "empty"])
def test_not_a_mapping(tmp_path, content):
    assert "mapping" in _config_error(_write(tmp_path, "x", content))


def test_binary_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    _config_error(path)


def test_unknown_backbone(tmp_path):
    cfg = {**CONFIGS["siamrpn_alex_dwxcorr"], "BACKBONE": {"TYPE": "vgg16"}}
    msg = _config_error(_write(tmp_path, "vgg", cfg))
    assert "vgg16" in msg and "resnet50" in msg and "alexnetlegacy" in msg


def test_missing_backbone_type(tmp_path):
    cfg = {k: v for k, v in CONFIGS["siamrpn_alex_dwxcorr"].items() if k != "BACKBONE"}
    assert "BACKBONE.TYPE" in _config_error(_write(tmp_path, "nobackbone", cfg))


def test_section_not_a_mapping(tmp_path):
    cfg = {**CONFIGS["siamrpn_alex_dwxcorr"], "BACKBONE": "resnet50"}
    assert "BACKBONE" in _config_error(_write(tmp_path, "flat", cfg))


def test_unknown_rpn_type(tmp_path):
    cfg = {**CONFIGS["siamrpn_alex_dwxcorr"], "RPN": {"TYPE": "TransformerHead"}}
    assert "TransformerHead" in _config_error(_write(tmp_path, "rpn", cfg))


def test_unknown_tracker_type(tmp_path):
    cfg = CONFIGS["siamrpn_alex_dwxcorr"]
    cfg = {**cfg, "TRACK": {**cfg["TRACK"], "TYPE": "SiamCARTracker"}}
    assert "SiamCARTracker" in _config_error(_write(tmp_path, "trk", cfg))


def test_adjust_channel_lengths_disagree(tmp_path):
    cfg = CONFIGS["siamrpn_r50_l234_dwxcorr"]
    cfg = {**cfg, "ADJUST": {"ADJUST": True, "KWARGS": {"in_channels": [512, 1024, 2048], "out_channels": [256]}}}
    _config_error(_write(tmp_path, "adj", cfg))


def test_anchor_count_disagrees(tmp_path):
    cfg = CONFIGS["siamrpn_alex_dwxcorr"]
    cfg = {**cfg, "ANCHOR": {**PYSOT_ANCHOR, "RATIOS": [0.5, 1, 2]}}     # 3 anchors vs anchor_num 5
    assert "anchor" in _config_error(_write(tmp_path, "anc", cfg)).lower()


def test_load_tracker_with_config(tmp_path):
    """A config file supplies the tracker parameters of a checkpoint (small AlexNet model, no forward)."""
    import torch

    from siamdeploy import load_tracker
    from siamdeploy.models import SiameseNet
    from siamdeploy.presets import get_preset
    cfg = CONFIGS["siamrpn_alex_dwxcorr"]
    cfg = {**cfg, "TRACK": {**cfg["TRACK"], "PENALTY_K": 0.2, "LR": 0.5}}
    path = _write(tmp_path, "my_alex_experiment", cfg)
    weights = tmp_path / "model.pth"
    torch.save(SiameseNet(get_preset("siamrpn_alex_dwxcorr").model).state_dict(), weights)
    tracker = load_tracker(weights, config=path, device="cpu")
    assert tracker.name == "my_alex_experiment"
    assert (tracker.params.penalty_k, tracker.params.lr, tracker.params.window_influence) == (0.2, 0.5, 0.4)
