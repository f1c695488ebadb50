"""Bucket graphs share one weights file per precision (ONNX external data): the files, their references and
alignment, the export size against a single-target export, refusal of a missing or changed weights file,
exports with inline weights (written before shared weights) still loading with the same outputs, the export
cache noticing a changed weights file, and the TensorRT cache key holding the weights file's sha256."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import onnx
import pytest
from onnx.external_data_helper import ExternalDataInfo, uses_external_data

from siamdeploy.checkpoint import load_model
from siamdeploy.errors import ExportError
from siamdeploy.export.exporter import export_model
from siamdeploy.export.weights import ALIGNMENT, INLINE_BELOW, weights_file_name
from siamdeploy.manifest import MANIFEST, read_manifest, sha256_file

PRESET = "siamfc"  # the smallest network; bucket graphs for SiamFC fold its three scales into the batch
BUCKETS = (1, 2, 4)


@pytest.fixture(scope="module")
def exports(random_checkpoint, tmp_path_factory) -> dict[str, str]:
    """``{"buckets": folder with fp32 + fp16 graphs for BUCKETS, "single": fp32 single-target graphs}``."""
    loaded = load_model(random_checkpoint(PRESET), preset=PRESET)
    root = tmp_path_factory.mktemp("shared_weights")
    out = {"buckets": str(root / "buckets"), "single": str(root / "single")}
    export_model(loaded, out["buckets"], precision="both", buckets=BUCKETS, validate=False, progress=False)
    export_model(loaded, out["single"], precision="fp32", buckets=(1,), validate=False, progress=False)
    return out


def _size(folder: str, precision: str) -> int:
    m = read_manifest(folder, verify=False)
    files = [g.file for g in m.graphs if g.precision == precision] + [w.file for w in m.weights
                                                                      if w.precision == precision]
    return sum(os.path.getsize(os.path.join(folder, f)) for f in files)


def test_one_weights_file_per_precision_referenced_by_every_graph(exports) -> None:
    folder = exports["buckets"]
    m = read_manifest(folder)  # verifies the weights files' sha256 too
    assert {w.precision: w.file for w in m.weights} == {p: weights_file_name(p) for p in ("fp32", "fp16")}
    assert m.buckets("fp32") == BUCKETS and m.buckets("fp16") == BUCKETS
    for w in m.weights:
        assert os.path.getsize(os.path.join(folder, w.file)) == w.bytes and sha256_file(
            os.path.join(folder, w.file)) == w.sha256
    for g in m.graphs:
        assert g.weights == weights_file_name(g.precision), g.file
        model = onnx.load(os.path.join(folder, g.file), load_external_data=False)
        inline = [t for t in model.graph.initializer if not uses_external_data(t)]
        assert all(len(t.raw_data) < INLINE_BELOW for t in inline), g.file
        external = [ExternalDataInfo(t) for t in model.graph.initializer if uses_external_data(t)]
        assert external and {e.location for e in external} == {g.weights}, g.file
        assert all(e.offset % ALIGNMENT == 0 and e.offset + e.length <= m.weights_file(g).bytes  # type: ignore
                   for e in external), g.file
        assert os.path.getsize(os.path.join(folder, g.file)) < 64 * 1024, f"{g.file} holds weights inline"


def test_bucket_export_is_about_the_size_of_a_single_target_export(exports) -> None:
    with_buckets, single = _size(exports["buckets"], "fp32"), _size(exports["single"], "fp32")
    assert with_buckets < 1.5 * single, (with_buckets, single)
    # one copy of the weights: the file holds no tensor twice, and no more than the single-target graphs' weights
    m = read_manifest(exports["single"], verify=False)
    inline = 0
    for g in m.graphs:
        model = onnx.load(os.path.join(exports["single"], g.file))  # external data resolved from the folder
        inline += sum(onnx.numpy_helper.to_array(t).nbytes for t in model.graph.initializer)
    assert m.weights[0].bytes < inline, "template and search share the backbone weights"


def test_shared_weights_give_the_inline_graphs_outputs(exports, tmp_path) -> None:
    """An export with inline weights (as written before shared weights: no ``weights`` in the manifest) loads
    and computes exactly what the shared-weights graphs compute."""
    import onnxruntime as ort

    old = _inline_copy(exports["buckets"], str(tmp_path / "inline"))
    m = read_manifest(old)
    assert not m.weights and all(g.weights is None for g in m.graphs)
    rng = np.random.default_rng(3)
    for g in m.graphs:
        if g.role not in ("template", "search_batched") or g.precision not in ("fp32", "fp16"):
            continue
        feeds = {t.name: rng.uniform(0, 255, t.shape).astype(np.float32) for t in g.inputs}
        outs = [ort.InferenceSession(os.path.join(f, g.file), providers=["CPUExecutionProvider"]).run(None, feeds)
                for f in (exports["buckets"], old)]
        for a, b in zip(*outs):
            np.testing.assert_array_equal(a, b)


def _inline_copy(folder: str, out: str) -> str:
    """``folder`` rewritten as an export of the format before shared weights: every graph holds its weights."""
    os.makedirs(out)
    with open(os.path.join(folder, MANIFEST)) as fh:
        data = json.load(fh)
    for variants in data["graphs"].values():
        for entry in variants.values():
            model = onnx.load(os.path.join(folder, entry["file"]))  # reads the weights file
            onnx.save(model, os.path.join(out, entry["file"]))
            entry["sha256"] = sha256_file(os.path.join(out, entry["file"]))
            entry.pop("weights", None)
    data.pop("weights")
    with open(os.path.join(out, MANIFEST), "w") as fh:
        json.dump(data, fh)
    return out


@pytest.mark.parametrize("damage", ["flip", "truncate", "remove"])
def test_missing_or_changed_weights_file_is_refused(exports, tmp_path, damage: str) -> None:
    import siamdeploy

    folder = str(tmp_path / "copy")
    shutil.copytree(exports["buckets"], folder)
    path = os.path.join(folder, weights_file_name("fp16"))
    if damage == "remove":
        os.remove(path)
    elif damage == "truncate":
        with open(path, "r+b") as fh:
            fh.truncate(os.path.getsize(path) - 4)
    else:
        with open(path, "r+b") as fh:
            fh.seek(os.path.getsize(path) // 2)
            byte = fh.read(1)
            fh.seek(-1, os.SEEK_CUR)
            fh.write(bytes([byte[0] ^ 0xFF]))
    for load in (lambda: read_manifest(folder), lambda: siamdeploy.load_tracker(folder, backend="onnxruntime")):
        with pytest.raises(ExportError) as info:
            load()
        message = str(info.value)
        assert "\n" not in message and weights_file_name("fp16") in message and "python -m siamdeploy.export" in message
        assert ("is missing" if damage == "remove" else "changed after export") in message


def test_export_cache_notices_a_changed_weights_file(random_checkpoint, tmp_path, monkeypatch) -> None:
    from siamdeploy.export import cache, exporter

    monkeypatch.setenv("SIAMDEPLOY_CACHE", str(tmp_path / "cache"))
    calls = []
    real = exporter.export_model

    def quick(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - the exporter without validation
        calls.append(args[1])
        return real(*args, **{**kwargs, "validate": False, "progress": False})

    monkeypatch.setattr(exporter, "export_model", quick)
    folder, _ = cache.ensure_export(random_checkpoint(PRESET), "fp32", preset=PRESET)
    assert cache.ensure_export(random_checkpoint(PRESET), "fp32", preset=PRESET)[0] == folder and len(calls) == 1
    with open(os.path.join(folder, weights_file_name("fp32")), "r+b") as fh:
        fh.write(b"\x7f\x7f\x7f\x7f")
    again, manifest = cache.ensure_export(random_checkpoint(PRESET), "fp32", preset=PRESET)
    assert again == folder and len(calls) == 2, "a changed weights file makes the cached export stale"
    read_manifest(folder)  # the new export verifies


def test_tensorrt_cache_key_holds_the_weights_sha(exports) -> None:
    from siamdeploy.tensorrt.cache import select_sources

    m = read_manifest(exports["buckets"], verify=False)
    with open(os.path.join(exports["buckets"], MANIFEST)) as fh:
        data = json.load(fh)
    for source in (m, data):  # the typed manifest and its JSON form
        sources = select_sources(source, "fp16", "strong")
        want = next(w.sha256 for w in m.weights if w.precision == "fp16")
        assert sources and all(s["weights_sha256"] == want for s in sources.values())
        assert all(s["weights_sha256"] == next(w.sha256 for w in m.weights if w.precision == "fp32")
                   for s in select_sources(source, "fp32", "strong").values())


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["graphs"]["search"]["fp32"].update(weights="other.bin"), "weights list does not hold"),
    (lambda d: d["weights"][0].update(file="../weights_fp32.bin"), "not a plain file name"),
    (lambda d: d["weights"][0].pop("sha256"), r"lacks weights\[0\]\.sha256"),
    (lambda d: d["weights"].append(dict(d["weights"][0])), "lists a file twice"),
])
def test_malformed_weights_entries_get_one_line(exports, tmp_path, edit, message) -> None:  # noqa: ANN001
    folder = str(tmp_path / "copy")
    shutil.copytree(exports["buckets"], folder)
    path = os.path.join(folder, MANIFEST)
    with open(path) as fh:
        data = json.load(fh)
    edit(data)
    with open(path, "w") as fh:
        json.dump(data, fh)
    with pytest.raises(ExportError, match=message) as info:
        read_manifest(folder)
    assert "\n" not in str(info.value)
