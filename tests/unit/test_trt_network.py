"""The TensorRT network/config step over a fake network: FP32 pinning (incl. the parser's auxiliary layers),
creation flags per version, the precision routes (strong, weak FP16, INT8 from Q/DQ only), TF32 off."""
from __future__ import annotations

import enum
from types import SimpleNamespace

import pytest

from siamdeploy.errors import EngineError
from siamdeploy.tensorrt import cache, network, versions


class DT(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT64 = 2


class LT(enum.Enum):
    CONVOLUTION = 0
    QUANTIZE = 1
    DEQUANTIZE = 2
    SHUFFLE = 3


def fake_trt() -> SimpleNamespace:
    return SimpleNamespace(
        __version__="10.8.0.43", float32=DT.FLOAT, float16=DT.HALF, LayerType=LT,
        BuilderFlag=SimpleNamespace(FP16="FP16", TF32="TF32", OBEY_PRECISION_CONSTRAINTS="OBEY"),
        NetworkDefinitionCreationFlag=SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=5),
        MemoryPoolType=SimpleNamespace(WORKSPACE="WORKSPACE"), ProfilingVerbosity=SimpleNamespace(DETAILED="DETAILED"))


class Tensor:
    def __init__(self, name: str, dtype: DT = DT.FLOAT) -> None:
        self.name, self.dtype = name, dtype


class Layer:
    def __init__(self, name: str, inputs: list, outputs: list, type: LT = LT.CONVOLUTION) -> None:
        self.name, self.inputs, self.outputs, self.type = name, inputs, outputs, type
        self.precision = None
        self.output_types: dict[int, DT] = {}

    num_inputs = property(lambda self: len(self.inputs))
    num_outputs = property(lambda self: len(self.outputs))

    def get_input(self, i: int) -> Tensor | None:
        return self.inputs[i]

    def get_output(self, i: int) -> Tensor:
        return self.outputs[i]

    def set_output_type(self, i: int, dtype: DT) -> None:
        self.output_types[i] = dtype


class Network:
    def __init__(self, layers: list[Layer]) -> None:
        self.layers = layers

    num_layers = property(lambda self: len(self.layers))

    def get_layer(self, i: int) -> Layer:
        return self.layers[i]


class Config:
    def __init__(self) -> None:
        self.flags: set[str] = set()
        self.cleared: set[str] = set()
        self.pools: dict[str, int] = {}
        self.profiling_verbosity = None

    def set_flag(self, flag: str) -> None:
        self.flags.add(flag)

    def clear_flag(self, flag: str) -> None:
        self.cleared.add(flag)

    def set_memory_pool_limit(self, pool: str, nbytes: int) -> None:
        self.pools[pool] = nbytes


class Builder:
    platform_has_fast_fp16 = True

    def create_builder_config(self) -> Config:
        return Config()


def siam_network() -> Network:
    """backbone (FP16 node) -> correlation Conv (FP32 node, two layers) -> a parser-added cast -> head;
    another parser-added layer fed by the backbone, and a shape layer inside the FP32 node."""
    names = ("x", "feat", "corr", "corr2", "cast", "head", "cast_bb", "shape")
    x, feat, corr, corr2, cast, head, cast_bb, shape = (Tensor(n) for n in names)
    shape.dtype = DT.INT64
    return Network([
        Layer("/backbone/conv/Conv", [x], [feat]),
        Layer("/rpn/xcorr/Conv", [feat, Tensor("kernel")], [corr]),
        Layer("/rpn/xcorr/Conv_17", [corr], [corr2]),
        Layer("/rpn/xcorr/Conv_18", [corr2], [shape], LT.SHUFFLE),  # shape arithmetic: nothing to pin
        Layer("ONNXTRT_castHelper_19", [corr2], [cast]),
        Layer("/rpn/head/Conv", [cast], [head]),
        Layer("ONNXTRT_Broadcast_20", [feat], [cast_bb]),  # fed by an FP16 layer: stays free
    ])


