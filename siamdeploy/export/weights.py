"""One weights file per precision, shared by every graph of that precision (ONNX external data).

The template graph, each search graph and every bucket graph (``template_b8``, ``search_b8``, ...) hold the
same backbone and neck weights; inline, an export with the six default buckets carries about eleven copies
of them. After each graph is exported and checked, :meth:`SharedWeights.share` moves its initializers of
:data:`INLINE_BELOW` bytes or more into the precision's weights file (``weights_fp32.bin``,
``weights_fp16.bin``, ``weights_int8.bin``), each distinct tensor once, and rewrites the graph's initializers
as ``TensorProto.EXTERNAL`` references (``location`` / ``offset`` / ``length``): the graph file keeps only the
structure and the small tensors (shape constants, scalars). Offsets are aligned (:data:`ALIGNMENT`,
:data:`PAGE_ALIGNMENT` for tensors of 1 MiB or more, so a runtime that maps the file can map them in place).

Every consumer reads a graph from its path (``onnx.load(path)``, ``onnxruntime.InferenceSession(path)``,
OpenVINO ``read_model(path)``, TensorRT ``parse_from_file``), which resolves the weights file beside it.
docs/export.md#shared-weights-file.
"""
from __future__ import annotations

import hashlib
import os

import onnx
from onnx import TensorProto, numpy_helper
from onnx.external_data_helper import save_external_data, set_external_data, uses_external_data

# initializers smaller than this stay in the graph file (shape constants, scalars, tiny biases)
INLINE_BELOW = 1024
ALIGNMENT = 64
PAGE_ALIGNMENT = 4096
_PAGE_ALIGNED_FROM = 1 << 20


def weights_file_name(precision: str) -> str:
    """The weights file of ``precision``'s graphs: ``weights_<precision>.bin``."""
    return f"weights_{precision}.bin"


def _aligned(offset: int, size: int) -> int:
    step = PAGE_ALIGNMENT if size >= _PAGE_ALIGNED_FROM else ALIGNMENT
    return -(-offset // step) * step


class SharedWeights:
    """The weights file of one precision, written while the graphs are exported.

    onnx's helpers write each model's external tensors on their own (``save_model(save_as_external_data=True)``
    appends every tensor of that model to the file); nothing there finds a tensor that an earlier graph already
    wrote, so the content index (dtype + shape + sha256 of the bytes) is kept here, and onnx's
    ``set_external_data`` / ``save_external_data`` write the references and the bytes.
    """

    def __init__(self, folder: str, precision: str) -> None:
        self.folder = folder
        self.precision = precision
        self.file = weights_file_name(precision)
        self.path = os.path.join(folder, self.file)
        self.size = 0          # bytes in the file (the end of the last tensor)
        self.written = 0       # distinct tensors in the file
        self.references = 0    # external references written into graphs (>= written)
        self._index: dict[tuple[int, tuple[int, ...], bytes], tuple[int, int]] = {}
        with open(self.path, "wb"):
            pass

    def share(self, model: onnx.ModelProto) -> int:
        """Move ``model``'s initializers of :data:`INLINE_BELOW` bytes or more into the file (in place: they
        become external references; a tensor already in the file is referenced, not written again). Tensors
        that already live in another external file are loaded by the caller first (``onnx.load(path)`` does).
        Returns how many initializers now reference the file."""
        moved = 0
        for tensor in model.graph.initializer:
            if uses_external_data(tensor):
                raise ValueError(f"initializer {tensor.name} still references external data; load the model with "
                                 "its external data before sharing")
            if tensor.data_type in (TensorProto.STRING, TensorProto.UNDEFINED):
                continue
            if not tensor.HasField("raw_data"):  # typed fields (float_data, ...) -> raw bytes, same values
                if _typed_size(tensor) < INLINE_BELOW:
                    continue
                tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name))
            raw = tensor.raw_data
            if len(raw) < INLINE_BELOW:
                continue
            key = (tensor.data_type, tuple(tensor.dims), hashlib.sha256(raw).digest())
            found = self._index.get(key)
            if found is None:
                offset = _aligned(self.size, len(raw))
                set_external_data(tensor, self.file, offset)
                save_external_data(tensor, self.folder)  # pads to the offset, writes, records offset + length
                found = (offset, len(raw))
                self._index[key] = found
                self.size = offset + len(raw)
                self.written += 1
            else:
                set_external_data(tensor, self.file, found[0], found[1])
            tensor.ClearField("raw_data")
            moved += 1
        self.references += moved
        return moved


def _typed_size(tensor: TensorProto) -> int:
    count = 1
    for d in tensor.dims:
        count *= d
    return count * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize


def save_shared(model: onnx.ModelProto, path: str, weights: SharedWeights) -> str | None:
    """Move ``model``'s large initializers into ``weights`` (in place), then write ``model`` to ``path``.
    Returns the weights file's name when the graph references it, None when every tensor stayed inline."""
    moved = weights.share(model)
    onnx.save(model, path)
    return weights.file if moved else None


def external_locations(model: onnx.ModelProto) -> set[str]:
    """The external data files ``model``'s initializers reference (a model loaded without its external data)."""
    out = set()
    for tensor in model.graph.initializer:
        if uses_external_data(tensor):
            out |= {e.value for e in tensor.external_data if e.key == "location"}
    return out
