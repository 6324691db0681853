"""The public ops: sqrtm, inv_sqrtm, sqrtm_and_inv_sqrtm, lyapunov."""

from __future__ import annotations

import torch

from . import plan as plan_mod
from .numerics.lyapunov_autograd import Lyapunov
from .paths.custom_ops import matrix_roots
from .constants import dtype_name
from .numerics.coefficients import scaled_ns_schedule
from .numerics.reference import symmetrize
from .validation import (check_autograd_mode, check_eps, check_lyapunov_residual, check_matrix_batch,
                         check_max_condition, check_values)


def _roots(name, a, outputs, method, eps, check, backend, **options):
    check_matrix_batch(name, "A", a)
    eps = check_eps(name, eps)
    check_autograd_mode(name, a)
    batch_shape, n = a.shape[:-2], a.shape[-1]
    if plan_mod.computes_small_in_float64(a.device, n, a.dtype, method):
        roots = _roots(name, a.to(torch.float64), outputs, method, eps, check, backend, **options)
        return tuple(t.to(a.dtype) for t in roots) if outputs == "both" else roots.to(a.dtype)
    plan = plan_mod.resolve(a, method, backend, **options)
    if n == 0:  # 0 x 0 matrices: empty roots, still connected to A for autograd
        empty = a * 0
        return (empty, empty.clone()) if outputs == "both" else empty
    need_backward = torch.is_grad_enabled() and a.requires_grad
    if outputs == "both" and need_backward and plan.method in ("mtp", "mpa"):
        # Their backward solves with the S it is given, and inv_sqrtm alone gives it S = A Y (not
        # the S expansion): two calls, so that each root's gradient is that of its own entry point.
        return (_roots(name, a, "sqrt", method, eps, check, backend, **options),
                _roots(name, a, "inv", method, eps, check, backend, **options))
    # A view where the batch dimensions allow it: the kernels read any strides, and do the
    # symmetrisation, eps shift and upcast themselves (the torch path does them in torch).
    work = a.reshape(-1, n, n)
    if check:
        check_values(name, work.to(plan.compute_dtype), float(eps), batch_shape, need_definite=outputs != "sqrt")
    sqrt_out, inv_out = matrix_roots(work, plan, outputs, eps, need_backward)
    restore = lambda t: t.reshape(*batch_shape, n, n)  # noqa: E731
    if outputs == "both":
        return restore(sqrt_out), restore(inv_out)
    return restore(sqrt_out if outputs == "sqrt" else inv_out)


def sqrtm(A: torch.Tensor, *, method: str = "auto", eps: float = 0.0, check: bool = False,
          backend: str = "auto", degree=None, iterations=None, max_condition=None, precision=None) -> torch.Tensor:
    """Principal square root of a batch (..., n, n) of symmetric positive semidefinite matrices.

    method: "auto" (default; see `tritonsqrt.auto_method`), "scaled_ns", "ns", "mpa", "mtp", "eigh".
    eps: adds eps * I first. check: validate values (synchronises). backend: "auto", "torch",
    "triton". degree (mtp: int, mpa: int or (num, den)), iterations (ns), max_condition (the
    condition number the iterative schedules are designed for), precision (Triton tl.dot input
    precision: "ieee", "tf32x3", "tf32"). The result has A's shape, dtype and device.
    """
    return _roots("sqrtm", A, "sqrt", method, eps, check, backend, degree=degree, iterations=iterations,
                  max_condition=max_condition, precision=precision)


def inv_sqrtm(A: torch.Tensor, *, method: str = "auto", eps: float = 0.0, check: bool = False,
              backend: str = "auto", degree=None, iterations=None, max_condition=None, precision=None) -> torch.Tensor:
    """Inverse principal square root A^(-1/2) of a batch of symmetric positive definite matrices.

    Keywords as for `sqrtm`. A zero matrix gives diag(+inf) (no NaN).
    """
    return _roots("inv_sqrtm", A, "inv", method, eps, check, backend, degree=degree, iterations=iterations,
                  max_condition=max_condition, precision=precision)


def sqrtm_and_inv_sqrtm(A: torch.Tensor, *, method: str = "auto", eps: float = 0.0, check: bool = False,
                        backend: str = "auto", degree=None, iterations=None, max_condition=None,
                        precision=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(A^(1/2), A^(-1/2)); one pass for the Newton–Schulz methods and eigh. Keywords as for `sqrtm`."""
    return _roots("sqrtm_and_inv_sqrtm", A, "both", method, eps, check, backend, degree=degree,
                  iterations=iterations, max_condition=max_condition, precision=precision)


def lyapunov(S: torch.Tensor, C: torch.Tensor, *, max_condition: float = plan_mod.DEFAULT_MAX_CONDITION,
             check: bool = False) -> torch.Tensor:
    """X solving S X + X S = C for symmetric positive definite S and symmetric C, batched.

    S (..., n, n) and C (..., n, n) broadcast in their batch dimensions, as in torch.linalg.
    Matrix-sign Newton–Schulz with minimax steps, scaled per matrix by ||S^2||_F^(1/2) (an upper
    bound of S's largest eigenvalue); converged for S of condition number <= max_condition
    (default 1e6, as the roots' backward). check=True verifies the residual afterwards and
    raises ValueError where it is not converged (synchronises). Differentiable in C.
    """
    check_matrix_batch("lyapunov", "S", S)
    check_matrix_batch("lyapunov", "C", C)
    max_condition = check_max_condition("lyapunov", max_condition)
    check_autograd_mode("lyapunov", S, C)
    n = S.shape[-1]
    if C.shape[-1] != n:
        raise ValueError(f"lyapunov: S and C must hold matrices of one size, got shapes {tuple(S.shape)} and "
                         f"{tuple(C.shape)}")
    try:
        batch_shape = torch.broadcast_shapes(S.shape[:-2], C.shape[:-2])
    except RuntimeError:
        raise ValueError(f"lyapunov: the batch dimensions of S {tuple(S.shape)} and C {tuple(C.shape)} do not "
                         "broadcast") from None
    out_dtype = torch.promote_types(S.dtype, C.dtype)
    S, C = S.expand(*batch_shape, n, n), C.expand(*batch_shape, n, n)
    if n == 0:
        return (S.detach() * 0 + C * 0).to(out_dtype)
    dtype = plan_mod.compute_dtype_for(out_dtype)
    s_mat = symmetrize(S.reshape(-1, n, n).to(dtype)).detach()
    rhs = symmetrize(C.reshape(-1, n, n).to(dtype))
    # ||S^2||_F^(1/2) of S divided by a power of two near its largest entry (S^2 overflows
    # float32 from entries of 1e19), times that power: exact, and safe at any scale.
    largest = s_mat.abs().amax(dim=(-2, -1), keepdim=True)
    power = torch.ldexp(torch.ones_like(largest), torch.frexp(largest)[1])
    s_small = s_mat / power
    scale = torch.linalg.matrix_norm(s_small @ s_small, keepdim=True).sqrt() * power
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    lower = min(1.0, n**-0.25 / max_condition)
    steps = scaled_ns_schedule(lower, dtype_name(dtype))
    x = Lyapunov.apply(s_mat, rhs, scale, steps)
    if check:
        check_lyapunov_residual(s_mat, x.detach(), rhs.detach(), batch_shape, max_condition)
    return x.reshape(*batch_shape, n, n).to(out_dtype)
