"""Global covariance pooling with matrix square-root normalisation (iSQRT-COV / MPN-COV head)."""

from __future__ import annotations

import torch
from torch import nn

from .. import functional
from .options import check_eps, check_positive_int, check_root_options, options_repr


class CovariancePooling(nn.Module):
    """Global covariance pooling with matrix square-root normalisation (iSQRT-COV / MPN-COV).

    Layouts: (N, C, H, W) feature maps, or any channels-first (N, C, *) (a Conv3d's (N, C, D, H, W));
    with layout="tokens", (N, T, C) tokens. A 3-D input is ambiguous (a Conv1d's (N, C, L) or
    tokens (N, T, C)) and raises unless layout="channels_first" or "tokens" is given.
    Output (N, C (C + 1) / 2), the upper triangle of sqrt(Sigma) per sample, Sigma the
    (divisor-M) covariance of its positions or tokens; vectorize=False returns (N, C, C).
    prenorm ("trace" as iSQRT-COV, "frobenius", or None as MPN-COV), compensate and eps are as in
    `tritonsqrt.functional.covariance_pooling`.

    in_channels, reduced_channels: when both are given, iSQRT-COV's channel reduction comes first
    (1x1 convolution without bias, BatchNorm2d, ReLU; 2048 -> 256 on ResNet-50) on (N, C, H, W).
    iSQRT-COV exactly: CovariancePooling(method="ns", eps=0.0) (prenorm "trace" and compensate
    are the defaults; iterations=5 is ns's default).
    """

    def __init__(self, prenorm: str | None = "trace", compensate: bool = True, vectorize: bool = True,
                 method: str = "auto", eps: float = 1e-5, *, layout: str | None = None,
                 in_channels: int | None = None, reduced_channels: int | None = None, **root_options):
        super().__init__()
        if prenorm not in functional.PRENORMS:
            raise ValueError(f"CovariancePooling: prenorm must be 'trace', 'frobenius' or None, got {prenorm!r}")
        if layout not in functional.LAYOUTS + (None,):
            raise ValueError(f"CovariancePooling: layout must be 'channels_first', 'tokens' or None, got {layout!r}")
        self.prenorm, self.compensate, self.vectorize, self.layout = prenorm, bool(compensate), bool(vectorize), layout
        self.method, self.eps = method, check_eps("CovariancePooling", eps)
        self.root_options = check_root_options("CovariancePooling", method, root_options)
        if (in_channels is None) != (reduced_channels is None):
            raise ValueError("CovariancePooling: give both in_channels and reduced_channels for the channel "
                             f"reduction, or neither; got in_channels={in_channels}, reduced_channels={reduced_channels}")
        self.reduction = None
        if in_channels is not None:
            if layout == "tokens":
                raise ValueError("CovariancePooling: the channel reduction is a 1x1 convolution of (N, C, H, W) "
                                 "maps; it does not apply to layout='tokens'")
            in_channels = check_positive_int("CovariancePooling", in_channels, "in_channels")
            reduced_channels = check_positive_int("CovariancePooling", reduced_channels, "reduced_channels")
            self.reduction = nn.Sequential(nn.Conv2d(in_channels, reduced_channels, 1, bias=False),
                                           nn.BatchNorm2d(reduced_channels), nn.ReLU())

    @staticmethod
    def output_features(channels: int) -> int:
        """Length of the vectorised output for C channels: C (C + 1) / 2."""
        return channels * (channels + 1) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reduction is not None:
            x = self.reduction(x)
        return functional.covariance_pooling(x, prenorm=self.prenorm, compensate=self.compensate,
                                             vectorize=self.vectorize, method=self.method, eps=self.eps,
                                             layout=self.layout, **self.root_options)

    def extra_repr(self) -> str:
        layout = "" if self.layout is None else f", layout={self.layout!r}"
        return (f"prenorm={self.prenorm!r}, compensate={self.compensate}, vectorize={self.vectorize}, "
                f"method={self.method!r}, eps={self.eps}{layout}" + options_repr(self.root_options))
