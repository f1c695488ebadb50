"""The export's INT8 (Q/DQ) graphs as TensorRT's explicit-quantization input (not run on a GPU yet).

The graphs are onnxruntime's QDQ format: int8 activations with zero point 0, int8 weights per output channel,
and int32 biases behind a ``DequantizeLinear``. TensorRT quantizes activations and weights only (its
``IDequantizeLayer`` takes int8/fp8/int4 inputs) and fuses a float bias into the int8 convolution, so each
int32 bias is folded back to float32 (``(q - zero point) * scale``, the value onnxruntime computes) before the
graph is parsed. Nothing else changes: the network is strongly typed and its Q/DQ layers decide which layers
run in int8.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import DependencyError


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise DependencyError("building TensorRT INT8 engines reads the Q/DQ graphs with onnx: pip install onnx") \
            from None
    return onnx


def fold_int32_bias(model: Any) -> int:
    """Replace every ``DequantizeLinear`` of an int32 initializer by the float32 initializer it computes; in
    place. Returns how many were folded."""
    onnx = _onnx()
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    folded = 0
    for node in list(model.graph.node):
        if node.op_type != "DequantizeLinear" or node.input[0] not in inits:
            continue
        if inits[node.input[0]].data_type != onnx.TensorProto.INT32:
            continue
        q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float64)
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        zero = (numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
                if len(node.input) > 2 and node.input[2] in inits else np.zeros_like(scale))
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if scale.ndim == 1 and q.ndim > 1:
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        value = ((q - zero) * scale).astype(np.float32)
        model.graph.node.remove(node)
        model.graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
        folded += 1
    used = {i for n in model.graph.node for i in n.input}
    for init in [i for i in model.graph.initializer if i.name not in used]:
        model.graph.initializer.remove(init)
    return folded


def tensorrt_int8_onnx(onnx_file: str, out_dir: str) -> str:
    """``onnx_file`` with its int32 biases folded (:func:`fold_int32_bias`), written into ``out_dir``; the
    path to parse. ``onnx_file`` itself when there was nothing to fold."""
    onnx = _onnx()
    model = onnx.load(onnx_file)
    if not fold_int32_bias(model):
        return onnx_file
    path = os.path.join(out_dir, os.path.basename(onnx_file))
    onnx.save(model, path)
    return path
