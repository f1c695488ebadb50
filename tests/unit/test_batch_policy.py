"""How ``Engine.search_many`` cuts N targets into bucket calls (``batch_policy``: pad, split, any) and how a
batched search input travels to the network without being copied (``Engine.search_input``)."""
from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from siamdeploy.engine.base import Engine, SearchOutput, bucket_chunks, pad_rows
from siamdeploy.errors import ConfigError


def _fewest_exact(count: int, buckets: tuple[int, ...]) -> int:
    """The fewest bucket sizes that sum to ``count``, by trying every multiset (small counts only)."""
    for calls in range(1, count + 1):
        if any(sum(c) == count for c in itertools.combinations_with_replacement(buckets, calls)):
            return calls
    raise AssertionError("no decomposition")


def _check_cover(chunks: list[tuple[int, int, int]], count: int) -> None:
    assert [c[0] for c in chunks] == ([0] + [c[1] for c in chunks[:-1]] if chunks else [])  # contiguous, in order
    assert (chunks[-1][1] if chunks else 0) == count


def test_split_policy_examples() -> None:
    assert bucket_chunks(5, (1, 2, 4, 8), "split") == [(0, 4, 4), (4, 5, 1)]
    assert bucket_chunks(12, (1, 2, 4, 8, 16), "split") == [(0, 8, 8), (8, 12, 4)]
    assert bucket_chunks(3, (1, 2, 4), "split") == [(0, 2, 2), (2, 3, 1)]
    assert bucket_chunks(40, (1, 2, 4, 8, 16, 32), "split") == [(0, 32, 32), (32, 40, 8)]
    assert bucket_chunks(6, (1, 3, 4), "split") == [(0, 3, 3), (3, 6, 3)]  # fewest calls, not greedy 4 + 1 + 1
    assert bucket_chunks(3, (1,), "split") == [(0, 1, 1), (1, 2, 1), (2, 3, 1)]
    assert bucket_chunks(0, (1, 2), "split") == []


@pytest.mark.parametrize("buckets", [(1, 2, 4, 8, 16, 32), (1, 3, 4), (1, 5, 6, 9), (1,)])
def test_split_policy_is_exact_and_fewest(buckets: tuple[int, ...]) -> None:
    for count in range(0, 41 if len(buckets) > 1 and buckets[1] > 2 else 70):
        chunks = bucket_chunks(count, buckets, "split")
        _check_cover(chunks, count)
        assert all(stop - start == b and b in buckets for start, stop, b in chunks)  # nothing padded
        assert [b for _, _, b in chunks] == sorted((b for _, _, b in chunks), reverse=True)
        if 0 < count <= 20 and len(buckets) > 1:
            assert len(chunks) == _fewest_exact(count, buckets)


def test_pad_and_any_policies() -> None:
    assert bucket_chunks(5, (1, 2, 4, 8), "pad") == bucket_chunks(5, (1, 2, 4, 8)) == [(0, 5, 8)]
    assert bucket_chunks(40, (1, 32), "any") == [(0, 32, 32), (32, 40, 8)]
    assert bucket_chunks(7, (1, 32), "any") == [(0, 7, 7)]
    for count in range(0, 70):
        for policy in ("pad", "any"):
            chunks = bucket_chunks(count, (1, 2, 4, 8, 16, 32), policy)
            _check_cover(chunks, count)
            assert all(stop - start <= b for start, stop, b in chunks)
    with pytest.raises(ConfigError, match="batch policy 'fastest'"):
        bucket_chunks(3, (1, 2), "fastest")


