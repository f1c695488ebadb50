"""``python -m siamdeploy.export CHECKPOINT``: split ONNX graphs + manifest, validated against PyTorch.

``--engine`` also builds TensorRT engines (FP16 by default) into the engine cache; given an existing export
folder instead of a checkpoint, ``python -m siamdeploy.export EXPORT_FOLDER --engine`` only builds them."""
from __future__ import annotations

import argparse
import logging
import os
import sys

from ..cli import add_model_group, add_output_group, check_model_args, check_writable_dir, run_cli
from ..errors import ExportError
from ..manifest import is_export_folder
from .opset import check_opset


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m siamdeploy.export", description=__doc__)
    ap.add_argument("checkpoint", help="checkpoint file (.pth / .model) from pysot, DaSiamRPN, siamfc-pytorch, ...; "
                                       "with --engine also an existing export folder (then only the engines are built)")
    add_model_group(ap, model="none")
    out = add_output_group(ap, "output folder (default: export/<preset>-<checkpoint sha256[:8]>); must not exist "
                               "yet, or hold an earlier export and --force be given")
    out.add_argument("--force", action="store_true",
                     help="replace an existing export folder at --out (never anything else)")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "both", "int8", "all"),
                    help="fp16: backbone/neck FP16, correlation/heads/I-O FP32; int8: backbone/neck INT8 (Q/DQ, "
                         "calibrated), the rest FP32; both = fp32+fp16, all = fp32+fp16+int8 (FP32 graphs are "
                         "always written)")
    q = ap.add_argument_group("INT8 and the accuracy gate")
    q.add_argument("--int8-keep", default=None, metavar="STAGE[,STAGE]",
                   help="backbone stages (or 'neck') kept in FP32 in the INT8 graphs (default: the first stage, "
                        "which reads the raw pixels; 'none': quantize every stage); the export prints the stages "
                        "and their sensitivity")
    q.add_argument("--calibration-sequences", type=int, default=6, metavar="N",
                   help="INT8 calibration: generated sequences tracked by the FP32 export (default 6)")
    q.add_argument("--calibration-frames", type=int, default=12, metavar="N",
                   help="INT8 calibration: tracked frames per sequence, one search crop each (default 12)")
    q.add_argument("--calibration-method", default="minmax", choices=("minmax", "percentile"),
                   help="INT8 activation ranges: min/max (default) or the 99.999th percentile")
    q.add_argument("--int8-full-range", action="store_true",
                   help="INT8 weights in the full 8-bit range (for CPUs with VNNI/AMX and TensorRT); the default 7 "
                        "bits avoid the saturation of int8 dot products on CPUs without VNNI")
    q.add_argument("--no-sensitivity", action="store_true", help="skip the per-stage INT8 sensitivity report")
    q.add_argument("--gate-sequences", type=int, default=3, metavar="N",
                   help="accuracy gate of reduced precisions: generated sequences (default 3)")
    q.add_argument("--gate-frames", type=int, default=40, metavar="N",
                   help="accuracy gate: frames per sequence (default 40)")
    q.add_argument("--no-gate", action="store_true", help="skip the accuracy gate (nothing is written to "
                                                          "accuracy.json)")
    ap.add_argument("--buckets", default="1,2,4,8,16,32", metavar="B,B,...",
                    help="targets per call to write batched search/template graphs for (default 1,2,4,8,16,32; "
                         "1: single-target graphs only); several targets of a frame run the next bucket up")
    ap.add_argument("--opset", type=int, default=17, help="ONNX opset, 11..20 (default 17)")
    ap.add_argument("--no-validate", action="store_true", help="skip the comparison against PyTorch")
    ap.add_argument("--engine", action="store_true",
                    help="also build TensorRT engines (needs tensorrt + cuda-python and a CUDA GPU)")
    ap.add_argument("--engine-precision", default="fp16", choices=("fp16", "fp32", "int8"),
                    help="TensorRT engine precision (default fp16: backbone FP16, correlation/heads FP32; int8: the "
                         "export's Q/DQ graphs, explicit quantization, not run on a GPU yet)")
    ap.add_argument("--engine-buckets", default=None, metavar="B,B,...",
                    help="with --engine: the batch buckets to build TensorRT plans for (default: every bucket of the "
                         "export; 1: single-target plans only, one call per target); each bucket costs a template "
                         "and a search plan of build time and disk")
    ap.add_argument("--workspace-mb", type=int, default=None, help="TensorRT builder workspace limit in MiB")
    ap.add_argument("--engine-dir", default=None,
                    help="engine cache root (default: $SIAMDEPLOY_ENGINES, else ./engines)")
    return ap


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), _export, argv)


