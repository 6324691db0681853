"""p-th roots and inverse p-th roots for p a power of two, by repeated square roots.

Shampoo-style preconditioners need (A + eps I)^(-1/p) with p = 2 (one-sided) or 4 (two-sided).
Both functions here are chains of the public ops `sqrtm` / `inv_sqrtm`: the same plans,
kernels, custom ops and Lyapunov backward, so they are batched, differentiable and free of
host synchronisation wherever those are.

Order of the chain (README, "Inverse p-th roots"): the square roots first and the inverse
root last, A^(-1/4) = (A^(1/2))^(-1/2). Each square root halves the condition number in log
terms (kappa(A^(1/2)) = kappa(A)^(1/2)), so each stage is planned for the condition number it
receives (`max_condition` square-rooted per stage) and the later stages are cheaper. The other
order, (A^(-1/2))^(1/2), costs the same products and measured the same accuracy (the error is
that of A -> A^(-1/4) on float32 input); this one gives the inverse root, the op whose error
grows fastest with the condition number, the best-conditioned matrix.
"""

from __future__ import annotations

import numbers

import torch

from . import api
from .plan import DEFAULT_MAX_CONDITION, Plan, compute_dtype_for, resolve
from .numerics.reference import identity_like, symmetrize
from .validation import check_matrix_batch, check_values

_HALF_DTYPES = (torch.float16, torch.bfloat16)


def square_root_count(name: str, p) -> int:
    """k with p = 2^k; ValueError naming p for anything else (p = 1 gives 0)."""
    if isinstance(p, bool) or not isinstance(p, numbers.Integral) or p < 1 or (p & (p - 1)):
        raise ValueError(f"{name}: p must be a power of two (1, 2, 4, 8, ...), got {p!r}")
    return int(p).bit_length() - 1


def _chain_dtype(a: torch.Tensor, method: str, backend: str) -> torch.dtype:
    """The dtype the intermediate roots are kept in, so that the chain rounds once, at the end:
    float32 for half inputs, and float64 where the plan computes in float64 anyway (`auto` on
    CPU: float64 eigh; a float32 intermediate would cost up to u kappa^(1/2) in the next stage)."""
    plan = resolve(a, method, backend)
    if plan.eigh_dtype == torch.float64:
        return torch.float64
    return torch.float32 if a.dtype in _HALF_DTYPES else a.dtype


def stage_conditions(max_condition: float | None, stages: int) -> list[float]:
    """The condition number each square-root stage is planned for: kappa, kappa^(1/2), ..."""
    kappa = DEFAULT_MAX_CONDITION if max_condition is None else float(max_condition)
    if not kappa >= 1:
        raise ValueError(f"max_condition: expected a number >= 1, got {max_condition!r}")
    return [kappa ** (0.5**stage) for stage in range(stages)]


def _chain(name: str, a: torch.Tensor, p, eps: float, inverse: bool, max_condition, check: bool, options: dict):
    check_matrix_batch(name, "A", a)
    roots = square_root_count(name, p)
    x = a.to(_chain_dtype(a, options["method"], options["backend"]))
    if check:  # A itself, under this function's name; the later stages get our own outputs
        n = a.shape[-1]
        work = a.reshape(-1, n, n).to(compute_dtype_for(a.dtype))  # the tolerances of A's own dtype
        check_values(name, work, float(eps), a.shape[:-2], need_definite=inverse)
    if roots == 0:
        if inverse:  # A^-1 = (A^(-1/2))^2: the same ops, no solve (which would check info on the host)
            y = api.inv_sqrtm(x, eps=eps, max_condition=max_condition, **options)
            return symmetrize(y @ y).to(a.dtype)
        return (symmetrize(x) + eps * identity_like(x)).to(a.dtype)
    for stage, kappa in enumerate(stage_conditions(max_condition, roots)):
        op = api.inv_sqrtm if (inverse and stage == roots - 1) else api.sqrtm
        x = op(x, eps=eps if stage == 0 else 0.0, max_condition=kappa, **options)
    return x.to(a.dtype)


def root(A: torch.Tensor, p: int, *, eps: float = 0.0, method: str = "auto", check: bool = False,
         backend: str = "auto", max_condition: float | None = None, precision: str | None = None) -> torch.Tensor:
    """(A + eps I)^(1/p) of a batch (..., n, n) of symmetric positive semidefinite matrices.

    p: 1, 2, 4, 8, ... (log2(p) square roots in a row). Other keywords as for `tritonsqrt.sqrtm`;
    `max_condition` is that of A (each later stage is planned for its square root).
    """
    return _chain("root", A, p, eps, False, max_condition, check,
                  dict(method=method, backend=backend, precision=precision))


def inv_root(A: torch.Tensor, p: int, *, eps: float = 0.0, method: str = "auto", check: bool = False,
             backend: str = "auto", max_condition: float | None = None, precision: str | None = None) -> torch.Tensor:
    """(A + eps I)^(-1/p) of a batch (..., n, n) of symmetric positive definite matrices.

    p: 1, 2, 4, 8, ...: log2(p) - 1 square roots, then one inverse square root (p = 1: the
    inverse square root, squared). Keywords as for `tritonsqrt.inv_sqrtm`; `max_condition`
    is that of A. Differentiable; no host synchronisation without `check=True`.
    """
    return _chain("inv_root", A, p, eps, True, max_condition, check,
                  dict(method=method, backend=backend, precision=precision))


def chain_matmuls(n: int, p: int, inverse: bool, backward: bool, max_condition: float | None = None,
                  method: str = "scaled_ns") -> int:
    """Matrix products per matrix of one root / inv_root call of an iterative method (p >= 2):
    the sum over its stages of `Plan.matmuls`, each stage planned for its own condition number."""
    roots = square_root_count("chain_matmuls", p)
    if roots == 0:
        raise ValueError("chain_matmuls: p = 1 is not a chain of square roots")
    total = 0
    for stage, kappa in enumerate(stage_conditions(max_condition, roots)):
        op = "inv_sqrtm" if (inverse and stage == roots - 1) else "sqrtm"
        plan = Plan(method=method, compute_dtype=torch.float32, n=n, max_condition=kappa)
        total += plan.matmuls(op, backward)
    return total
