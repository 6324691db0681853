"""Input rules shared by the public ops: shapes and dtypes always, values when check=True."""

from __future__ import annotations

import math
import numbers

import torch
from torch.autograd import forward_ad

from .constants import MAX_CONDITION_LIMIT
from .distributed import check_placements

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_matrix_batch(name: str, argument: str, a) -> None:
    """Raise TypeError / ValueError naming the argument for a wrong type, dtype or shape."""
    if not isinstance(a, torch.Tensor):
        raise TypeError(f"{name}: {argument} must be a torch.Tensor, got {type(a).__name__}")
    if a.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{name}: {argument} must be float16, bfloat16, float32 or float64, got {str(a.dtype).replace('torch.', '')}"
        )
    if a.dim() < 2:
        raise ValueError(f"{name}: {argument} must have at least 2 dimensions (..., n, n), got shape {tuple(a.shape)}")
    if a.shape[-1] != a.shape[-2]:
        raise ValueError(
            f"{name}: expected a square matrix in the last two dimensions of {argument}, got shape {tuple(a.shape)}"
        )
    check_placements(name, argument, a)  # DTensor: whole matrices on each rank


def check_eps(name: str, eps) -> float:
    """eps as a float: a real number, finite and >= 0 (it is added as eps * I)."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise TypeError(f"{name}: eps must be a real number, got {type(eps).__name__} {eps!r}")
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"{name}: eps must be finite and >= 0, got {eps!r}")
    return float(eps)


def check_max_condition(name: str, max_condition) -> float:
    """max_condition as a float in [1, MAX_CONDITION_LIMIT]: the fixed schedules are built for it,
    and beyond the limit they no longer converge within their step cap."""
    if isinstance(max_condition, bool) or not isinstance(max_condition, numbers.Real):
        raise TypeError(f"{name}: max_condition must be a real number, got {type(max_condition).__name__}")
    if not 1 <= max_condition <= MAX_CONDITION_LIMIT:
        raise ValueError(f"{name}: max_condition must be in [1, {MAX_CONDITION_LIMIT:g}], got {max_condition!r}")
    return float(max_condition)


def check_autograd_mode(name: str, *tensors) -> None:
    """Raise for the autograd transforms the ops do not implement, naming what to use instead.

    Without this, forward mode (torch.func.jvp, jacfwd, torch.autograd.forward_ad) returns zero
    tangents silently: custom ops have no forward-mode rule. No host sync: only the tensors'
    wrappers and functorch's interpreter stack are looked at.
    """
    if torch.compiler.is_compiling():
        return
    if any(forward_ad.unpack_dual(t).tangent is not None for t in tensors):
        raise NotImplementedError(_FORWARD_MODE.format(name=name))
    if torch._C._functorch.maybe_current_level() is None:
        return
    from torch._C._functorch import TransformType
    from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

    kinds = {interpreter.key() for interpreter in retrieve_all_functorch_interpreters()}
    if TransformType.Jvp in kinds:
        raise NotImplementedError(_FORWARD_MODE.format(name=name))
    if TransformType.Grad in kinds:
        raise NotImplementedError(
            f"{name}: torch.func.grad / vjp / jacrev / hessian are not supported (the op's backward is a "
            "torch.library autograd formula, which functorch's reverse-mode transforms cannot enter); use "
            "torch.autograd.grad or .backward(), and torch.autograd.functional.jacobian for Jacobians. "
            "torch.func.vmap alone works."
        )


_FORWARD_MODE = (
    "{name}: forward-mode autograd (torch.func.jvp, torch.func.jacfwd, torch.autograd.forward_ad) is not "
    "supported and would silently give zero tangents; use reverse mode (torch.autograd.grad, .backward(), "
    "torch.autograd.functional.jacobian), or for a directional derivative of the square root solve "
    "S dS + dS S = dA with tritonsqrt.lyapunov(S, dA)."
)


def check_values(name: str, a: torch.Tensor, eps: float, batch_shape, need_definite: bool) -> None:
    """The check=True rules; synchronises with the device. `a` is (B, n, n) in compute dtype,
    before the eps shift (which enters the eigenvalue test only)."""
    if a.shape[0] == 0:
        return
    bad = ~torch.isfinite(a).flatten(1).all(dim=1)
    _raise_for(name, batch_shape, bad, "non-finite entries (NaN or Inf)")
    from .numerics.reference import frobenius_norm  # no overflow or underflow at any scale

    norm = lambda x: frobenius_norm(x).flatten()  # noqa: E731
    scale = norm(a).clamp_min(torch.finfo(a.dtype).tiny)
    tol = 100 * torch.finfo(a.dtype).eps
    asym = norm(a - a.mT) / scale
    _raise_for(name, batch_shape, asym > tol, f"asymmetry beyond {tol:.1e} (relative Frobenius)")
    # A Cholesky factorisation of A + tol ||A|| I exists iff no eigenvalue is below -tol ||A||.
    n = a.shape[-1]
    shift = (tol * scale).reshape(-1, 1, 1) * torch.eye(n, dtype=a.dtype, device=a.device)
    eye = torch.eye(n, dtype=a.dtype, device=a.device)
    info = torch.linalg.cholesky_ex(0.5 * (a + a.mT) + shift + eps * eye).info
    what = "a negative eigenvalue" if not need_definite else "an eigenvalue that is negative or zero"
    if need_definite:
        zero = norm(a + eps * eye) == 0
        _raise_for(name, batch_shape, zero, "a zero matrix (its inverse root is infinite)")
    nonzero = norm(a + eps * eye) > 0  # the zero matrix is semidefinite
    _raise_for(name, batch_shape, (info != 0) & nonzero, f"{what} (beyond {tol:.1e} relative)")


def check_lyapunov_residual(s_mat, x, rhs, batch_shape, max_condition: float) -> None:
    """lyapunov(check=True): raise where ||S X + X S - C||_F exceeds 1000 units of roundoff of
    2 ||S||_F ||X||_F + ||C||_F (a converged solve leaves a few); synchronises."""
    from .numerics.reference import frobenius_norm

    residual = frobenius_norm(s_mat @ x + x @ s_mat - rhs)
    size = 2 * frobenius_norm(s_mat) * frobenius_norm(x) + frobenius_norm(rhs)
    tol = 1000 * torch.finfo(x.dtype).eps
    bad = ~(residual <= tol * size).flatten()
    _raise_for("lyapunov", batch_shape, bad,
               f"a solve that did not converge (relative residual above {tol:.1e}: S's condition number is "
               f"likely above max_condition={max_condition:g}; raise it)", argument="S")


def _raise_for(name: str, batch_shape, bad: torch.Tensor, what: str, argument: str = "A") -> None:
    if bool(bad.any()):
        flat = bad.nonzero().flatten().tolist()
        indices = [_unravel(i, tuple(batch_shape)) for i in flat[:10]]
        shown = ", ".join(str(i) for i in indices) + (" ..." if len(flat) > 10 else "")
        raise ValueError(f"{name}: {argument} has {what} at batch index {shown}")


def _unravel(flat_index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        index.append(flat_index % size)
        flat_index //= size
    return tuple(reversed(index))
