"""The RPN tracker loops' rules (docs/tracking.md#the-rpn-tracking-loop): init centre, crop sizes, smoothing,
clipping, reported box, DaSiamRPN-BIG's adaptive search size and the long-term tracker's lost mode.

This is a unit test of the numpy tracker loop only: the engine is a test double (``scripted_engine``
fixture, tests/unit/conftest.py) that runs no network and returns hand-made ``cls``/``loc`` maps in which
one chosen anchor cell wins with a known score and known deltas. Every expected value below is computed
by hand from the formulas of docs/tracking.md (arithmetic in the comments).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import siamdeploy.runtime.trackers.rpn as rpn_module
from siamdeploy.presets import get_preset
from siamdeploy.runtime.trackers import LongTermTracker, RPNTracker, make_tracker


def _change(r: float) -> float:
    return max(r, 1.0 / r)


def _sz(w: float, h: float) -> float:
    pad = (w + h) / 2
    return math.sqrt((w + pad) * (h + pad))


class _CropSpy:
    """Records the arguments of every square_crop call made by the RPN loop (and runs the real crop)."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.original = rpn_module.square_crop

    def __call__(self, img, centre, size, out_size, fill, rounding):
        self.calls.append(dict(centre=(float(centre[0]), float(centre[1])), size=size, out_size=out_size,
                               fill=np.asarray(fill).tolist(), rounding=rounding))
        return self.original(img, centre, size, out_size, fill, rounding)


# ---------------------------------------------------------------- init
def test_init_centre_and_size_convention(scripted_engine):
    tracker = make_tracker(scripted_engine(), get_preset("siamrpn_alex_dwxcorr").track)
    tracker.init(np.full((100, 120, 3), 50, np.uint8), (10, 20, 31, 16))
    # centre = (x + (w-1)/2, y + (h-1)/2) = (10 + 15, 20 + 7.5)
    assert tracker.centre.tolist() == [25.0, 27.5]
    assert tracker.size.tolist() == [31.0, 16.0]


def test_init_template_crop(scripted_engine, monkeypatch):
    spy = _CropSpy()
    monkeypatch.setattr(rpn_module, "square_crop", spy)
    engine = scripted_engine()
    frame = np.zeros((40, 64, 3), np.uint8)
    frame[..., 0] = 90
    frame[:10, :, 0] = 93        # channel 0 mean = 90 + 3/4 = 90.75 -> truncated 90
    frame[..., 1] = 17
    frame[..., 2] = 200
    tracker = make_tracker(engine, get_preset("siamrpn_alex_dwxcorr").track)
    tracker.init(frame, (20, 10, 10, 8))
    # w_z = 10 + 9 = 19, h_z = 8 + 9 = 17, s_z = round(sqrt(323) = 17.97) = 18; centre (24.5, 13.5)
    assert spy.calls == [dict(centre=(24.5, 13.5), size=18, out_size=127, fill=[90, 17, 200],
                              rounding="floor_half_up")]
    assert len(engine.template_blobs) == 1
    z = engine.template_blobs[0]
    assert z.shape == (1, 3, 127, 127) and z.dtype == np.float32
    # BGR preset, no normalisation: channel 1 and 2 are the constant 17 and 200
    assert (z[0, 1] == 17).all() and (z[0, 2] == 200).all()


@pytest.mark.parametrize("preset, expected", [
    ("siamrpn_alex_dwxcorr", 40),   # pysot: Python 3 round(40.5) = 40 (half to even)
    ("dasiamrpn_vot", 41),          # DaSiamRPN: Python 2 round(40.5) = 41 (half away from zero)
])
def test_init_exemplar_size_rounding(scripted_engine, monkeypatch, preset, expected):
    spy = _CropSpy()
    monkeypatch.setattr(rpn_module, "square_crop", spy)
    tracker = make_tracker(scripted_engine(), get_preset(preset).track)
    # w = h = 20.25: w_z = h_z = 20.25 + 0.5 * 40.5 = 40.5, s_z = sqrt(40.5^2) = 40.5 exactly
    tracker.init(np.zeros((100, 100, 3), np.uint8), (30, 30, 20.25, 20.25))
    assert spy.calls[0]["size"] == expected


