"""ZCA data whitening with kornia's semantics (kornia.enhance.zca_mean / zca_whiten /
linear_transform), the roots computed by tritonsqrt instead of an SVD.

Samples run along `dim`; every other dimension is a feature, flattened to D features. The
whitening matrix is (Sigma + eps I)^(-1/2) and its inverse (Sigma + eps I)^(1/2), Sigma the
covariance with divisor N - 1 (unbiased, kornia's default) or N, exactly what kornia forms from
the SVD of Sigma. `method=` and the other root keywords pass through to tritonsqrt.
"""

from __future__ import annotations

import math

import torch

from . import api
from .constants import compute_dtype_for


def _samples_first(x: torch.Tensor, dim: int) -> torch.Tensor:
    """(N, D): samples along dim, the other dimensions flattened in order."""
    if not -x.dim() <= dim < x.dim():
        raise ValueError(f"zca: dim must index a dimension of x, got dim={dim} for shape {tuple(x.shape)}")
    return x.movedim(dim, 0).reshape(x.shape[dim], -1)


def zca_mean(x: torch.Tensor, dim: int = 0, unbiased: bool = True, eps: float = 1e-6, return_inverse: bool = False,
             *, method: str = "auto", **root_options):
    """(transform (D, D), mean (1, D), inverse transform (D, D) or None) of the data x.

    As kornia.enhance.zca_mean: D is the product of x's dimensions other than dim, the mean is
    over the N samples along dim, transform = (Sigma + eps I)^(-1/2), inverse = (Sigma + eps I)^(1/2).
    """
    if not torch.is_floating_point(x):
        raise TypeError(f"zca_mean: x must be a floating-point tensor, got {x.dtype}")
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"zca_mean: eps must be a finite number >= 0, got {eps!r}")
    flat = _samples_first(x, dim)
    samples = flat.shape[0]
    if samples < (2 if unbiased else 1):
        raise ValueError(f"zca_mean: x needs at least {2 if unbiased else 1} samples along dim={dim}, "
                         f"got shape {tuple(x.shape)}")
    work = flat.to(compute_dtype_for(x.dtype))
    mean = work.mean(dim=0, keepdim=True)
    centered = work - mean
    cov = centered.mT @ centered / (samples - 1 if unbiased else samples)
    if return_inverse:
        inverse, transform = api.sqrtm_and_inv_sqrtm(cov, method=method, eps=eps, **root_options)
        inverse = inverse.to(x.dtype)
    else:
        transform, inverse = api.inv_sqrtm(cov, method=method, eps=eps, **root_options), None
    return transform.to(x.dtype), mean.to(x.dtype), inverse


def linear_transform(x: torch.Tensor, transform: torch.Tensor, mean: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """(x - mean) @ transform on the (N, D) flattening of x along dim, back in x's shape
    (kornia.enhance.linear_transform)."""
    flat = _samples_first(x, dim)
    if transform.shape != (flat.shape[1], flat.shape[1]):
        raise ValueError(f"linear_transform: transform must be ({flat.shape[1]}, {flat.shape[1]}) for x of shape "
                         f"{tuple(x.shape)} along dim={dim}, got {tuple(transform.shape)}")
    out = (flat - mean.reshape(1, -1)) @ transform
    moved = x.movedim(dim, 0).shape
    return out.reshape(moved).movedim(0, dim)


def zca_whiten(x: torch.Tensor, dim: int = 0, unbiased: bool = True, eps: float = 1e-6, *, method: str = "auto",
               **root_options) -> torch.Tensor:
    """Whiten x with its own statistics in one call (kornia.enhance.zca_whiten); differentiable."""
    transform, mean, _ = zca_mean(x, dim, unbiased, eps, method=method, **root_options)
    return linear_transform(x, transform, mean, dim)
