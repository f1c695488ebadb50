"""``python -m siamdeploy.export CHECKPOINT``: split ONNX graphs + manifest, validated against PyTorch."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from ..errors import SiamDeployError


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m siamdeploy.export", description=__doc__)
    ap.add_argument("checkpoint", help="checkpoint file (.pth / .model) from pysot, DaSiamRPN, siamfc-pytorch, ...")
    ap.add_argument("--config", help="pysot config.yaml of the checkpoint")
    ap.add_argument("--preset", help="preset id (default: detected from the checkpoint)")
    ap.add_argument("--out", help="output folder (default: export/<preset>-<checkpoint sha256[:8]>)")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "both"),
                    help="fp16: backbone/neck FP16, correlation/heads/I-O FP32 (FP32 graphs are always written)")
    ap.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    ap.add_argument("--no-validate", action="store_true", help="skip the comparison against PyTorch")
    ap.add_argument("--trust-checkpoint", action="store_true",
                    help="allow checkpoints that need full unpickling (runs code from the file)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        from ..checkpoint import load_model
        from ..export.manifest import sha256_file
        from .exporter import export_model

        loaded = load_model(args.checkpoint, config=args.config, preset=args.preset,
                            allow_unsafe_pickle=args.trust_checkpoint)
        out = args.out or os.path.join("export", f"{loaded.preset.name}-{sha256_file(loaded.path)[:8]}")
        result = export_model(loaded, out, precision=args.precision, opset=args.opset,
                              validate=not args.no_validate)
    except SiamDeployError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"exported {loaded.preset.name} to {result.folder}:")
    for name, variants in result.manifest["graphs"].items():
        for precision, entry in variants.items():
            print(f"  {entry['file']:<24} {precision}  inputs {', '.join(t['name'] for t in entry['inputs'])}")
    print("  manifest.json")
    if result.report:
        worst = [line for line in result.report if "tracked box" in line]
        print("validated against PyTorch: " + "; ".join(worst))
    else:
        print("not validated (--no-validate)")
    print(f"next: python -m siamdeploy.run demo --model {result.folder} --backend onnxruntime")
    return 0


if __name__ == "__main__":
    sys.exit(main())