# ---------------------------------------------------------------- one track() step
def test_track_update_matches_pysot(scripted_engine, rpn_maps, monkeypatch):
    """siamrpn_alex_dwxcorr: PENALTY_K 0.16, WINDOW_INFLUENCE 0.40, LR 0.30, instance 287 -> N = 21."""
    params = get_preset("siamrpn_alex_dwxcorr").track
    n = (287 - 127) // 8 + 1 + 0           # 21
    # winner: anchor 1 (88 x 40) at cell (i=13, j=8); ori = -(21 // 2) * 8 = -80
    #   xa = -80 + 8*8 = -16, ya = -80 + 8*13 = 24
    #   deltas (0.5, -0.25, ln 1.25, ln 1.5) -> crop box (0.5*88 - 16, -0.25*40 + 24, 1.25*88, 1.5*40)
    #                                                   = (28, 14, 110, 60)
    cells = [(1, 13, 8, 0.9, (0.5, -0.25, math.log(1.25), math.log(1.5)))]
    engine = scripted_engine([lambda side: rpn_maps(n, cells)])
    spy = _CropSpy()
    monkeypatch.setattr(rpn_module, "square_crop", spy)
    tracker = make_tracker(engine, params)
    tracker.init(np.full((240, 320, 3), 90, np.uint8), (100, 80, 60, 30))
    result = tracker.track(np.full((240, 320, 3), 90, np.uint8))

    # centre (100 + 29.5, 80 + 14.5) = (129.5, 94.5), size (60, 30)
    # s_z = sqrt((60 + 45) * (30 + 45)) = sqrt(7875) = 88.7412 (not rounded); scale_z = 127 / s_z = 1.431128
    s_z = math.sqrt(105 * 75)
    scale_z = 127 / s_z
    # search crop: round(s_z * 287 / 127) = round(200.541) = 201 around the previous centre, resized to 287
    assert spy.calls[1] == dict(centre=(129.5, 94.5), size=201, out_size=287, fill=[90, 90, 90],
                                rounding="floor_half_up")
    assert engine.search_sides == [287]
    # penalty: s_c = change(sz(110, 60) / sz(60 scale_z, 30 scale_z)) = 1.324029,
    #          r_c = change((60/30) / (110/60)) = 1.090909
    #          penalty = exp(-(r_c s_c - 1) * 0.16) = 0.931366
    s_c = _change(_sz(110, 60) / _sz(60 * scale_z, 30 * scale_z))
    r_c = _change((60 / 30) / (110 / 60))
    penalty = math.exp(-(r_c * s_c - 1) * 0.16)
    assert penalty == pytest.approx(0.931366, abs=1e-6)
    # (pscore of the winner = 0.931*0.9*0.6 + 0.4*hann(13)hann(8) = 0.503 + 0.287 = 0.790 > 0.4 >= any other)
    lr = penalty * 0.9 * 0.30                       # 0.251469
    # box in frame pixels: (28, 14, 110, 60) / scale_z = (19.5650, 9.7825, 76.8625, 41.9250)
    cx = 129.5 + 28 / scale_z                       # 149.0650
    cy = 94.5 + 14 / scale_z                        # 104.2825
    w = 60 * (1 - lr) + (110 / scale_z) * lr        # 64.2404
    h = 30 * (1 - lr) + (60 / scale_z) * lr         # 32.9988
    assert tracker.centre.tolist() == pytest.approx([cx, cy], abs=1e-4)
    assert tracker.size.tolist() == pytest.approx([w, h], abs=1e-4)
    # reported (cx - w/2, cy - h/2, w, h) = (116.9448, 87.7831, 64.2404, 32.9988)
    assert result.bbox == pytest.approx((cx - w / 2, cy - h / 2, w, h), abs=1e-4)
    assert result.bbox == pytest.approx((116.9448, 87.7831, 64.2404, 32.9988), abs=1e-3)
    assert result.score == pytest.approx(0.9, abs=1e-6)
    assert result.polygon is None and result.mask is None


