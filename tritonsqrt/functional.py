"""Feature-level operations built on the matrix roots: covariance, pooling, whitening-colouring,
ZCA data whitening (kornia's functions) and the Fréchet / Bures-Wasserstein distances.

Every root here is a call of `tritonsqrt.sqrtm` / `tritonsqrt.inv_sqrtm`; `method=`, `eps=` and
any other keyword of those ops (`backend`, `iterations`, `max_condition`, `precision`, `degree`)
pass straight through. Nothing here synchronises with the host, so the functions trace under
torch.compile. Half-precision features are upcast to float32 for the covariance (its sums of
products lose everything in bfloat16) and results come back in the input's dtype.
"""

from __future__ import annotations

import torch

from . import api
from .constants import compute_dtype_for
from .distances import bures_wasserstein_distance, frechet_distance
from .zca import linear_transform, zca_mean, zca_whiten

__all__ = ["covariance", "triu_vectorize", "covariance_pooling", "whiten_color", "zca_mean", "zca_whiten",
           "linear_transform", "frechet_distance", "bures_wasserstein_distance"]

PRENORMS = ("trace", "frobenius", None)


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    return compute_dtype_for(x.dtype)


def covariance(features: torch.Tensor, correction: int = 0) -> torch.Tensor:
    """Covariance (..., C, C) of features (..., C, M): M samples of C channels each.

    correction=0 divides by M (iSQRT-COV's centring matrix (I - 11^T / M) / M), 1 by M - 1 (WCT).
    """
    if features.dim() < 2:
        raise ValueError(f"covariance: features must be (..., C, M), got shape {tuple(features.shape)}")
    samples = features.shape[-1]
    if samples - correction < 1:
        raise ValueError(f"covariance: need more than {correction} samples (last dimension), got {samples}")
    centered = features - features.mean(dim=-1, keepdim=True)
    return centered @ centered.mT / (samples - correction)


def triu_vectorize(matrices: torch.Tensor) -> torch.Tensor:
    """Upper triangle, diagonal included, of symmetric (..., C, C) as (..., C (C + 1) / 2), row by row."""
    n = matrices.shape[-1]
    rows, cols = torch.triu_indices(n, n, device=matrices.device)
    return matrices[..., rows, cols]


LAYOUTS = ("channels_first", "tokens")


def _channels_by_samples(x: torch.Tensor, layout: str | None, name: str) -> torch.Tensor:
    """(N, C, *) -> (N, C, M) for channels_first; (N, T, C) tokens -> (N, C, T)."""
    if layout not in LAYOUTS + (None,):
        raise ValueError(f"{name}: layout must be 'channels_first', 'tokens' or None, got {layout!r}")
    if layout is None:
        if x.dim() == 3:  # a Conv1d's (N, C, L) and a transformer's (N, T, C) look alike
            raise ValueError(f"{name}: a 3-D x of shape {tuple(x.shape)} is ambiguous: pass layout='channels_first' "
                             "for (N, C, L) (e.g. a Conv1d output) or layout='tokens' for (N, T, C)")
        layout = "channels_first"
    if layout == "tokens":
        if x.dim() != 3:
            raise ValueError(f"{name}: layout='tokens' expects x of shape (N, T, C), got {tuple(x.shape)}")
        return x.transpose(1, 2)
    if x.dim() < 3:
        raise ValueError(f"{name}: x must be (N, C, H, W) feature maps (any (N, C, *)) or (N, T, C) tokens with "
                         f"layout='tokens', got shape {tuple(x.shape)}")
    return x.flatten(2)


