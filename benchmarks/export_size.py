"""Export size and time of random-weight models, and where the export time goes.

For every preset and ``--precision`` given, writes a seeded random-weight checkpoint, runs
``siamdeploy.export.exporter.export_model`` under cProfile and prints (and writes as JSON):

- the folder's total size in MiB, split into graph files (``*.onnx``) and shared weights files (``*.bin``),
  and the size the same graphs take with their weights inline (each graph holding its own copy);
- the wall time and the CPU time (all threads; steadier than the wall time on a shared machine) of the whole
  export in seconds, and the cumulative wall seconds spent in planning, ``torch.onnx.export``,
  the ONNX checks (``onnx.checker`` + shape inference), the FP16 conversion, writing the graphs and weights
  (saving, sharing initializers), hashing (sha256), INT8 quantization, validation and the accuracy gate.

    python benchmarks/export_size.py --presets siamrpn_alex_dwxcorr --precisions fp32 both --buckets 1,2,4,8,16,32

The checkpoint is ``siamdeploy.models.random_init.random_model(preset, seed=0)``; the export goes to a temporary
folder that is removed afterwards (``--keep DIR`` keeps it there).
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # siamdeploy

# (label, substring of the profiled function's "file:function" key) -> cumulative seconds
STAGES = {
    "plan (torch shapes)": ("siamdeploy/export/graphs.py", "plan_graphs"),
    "torch.onnx.export": ("torch/onnx/__init__.py", "export"),
    "onnx.load": ("onnx/__init__.py", "load_model"),
    "onnx checks": ("siamdeploy/export/exporter.py", "check"),
    "fp16 conversion": ("siamdeploy/export/fp16.py", "convert_mixed_fp16"),
    "write graphs + weights": ("onnx/__init__.py", "save_model"),
    "share weights": ("siamdeploy/export/weights.py", "share"),
    "sha256": ("siamdeploy/manifest.py", "sha256_file"),
    "int8": ("siamdeploy/export/int8.py", "write_int8_graphs"),
    "validation": ("siamdeploy/export/validate.py", "validate_export"),
    "accuracy gate": ("siamdeploy/export/accuracy.py", "measure_gate"),
}


def _stage_times(profile: cProfile.Profile) -> dict[str, float]:
    stats = pstats.Stats(profile)
    out = {label: 0.0 for label in STAGES}
    for (file, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        for label, (where, name) in STAGES.items():
            if file.replace(os.sep, "/").endswith(where) and func == name:
                out[label] += ct
    return out


def _folder_size(folder: str) -> dict[str, float]:
    sizes = {"onnx": 0, "bin": 0, "other": 0}
    files = 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            size = os.path.getsize(os.path.join(root, name))
            kind = "onnx" if name.endswith(".onnx") else "bin" if name.endswith(".bin") else "other"
            sizes[kind] += size
            files += 1
    mib = {k: v / 2**20 for k, v in sizes.items()}
    return {"total_mib": sum(mib.values()), "onnx_mib": mib["onnx"], "weights_mib": mib["bin"],
            "other_mib": mib["other"], "files": files, "inline_mib": _inline_size(folder) / 2**20}


def _inline_size(folder: str) -> int:
    """Bytes the export's files would take with every graph holding its own weights (as before shared weights
    files): each graph file plus the bytes of every external tensor it references, plus the other files."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    total = 0
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name.endswith(".bin") or not os.path.isfile(path):
            continue
        total += os.path.getsize(path)
        if name.endswith(".onnx"):
            model = onnx.load(path, load_external_data=False)
            total += sum(ExternalDataInfo(t).length or 0 for t in model.graph.initializer if uses_external_data(t))
    return total


def measure(preset_name: str, precision: str, buckets: tuple[int, ...], work: str, validate: bool, gate: bool,
            keep: str | None) -> dict[str, object]:
    """Export ``preset_name`` (random weights) with ``precision`` and ``buckets``; size, time and stages."""
    import torch

    from siamdeploy.checkpoint import load_model
    from siamdeploy.export.exporter import export_model
    from siamdeploy.models.random_init import random_model
    from siamdeploy.presets import get_preset

    checkpoint = os.path.join(work, f"{preset_name}.pth")
    if not os.path.isfile(checkpoint):
        torch.save(random_model(get_preset(preset_name), seed=0).state_dict(), checkpoint)
    loaded = load_model(checkpoint, preset=preset_name)
    out = os.path.join(keep or work, f"{preset_name}-{precision}-b{'_'.join(map(str, buckets))}")
    profile = cProfile.Profile()
    start, cpu = time.perf_counter(), time.process_time()
    profile.enable()
    export_model(loaded, out, precision=precision, buckets=buckets, validate=validate, gate=gate, progress=False)
    profile.disable()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    row: dict[str, object] = {"preset": preset_name, "precision": precision, "buckets": list(buckets),
                              "validate": validate, "gate": gate, "seconds": wall, "cpu_seconds": cpu,
                              **_folder_size(out),
                              "stages_s": _stage_times(profile)}
    if keep is None:
        shutil.rmtree(out)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["siamrpn_alex_dwxcorr"])
    ap.add_argument("--precisions", nargs="+", default=["fp32"])
    ap.add_argument("--buckets", default="1,2,4,8,16,32")
    ap.add_argument("--no-validate", action="store_true", help="skip validation (and the accuracy gate)")
    ap.add_argument("--no-gate", action="store_true", help="skip the accuracy gate")
    ap.add_argument("--keep", default=None, help="keep the export folders under this folder")
    ap.add_argument("--json", default=os.path.join("benchmarks", "results", "export_size.json"))
    args = ap.parse_args(argv)
    buckets = tuple(sorted({1, *(int(b) for b in args.buckets.split(","))}))
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for preset in args.presets:
            for precision in args.precisions:
                row = measure(preset, precision, buckets, work, not args.no_validate,
                              not (args.no_gate or args.no_validate), args.keep)
                rows.append(row)
                stages = ", ".join(f"{k} {v:.1f}" for k, v in row["stages_s"].items() if v)  # type: ignore[union-attr]
                print(f"{preset} {precision} buckets {args.buckets}: {row['total_mib']:.1f} MiB "
                      f"(graphs {row['onnx_mib']:.1f}, weights {row['weights_mib']:.1f}, other "
                      f"{row['other_mib']:.1f}; {row['files']} files; {row['inline_mib']:.1f} MiB with inline "
                      f"weights), {row['seconds']:.1f} s wall, {row['cpu_seconds']:.1f} s CPU ({stages})", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump({"python": sys.version.split()[0], "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
