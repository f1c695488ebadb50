#!/usr/bin/env bash
# Install siamdeploy (editable) with what the demo and the README need (torch, onnx, onnxruntime; `dev` adds
# the test and lint tools). Usage: bash scripts/install.sh [dev]
# The package itself needs no torch (pip install siamdeploy onnxruntime tracks an export folder); torch is the
# `torch` extra, for checkpoints, the PyTorch backend and export.
# Where no torch is installed yet, the CPU build of torch 2.13 goes in first: an unpinned torch would pull a
# multi-GB CUDA build. Set TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu) to choose the index
# torch comes from; set PYTHON to use another interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "installing torch 2.13.0 (CPU build) first" >&2
    "$PY" -m pip install -q "torch==2.13.0" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
fi
extras="[torch,onnx,bench]"
[ "${1:-}" = "dev" ] && extras="[dev]"
"$PY" -m pip install -q -e ".${extras}"
