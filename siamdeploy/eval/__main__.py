"""``python -m siamdeploy.eval``: run a tracker over a benchmark folder and score it.

    python -m siamdeploy.eval --dataset otb --root data/OTB100 --model model.pth --config config.yaml
    python -m siamdeploy.eval --dataset vot --root data/VOT2018 --model export/siamrpn_alex_dwxcorr-1a2b3c4d \\
        --backend onnxruntime --vot-year 2018

Writes the toolkit result files (OTB/LaSOT ``<seq>.txt``, GOT-10k ``<seq>/<seq>_001.txt`` + ``_time.txt``,
VOT ``baseline/<seq>/<seq>_001.txt``), ``metrics.json``, ``metrics.txt`` and PNG plots into ``--out``
(default ``results/<dataset>/<name>``), and prints the metrics table. Make a benchmark folder with exact
ground truth with ``python -m siamdeploy.eval.generate``.
"""
from __future__ import annotations

import argparse
import sys

from ..backends.registry import PRECISIONS, backend_names
from ..cli import run_cli


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m siamdeploy.eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, choices=("otb", "got10k", "vot", "lasot"), help="benchmark layout")
    ap.add_argument("--root", required=True, help="benchmark folder")
    ap.add_argument("--model", required=True, help="checkpoint (.pth/.model) or export folder (onnxruntime)")
    ap.add_argument("--config", help="pysot config.yaml of the checkpoint")
    ap.add_argument("--preset", help="preset id (default: detected from the checkpoint)")
    ap.add_argument("--backend", default="torch", help=f"{' | '.join(backend_names())} (default: torch)")
    ap.add_argument("--precision", choices=PRECISIONS,
                    help="engine precision (default: the backend's, see siamdeploy.load_tracker)")
    ap.add_argument("--device", help="cpu | cuda | cuda:N")
    ap.add_argument("--out", help="output folder (default: results/<dataset>/<name>)")
    ap.add_argument("--name", help="tracker name in tables and plots (default: <model>_<backend>_<precision>)")
    ap.add_argument("--subset", help="GOT-10k subset folder under the root: train | val | test")
    ap.add_argument("--vot-year", type=int, default=2018, help="VOT year for the EAO range: 2016, 2017, 2018, 2019")
    ap.add_argument("--eao-range", type=int, nargs=2, metavar=("LOW", "HIGH"),
                    help="EAO sequence-length range instead of the year's (for short sequences)")
    ap.add_argument("--sequences", nargs="+", metavar="NAME", help="evaluate only these sequences")
    ap.add_argument("--no-plots", action="store_true", help="skip the PNG plots (no matplotlib needed)")
    ap.add_argument("--trust-checkpoint", action="store_true",
                    help="allow checkpoints that need full unpickling (runs code from the file)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no per-sequence progress")
    return ap


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), _evaluate, argv, quiet=lambda args: args.quiet)


def _evaluate(args: argparse.Namespace) -> int:
    from .runner import evaluate, format_table

    report = evaluate(args.dataset, args.root, args.model, config=args.config, preset=args.preset,
                      backend=args.backend, precision=args.precision, device=args.device, out=args.out,
                      name=args.name, subset=args.subset, vot_year=args.vot_year,
                      eao_range=tuple(args.eao_range) if args.eao_range else None, plots=not args.no_plots,
                      sequences=args.sequences, allow_unsafe_pickle=args.trust_checkpoint)
    print(format_table(args.dataset, {report["tracker"]: report}))
    if report.get("note"):
        print(report["note"])
    print(f"results, metrics.json and plots: {report['results_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