def test_track_second_frame_uses_updated_state(scripted_engine, rpn_maps, monkeypatch):
    """Frame 2's crop is centred on frame 1's new centre and sized from the smoothed size (no rounding of
    s_z during tracking)."""
    params = get_preset("siamrpn_alex_dwxcorr").track.with_(penalty_k=0.0, lr=1.0)
    n = 21
    # frame 1: anchor 2 (64 x 64) at the centre cell (10, 10) -> (0, 0); deltas (0.25, 0, 0, 0)
    #   crop box (16, 0, 64, 64); penalty_k = 0 -> penalty 1; lr = 1 * 0.99 * 1.0 = 0.99
    frame1 = [(2, 10, 10, 0.99, (0.25, 0.0, 0.0, 0.0))]
    engine = scripted_engine([lambda side: rpn_maps(n, frame1), lambda side: rpn_maps(n, frame1)])
    spy = _CropSpy()
    monkeypatch.setattr(rpn_module, "square_crop", spy)
    tracker = make_tracker(engine, params)
    img = np.full((300, 300, 3), 10, np.uint8)
    tracker.init(img, (100, 100, 40, 40))          # centre (119.5, 119.5); s_z = sqrt(80*80) = 80
    tracker.track(img)
    # scale_z = 127/80 = 1.5875; box = (16, 0, 64, 64) / 1.5875 = (10.0787, 0, 40.3150, 40.3150)
    # centre (129.5787, 119.5); size 40*0.01 + 40.3150*0.99 = 40.3119
    size1 = 40 * 0.01 + (64 * 80 / 127) * 0.99
    cx1 = 119.5 + 16 * 80 / 127
    tracker.track(img)
    # frame 2 crop: s_z = sqrt((size1 + size1)^2) = 2 * size1 = 80.6238; s_x = s_z * 287/127 = 182.19 -> 182
    s_z2 = 2 * size1
    assert spy.calls[2]["centre"] == pytest.approx((cx1, 119.5), abs=1e-6)
    assert spy.calls[2]["size"] == round(s_z2 * 287 / 127) == 182


def test_clip_centre_low_and_size_low(scripted_engine, rpn_maps):
    """Centre clipped to >= 0 and size to >= 10 (pysot _bbox_clip); the stored state is the clipped one."""
    params = get_preset("siamrpn_alex_dwxcorr").track.with_(penalty_k=0.0, lr=1.0)
    # box (0, 0, 12, 12): centre (5.5, 5.5); s_z = sqrt(24 * 24) = 24, scale_z = 127/24 = 5.291667
    # winner anchor 2 (64x64) at the centre cell (10, 10) -> anchor centre (0, 0)
    #   deltas (-2, -2, ln 1/16, ln 1/16) -> crop box (-128, -128, 4, 4) -> frame (-24.189, -24.189, 0.756, 0.756)
    # penalty_k = 0 -> penalty = 1; lr = 1 * 0.99 * 1.0 = 0.99
    #   centre 5.5 - 24.189 = -18.689 -> 0; size 12*0.01 + 0.756*0.99 = 0.868 -> 10
    cells = [(2, 10, 10, 0.99, (-2.0, -2.0, math.log(1 / 16), math.log(1 / 16)))]
    engine = scripted_engine([lambda side: rpn_maps(21, cells)])
    tracker = make_tracker(engine, params)
    img = np.full((80, 120, 3), 128, np.uint8)
    tracker.init(img, (0, 0, 12, 12))
    result = tracker.track(img)
    assert tracker.centre.tolist() == [0.0, 0.0]
    assert tracker.size.tolist() == [10.0, 10.0]
    # reported (cx - w/2, cy - h/2, w, h) = (-5, -5, 10, 10)
    assert result.bbox == pytest.approx((-5.0, -5.0, 10.0, 10.0), abs=1e-9)


def test_clip_centre_high_and_size_high(scripted_engine, rpn_maps):
    """Centre clipped to <= (W, H) and size to <= (W, H): width against W, height against H."""
    params = get_preset("siamrpn_alex_dwxcorr").track.with_(penalty_k=0.0, lr=1.0)
    # frame H = 80, W = 120; box (90, 50, 30, 20): centre (104.5, 59.5)
    # s_z = sqrt((30 + 25)(20 + 25)) = sqrt(2475) = 49.749, scale_z = 2.552796
    # winner anchor 2 at (10, 10), deltas (2, 2, ln 16, ln 16) -> crop (128, 128, 1024, 1024)
    #   -> frame (50.141, 50.141, 401.129, 401.129); lr = 0.99
    #   centre (154.64, 109.64) -> (120, 80); w = 30*0.01 + 401.13*0.99 = 397.4 -> 120; h -> 80
    cells = [(2, 10, 10, 0.99, (2.0, 2.0, math.log(16), math.log(16)))]
    engine = scripted_engine([lambda side: rpn_maps(21, cells)])
    tracker = make_tracker(engine, params)
    img = np.full((80, 120, 3), 128, np.uint8)
    tracker.init(img, (90, 50, 30, 20))
    result = tracker.track(img)
    assert tracker.centre.tolist() == [120.0, 80.0]
    assert tracker.size.tolist() == [120.0, 80.0]
    # reported (120 - 60, 80 - 40, 120, 80)
    assert result.bbox == pytest.approx((60.0, 40.0, 120.0, 80.0), abs=1e-9)


