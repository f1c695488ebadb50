"""The latency benchmark's table: every header sits over its own column."""
from __future__ import annotations

import importlib.util
import os
import re

import pytest

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "latency.py")


@pytest.fixture(scope="module")
def latency():
    spec = importlib.util.spec_from_file_location("latency_benchmark", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ends(line: str) -> list[int]:
    return [m.end() for m in re.finditer(r"\S+", line)]


def test_headers_over_their_columns(latency) -> None:
    def stats(v: float) -> dict[str, float]:
        return {"p50": v, "p90": v * 1.5, "p99": v * 20}

    rows = {"torch (fp32, cpu)": {"template_ms": stats(3.2), "search_ms": stats(12.3),
                                  "runtime_overhead_ms": stats(1.1), "frame_ms": stats(15.0), "fps": 66.1},
            "onnxruntime (fp16, cuda:0) long label": {
                "template_ms": stats(2.2), "search_ms": stats(1222.3), "runtime_overhead_ms": stats(0.1),
                "frame_ms": stats(1225.0), "fps": 8.1}}
    top, sub, rule, *body = latency.format_table(rows)
    assert len({len(top), len(sub), len(rule), *map(len, body)}) == 1, "every line has the same width"
    header_ends = _ends(sub)[1:]  # after 'backend': template p50, 3 x (p50 p90 p99), FPS
    assert len(header_ends) == 11
    for line in body:
        label_end = len(next(label for label in rows if line.startswith(label)))
        value_ends = [e for e in _ends(line) if e > label_end]
        assert value_ends == header_ends, line
    for title in ("search", "runtime overhead", "frame"):  # group titles centred over their three columns
        start = top.index(title)
        assert any(start >= e - 24 and start + len(title) <= e for e in header_ends[3::3])


def test_speedup_is_upstream_p50_over_row_p50(latency) -> None:
    def row(p50: float) -> dict:
        return {"frame_ms": {"p50": p50, "p90": p50, "p99": p50}}

    rows = {"onnxruntime cpu fp32": row(40.0), latency.UPSTREAM_LABEL: row(100.0), "openvino cpu fp32": row(25.0)}
    assert latency.speedups(rows) == {"onnxruntime cpu fp32": 2.5, "openvino cpu fp32": 4.0}
    assert latency.speedups({"onnxruntime cpu fp32": row(40.0)}) == {}, "no upstream row, no ratios"


def test_upstream_row_only_for_pysot_presets(latency, tmp_path) -> None:
    (tmp_path / "experiments" / "siamrpn_alex_dwxcorr").mkdir(parents=True)
    (tmp_path / "experiments" / "siamrpn_alex_dwxcorr" / "config.yaml").write_text("{}")
    assert latency.upstream_skip_reason(str(tmp_path), "siamrpn_alex_dwxcorr") == ""
    assert "no experiments/siammask_r50_l3/config.yaml" in latency.upstream_skip_reason(str(tmp_path),
                                                                                          "siammask_r50_l3")
    assert "not a pysot preset" in latency.upstream_skip_reason(str(tmp_path), "dasiamrpn_vot")


def test_upstream_path_must_be_a_pysot_checkout(tmp_path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, _PATH, "--upstream", str(tmp_path), "--presets", "siamrpn_alex_dwxcorr"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "not a STVIR/pysot checkout" in proc.stderr.splitlines()[-1], proc.stderr[-800:]


def test_refine_counts_as_engine_time(latency) -> None:
    """SiamMask's refine is network time: it is added to the frame's search time, not to the runtime overhead."""
    import time

    import numpy as np

    from siamdeploy.engine.base import Engine, SearchOutput

    class Slow(Engine):
        def _template(self, z):
            return ()

        def _search(self, x, kernels):
            return SearchOutput({"cls": np.zeros(1, np.float32), "loc": np.zeros(1, np.float32)})

        def refine(self, extras, cell):
            time.sleep(0.05)
            return np.zeros((127, 127), np.float32)

    timed = latency.TimedEngine(Slow())
    timed.search(np.zeros((1, 3, 8, 8), np.float32), ())
    before = timed.search_ms[-1]
    timed.refine(None, (0, 0))
    assert timed.search_ms[-1] - before >= 45.0 and len(timed.search_ms) == 1
