"""Golden values for the rule variants that distinguish foolwood/SiamMask, haooozi/SiamRPN and
HonglinChu/SiamTrackers from pysot (docs/codebases.md#rule-fields). Expected numbers are worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from siamdeploy.checkpoint.detect import guess_preset
from siamdeploy.checkpoint.layouts import LAYOUTS, fold_rgb_normalisation, to_canonical
from siamdeploy.config import ROUND_HALF_UP
from siamdeploy.presets import get_preset
from siamdeploy.runtime.crop import float_crop, round_by_rule, square_crop
from siamdeploy.runtime.trackers import make_tracker
from siamdeploy.runtime.trackers.mask import mask_polygon, warp_mask_to_frame

from .conftest import ScriptedEngine, make_rpn_maps


def _ramp(h: int = 40, w: int = 50) -> np.ndarray:
    """Pixel (y, x) holds (x, y, 7) so a crop's first pixel names its corner."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.arange(w)[None, :]
    img[..., 1] = np.arange(h)[:, None]
    img[..., 2] = 7
    return img


# --- half-up rounding (haooozi: round(v + 1e-6 + 1000) - 1000)
@pytest.mark.parametrize("value, expected", [
    (2.5, 3), (-2.5, -2), (3.5, 4), (2.4, 2), (-0.5, 0),
    (2.4999995, 3),   # within 1e-6 below the half: the epsilon pushes it up, as upstream does
    (2.499998, 2),
])
def test_round_half_up(value: float, expected: int) -> None:
    assert round_by_rule(value, ROUND_HALF_UP) == expected


# --- foolwood: Python 3 round (half to even) on the crop corner vs pysot floor(x + 0.5)
def test_half_pixel_centre_crop_window_foolwood_vs_pysot() -> None:
    img = _ramp()
    fill = np.array([1, 2, 3], np.uint8)
    # size 5: c = (5+1)/2 = 3; centre x 13.5 -> 13.5 - 3 = 10.5: pysot floor(11.0) = 11, half-even round -> 10
    # centre y 12.5 -> 9.5: pysot floor(10.0) = 10, half-even -> 10
    pysot = square_crop(img, (13.5, 12.5), 5, 5, fill, "floor_half_up")
    foolwood = square_crop(img, (13.5, 12.5), 5, 5, fill, "half_even")
    assert tuple(pysot[0, 0, :2]) == (11, 10)
    assert tuple(foolwood[0, 0, :2]) == (10, 10)


# --- haooozi / SiamTrackers float-inclusive crop
def test_float_crop_floor_width() -> None:
    img = _ramp()
    # side 5.5, centre 10.0: x0 = 10 - 2.25 = 7.75 -> R 8; x1 = 7.75 + 4.5 = 12.25 -> R 12: 5 columns
    patch, height = float_crop(img, (10.0, 10.0), 5.5, 5, np.zeros(3, np.uint8))
    assert height == 5 and patch.shape == (5, 5, 3)


def test_float_crop_non_square_and_scale_from_height() -> None:
    img = _ramp()
    fill = np.array([9, 9, 9], np.uint8)
    # x: centre 10.25 -> x0 = 8.0, x1 = 12.5 -> R(12.5) = 13: columns 8..13 (6 wide)
    # y: centre 10.0  -> y0 = 7.75 -> 8, y1 = 12.25 -> 12: rows 8..12 (5 high)
    # side 5.5 != out 11 so the 5x6 patch is resized to 11x11; the height before resizing is 5
    patch, height = float_crop(img, (10.25, 10.0), 5.5, 11, fill)
    assert height == 5 and patch.shape == (11, 11, 3)
    raw, _ = float_crop(img, (10.25, 10.0), 11.0, 11, fill)  # side == out: no resize
    # side 11: x0 = 10.25 - 5 = 5.25 -> 5, x1 = 15.25 -> 15 (11 wide); y0 = 5 -> 5, y1 = 15 (11 high)
    assert raw.shape == (11, 11, 3) and tuple(raw[0, 0, :2]) == (5, 5)


def test_float_crop_pads_with_truncated_mean_across_the_border() -> None:
    img = _ramp()
    fill = np.array([200, 201, 202], np.uint8)
    # side 6, centre (1, 1): x0 = 1 - 2.5 = -1.5; pad R(1.5) = 2; R(-1.5 + 2) = R(0.5) = 1 -> corner 1 - 2 = -1
    # x1 = -1.5 + 5 = 3.5 -> R(5.5) - 2 = 6 - 2 = 4: columns -1..4 (6 wide), column -1 is padding
    patch, height = float_crop(img, (1.0, 1.0), 6.0, 6, fill)
    assert height == 6
    assert tuple(patch[0, 0]) == (200, 201, 202)
    assert tuple(patch[1, 1]) == (0, 0, 7)   # frame pixel (0, 0)


