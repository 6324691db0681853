"""The competitors the benchmarks, the accuracy table and the demo compare against.

Re-implementations of other people's code, kept out of `tritonsqrt.numerics.reference` (which
holds our methods only): the official MPA-Lya / MTP-Lya, iSQRT-COV's Newton–Schulz, eigh with
torch's autograd, and the eigh inverse p-th root of Distributed Shampoo.
"""

from __future__ import annotations

import torch

from tritonsqrt.numerics.reference import (coupled_newton_schulz, frobenius_normalize, lyapunov_sign, pade_root,
                                           taylor_root, trace_normalize, unscale)

# ---------------------------------------------------------------------------------------
# The official MPA-Lya / MTP-Lya, re-implemented step for step for side-by-side comparison
# (Song, Sebe, Wang 2022): per-matrix Frobenius scale in the forward, 8 classical sign steps
# in the backward, and for the inverse root a scale taken over the whole batch.

OFFICIAL_BACKWARD_STEPS = 8


def official_forward(a: torch.Tensor, method: str, inverse: bool) -> torch.Tensor:
    a_hat, norm = frobenius_normalize(a)
    if method == "mpa":
        root = pade_root(a_hat, 5, 5, inverse)
    elif not inverse:
        root = taylor_root(a_hat, 10, inverse=False)
    else:  # the official code offers no MTP inverse; invert the MTP root as its users do
        root = torch.linalg.inv(taylor_root(a_hat, 10, inverse=False))
    return unscale(root, norm, inverse)


def official_backward(root: torch.Tensor, grad: torch.Tensor, norm: torch.Tensor, inverse: bool) -> torch.Tensor:
    classical = [(1.5, -0.5)] * OFFICIAL_BACKWARD_STEPS
    if not inverse:
        return lyapunov_sign(root, grad, norm.sqrt(), classical)
    # Y X + X Y = -Y^2 G Y^2, scaled by the Frobenius norm of the whole batch of Y.
    inv_sq = root @ root
    rhs = -(inv_sq @ grad @ inv_sq)
    batch_norm = torch.linalg.vector_norm(root).reshape(1, 1, 1)
    return lyapunov_sign(root, rhs, batch_norm, classical)


class OfficialLya(torch.autograd.Function):
    """`official_lya(a, "mpa" | "mtp", inverse)`: the official code's numbers, for comparisons."""

    @staticmethod
    def forward(ctx, a, method, inverse):
        root = official_forward(a, method, inverse)
        ctx.save_for_backward(root, torch.linalg.matrix_norm(a, keepdim=True))
        ctx.inverse = inverse
        return root

    @staticmethod
    def backward(ctx, grad):
        root, norm = ctx.saved_tensors
        return official_backward(root, grad, norm, ctx.inverse), None, None


def official_lya(a: torch.Tensor, method: str = "mpa", inverse: bool = False) -> torch.Tensor:
    return OfficialLya.apply(a, method, inverse)


def isqrt_cov_newton_schulz(a: torch.Tensor, iterations: int = 5, inverse: bool = False) -> torch.Tensor:
    """iSQRT-COV (MPNCOV.py `Sqrtm`): trace pre-normalisation, classical coupled NS, sqrt(trace)
    post-compensation, autograd through the iteration (what its hand-written backward computes)."""
    a_hat, norm = trace_normalize(a)
    root_sqrt, root_inv = coupled_newton_schulz(a_hat, [(1.5, -0.5)] * iterations, want_inverse=inverse)
    return unscale(root_inv if inverse else root_sqrt, norm, inverse)


def eigh_autograd(a: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Competitor: eigendecomposition with torch's own autograd (NaN at repeated eigenvalues)."""
    evals, evecs = torch.linalg.eigh(a)
    power = evals.clamp_min(0).sqrt()
    if inverse:
        power = power.reciprocal()
    return (evecs * power.unsqueeze(-2)) @ evecs.mT


def eigh_inverse_root(a: torch.Tensor, p: int) -> torch.Tensor:
    """Competitor for Shampoo's preconditioners: A^(-1/p) by eigh in A's dtype and a power of
    the eigenvalues, the eigendecomposition route of Distributed Shampoo's `matrix_inverse_root`
    (its epsilon is the caller's). Eigenvalues are clamped at the smallest normal number, so a
    singular block gives a large finite root rather than Inf."""
    evals, evecs = torch.linalg.eigh(a)
    power = evals.clamp_min(torch.finfo(evals.dtype).tiny).pow(-1.0 / p)
    return (evecs * power.unsqueeze(-2)) @ evecs.mT