# ---------------------------------------------------------------- DaSiamRPN-BIG adaptive search size
@pytest.mark.parametrize("box, instance", [
    ((100, 100, 20, 20), 287),   # 400 / 250000 = 0.0016 < 0.004
    ((100, 100, 39, 25), 287),   # 975 / 250000 = 0.0039 < 0.004
    ((100, 100, 40, 25), 271),   # 1000 / 250000 = 0.004, not < 0.004
    ((100, 100, 100, 50), 271),  # 0.02
])
def test_dasiamrpn_big_adaptive_instance_size(scripted_engine, rpn_maps, box, instance):
    n = (instance - 127) // 8 + 1 + 0     # 287 -> 21, 271 -> 19
    engine = scripted_engine([lambda side: rpn_maps(n, [(2, n // 2, n // 2, 0.9, (0, 0, 0, 0))])])
    tracker = make_tracker(engine, get_preset("dasiamrpn_big").track)
    img = np.full((500, 500, 3), 60, np.uint8)
    tracker.init(img, box)
    assert tracker.instance_size == instance
    tracker.track(img)
    assert engine.search_sides == [instance]


def test_dasiamrpn_big_instance_size_fixed_per_sequence_and_reset_on_init(scripted_engine, rpn_maps):
    script = [lambda side: rpn_maps(21, [(2, 10, 10, 0.9, (0, 0, 0, 0))]),
              lambda side: rpn_maps(19, [(2, 9, 9, 0.9, (0, 0, 0, 0))])]
    engine = scripted_engine(script)
    tracker = make_tracker(engine, get_preset("dasiamrpn_big").track)
    img = np.full((500, 500, 3), 60, np.uint8)
    tracker.init(img, (100, 100, 20, 20))      # small -> 287
    tracker.track(img)
    assert tracker.instance_size == 287        # size grew a little; still 287 for the sequence
    tracker.init(img, (100, 100, 100, 50))     # re-init with a large target -> 271
    assert tracker.instance_size == 271
    tracker.track(img)
    assert engine.search_sides == [287, 271]


def test_dasiamrpn_vot_never_adapts(scripted_engine):
    tracker = make_tracker(scripted_engine(), get_preset("dasiamrpn_vot").track)
    tracker.init(np.full((500, 500, 3), 60, np.uint8), (100, 100, 20, 20))
    assert tracker.instance_size == 271


# ---------------------------------------------------------------- long-term tracker
def test_long_term_lost_mode(scripted_engine, rpn_maps):
    """siamrpn_r50_l234_dwxcorr_lt: PENALTY_K 0.05, WINDOW_INFLUENCE 0.28, LR 0.22, instance 255 (N = 25),
    831 when lost (N = (831-127)//8 + 1 + 8 = 97), CONFIDENCE_LOW 0.8, HIGH 0.998."""
    params = get_preset("siamrpn_r50_l234_dwxcorr_lt").track

    def respond(expected_side, n, cells):
        def fn(side):
            assert side == expected_side, f"search side {side}, expected {expected_side}"
            return rpn_maps(n, cells)
        return fn

    script = [
        # frame 1 (found, 255): winner at the centre cell with fg 0.5 < 0.8 and deltas that would move it
        respond(255, 25, [(2, 12, 12, 0.5, (0.5, 0.5, 0.0, 0.0))]),
        # frame 2 (lost, 831): centre cell fg 0.85 vs cell (10, 80) fg 0.9, same anchor and zero deltas
        respond(831, 97, [(2, 48, 48, 0.85, (0, 0, 0, 0)), (2, 10, 80, 0.9, (0, 0, 0, 0))]),
        # frame 3 (still lost, 831): centre cell fg 0.999 > 0.998 -> found again
        respond(831, 97, [(2, 48, 48, 0.999, (0, 0, 0, 0))]),
        # frame 4 (found, 255): centre cell fg 0.85 vs cell (2, 20) fg 0.9
        respond(255, 25, [(2, 12, 12, 0.85, (0, 0, 0, 0)), (2, 2, 20, 0.9, (0, 0, 0, 0))]),
    ]
    engine = scripted_engine(script)
    tracker = make_tracker(engine, params)
    assert isinstance(tracker, LongTermTracker)
    img = np.full((300, 400, 3), 70, np.uint8)
    tracker.init(img, (180, 130, 40, 40))     # centre (199.5, 149.5), size (40, 40)

    # frame 1: score 0.5 < CONFIDENCE_LOW -> state unchanged, lost afterwards
    r1 = tracker.track(img)
    assert r1.score == pytest.approx(0.5, abs=1e-6)
    assert tracker.centre.tolist() == [199.5, 149.5]
    assert tracker.size.tolist() == [40.0, 40.0]
    assert r1.bbox == pytest.approx((179.5, 129.5, 40.0, 40.0), abs=1e-9)
    assert tracker.lost

    # frame 2: 831 search, window influence 0.001.
    #   s_z = sqrt(80*80) = 80, scale_z = 127/80 = 1.5875; both candidates 64x64 vs 40*1.5875 = 63.5:
    #   penalty = exp(-(64/63.5 - 1) * 0.05) = 0.999606
    #   wi 0.001: centre 0.9996*0.85*0.999 + 0.001 = 0.8498, (10, 80): 0.9996*0.9*0.999 + 0.001*0.0258 = 0.8988
    #   (wi 0.28 would pick the centre: 0.8918 vs 0.6550)
    #   ori = -(97//2)*8 = -384: cell (10, 80) -> (-384 + 640, -384 + 80) = (256, -304)
    r2 = tracker.track(img)
    penalty = math.exp(-(64 / 63.5 - 1) * 0.05)
    lr = penalty * 0.9 * 0.22                     # 0.197922
    cx = 199.5 + 256 / 1.5875                     # 360.7598
    cy = 149.5 - 304 / 1.5875                     # -41.9961 (outside the frame)
    size = 40 * (1 - lr) + (64 / 1.5875) * lr     # 40.0623
    assert r2.score == pytest.approx(0.9, abs=1e-6)
    # the state is stored before clipping ...
    assert tracker.centre.tolist() == pytest.approx([cx, cy], abs=1e-4)
    assert tracker.size.tolist() == pytest.approx([size, size], abs=1e-4)
    # ... only the reported box is clipped: cy -> 0
    assert r2.bbox == pytest.approx((cx - size / 2, 0 - size / 2, size, size), abs=1e-4)
    assert tracker.lost                          # 0.9 is not > 0.998

    # frame 3: score 0.999 > 0.998 -> found
    r3 = tracker.track(img)
    assert r3.score == pytest.approx(0.999, abs=1e-6)
    assert not tracker.lost

    # frame 4: back to 255 and window influence 0.28 -> the centre cell wins (centre does not move):
    #   hann25(2) * hann25(20) = 0.0670 * 0.25 = 0.0167; centre: p*0.85*0.72 + 0.28 = 0.892,
    #   (2, 20): p*0.9*0.72 + 0.28*0.0167 = 0.653 (wi 0.001 would pick (2, 20))
    centre_before = tracker.centre.tolist()
    r4 = tracker.track(img)
    assert r4.score == pytest.approx(0.85, abs=1e-6)
    assert tracker.centre.tolist() == pytest.approx(centre_before, abs=1e-9)
    assert not tracker.lost
    assert engine.search_sides == [255, 831, 831, 255]


def test_long_term_init_resets_lost(scripted_engine, rpn_maps):
    engine = scripted_engine([lambda side: rpn_maps(25, [(2, 12, 12, 0.3, (0, 0, 0, 0))])])
    tracker = make_tracker(engine, get_preset("siamrpn_r50_l234_dwxcorr_lt").track)
    img = np.full((300, 400, 3), 70, np.uint8)
    tracker.init(img, (180, 130, 40, 40))
    tracker.track(img)
    assert tracker.lost
    tracker.init(img, (180, 130, 40, 40))
    assert not tracker.lost


def test_make_tracker_picks_loop(scripted_engine):
    assert type(make_tracker(scripted_engine(), get_preset("siamrpn_alex_dwxcorr").track)) is RPNTracker
    assert type(make_tracker(scripted_engine(), get_preset("dasiamrpn_vot").track)) is RPNTracker
    assert isinstance(make_tracker(scripted_engine(), get_preset("siamrpn_r50_l234_dwxcorr_lt").track),
                      LongTermTracker)