# --- centre and output conventions, size clamps
def _one_step(preset: str, box: tuple[float, float, float, float], frame_shape=(240, 320, 3),
              cell=(2, 9, 9), prob=0.9, delta=(0.0, 0.0, 0.0, 0.0)):
    params = get_preset(preset).track
    n = params.score_size()
    a, i, j = cell
    maps = make_rpn_maps(n, [(a, i, j, prob, delta)], params.anchor_num)
    engine = ScriptedEngine([lambda side: maps])
    tracker = make_tracker(engine, params)
    frame = np.full(frame_shape, 90, np.uint8)
    tracker.init(frame, box)
    return tracker, tracker.track(frame), engine


def test_foolwood_init_centre_is_x_plus_half_w() -> None:
    tracker = make_tracker(ScriptedEngine(), get_preset("siammask_vot").track)
    tracker.init(np.zeros((100, 100, 3), np.uint8), (10, 20, 30, 40))
    assert tracker.centre.tolist() == [25.0, 40.0]   # 10 + 30/2, 20 + 40/2 (pysot would give 24.5, 39.5)


def test_upchannel_1based_reports_inclusive_box_and_keeps_crop_size_separately() -> None:
    # siamrpn_siamtrackers: 271 search, score 19, centre cell (9, 9) is offset (0, 0); anchor 2 is 64x64
    # init box (100, 80, 40, 30): centre (100 + 39/2, 80 + 29/2) = (119.5, 94.5)
    # delta 0 -> predicted box = anchor (0, 0, 64, 64) in crop pixels; the scale is 271 / patch height
    tracker, result, _ = _one_step("siamrpn_siamtrackers", (100, 80, 40, 30), cell=(2, 9, 9))
    cx, cy, w, h = *tracker.centre, *tracker.size
    assert (cx, cy) == (119.5, 94.5)
    assert result.bbox[0] == pytest.approx(cx - (w - 1) / 2) and result.bbox[1] == pytest.approx(cy - (h - 1) / 2)
    assert result.bbox[2:] == (w, h)


def test_init_relative_clamp_golden() -> None:
    # init (150, 110, 12, 10) on a 320 x 240 frame: size bounds [0.1, 10] x (12, 10) = [1.2, 120] x [1.0, 100]
    # proposal centre (-5, 300), size (200, 0.5) -> centre (0, 240) (clipped to the frame), size (120, 1.0);
    # the crop copy is clipped to [10, 320] x [10, 240] -> (120, 10)
    tracker = make_tracker(ScriptedEngine(), get_preset("siamrpn_siamtrackers").track)
    frame = np.zeros((240, 320, 3), np.uint8)
    tracker.init(frame, (150, 110, 12, 10))
    reported = tracker._clamp_init_relative(frame, -5.0, 300.0, 200.0, 0.5)
    assert reported == (0.0, 240.0, 120.0, 1.0)
    assert tracker.size.tolist() == [120.0, 1.0]
    assert tracker.crop_wh.tolist() == [120.0, 10.0]


def test_pysot_clamp_differs_on_the_same_proposal() -> None:
    # pysot clips the state itself: size into [10, 320] x [10, 240] -> (200, 10); centre (0, 240)
    from siamdeploy.geometry import clip_state
    assert clip_state(-5.0, 300.0, 200.0, 0.5, (240, 320, 3)) == (0, 240, 200.0, 10)


# --- mask: border and polygon fallback
def test_mask_border_value_outside_the_window() -> None:
    mask = np.full((127, 127), 0.8, np.float32)
    # window at (50, 40) of side 60 inside a 200 x 150 frame
    frame_mask = warp_mask_to_frame(mask, (50.0, 40.0, 60.0), (150, 200, 3), border=-1.0)
    assert frame_mask[0, 0] == -1.0 and frame_mask[149, 199] == -1.0
    assert frame_mask[70, 80] == pytest.approx(0.8)
    pysot = warp_mask_to_frame(mask, (50.0, 40.0, 60.0), (150, 200, 3), border=0.0)
    assert pysot[0, 0] == 0.0


def test_polygon_fallback_uses_given_box() -> None:
    empty = np.zeros((100, 100), np.float32)
    poly = mask_polygon(empty, 0.3, (-5.0, 10.0, 20.0, 30.0))  # unclipped box may start left of the frame
    assert poly.tolist() == [[-5, 10], [15, 10], [15, 40], [-5, 40]]


# --- layouts and detection
def _conv_in(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x.double(), weight.double(), bias.double())


