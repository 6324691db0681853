"""Fréchet and Bures-Wasserstein distances against pytorch-fid's formula, re-computed here with
scipy.linalg.sqrtm in float64 (the non-symmetric sqrtm(S1 S2), real part, an eps offset when it
fails), on sklearn-digits features: covariances of rank 61 of 64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tritonsqrt.functional as F

scipy_linalg = pytest.importorskip("scipy.linalg")
datasets = pytest.importorskip("sklearn.datasets")


def pytorch_fid_value(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's calculate_frechet_distance, written from its documented formula."""
    covmean = scipy_linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy_linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


@pytest.fixture(scope="module")
def digit_stats():
    digits = datasets.load_digits()
    stats = []
    for classes in ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [3], [8]):
        features = digits.data[np.isin(digits.target, classes)]
        stats.append((features.mean(0), np.cov(features, rowvar=False)))
    return stats


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_frechet_distance_meets_pytorch_fid(digit_stats, dtype):
    assert np.linalg.matrix_rank(digit_stats[0][1]) == 61  # rank-deficient, as feature covariances are
    pairs = [(digit_stats[0], digit_stats[1]), (digit_stats[2], digit_stats[3])]
    for (mu1, s1), (mu2, s2) in pairs:
        want = pytorch_fid_value(mu1, s1, mu2, s2)
        t = lambda v: torch.tensor(v, dtype=dtype)  # noqa: E731
        got = F.frechet_distance(t(mu1), t(s1), t(mu2), t(s2))
        assert got.dtype == dtype and abs(float(got) - want) < 1e-3, (float(got), want)
        assert abs(float(F.frechet_distance(t(mu1), t(s1), t(mu1), t(s1)))) < 1e-3  # FID(x, x) = 0
    # Batched: a stack of pairs gives each pair's value.
    mus1, sigmas1 = torch.tensor(np.stack([p[0][0] for p in pairs])), torch.tensor(np.stack([p[0][1] for p in pairs]))
    mus2, sigmas2 = torch.tensor(np.stack([p[1][0] for p in pairs])), torch.tensor(np.stack([p[1][1] for p in pairs]))
    batched = F.frechet_distance(mus1, sigmas1, mus2, sigmas2)
    assert batched.shape == (2,)
    for value, ((mu1, s1), (mu2, s2)) in zip(batched, pairs):
        assert abs(float(value) - pytorch_fid_value(mu1, s1, mu2, s2)) < 1e-3


def test_bures_wasserstein_symmetric_differentiable(digit_stats):
    (_, s1), (_, s2) = digit_stats[0], digit_stats[1]
    a, b = torch.tensor(s1, requires_grad=True), torch.tensor(s2, requires_grad=True)
    distance = F.bures_wasserstein_distance(a, b)
    with torch.no_grad():
        check_distance = float(distance.detach())
        zero = torch.zeros(64, dtype=torch.float64)
        fid_without_means = F.frechet_distance(zero, a, zero, b)
        assert abs(check_distance ** 2 - float(fid_without_means)) < 1e-8
        assert abs(float(F.bures_wasserstein_distance(b, a)) - check_distance) < 1e-8  # symmetric
        assert abs(float(F.bures_wasserstein_distance(a, a, squared=True))) < 1e-6  # rank-deficient: rounding 5e-8
    distance.backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    # Against finite differences on a full-rank pair (the derivative is unbounded on a null space).
    eye = torch.eye(64, dtype=torch.float64)
    x, y = (a.detach() + 0.5 * eye).requires_grad_(True), b.detach() + 0.5 * eye
    direction = torch.randn(64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    direction = direction + direction.T
    (grad,) = torch.autograd.grad(F.bures_wasserstein_distance(x, y, squared=True), x)
    x = x.detach()
    step = 1e-6
    numeric = (F.bures_wasserstein_distance(x + step * direction, y, squared=True)
               - F.bures_wasserstein_distance(x - step * direction, y, squared=True)) / (2 * step)
    assert abs(float((grad * direction).sum()) - float(numeric)) < 1e-5 * abs(float(numeric)) + 1e-6


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="sigma2 must be"):
        F.frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(3), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="mu1 must be"):
        F.frechet_distance(torch.zeros(4), torch.eye(3), torch.zeros(3), torch.eye(3))