def _check_args(args: argparse.Namespace, is_export: bool) -> None:
    """Every flag checked before a checkpoint is read or a file written."""
    from ..fsutil import check_export_destination

    if args.workspace_mb is not None and args.workspace_mb <= 0:
        raise ExportError(f"--workspace-mb must be a positive number of MiB, got {args.workspace_mb}")
    if args.engine_dir is not None:
        check_writable_dir(args.engine_dir, "--engine-dir")
    if args.engine_buckets is not None:
        if not args.engine:
            raise ExportError("--engine-buckets applies to TensorRT engines; add --engine")
        engine_buckets = parse_buckets(args.engine_buckets)
        if not is_export and not set(engine_buckets) <= set(parse_buckets(args.buckets)):
            raise ExportError(f"--engine-buckets {args.engine_buckets} asks for buckets the export will not have "
                              f"(--buckets {args.buckets}); choose engine buckets among the export's")
    if is_export:
        if args.out is not None:
            raise ExportError("--out does not apply to an existing export folder (only --engine builds there); "
                              "drop --out")
        check_model_args(args, args.checkpoint)
        return
    if args.out is not None:
        check_export_destination(args.out, force=args.force)
        check_writable_dir(os.path.dirname(os.path.abspath(args.out)), "--out")
    if args.config is not None and args.preset is not None:
        raise ExportError("give either --config or --preset, not both")
    for flag, value, least in (("--calibration-sequences", args.calibration_sequences, 1),
                               ("--calibration-frames", args.calibration_frames, 1),
                               ("--gate-sequences", args.gate_sequences, 1), ("--gate-frames", args.gate_frames, 2)):
        if value < least:
            raise ExportError(f"{flag} must be at least {least}, got {value}")
    if args.int8_keep is not None and args.precision not in ("int8", "all"):
        raise ExportError(f"--int8-keep applies to INT8 graphs; add --precision int8 (or all), not {args.precision}")
    if args.precision in ("int8", "all") and args.opset < 13:
        raise ExportError(f"INT8 export needs --opset 13 or more (per-channel QuantizeLinear), got {args.opset}")
    check_model_args(args, None)
    check_opset(args.opset)
    parse_buckets(args.buckets)
    if args.preset is not None:
        from ..presets import get_preset

        get_preset(args.preset)


def parse_buckets(text: str) -> tuple[int, ...]:
    """``--buckets 1,2,4`` -> ``(1, 2, 4)`` (1 always included); anything else is an :class:`ExportError`."""
    from .graphs import check_buckets

    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ExportError(f"--buckets must be comma-separated integers such as 1,2,4,8, got '{text[:40]}'") from None
    return check_buckets(values)


def _export(args: argparse.Namespace) -> int:
    is_export = is_export_folder(args.checkpoint)
    _check_args(args, is_export)
    if args.engine:  # fail before any work when TensorRT cannot be had
        from ..tensorrt.device import import_cudart, import_tensorrt

        import_tensorrt()
        import_cudart()
    if is_export:
        if not args.engine:
            raise ExportError(f"'{args.checkpoint}' is already an export folder; pass --engine to build TensorRT "
                              "engines from it")
        _print_engines(_build_engines(args, args.checkpoint))
        return 0
    from ..checkpoint import load_model
    from ..fsutil import check_export_destination
    from ..manifest import sha256_file
    from .exporter import export_model

    loaded = load_model(args.checkpoint, config=args.config, preset=args.preset,
                        allow_unsafe_pickle=args.trust_checkpoint)
    out = args.out or os.path.join("export", f"{loaded.preset.name}-{sha256_file(loaded.path)[:8]}")
    check_export_destination(out, force=args.force)
    check_writable_dir(os.path.dirname(os.path.abspath(out)), "--out")
    precision = args.precision
    if args.engine and args.engine_precision == "fp16" and precision == "fp32":
        logging.getLogger("siamdeploy.export").info("also exporting the FP16 graphs: the TensorRT FP16 build "
                                                    "needs them")
        precision = "both"
    if args.engine and args.engine_precision == "int8" and precision not in ("int8", "all"):
        logging.getLogger("siamdeploy.export").info("also exporting the INT8 graphs: the TensorRT INT8 build needs "
                                                    "them")
        precision = "all" if precision in ("fp16", "both") else "int8"
    from .int8 import Int8Options

    int8 = Int8Options(sequences=args.calibration_sequences, frames=args.calibration_frames,
                       keep=_keep(args.int8_keep), sensitivity=not args.no_sensitivity,
                       method=args.calibration_method, reduce_range=not args.int8_full_range)
    result = export_model(loaded, out, precision=precision, opset=args.opset, validate=not args.no_validate,
                          progress=not args.quiet, overwrite=args.force, int8=int8, gate=not args.no_gate,
                          gate_sequences=args.gate_sequences, gate_frames=args.gate_frames,
                          buckets=parse_buckets(args.buckets))
    built = _build_engines(args, result.folder) if args.engine else None
    print(f"exported {loaded.preset.name} to {result.folder}:")
    for graph in result.manifest.graphs:
        print(f"  {graph.file:<24} {graph.precision}  inputs {', '.join(graph.input_names)}")
    for weights in result.manifest.weights:
        users = sum(g.weights == weights.file for g in result.manifest.graphs)
        print(f"  {weights.file:<24} {weights.precision}  {weights.bytes / 2**20:.1f} MiB of weights shared by {users} "
              "graphs")
    print("  manifest.json")
    if result.report:
        worst = [line for line in result.report if "tracked box" in line]
        print("validated against PyTorch: " + "; ".join(worst))
    else:
        print("not validated (--no-validate)")
    _print_int8(result.int8)
    _print_gate(result)
    if built is not None:
        _print_engines(built)
        print(f"next: python -m siamdeploy.run demo --model {result.folder} --backend tensorrt "
              f"--precision {args.engine_precision}")
        return 0
    print(f"next: python -m siamdeploy.run demo --model {result.folder} --backend onnxruntime")
    return 0