def test_fold_rgb_normalisation_is_exact_on_bgr_input() -> None:
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(4, 3, 5, 5, generator=g)
    bias = torch.randn(4, generator=g)
    bgr = torch.randint(0, 256, (1, 3, 9, 9), generator=g).float()
    rgb = bgr.flip(1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = _conv_in(weight, bias, (rgb / 255 - mean) / std)   # what haooozi's network computes
    folded = fold_rgb_normalisation({"c.weight": weight, "c.bias": bias}, key="c")
    got = _conv_in(folded["c.weight"], folded["c.bias"], bgr)
    assert torch.allclose(got, expected, atol=1e-4)


def _keys_for(preset: str) -> dict[str, torch.Tensor]:
    from siamdeploy.models import SiameseNet
    return {k: v for k, v in SiameseNet(get_preset(preset).model).state_dict().items()
            if not k.endswith("num_batches_tracked")}


def _rename(state: dict[str, torch.Tensor], pairs: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        new = next((dst + key[len(src):] for src, dst in pairs if key.startswith(src)), key)
        out[new] = value
    return out


FOOLWOOD = [("backbone.", "features.features."), ("neck.", "features."), ("rpn_head.", "rpn_model."),
            ("mask_head.", "mask_model.mask."), ("refine_head.", "refine_model.")]


@pytest.mark.parametrize("preset, filename, expected", [
    ("siammask_vot", "SiamMask_VOT.pth", "siammask_vot"),
    ("siammask_vot", "SiamMask_VOT_LD.pth", "siammask_vot_ld"),
    ("siammask_vot", "SiamMask_DAVIS.pth", "siammask_davis"),
    ("siammask_base", "SiamMask_base.pth", "siammask_base"),
])
def test_foolwood_layout_detection(preset: str, filename: str, expected: str) -> None:
    canonical, layout = to_canonical(_rename(_keys_for(preset), FOOLWOOD))
    assert layout.name == "foolwood_siammask"
    assert set(canonical) == set(_keys_for(preset))
    assert guess_preset(canonical, layout, filename).preset == expected


def test_haooozi_layout_detection_and_fold() -> None:
    names = [("backbone.features.", "featureExtract."), ("rpn_head.template_cls_conv.", "examplar_cla."),
             ("rpn_head.template_loc_conv.", "examplar_reg."), ("rpn_head.search_cls_conv.", "instance_cla."),
             ("rpn_head.search_loc_conv.", "instance_reg."), ("rpn_head.loc_adjust.", "regress_adjust.")]
    original = _keys_for("siamrpn_haooozi")
    canonical, layout = to_canonical(_rename(original, names))
    assert layout.name == "haooozi" and set(canonical) == set(original)
    assert not torch.equal(canonical["backbone.features.0.weight"], original["backbone.features.0.weight"])
    assert guess_preset(canonical, layout, "model.pth").preset == "siamrpn_haooozi"


def test_siamtrackers_detected_by_model_wrapper() -> None:
    layout = next(lay for lay in LAYOUTS if lay.name == "dasiamrpn")
    state = _keys_for("dasiamrpn_vot")
    assert guess_preset(state, layout, "SiamRPN_e50.pth", wrapper="model").preset == "siamrpn_siamtrackers"
    assert guess_preset(state, layout, "SiamRPNVOT.model", wrapper=None).preset == "dasiamrpn_vot"


class _EmptyMaskEngine(ScriptedEngine):
    """Scripted heads plus a refine branch whose mask is empty everywhere (sigmoid(-20) ~ 2e-9)."""

    def refine(self, extras, cell):
        return np.full((127, 127), -20.0, np.float32)


@pytest.mark.parametrize("preset, before_clip", [("siammask_vot", True), ("siammask_r50_l3", False)])
def test_empty_mask_fallback_box_before_or_after_clip(preset: str, before_clip: bool) -> None:
    # Init (5, 100, 40, 30) on a 320 x 240 frame; centre cell (12, 12) of the 25 x 25 map is offset (0, 0);
    # anchor 2 is 64 x 64; dx = -1 moves the centre by -64 crop px = -64 / scale_z frame px, with
    # s_z = sqrt((40 + 35) * (30 + 35)) = sqrt(4875) and scale_z = 127 / s_z: the centre leaves the frame.
    params = get_preset(preset).track
    n = params.score_size()
    maps = make_rpn_maps(n, [(2, n // 2, n // 2, 0.95, (-1.0, 0.0, 0.0, 0.0))], params.anchor_num)
    tracker = make_tracker(_EmptyMaskEngine([lambda side: maps]), params)
    frame = np.full((240, 320, 3), 90, np.uint8)
    tracker.init(frame, (5, 100, 40, 30))
    result = tracker.track(frame)
    start_cx = 5 + 40 / 2 if before_clip else 5 + 39 / 2      # foolwood x + w/2, pysot x + (w-1)/2
    unclipped_cx = start_cx - 64 / (127 / np.sqrt(4875.0))
    assert unclipped_cx < 0 and tracker.centre[0] == 0       # the state is clipped either way
    left = result.polygon[:, 0].min()
    if before_clip:   # foolwood: the fallback box is the unclipped state
        assert left == pytest.approx(unclipped_cx - tracker.size[0] / 2)
    else:             # pysot: the fallback box is the clipped state
        assert left == pytest.approx(0 - tracker.size[0] / 2)
