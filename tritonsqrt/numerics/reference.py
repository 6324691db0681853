"""Every method, step by step, in plain torch (any device, float32 or float64).

This module is the math of every method and nothing else: the torch path runs it, the Triton
kernels are tested against it, and the competitors of `tritonsqrt.perf.competitors` reuse its
pieces. Functions take a batch `(B, n, n)` of symmetric matrices in
the compute dtype and never synchronise with the host, so they trace under torch.compile.

Conventions: `norm` is the per-matrix Frobenius norm, shape (B, 1, 1) (for ns the trace, as
iSQRT-COV); `hat` quantities are divided by it; the scaled-root results are mapped back by `unscale`.
"""

from __future__ import annotations

import math

import torch

from .coefficients import inv_sqrt_taylor, sqrt_pade, sqrt_taylor

# ---------------------------------------------------------------------------------------
# Shared pieces


def identity_like(a: torch.Tensor) -> torch.Tensor:
    return torch.eye(a.shape[-1], dtype=a.dtype, device=a.device).expand_as(a)


def symmetrize(a: torch.Tensor) -> torch.Tensor:
    return 0.5 * (a + a.mT)


def frobenius_norm(a: torch.Tensor) -> torch.Tensor:
    """||a||_F per matrix, (B, 1, 1), with no overflow or underflow in the squares.

    The entries are divided by a power of two near the largest before squaring (float32
    squares overflow from 1e19 and vanish below 1e-23); a power of two divides exactly, so the
    value is bit for bit the plain one wherever that one is finite and non-zero.
    """
    largest = a.abs().amax(dim=(-2, -1), keepdim=True)
    power = torch.ldexp(torch.ones_like(largest), torch.frexp(largest)[1])  # 1 for 0, inf, NaN
    return torch.linalg.matrix_norm(a / power, keepdim=True) * power


