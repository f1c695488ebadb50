"""The correlation layers are grouped convolutions with the template output as weight; check them against
an explicit sliding-window sum (an independent implementation), and check the two-branch split."""
from __future__ import annotations

import torch

from siamdeploy.models.heads import depthwise_xcorr, full_xcorr


def _sliding(search: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """out[b, c, i, j] = sum_{u,v} search[b, c, i+u, j+v] * kernel[c, u, v] (per channel)."""
    b, c, h, w = search.shape
    k = kernel.shape[-1]
    out = torch.zeros(b, c, h - k + 1, w - k + 1, dtype=torch.float64)
    for i in range(h - k + 1):
        for j in range(w - k + 1):
            out[:, :, i, j] = (search[:, :, i:i + k, j:j + k].double() * kernel.double()).sum(dim=(2, 3))
    return out


def test_depthwise_xcorr_matches_sliding_window() -> None:
    g = torch.Generator().manual_seed(0)
    search = torch.randn(2, 6, 9, 9, generator=g)
    template = torch.randn(1, 6, 4, 4, generator=g)
    weight = template.reshape(6, 1, 4, 4)
    got = depthwise_xcorr(search, weight).double()
    expected = _sliding(search, template[0])
    assert got.shape == (2, 6, 6, 6)
    assert torch.allclose(got, expected, atol=1e-4)


def test_full_xcorr_matches_sliding_window_summed_over_channels() -> None:
    g = torch.Generator().manual_seed(1)
    search = torch.randn(1, 5, 8, 8, generator=g)
    kernels = torch.randn(3, 5, 3, 3, generator=g)  # K=3 filters of C=5 channels
    got = full_xcorr(search, kernels).double()
    for kk in range(3):
        expected = _sliding(search, kernels[kk]).sum(dim=1)
        assert torch.allclose(got[:, kk], expected, atol=1e-4)


def test_batched_search_shares_one_template() -> None:
    g = torch.Generator().manual_seed(2)
    search = torch.randn(3, 4, 7, 7, generator=g)
    weight = torch.randn(4, 1, 3, 3, generator=g)
    batched = depthwise_xcorr(search, weight)
    single = torch.cat([depthwise_xcorr(search[i:i + 1], weight) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-6)