class _Rows(Engine):
    """Records what every batched call got; each target's output is its crop's mean, so results identify rows."""

    backend = "test-rows"
    head_outputs = ("cls",)

    def __init__(self, buckets: tuple[int, ...], policy: str) -> None:
        self.buckets = buckets
        self.batch_policy = policy
        self.got: list[tuple[int, int, np.ndarray]] = []  # (targets, bucket, the array given to the network)

    def search_buckets(self, x: np.ndarray) -> tuple[int, ...]:
        return self.buckets

    def _template(self, z: np.ndarray) -> float:
        return 0.0

    def _search(self, x: np.ndarray, kernels: float) -> SearchOutput:
        return SearchOutput({"cls": np.full((1, 1), x.mean() + kernels, np.float32)})

    def _search_batch(self, xs, kernels, bucket):
        rows = pad_rows(xs, bucket)
        self.got.append((len(xs), bucket, rows))
        per = rows.shape[0] // bucket
        return [SearchOutput({"cls": np.full((1, 1), rows[i * per:(i + 1) * per].mean() + k, np.float32)})
                for i, k in zip(range(len(xs)), kernels)]


@pytest.mark.parametrize("policy, calls", [("split", [(4, 4), (1, 1)]), ("pad", [(5, 8)])])
def test_search_many_follows_the_engine_policy_and_takes_rows_without_copy(policy: str, calls) -> None:
    engine = _Rows((1, 2, 4, 8), policy)
    rng = np.random.default_rng(1)
    batch = engine.search_input(5, 1, 9)
    batch[...] = rng.uniform(0, 255, batch.shape).astype(np.float32)
    kernels = [float(k) for k in range(5)]
    outs = engine.search_many(batch, kernels)
    expected = [engine.search(x, k).outputs["cls"] for x, k in zip(batch, kernels)]
    assert [o.outputs["cls"] for o in outs] == expected
    batched = [(got, bucket) for got, bucket, _ in engine.got if bucket > 1]
    assert batched == [c for c in calls if c[1] > 1]
    assert engine.search_calls == len(calls) + len(kernels)  # the calls above, then the single references
    for got, bucket, rows in engine.got:
        if got == bucket:  # nothing padded: the network got the caller's rows themselves
            assert np.shares_memory(rows, batch)
        else:
            assert rows.shape[0] == bucket


def test_search_many_takes_lists_too() -> None:
    engine = _Rows((1, 2, 4), "split")
    xs = [np.full((1, 3, 5, 5), v, np.float32) for v in (1.0, 2.0, 3.0)]
    outs = engine.search_many(xs, [0.0, 0.0, 0.0])
    assert [float(o.outputs["cls"][0, 0]) for o in outs] == [1.0, 2.0, 3.0]
    assert [(g, b) for g, b, _ in engine.got] == [(2, 2), (1, 1)]


def test_search_input_is_reused_per_shape_and_thread() -> None:
    engine = _Rows((1, 2), "split")
    a = engine.search_input(3, 1, 7)
    assert a.shape == (3, 1, 3, 7, 7) and a.dtype == np.float32 and a.flags.c_contiguous
    b = engine.search_input(2, 1, 7)
    assert np.shares_memory(a, b) and b.shape[0] == 2  # fewer targets: the first rows of the same memory
    c = engine.search_input(3, 3, 7)
    assert not np.shares_memory(a, c)  # another crop count: another array
    other: list[np.ndarray] = []
    thread = threading.Thread(target=lambda: other.append(engine.search_input(3, 1, 7)))
    thread.start()
    thread.join()
    assert not np.shares_memory(a, other[0])  # every thread writes its own input


def test_pad_rows_pads_an_array_with_its_last_target() -> None:
    batch = np.arange(3 * 2 * 4, dtype=np.float32).reshape(3, 2, 4)
    rows = pad_rows(batch, 5)
    assert rows.shape == (10, 4)
    np.testing.assert_array_equal(rows[:6], batch.reshape(6, 4))
    np.testing.assert_array_equal(rows[6:8], batch[2])
    np.testing.assert_array_equal(rows[8:], batch[2])
    assert not np.shares_memory(rows, batch)
    assert np.shares_memory(pad_rows(batch, 3), batch)
