"""tritonsqrt.nn.ZCAWhitening and functional.zca_* with kornia's semantics (kornia.enhance.ZCAWhitening,
zca_mean, zca_whiten, linear_transform), against a float64 SVD implementation written here the way
kornia's documentation describes it: W = U (S + eps)^(-1/2) U^T of the covariance's SVD."""

from __future__ import annotations

import pytest
import torch

import tritonsqrt.functional as F
import tritonsqrt.nn as tnn
from tritonsqrt.testing import relative_error


def svd_zca(x: torch.Tensor, dim: int, unbiased: bool, eps: float):
    """(transform, mean (1, D), inverse) in float64 from the SVD of the covariance."""
    flat = x.double().movedim(dim, 0).reshape(x.shape[dim], -1)
    mean = flat.mean(0, keepdim=True)
    centered = flat - mean
    cov = centered.T @ centered / (flat.shape[0] - (1 if unbiased else 0))
    u, s, _ = torch.linalg.svd(cov)
    return (u * (s + eps).rsqrt()) @ u.T, mean, (u * (s + eps).sqrt()) @ u.T


def data(*shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    d = 1
    for size in shape[1:]:
        d *= size
    mixing = torch.randn(d, d, generator=gen, dtype=torch.float64) / d ** 0.5 + torch.eye(d, dtype=torch.float64)
    return ((torch.randn(shape[0], d, generator=gen, dtype=torch.float64) @ mixing) + 2.0).reshape(shape)


def err(a, b):
    return float(relative_error(a.detach().reshape(1, 1, -1).double(), b.detach().reshape(1, 1, -1).double()))


@pytest.mark.parametrize("shape, dim", [((50, 6), 0), ((40, 2, 3, 2), 0), ((3, 30, 4), 1)])
@pytest.mark.parametrize("unbiased", [True, False])
def test_fit_transform_inverse_match_the_svd_reference(shape, dim, unbiased):
    x = data(*shape).float()
    zca = tnn.ZCAWhitening(dim=dim, eps=1e-6, unbiased=unbiased, compute_inv=True).fit(x)
    transform, mean, inverse = svd_zca(x, dim, unbiased, 1e-6)
    assert zca.mean_vector.shape == mean.shape and err(zca.mean_vector, mean) < 1e-6
    assert err(zca.transform_matrix, transform) < 1e-5 and err(zca.transform_inv, inverse) < 1e-5
    y = zca(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    flat = y.double().movedim(dim, 0).reshape(x.shape[dim], -1)
    cov = flat.T @ flat / (flat.shape[0] - (1 if unbiased else 0))
    assert err(cov, torch.eye(cov.shape[0], dtype=torch.float64)) < 1e-4  # the identity: whitened
    assert err(zca.inverse_transform(y), x) < 1e-5


def test_kornia_conventions():
    x = data(30, 4).float()
    zca = tnn.ZCAWhitening()
    with pytest.raises(RuntimeError, match="not fitted"):
        zca(x)
    y = zca(x, include_fit=True)  # fits first, as kornia's include_fit
    assert zca.fitted and torch.equal(y, zca(x))
    with pytest.raises(RuntimeError, match="compute_inv=True"):
        zca.inverse_transform(y)
    # The functional forms agree with the module.
    transform, mean, inverse = F.zca_mean(x, return_inverse=True)
    assert torch.equal(transform, zca.transform_matrix) and torch.equal(mean, zca.mean_vector)
    assert err(F.zca_whiten(x), y) < 1e-6 and err(F.linear_transform(x, transform, mean), y) < 1e-6
    assert F.zca_mean(x)[2] is None


def test_detach_transforms():
    x = data(30, 4).float().requires_grad_(True)
    detached = tnn.ZCAWhitening()(x, include_fit=True)
    (gx,) = torch.autograd.grad(detached.sum(), x)
    # With detached transforms the gradient is that of the linear map only: W summed over rows.
    assert err(gx, torch.ones(30, 4) @ tnn.ZCAWhitening().fit(x).transform_matrix) < 1e-6
    live = tnn.ZCAWhitening(detach_transforms=False)(x, include_fit=True)
    (gx_live,) = torch.autograd.grad(live.square().sum(), x)
    ref = svd_zca(x.detach(), 0, True, 1e-6)
    assert torch.isfinite(gx_live).all() and gx_live.abs().max() > 0
    assert err(live, (x.detach().double() - ref[1]) @ ref[0]) < 1e-5


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="dim must index"):
        F.zca_mean(torch.randn(5, 3), dim=2)
    with pytest.raises(ValueError, match="at least 2 samples"):
        F.zca_mean(torch.randn(1, 3))
    with pytest.raises(ValueError, match="transform must be"):
        F.linear_transform(torch.randn(5, 3), torch.eye(4), torch.zeros(1, 3))


def test_kornia_documented_values():
    """The values kornia's documentation prints for zca_whiten and linear_transform."""
    x = torch.tensor([[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    expected = torch.tensor([[0.0, 1.1547], [1.0, -0.5773], [-1.0, -0.5773]])
    assert (F.zca_whiten(x) - expected).abs().max() < 1e-4
    out = F.linear_transform(torch.ones(10, 3, 4, 5), torch.ones(120, 120), 2 * torch.ones(1, 120), 3)
    assert out.shape == (10, 3, 4, 5) and torch.equal(out.unique(), torch.tensor([-120.0]))
    out = F.linear_transform(torch.ones(10, 2), torch.ones(2, 2), torch.zeros(1, 2))
    assert torch.equal(out.unique(), torch.tensor([2.0]))
