"""The trace cases as data: which preset, weights seed, sequence and upstream entry point each one uses.

A row here is the input of one ``<case>.json``; the recorded numbers are the output. ``rejected_seeds`` is
history (how many seeds were tried first and dropped because the random model's track was degenerate) and is
copied into the trace as is.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Code base name -> (GitHub repository, commit the traces were produced at).
UPSTREAM: dict[str, tuple[str, str]] = {
    "pysot": ("STVIR/pysot", "d04028f8e18c6b27ee150a7c0d8aab9a1807219e"),
    "dasiamrpn": ("foolwood/DaSiamRPN", "167d0dbb38162cf34c74d51c540a492faf3d6e01"),
    "siamfc": ("huanglianghua/siamfc-pytorch", "39572051d7c3d9850ca6100efa04091e18c2f706"),
    "siammask": ("foolwood/SiamMask", "a2b3ce3dca23b3a911d96b791e007eec6d39a625"),
    "haooozi": ("haooozi/SiamRPN", "009445446fa79555eed85bd0b167fcc0d9e69560"),
    "siamtrackers": ("HonglinChu/SiamTrackers", "248663fde6bf7c40190cf10ee396d5662919ecd3"),
}


# Where a case's weights come from: name -> the call, as the trace's ``inputs_from`` records it.
WEIGHTS: dict[str, str] = {
    "random": "siamdeploy.models.random_init.random_model(get_preset(preset), seed=model_seed)",
    "reference": "siamdeploy.reference_model(preset): the shipped checkpoint (float16, loaded into float32)",
}
# Where a case's frames come from (the trace's ``sequence.frames``; absent means "synthetic").
FRAMES: dict[str, str] = {
    "synthetic": "siamdeploy.synthetic.generate_sequence(seed, num_frames, size[, target_size])",
    "photos": "siamdeploy.synthetic.photos.photo_sequence(seed, num_frames, size)",
}


@dataclass(frozen=True)
class Rejected:
    """A seed pair tried before the accepted one, and why its track was not used."""

    model_seed: int
    seq_seed: int
    why: str

    def as_json(self) -> dict[str, object]:
        return {"model_seed": self.model_seed, "seq_seed": self.seq_seed, "why": self.why}


@dataclass(frozen=True)
class Case:
    """One trace.

    ``codebase``: a key of :data:`UPSTREAM`. ``num_frames`` frames of ``size = (width, height)`` pixels from
    the generator named by ``frames`` (a key of :data:`FRAMES`) with ``seed=sequence_seed``;
    ``target_size = (w, h)`` pixels or None for the default (synthetic frames only). ``weights`` (a key of
    :data:`WEIGHTS`): ``random_model(preset, seed=model_seed)`` or the shipped reference model of ``preset``
    (``model_seed`` None). ``variant``: the code base's own name for the tracker set-up (pysot experiment
    folder, DaSiamRPN network class, SiamMask config file, ...).
    """

    name: str
    codebase: str
    preset: str
    model_seed: int | None
    sequence_seed: int
    num_frames: int
    variant: str = ""
    size: tuple[int, int] = (320, 240)
    target_size: tuple[int, int] | None = None
    rejected_seeds: tuple[Rejected, ...] = ()
    options: dict[str, object] = field(default_factory=dict)
    weights: str = "random"
    frames: str = "synthetic"

    def __post_init__(self) -> None:
        if self.weights not in WEIGHTS or self.frames not in FRAMES:
            raise ValueError(f"case '{self.name}': weights must be one of {', '.join(WEIGHTS)} and frames one "
                             f"of {', '.join(FRAMES)}")
        if (self.weights == "random") != (self.model_seed is not None):
            raise ValueError(f"case '{self.name}': random weights need a model_seed, reference weights none")
        if self.frames != "synthetic" and self.target_size is not None:
            raise ValueError(f"case '{self.name}': target_size applies to synthetic frames only")

    def sequence(self) -> dict[str, object]:
        """The ``sequence`` field of the trace (the keyword arguments of the frame generator, plus
        ``frames`` naming the generator where it is not ``generate_sequence``)."""
        out: dict[str, object] = {"seed": self.sequence_seed, "num_frames": self.num_frames, "size": list(self.size)}
        if self.target_size is not None:
            out["target_size"] = list(self.target_size)
        if self.frames != "synthetic":
            out["frames"] = self.frames
        return out


CASES: tuple[Case, ...] = (
    # STVIR/pysot: variant = experiment folder under experiments/.
    Case("alex", "pysot", "siamrpn_alex_dwxcorr", 111, 12, 40, "siamrpn_alex_dwxcorr",
         rejected_seeds=(Rejected(11, 12, "centre stuck on the right image border"),)),
    Case("mobilev2", "pysot", "siamrpn_mobilev2_l234_dwxcorr", 23, 24, 12, "siamrpn_mobilev2_l234_dwxcorr"),
    Case("r50", "pysot", "siamrpn_r50_l234_dwxcorr", 325, 26, 8, "siamrpn_r50_l234_dwxcorr",
         rejected_seeds=(Rejected(25, 26, "loc deltas overflow exp(), centre in a corner"),
                         Rejected(125, 26, "box does not move, stuck in a corner"),
                         Rejected(225, 26, "loc deltas overflow exp(), box blows up to image size"))),
    Case("r50_otb", "pysot", "siamrpn_r50_l234_dwxcorr_otb", 27, 28, 8, "siamrpn_r50_l234_dwxcorr_otb"),
    Case("mask", "pysot", "siammask_r50_l3", 29, 130, 8, "siammask_r50_l3",
         rejected_seeds=(Rejected(29, 30, "head outputs ~20x too large on these frames (dw up to 26)"),)),
    Case("lt", "pysot", "siamrpn_r50_l234_dwxcorr_lt", 431, 32, 5, "siamrpn_r50_l234_dwxcorr_lt",
         rejected_seeds=(Rejected(31, 32, "never lost (scores >= CONFIDENCE_LOW): 831 search not exercised"),
                         Rejected(231, 32, "never lost"), Rejected(331, 32, "never lost"),
                         Rejected(531, 32, "never lost"), Rejected(631, 32, "never lost"))),
    # foolwood/DaSiamRPN: variant = network class in code/net.py.
    Case("dasiamrpn_vot", "dasiamrpn", "dasiamrpn_vot", 13, 14, 40, "SiamRPNvot"),
    Case("dasiamrpn_otb", "dasiamrpn", "dasiamrpn_otb", 115, 16, 30, "SiamRPNotb",
         rejected_seeds=(Rejected(15, 16, "centre stuck in the top-left corner"),)),
    Case("dasiamrpn_big", "dasiamrpn", "dasiamrpn_big", 17, 18, 30, "SiamRPNBIG"),
    Case("dasiamrpn_big_small", "dasiamrpn", "dasiamrpn_big", 19, 20, 25, "SiamRPNBIG", target_size=(12, 10)),
    # huanglianghua/siamfc-pytorch.
    Case("siamfc", "siamfc", "siamfc", 21, 22, 40, "TrackerSiamFC"),
    # foolwood/SiamMask: variant = <experiments folder>/<config file>; options: refine on or off, and the
    # name of the released checkpoint the file stands in for.
    Case("mask_vot", "siammask", "siammask_vot", 333, 334, 8, "siammask_sharp/config_vot.json",
         rejected_seeds=(Rejected(301, 302, "centre clipped to the right image border on 6 of 7 frames"),
                         Rejected(331, 332, "centre clipped to the left image border on 4 of 7 frames")),
         options={"refine": True, "checkpoint": "SiamMask_VOT.pth"}),
    Case("mask_vot_ld", "siammask", "siammask_vot_ld", 303, 304, 6, "siammask_sharp/config_vot18.json",
         options={"refine": True, "checkpoint": "SiamMask_VOT_LD.pth"}),
    Case("mask_davis", "siammask", "siammask_davis", 341, 342, 6, "siammask_sharp/config_davis.json",
         rejected_seeds=(Rejected(305, 306, "box grows to the whole image (lr 1.0), centre clipped to the "
                                            "border on 3 of 5 frames"),),
         options={"refine": True, "checkpoint": "SiamMask_DAVIS.pth"}),
    Case("mask_base", "siammask", "siammask_base", 307, 308, 8, "siammask_base/config.json",
         options={"refine": False, "checkpoint": "SiamMask_base.pth"}),
    # haooozi/SiamRPN and HonglinChu/SiamTrackers (variant: the folder holding its siamrpn package);
    # options: the channel order the tracker is given.
    Case("haooozi", "haooozi", "siamrpn_haooozi", 311, 312, 40, ".", options={"colour": "RGB"}),
    Case("haooozi_border", "haooozi", "siamrpn_haooozi", 357, 358, 40, ".", target_size=(84, 64),
         rejected_seeds=(Rejected(313, 314, "centre in the top-right corner on 31 of 39 frames"),
                         Rejected(351, 352, "centre clipped to the image border on 38 of 39 frames"),
                         Rejected(353, 354, "centre clipped to the image border on 31 of 39 frames")),
         options={"colour": "RGB"}),
    Case("siamtrackers", "siamtrackers", "siamrpn_siamtrackers", 321, 322, 40, "SiamRPN/SiamRPN",
         options={"colour": "BGR"}),
    # The shipped reference models on the held-out photo scenes (trained weights: peaked score maps).
    Case("ref_alex", "pysot", "siamrpn_alex_dwxcorr", None, 2001, 40, "siamrpn_alex_dwxcorr", size=(480, 360),
         weights="reference", frames="photos"),
    Case("ref_siamfc", "siamfc", "siamfc", None, 2002, 40, "TrackerSiamFC", size=(480, 360),
         weights="reference", frames="photos"),
)


def get_case(name: str) -> Case:
    """The case called ``name``; ValueError naming the known cases otherwise."""
    for case in CASES:
        if case.name == name:
            return case
    raise ValueError(f"unknown trace case '{name}'; known: {', '.join(c.name for c in CASES)}")
