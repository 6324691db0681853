"""ZCA data whitening as a module with kornia's semantics (kornia.enhance.ZCAWhitening)."""

from __future__ import annotations

import torch
from torch import nn

from .. import zca
from .options import check_eps, check_root_options, options_repr


class ZCAWhitening(nn.Module):
    """Fit-then-transform ZCA whitening of data, as kornia.enhance.ZCAWhitening.

    `fit(x)` computes the mean and W = (Sigma + eps I)^(-1/2) of the samples along `dim` (every
    other dimension is a feature: any trailing shape, flattened to D); `forward(x)` (or
    `forward(x, include_fit=True)`, which fits first) returns (x - mean) W in x's shape;
    `inverse_transform(y)` maps back with (Sigma + eps I)^(1/2) (needs compute_inv=True).
    unbiased: covariance divisor N - 1 (default) or N. detach_transforms: the fitted mean and
    matrices carry no gradient back to the fitted data (default True, as kornia). Using it before
    fit raises RuntimeError. For batch-norm-style whitening inside a network (running statistics,
    groups of channels), use `DecorrelatedBatchNorm`.
    """

    def __init__(self, dim: int = 0, eps: float = 1e-6, unbiased: bool = True, detach_transforms: bool = True,
                 compute_inv: bool = False, *, method: str = "auto", **root_options):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise ValueError(f"ZCAWhitening: dim must be an int, got {dim!r}")
        self.dim, self.eps = dim, check_eps("ZCAWhitening", eps)
        self.unbiased, self.detach_transforms, self.compute_inv = bool(unbiased), bool(detach_transforms), bool(compute_inv)
        self.method, self.root_options = method, check_root_options("ZCAWhitening", method, root_options)
        self.fitted = False
        self.mean_vector: torch.Tensor | None = None
        self.transform_matrix: torch.Tensor | None = None
        self.transform_inv: torch.Tensor | None = None

    def fit(self, x: torch.Tensor) -> "ZCAWhitening":
        transform, mean, inverse = zca.zca_mean(x, self.dim, self.unbiased, self.eps, self.compute_inv,
                                                method=self.method, **self.root_options)
        if self.detach_transforms:
            transform, mean = transform.detach(), mean.detach()
            inverse = inverse.detach() if inverse is not None else None
        self.transform_matrix, self.mean_vector, self.transform_inv = transform, mean, inverse
        self.fitted = True
        return self

    def forward(self, x: torch.Tensor, include_fit: bool = False) -> torch.Tensor:
        if include_fit:
            self.fit(x)
        if not self.fitted:
            raise RuntimeError("ZCAWhitening: not fitted; call fit(x) first or forward(x, include_fit=True)")
        return zca.linear_transform(x, self.transform_matrix, self.mean_vector, self.dim)

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        """x = y W^-1 + mean: undo forward (needs compute_inv=True at construction)."""
        if not self.fitted:
            raise RuntimeError("ZCAWhitening: not fitted; call fit(x) first")
        if self.transform_inv is None:
            raise RuntimeError("ZCAWhitening: the inverse was not computed; build with compute_inv=True")
        mean_inv = -self.mean_vector @ self.transform_matrix  # so that (y - mean_inv) W^-1 = y W^-1 + mean
        return zca.linear_transform(x, self.transform_inv, mean_inv, self.dim)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, eps={self.eps}, unbiased={self.unbiased}, detach_transforms={self.detach_transforms}, "
                f"compute_inv={self.compute_inv}, method={self.method!r}" + options_repr(self.root_options))
