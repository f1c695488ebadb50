"""Mixed-precision ONNX: backbone and neck in FP16; correlation, heads, refine and graph I/O in FP32.

Correlations are long reductions and the heads feed softmax/exp, so they stay FP32 (docs/export.md#fp16).
Nodes are assigned by the module scope the exporter writes into node names (``/backbone/...``,
``/neck/...``); Cast nodes are inserted wherever a value crosses between the two precisions.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FP16_SCOPES = ("/net/backbone/", "/net/neck/", "/backbone/", "/neck/")


def _is_fp16_node(node: onnx.NodeProto) -> bool:
    return node.name.startswith(FP16_SCOPES)


def convert_mixed_fp16(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str], list[str]]:
    """Return ``(model, fp16_nodes, fp32_nodes)``; the input model is not modified."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    fp16_nodes = [n for n in graph.node if _is_fp16_node(n)]
    fp16_names = {n.name for n in fp16_nodes}
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    # 1) weights used only by FP16 nodes become FP16 initializers
    for name, init in inits.items():
        users = consumers.get(name, [])
        if users and all(u.name in fp16_names for u in users) and init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), name))
    fp16_values = {o for n in fp16_nodes for o in n.output}
    fp16_inits = {k for k, v in inits.items() if v.data_type == TensorProto.FLOAT16}
    new_nodes: list[onnx.NodeProto] = []
    casts: dict[tuple[str, int], str] = {}

    def cast(value: str, to: int) -> str:
        key = (value, to)
        if key not in casts:
            casts[key] = f"{value}__to_{'fp16' if to == TensorProto.FLOAT16 else 'fp32'}"
            new_nodes.append(helper.make_node("Cast", [value], [casts[key]], to=to, name=f"Cast_{casts[key]}"))
        return casts[key]

    float_values = _float_values(model)
    for node in graph.node:
        fp16 = node.name in fp16_names
        if fp16 and node.op_type == "Constant":  # float constants inside the FP16 scope change type too
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                    attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16),
                                                            attr.t.name))
        for i, name in enumerate(node.input):
            if not name:
                continue
            if fp16 and name not in fp16_values and name not in fp16_inits and name in float_values:
                node.input[i] = cast(name, TensorProto.FLOAT16)
            elif not fp16 and (name in fp16_values or name in fp16_inits):
                node.input[i] = cast(name, TensorProto.FLOAT)
        new_nodes.append(node)
    outputs = {o.name for o in graph.output}
    for out in graph.output:  # graph outputs stay FP32
        if out.name in fp16_values:
            internal = f"{out.name}__fp16"
            for node in new_nodes:
                for i, name in enumerate(node.output):
                    if name == out.name:
                        node.output[i] = internal
                for i, name in enumerate(node.input):
                    if name == out.name:
                        node.input[i] = internal
            new_nodes.append(helper.make_node("Cast", [internal], [out.name], to=TensorProto.FLOAT,
                                              name=f"Cast_{out.name}_out"))
    del graph.node[:]
    graph.node.extend(_toposort(new_nodes, [i.name for i in graph.input] + list(inits)))
    del graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    assert outputs == {o.name for o in model.graph.output}
    fp32_nodes = [n.name for n in model.graph.node if n.name not in fp16_names and n.op_type != "Cast"]
    return model, sorted(fp16_names), fp32_nodes


def _float_values(model: onnx.ModelProto) -> set[str]:
    """Names of FP32 tensors (inputs, initializers, inferred intermediates)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    values = {v.name for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
              if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    values |= {i.name for i in model.graph.initializer if i.data_type == TensorProto.FLOAT}
    return values


def _toposort(nodes: list[onnx.NodeProto], available: list[str]) -> list[onnx.NodeProto]:
    ready = set(available) | {""}
    pending = list(nodes)
    ordered: list[onnx.NodeProto] = []
    while pending:
        progress = False
        for node in list(pending):
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
                pending.remove(node)
                progress = True
        if not progress:
            raise ValueError("FP16 conversion produced a cycle or a dangling input")
    return ordered