def covariance_pooling(x: torch.Tensor, *, prenorm: str | None = "trace", compensate: bool = True,
                       vectorize: bool = True, method: str = "auto", eps: float = 1e-5, layout: str | None = None,
                       **root_options) -> torch.Tensor:
    """Global covariance pooling with square-root normalisation (iSQRT-COV / MPN-COV head).

    x: feature maps (N, C, H, W) (or any (N, C, *): (N, C, D, H, W)), or with layout='tokens'
    (N, T, C) tokens. A 3-D x must say which it is (layout='channels_first' for a Conv1d's
    (N, C, L), 'tokens' for (N, T, C)): it raises otherwise. Returns (N, C (C + 1) / 2) (upper
    triangle of the normalised covariance), or (N, C, C) with vectorize=False.

    prenorm: divide each covariance by its trace ("trace", iSQRT-COV) or Frobenius norm
    ("frobenius") before the root, or not at all (None, MPN-COV). compensate: multiply the root by
    the square root of that divisor afterwards (iSQRT-COV's post-compensation); the roots are
    positively homogeneous, so with it the result is sqrt(Sigma + eps c I) whatever prenorm is,
    and without it the head is invariant to the scale of the features. eps: added to the
    pre-normalised covariance, so with a prenorm it is relative to the covariance's size (a
    floor for its eigenvalues, which keeps the root's gradient finite when T or H W < C).
    iSQRT-COV exactly: prenorm="trace", compensate=True, method="ns", eps=0.
    """
    if prenorm not in PRENORMS:
        raise ValueError(f"covariance_pooling: prenorm must be 'trace', 'frobenius' or None, got {prenorm!r}")
    features = _channels_by_samples(x, layout, "covariance_pooling")
    cov = covariance(features.to(_work_dtype(x)))
    if prenorm is None:
        divisor = None
    else:
        divisor = cov.diagonal(dim1=-2, dim2=-1).sum(-1) if prenorm == "trace" else torch.linalg.matrix_norm(cov)
        # Constant features give a zero covariance; keep it zero rather than 0 / 0.
        divisor = torch.where(divisor > 0, divisor, torch.ones_like(divisor))[..., None, None]
        cov = cov / divisor
    root = api.sqrtm(cov, method=method, eps=eps, **root_options)
    if divisor is not None and compensate:
        root = root * divisor.sqrt()
    out = triu_vectorize(root) if vectorize else root
    return out.to(x.dtype)


def whiten_color(content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0, *, method: str = "auto",
                 eps: float = 1e-5, **root_options) -> torch.Tensor:
    """Whitening and colouring transform (WCT, Li et al. 2017) of content features to style statistics.

    content: (N, C, H, W) or (C, H, W) feature maps; style: the same layout with N or 1 in front
    (any spatial size). The content features are centred and whitened with inv_sqrtm of their
    covariance, coloured with sqrtm of the style covariance, shifted to the style mean, then
    blended: alpha * coloured + (1 - alpha) * content. Covariances use 1 / (M - 1) and get eps I
    added (the paper drops eigenvalues below 1e-5 instead; a floor keeps it differentiable).
    Returns content's shape and dtype.
    """
    if content.dim() not in (3, 4) or style.dim() != content.dim():
        raise ValueError(f"whiten_color: content and style must both be (N, C, H, W) or both (C, H, W), "
                         f"got shapes {tuple(content.shape)} and {tuple(style.shape)}")
    unbatched = content.dim() == 3
    if unbatched:
        content, style = content.unsqueeze(0), style.unsqueeze(0)
    if content.shape[1] != style.shape[1]:
        raise ValueError("whiten_color: content and style must have the same channels, "
                         f"got {content.shape[1]} and {style.shape[1]}")
    if style.shape[0] not in (1, content.shape[0]):
        raise ValueError(f"whiten_color: style batch must be 1 or content's {content.shape[0]}, got {style.shape[0]}")
    dtype = _work_dtype(content)
    fc = content.flatten(2).to(dtype)
    fs = style.flatten(2).to(dtype)
    centered = fc - fc.mean(dim=-1, keepdim=True)
    whitening = api.inv_sqrtm(covariance(fc, correction=1), method=method, eps=eps, **root_options)
    coloring = api.sqrtm(covariance(fs, correction=1), method=method, eps=eps, **root_options)
    colored = coloring @ (whitening @ centered) + fs.mean(dim=-1, keepdim=True)
    blended = (alpha * colored + (1.0 - alpha) * fc).reshape(content.shape).to(content.dtype)
    return blended.squeeze(0) if unbatched else blended