def test_pin_fp32_pins_nodes_and_their_auxiliary_layers() -> None:
    trt, net = fake_trt(), siam_network()
    pinned = network.pin_fp32(trt, net, ["/rpn/xcorr/Conv", "/rpn/head/Conv"])
    got = {layer.name: layer.precision for layer in net.layers}
    assert got == {"/backbone/conv/Conv": None, "/rpn/xcorr/Conv": DT.FLOAT, "/rpn/xcorr/Conv_17": DT.FLOAT,
                   "/rpn/xcorr/Conv_18": None, "ONNXTRT_castHelper_19": DT.FLOAT, "/rpn/head/Conv": DT.FLOAT,
                   "ONNXTRT_Broadcast_20": None}
    assert pinned == 4
    assert all(layer.output_types == {0: DT.FLOAT} for layer in net.layers if layer.precision is DT.FLOAT)


def test_network_flags_per_version() -> None:
    trt = fake_trt()
    assert network.network_flags(trt, "weak", (8, 6, 1)) == 1 << 0
    assert network.network_flags(trt, "strong", (9, 2, 0)) == (1 << 0) | (1 << 5)
    assert network.network_flags(trt, "strong", (10, 8, 0)) == 1 << 5
    assert network.network_flags(trt, "weak", (10, 8, 0)) == 0
    assert network.network_flags(trt, "strong", (11, 4, 0)) == 1 << 5  # accepted and ignored on 11


def test_builder_config_routes() -> None:
    trt, builder = fake_trt(), Builder()
    config, pinned = network.builder_config(trt, builder, siam_network(), {"typing": "strong", "workspace_mb": 256},
                                            "fp16", ["/rpn/head/Conv"], "search", "search_fp16.onnx")
    assert config.flags == set() and pinned == 0  # strongly typed: the ONNX's types decide
    assert config.cleared == {"TF32"} and config.pools == {"WORKSPACE": 256 << 20}
    assert config.profiling_verbosity == "DETAILED"
    config, pinned = network.builder_config(trt, builder, siam_network(), {"typing": "weak"}, "fp16",
                                            ["/rpn/head/Conv"], "search", "search.onnx")
    assert config.flags == {"FP16", "OBEY"} and pinned == 1
    config, _ = network.builder_config(trt, builder, siam_network(), {"typing": "weak", "tf32": True}, "fp32",
                                       [], "search", "search.onnx")
    assert config.flags == set() and config.cleared == set()


def test_int8_needs_qdq_layers() -> None:
    trt, builder = fake_trt(), Builder()
    with pytest.raises(EngineError, match="no QuantizeLinear/DequantizeLinear.*explicit quantization"):
        network.builder_config(trt, builder, siam_network(), {"typing": "strong"}, "int8", [], "search", "s.onnx")
    qdq = siam_network()
    qdq.layers.insert(0, Layer("/q", [Tensor("x")], [Tensor("xq")], LT.QUANTIZE))
    config, _ = network.builder_config(trt, builder, qdq, {"typing": "strong"}, "int8", [], "search", "s.onnx")
    assert config.flags == set()  # no INT8 flag: Q/DQ on a strongly typed network


def test_int8_typing_and_sources() -> None:
    assert versions.resolve_typing((11, 4, 0), "auto", "int8") == "strong"
    assert versions.resolve_typing((10, 0, 1), "strong", "int8") == "strong"
    with pytest.raises(EngineError, match="TensorRT 10 or later"):
        versions.resolve_typing((8, 6, 1), "auto", "int8")
    with pytest.raises(EngineError, match="strongly typed"):
        versions.resolve_typing((10, 8, 0), "weak", "int8")
    graphs = {"template": {"fp32": {"file": "template.onnx", "sha256": "1"},
                           "int8": {"file": "template_int8.onnx", "sha256": "3"}}}
    assert cache.select_sources({"graphs": graphs}, "int8", "strong") == {
        "template": {"file": "template_int8.onnx", "sha256": "3"}}
    with pytest.raises(EngineError, match="no INT8 \\(Q/DQ\\) graphs"):
        cache.select_sources({"graphs": {"template": {"fp32": graphs["template"]["fp32"]}}}, "int8", "strong")
    with pytest.raises(EngineError, match="fp16, fp32 or int8"):
        cache.select_sources({"graphs": graphs}, "int4", "strong")