def _keep(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    if text.strip().lower() == "none":
        return ()
    return tuple(k.strip() for k in text.split(",") if k.strip())


def _print_int8(info: dict | None) -> None:
    if not info:
        return
    from .int8 import sensitivity_lines

    kept = ", ".join(info.get("keep") or []) or "none (every stage INT8)"
    reused = info.get("calibration_reused") or []
    print(f"INT8: {info['weights']} weights, {info['activations']} activations; backbone stages kept in FP32: "
          f"{kept}; calibration {'reused from the cache' if reused else 'measured'} (int8_calibration/)")
    if info.get("sensitivity"):
        print("INT8 sensitivity (only that stage in INT8; relative error of the search outputs):")
        for line in sensitivity_lines(info["sensitivity"]):
            print(f"  {line}")


def _print_gate(result) -> None:  # noqa: ANN001 - an ExportResult
    from .accuracy import summary_lines

    if result.accuracy is None:
        if len(result.manifest.precisions) > 1:
            print("accuracy gate: not measured (--no-gate or --no-validate)")
        return
    data = result.accuracy
    print(f"accuracy gate ({data['gate']['what']}, against {data['reference']}, {len(data['data']['seeds'])} "
          f"generated sequences x {data['data']['frames_per_sequence']} frames; accuracy.json):")
    print("\n".join(summary_lines(data)))
    missed = [name for name, entry in data["results"].items() if not entry["passed"]]
    if missed:
        print(f"!!! {', '.join(missed)} MISSED the accuracy gate: still usable, but the boxes can differ from FP32; "
              f"the gate is {data['note']}")


def _build_engines(args: argparse.Namespace, folder: str):  # noqa: ANN202 - a siamdeploy.tensorrt.cache.CacheEntry
    from ..tensorrt.build import ensure_engines
    from ..tensorrt.network import BuildOptions

    buckets = parse_buckets(args.engine_buckets) if args.engine_buckets is not None else None
    return ensure_engines(folder, precision=args.engine_precision, cache_root=args.engine_dir,
                          options=BuildOptions(workspace_mb=args.workspace_mb), buckets=buckets)


def _print_engines(entry) -> None:  # noqa: ANN001 - a siamdeploy.tensorrt.cache.CacheEntry
    side = entry.sidecar
    print(f"TensorRT {side['tensorrt_version']} engines ({side['precision']} build, runs "
          f"{side.get('realised_precision', 'unverified')} per the engine inspector) for {side['gpu']['name']} "
          f"in {entry.path}:")
    for name, info in side["engines"].items():
        layers = side.get("layer_precision", {}).get(name, {}).get("summary", "")
        print(f"  {info['file']:<24} {info['bytes'] / 2**20:7.1f} MiB  {layers}")
    buckets = side.get("buckets") or []
    print(f"  batch buckets: {','.join(map(str, buckets)) if buckets else 'none (one engine call per target)'}")
    print(f"  {side.get('precision_summary', '')}")


if __name__ == "__main__":
    sys.exit(main())