def frobenius_normalize(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (a / ||a||_F, ||a||_F) per matrix. A zero matrix stays zero (no 0/0)."""
    norm = frobenius_norm(a)
    safe = torch.where(norm == 0, torch.ones_like(norm), norm)  # NaN stays NaN
    return a / safe, norm


def trace_normalize(a: torch.Tensor) -> torch.Tensor:
    """Return (a / tr(a), tr(a)) per matrix, tr shaped (B, 1, 1): iSQRT-COV's pre-normalisation
    (MPNCOV.py of github.com/jiangtaoxie/fast-MPN-COV), used by method "ns". A zero matrix stays zero."""
    trace = a.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    safe = torch.where(trace == 0, torch.ones_like(trace), trace)  # NaN stays NaN
    return a / safe, trace


def unscale(root_hat: torch.Tensor, norm: torch.Tensor, inverse: bool) -> torch.Tensor:
    """Map a root of a / ||a|| back to a root of a; a zero matrix gives 0 or diag(+inf)."""
    root_norm = norm.sqrt()
    if not inverse:
        return root_hat * root_norm
    zero = norm == 0
    scaled = root_hat / torch.where(zero, torch.ones_like(root_norm), root_norm)
    return torch.where(zero, infinite_identity_like(root_hat), scaled)


def infinite_identity_like(a: torch.Tensor) -> torch.Tensor:
    """diag(+inf): the inverse root of the zero matrix, as the limit of (eps I)^-1/2."""
    eye = identity_like(a)
    return torch.where(eye > 0, torch.full_like(eye, math.inf), torch.zeros_like(eye))


def matrix_powers(z: torch.Tensor, degree: int) -> list[torch.Tensor]:
    """[I, Z, Z^2, ..., Z^degree]: degree - 1 matrix products, shared by P and Q."""
    powers = [identity_like(z), z]
    for _ in range(degree - 1):
        powers.append(powers[-1] @ z)
    return powers[: degree + 1]


def polynomial(powers: list[torch.Tensor], coeffs: tuple[float, ...]) -> torch.Tensor:
    result = coeffs[0] * powers[0]
    for c, power in zip(coeffs[1:], powers[1:]):
        result = result + c * power
    return result


# ---------------------------------------------------------------------------------------
# Forward methods on the normalised matrix a_hat (spectrum in [0, 1])


def taylor_root(a_hat: torch.Tensor, degree: int, inverse: bool) -> torch.Tensor:
    """MTP: truncated binomial series of (1 - z)^(+-1/2) at Z = I - a_hat."""
    z = identity_like(a_hat) - a_hat
    coeffs = inv_sqrt_taylor(degree) if inverse else sqrt_taylor(degree)
    return polynomial(matrix_powers(z, degree), coeffs)


def pade_root(a_hat: torch.Tensor, num_degree: int, den_degree: int, inverse: bool) -> torch.Tensor:
    """MPA: Q(Z)^-1 P(Z) for the square root, P(Z)^-1 Q(Z) for the inverse root."""
    z = identity_like(a_hat) - a_hat
    p_coeffs, q_coeffs = sqrt_pade(num_degree, den_degree)
    powers = matrix_powers(z, max(num_degree, den_degree))
    p_mat = polynomial(powers, p_coeffs)
    q_mat = polynomial(powers, q_coeffs)
    # P and Q commute (polynomials of one Z), so the order of the solve does not matter.
    # A non-finite matrix is solved as I and written back as NaN: LAPACK / cuSOLVER never see it.
    (left, bad), right = mask_nonfinite(q_mat if not inverse else p_mat), (p_mat if not inverse else q_mat)
    solved = torch.linalg.solve_ex(left, torch.where(bad, identity_like(right), right))[0]
    return torch.where(bad | ~torch.isfinite(right).all(-1, keepdim=True).all(-2, keepdim=True), math.nan, solved)


def coupled_newton_schulz(a_hat: torch.Tensor, steps, want_inverse: bool = True):
    """Coupled iteration Y <- Y T, Z <- T Z with T = a I + b Z Y; returns (a_hat^1/2, a_hat^-1/2).

    `steps` is a sequence of (a, b); (1.5, -0.5) repeated is the classical Newton–Schulz
    iteration of iSQRT-COV, the minimax schedule of `coefficients.scaled_ns_schedule` the
    scaled one. On eigenvalues, x = sqrt(lambda) h(lambda) follows x -> x (a + b x^2).
    Z starts at I, so the first step is one product, not three; without `want_inverse` the
    last Z update is skipped and the second result is None.
    """
    eye = identity_like(a_hat)
    (a, b), rest = steps[0], steps[1:]
    t = a * eye + b * a_hat
    y, z = a_hat @ t, t
    for index, (a, b) in enumerate(rest):
        t = a * eye + b * (z @ y)
        last = index == len(rest) - 1
        y, z = y @ t, (t @ z if want_inverse or not last else None)
    return symmetrize(y), (symmetrize(z) if z is not None else None)


def newton_schulz_backward(a_hat: torch.Tensor, trace: torch.Tensor, steps, grad_sqrt, grad_inv) -> torch.Tensor:
    """dL/dA of method "ns": the derivative of the iteration itself, as iSQRT-COV's backward.

    Forward (iSQRT-COV, Li et al. CVPR 2018): A_hat = A / t, t = tr A; the coupled iteration of
    `coupled_newton_schulz`; S = sqrt(t) sym(Y_K), Y = sym(Z_K) / sqrt(t). This is reverse mode
    through exactly those products (the iterates are recomputed from A_hat, not stored), so the
    gradient is that of the K-step result, not of the exact root (the Lyapunov backward of the
    other methods). grad_sqrt / grad_inv: dL/dS, dL/dY or None. Returns the symmetric dL/dA.
    """
    t = torch.where(trace == 0, torch.ones_like(trace), trace)
    root_t = t.sqrt()
    eye = identity_like(a_hat)
    a0, b0 = steps[0]
    t0 = a0 * eye + b0 * a_hat
    # Forward again, keeping (Y_k, Z_k, T_k) for the steps after the first.
    y, z = a_hat @ t0, t0
    kept = []
    for index, (a, b) in enumerate(steps[1:]):
        t_k = a * eye + b * (z @ y)
        kept.append((y, z, t_k))
        last = index == len(steps) - 2  # its Y_K and Z_K only feed the compensation terms below
        y = y @ t_k if grad_sqrt is not None or not last else None
        z = t_k @ z if grad_inv is not None or not last else None
    g_y = symmetrize(grad_sqrt) * root_t if grad_sqrt is not None else None
    g_z = symmetrize(grad_inv) / root_t if grad_inv is not None else None
    # d/dt of the compensation factors: S = sqrt(t) S_hat, Y = Z_hat / sqrt(t).
    d_trace = torch.zeros_like(t)
    if g_y is not None:
        d_trace = d_trace + (grad_sqrt * symmetrize(y)).sum((-2, -1), keepdim=True) / (2 * root_t)
    if g_z is not None:
        d_trace = d_trace - (grad_inv * symmetrize(z)).sum((-2, -1), keepdim=True) / (2 * t * root_t)
    g_y = g_y if g_y is not None else torch.zeros_like(a_hat)
    for (y_k, z_k, t_k), (_, b) in zip(reversed(kept), reversed(steps[1:])):
        # Y' = Y T, Z' = T Z, T = a I + b Z Y.
        g_t = y_k.mT @ g_y
        g_y_next = g_y @ t_k.mT
        g_z_next = None
        if g_z is not None:
            g_t = g_t + g_z @ z_k.mT
            g_z_next = t_k.mT @ g_z
        g_m = b * g_t
        g_z = g_m @ y_k.mT + (g_z_next if g_z_next is not None else 0)
        g_y = g_y_next + z_k.mT @ g_m
    # Y_1 = A_hat T_0, Z_1 = T_0 = a I + b A_hat.
    g_t0 = a_hat.mT @ g_y + (g_z if g_z is not None else 0)
    g_a_hat = g_y @ t0.mT + b0 * g_t0
    d_trace = d_trace - (g_a_hat * a_hat).sum((-2, -1), keepdim=True) / t
    return symmetrize(g_a_hat / t + d_trace * eye)


def eigh_roots(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(sqrt, inv_sqrt, eigenvalues clamped at 0, eigenvectors) by eigendecomposition.

    A matrix with a NaN or Inf gives NaN in all four for that matrix only. The inverse root
    treats eigenvalues below the rounding level of the largest (eps * lambda_max, eps of the
    dtype) as that level: a singular positive semidefinite matrix gives a large finite
    inverse root, never inf * 0 = NaN; the zero matrix gives diag(+inf).
    """
    a, bad = mask_nonfinite(a)
    evals, evecs = torch.linalg.eigh(a)
    evals = evals.clamp_min(0)
    root = evals.sqrt()
    sqrt_mat = (evecs * root.unsqueeze(-2)) @ evecs.mT
    floor = evals.amax(dim=-1, keepdim=True) * torch.finfo(evals.dtype).eps
    inv_mat = (evecs * evals.clamp_min(floor).rsqrt().unsqueeze(-2)) @ evecs.mT
    # The zero matrix: diag(+inf) as in `unscale`, not inf * 0 = NaN.
    all_zero = (evals == 0).all(dim=-1).reshape(*evals.shape[:-1], 1, 1)
    inv_mat = torch.where(all_zero, infinite_identity_like(inv_mat), inv_mat)
    nan = math.nan
    return (torch.where(bad, nan, sqrt_mat), torch.where(bad, nan, inv_mat), torch.where(bad[..., 0], nan, evals),
            torch.where(bad, nan, evecs))


def mask_nonfinite(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a with each matrix holding a NaN or Inf replaced by I, which ones (B, 1, 1)).

    LAPACK and cuSOLVER fail the whole batch on one such matrix (`eigh` raises for 3 <= n <= 25
    on CPU); callers pass the masked batch and write NaN back with torch.where, no host sync.
    """
    bad = ~torch.isfinite(a).all(dim=-1, keepdim=True).all(dim=-2, keepdim=True)
    return torch.where(bad, identity_like(a), a), bad


# ---------------------------------------------------------------------------------------
# Backward


def lyapunov_sign(s_mat: torch.Tensor, rhs: torch.Tensor, scale: torch.Tensor, steps) -> torch.Tensor:
    """Solve S X + X S = rhs (S symmetric positive definite, rhs symmetric).

    Matrix-sign Newton–Schulz on W = [[B, C], [0, -B]], B = S / scale, C = rhs / scale, for the
    odd polynomial w -> w (a + b w^2) of each step: B <- B (a + b B^2) and
    C <- a C + b (B^2 C + C B^2 - B C B). sign(W) = [[I, 2X], [0, -I]]. `scale` (B, 1, 1) must
    bound the largest eigenvalue of S. B and C stay symmetric, so C B^2 is taken as the
    transpose of B^2 C (5 products a step, not 6) and both are re-symmetrised every step.
    """
    b_mat = s_mat / scale
    c_mat = rhs / scale
    for a, b in steps:
        b_sq = b_mat @ b_mat
        b_sq_c = b_sq @ c_mat
        b_c_b = (b_mat @ c_mat) @ b_mat
        c_mat = symmetrize(a * c_mat + b * (b_sq_c + b_sq_c.mT - b_c_b))
        # Without this the rounding asymmetry of B grows through the transpose shortcut
        # (float32, 40 classical steps: relative error 5e3 without, 4e-7 with).
        b_mat = symmetrize(a * b_mat + b * (b_mat @ b_sq))
    return 0.5 * c_mat


def loewner_backward(evals: torch.Tensor, evecs: torch.Tensor, grad: torch.Tensor, inverse: bool) -> torch.Tensor:
    """Gradient of <G, f(A)> for f = sqrt or 1/sqrt in the eigenbasis.

    Uses the divided differences written without 1/(l_i - l_j), finite for repeated eigenvalues:
    sqrt: 1 / (r_i + r_j); inverse: -1 / (r_i r_j (r_i + r_j)), r = sqrt(l).
    """
    root = evals.sqrt()
    r_i, r_j = root.unsqueeze(-1), root.unsqueeze(-2)
    # A singular matrix has an unbounded derivative; floor the denominators so it stays finite.
    tiny = torch.finfo(evals.dtype).eps * root.amax(dim=-1, keepdim=True).unsqueeze(-1).clamp_min(
        torch.finfo(evals.dtype).tiny
    )
    denom = (r_i + r_j).clamp_min(tiny)
    loewner = -1.0 / (denom * (r_i * r_j).clamp_min(tiny * tiny)) if inverse else 1.0 / denom
    inner = evecs.mT @ grad @ evecs
    return evecs @ (loewner * inner) @ evecs.mT
