"""Test matrices of known condition number and errors against float64 eigh.

Shared by the tests, `tritonsqrt check` and the benchmarks, so that every accuracy figure in
the project is measured the same way.
"""

from __future__ import annotations

import torch


def random_orthogonal(batch: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """Haar-distributed orthogonal matrices (QR of a Gaussian with the sign fix), float64."""
    gauss = torch.randn(batch, n, n, dtype=torch.float64, generator=generator)
    q, r = torch.linalg.qr(gauss)
    return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)


def _logspaced(n: int, kappa: float) -> torch.Tensor:
    """1 down to 1/kappa, log-spaced (n = 1: just 1)."""
    return torch.logspace(0, -torch.log10(torch.tensor(float(kappa))).item(), n, dtype=torch.float64)


def _clusters(n: int, kappa: float) -> torch.Tensor:
    """Half the eigenvalues at 1, half at 1/kappa (the odd one at 1): many at the small end,
    where float32 rounding costs the most (README "Accuracy", the wide check)."""
    small = n // 2
    return torch.cat([torch.ones(n - small, dtype=torch.float64), torch.full((small,), 1.0 / kappa, dtype=torch.float64)])


def _outlier(n: int, kappa: float) -> torch.Tensor:
    """Every eigenvalue at 1 but the last, at 1/kappa (n = 1: just 1)."""
    evals = torch.ones(n, dtype=torch.float64)
    evals[1:][-1:] = 1.0 / kappa
    return evals


def _one_large(n: int, kappa: float) -> torch.Tensor:
    """One eigenvalue at 1, every other at 1/kappa: the Frobenius norm is nearly lambda_max."""
    evals = torch.full((n,), 1.0 / kappa, dtype=torch.float64)
    evals[:1] = 1.0
    return evals


# Spectrum shapes of the test matrices, each with the end points 1 and 1/kappa (n >= 2); exact
# in float64 for kappa a power of ten (logspace reaches 10^-k exactly), always for the others.
SPECTRA = {"logspaced": _logspaced, "clusters": _clusters, "outlier": _outlier, "one_large": _one_large}


def spectrum(name: str, n: int, kappa: float) -> torch.Tensor:
    """The n eigenvalues (float64, 1 first) of spectrum shape `name` (one of SPECTRA)."""
    if name not in SPECTRA:
        raise ValueError(f"spectrum: expected one of {', '.join(SPECTRA)}, got {name!r}")
    return SPECTRA[name](n, kappa)


def spd_with_condition(batch: int, n: int, kappa: float, *, seed: int = 0, log_scale_range: float = 3.0,
                       dtype: torch.dtype = torch.float32, device="cpu", spectrum_name: str = "logspaced") -> torch.Tensor:
    """A = 10^u Q diag(l) Q^T, u uniform in [-r, r], per matrix; l from 1 to 1/kappa, log-spaced
    by default (`spectrum_name`: one of SPECTRA)."""
    gen = torch.Generator().manual_seed(seed)
    q = random_orthogonal(batch, n, gen)
    evals = spectrum(spectrum_name, n, kappa)
    scale = 10 ** ((torch.rand(batch, 1, 1, dtype=torch.float64, generator=gen) * 2 - 1) * log_scale_range)
    a = scale * (q * evals) @ q.mT
    a = 0.5 * (a + a.mT)
    return a.to(dtype=dtype, device=device)


def exact_roots(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sqrt, inv_sqrt) by float64 eigh of the (already rounded) input."""
    evals, evecs = torch.linalg.eigh(a.double())
    root = evals.clamp_min(0).sqrt()
    return (evecs * root.unsqueeze(-2)) @ evecs.mT, (evecs / root.unsqueeze(-2)) @ evecs.mT


def exact_gradients(a: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of <G, sqrt(A)> and <G, A^-1/2> by the float64 Loewner formula."""
    evals, evecs = torch.linalg.eigh(a.double())
    r = evals.sqrt()
    r_i, r_j = r.unsqueeze(-1), r.unsqueeze(-2)
    inner = evecs.mT @ grad.double() @ evecs
    g_sqrt = evecs @ (inner / (r_i + r_j)) @ evecs.mT
    g_inv = evecs @ (-inner / (r_i * r_j * (r_i + r_j))) @ evecs.mT
    return g_sqrt, g_inv


def exact_power(a: torch.Tensor, power: float) -> torch.Tensor:
    """A^power by float64 eigh of the (already rounded) input (inverse roots: power = -1/p)."""
    evals, evecs = torch.linalg.eigh(a.double())
    return (evecs * evals.clamp_min(0).pow(power).unsqueeze(-2)) @ evecs.mT


def exact_power_gradient(a: torch.Tensor, grad: torch.Tensor, power: float) -> torch.Tensor:
    """Gradient of <G, A^power> in float64: the eigenbasis times the divided differences of
    l^power, written as (l_i^power - l_j^power) / (l_i - l_j) = l_j^power expm1(power t) /
    (l_j expm1(t)), t = log(l_i / l_j), which stays accurate when l_i is close to l_j."""
    evals, evecs = torch.linalg.eigh(a.double())
    log_l = evals.log()
    t = log_l.unsqueeze(-1) - log_l.unsqueeze(-2)
    near = t.abs() < 1e-8
    safe_t = torch.where(near, torch.ones_like(t), t)
    ratio = torch.where(near, torch.full_like(t, power), torch.expm1(power * safe_t) / torch.expm1(safe_t))
    loewner = ratio * (evals.pow(power - 1)).unsqueeze(-2)
    return evecs @ ((evecs.mT @ grad.double() @ evecs) * loewner) @ evecs.mT


def relative_error(result: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """Relative Frobenius error per matrix (float64)."""
    exact = exact.double()
    return torch.linalg.matrix_norm(result.double() - exact) / torch.linalg.matrix_norm(exact)


def random_symmetric(batch: int, n: int, seed: int = 1, dtype=torch.float32, device="cpu") -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(batch, n, n, dtype=torch.float64, generator=gen)
    return (0.5 * (g + g.mT)).to(dtype=dtype, device=device)


def measure(fn, a: torch.Tensor, grad: torch.Tensor, inverse: bool, p: int = 2) -> tuple[float, float]:
    """Worst relative (forward, gradient) error of fn(A) over the batch against float64 eigh.

    fn computes A^(1/p), or A^(-1/p) when `inverse` (p = 2: the square roots).
    """
    a_in = a.detach().clone().requires_grad_(True)
    out = fn(a_in)
    (g,) = torch.autograd.grad(out, a_in, grad.to(out.dtype))
    if p == 2:
        exact_sqrt, exact_inv = exact_roots(a)
        g_sqrt, g_inv = exact_gradients(a, grad)
        exact, exact_grad = (exact_inv, g_inv) if inverse else (exact_sqrt, g_sqrt)
    else:
        power = -1.0 / p if inverse else 1.0 / p
        exact, exact_grad = exact_power(a, power), exact_power_gradient(a, grad, power)
    fwd = relative_error(out.detach(), exact)
    bwd = relative_error(g.detach(), exact_grad)
    return float(fwd.max()), float(bwd.max())
