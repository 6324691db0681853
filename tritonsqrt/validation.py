"""Input rules shared by the public ops: shapes and dtypes always, values when check=True."""

from __future__ import annotations

import torch

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


def check_values(name: str, a: torch.Tensor, eps: float, batch_shape, need_definite: bool) -> None:
    """The check=True rules; synchronises with the device. `a` is (B, n, n) in compute dtype,
    before the eps shift (which enters the eigenvalue test only)."""
    if a.shape[0] == 0:
        return
    bad = ~torch.isfinite(a).flatten(1).all(dim=1)
    _raise_for(name, batch_shape, bad, "non-finite entries (NaN or Inf)")
    scale = torch.linalg.matrix_norm(a).clamp_min(torch.finfo(a.dtype).tiny)
    tol = 100 * torch.finfo(a.dtype).eps
    asym = torch.linalg.matrix_norm(a - a.mT) / scale
    _raise_for(name, batch_shape, asym > tol, f"asymmetry beyond {tol:.1e} (relative Frobenius)")
    # A Cholesky factorisation of A + tol ||A|| I exists iff no eigenvalue is below -tol ||A||.
    n = a.shape[-1]
    shift = (tol * scale).reshape(-1, 1, 1) * torch.eye(n, dtype=a.dtype, device=a.device)
    eye = torch.eye(n, dtype=a.dtype, device=a.device)
    info = torch.linalg.cholesky_ex(0.5 * (a + a.mT) + shift + eps * eye).info
    what = "a negative eigenvalue" if not need_definite else "an eigenvalue that is negative or zero"
    if need_definite:
        zero = torch.linalg.matrix_norm(a + eps * eye) == 0
        _raise_for(name, batch_shape, zero, "a zero matrix (its inverse root is infinite)")
    nonzero = torch.linalg.matrix_norm(a + eps * eye) > 0  # the zero matrix is semidefinite
    _raise_for(name, batch_shape, (info != 0) & nonzero, f"{what} (beyond {tol:.1e} relative)")


def _raise_for(name: str, batch_shape, bad: torch.Tensor, what: str) -> None:
    if bool(bad.any()):
        flat = bad.nonzero().flatten().tolist()
        indices = [_unravel(i, tuple(batch_shape)) for i in flat[:10]]
        shown = ", ".join(str(i) for i in indices) + (" ..." if len(flat) > 10 else "")
        raise ValueError(f"{name}: A has {what} at batch index {shown}")


def _unravel(flat_index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        index.append(flat_index % size)
        flat_index //= size
    return tuple(reversed(index))
