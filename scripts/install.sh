#!/usr/bin/env bash
# Install siamdeploy (editable) with what the demo and the README need (torch, onnx, onnxruntime; `dev` adds
# the test and lint tools and the serving stack; `serve` adds only the serving stack).
# Usage: bash scripts/install.sh [dev|serve]
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
[ "${1:-}" = "serve" ] && extras="[torch,onnx,bench,serve]"
"$PY" -m pip install -q -e ".${extras}"
if [ "${1:-}" = "dev" ] || [ "${1:-}" = "serve" ]; then
    # Triton Inference Server through PyTriton (python -m siamdeploy.serve). --no-deps: its metadata pins numpy<2,
    # which would downgrade NumPy and OpenCV under the whole project; its other requirements are in the serve
    # extra, and its server's Python stub gets a small NumPy < 2 environment of its own (made once here).
    "$PY" -m pip install -q --no-deps "nvidia-pytriton>=0.7,<0.8"
    "$PY" -m siamdeploy.serve.stubenv >/dev/null
fi
