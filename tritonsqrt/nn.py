"""Layers built on the matrix roots: decorrelated batch norm and covariance pooling.

`ZCAWhitening` is decorrelated batch normalisation (Huang et al., CVPR 2018) and
`CovariancePooling` the iSQRT-COV / MPN-COV head (Li et al., CVPR 2018 / ICCV 2017). Neither has
root code of its own: `method=`, `eps=` and the other keywords of `tritonsqrt.inv_sqrtm` /
`tritonsqrt.sqrtm` (`backend`, `iterations`, `max_condition`, `precision`, `degree`) pass through.
"""

from __future__ import annotations

import torch
from torch import nn

from . import api, functional


class ZCAWhitening(nn.Module):
    """Decorrelated batch norm: ZCA-whiten groups of channels over the batch, like BatchNorm2d.

    Input (N, C) or (N, C, *) (e.g. (N, C, H, W)); output of the same shape. The C channels are
    split into num_groups groups of C / num_groups consecutive channels; each group's samples
    (all of N and the spatial positions) are centred and multiplied by W = (Sigma + eps I)^(-1/2),
    Sigma their covariance with divisor M (the number of samples), so that the output's
    covariance is Sigma (Sigma + eps I)^(-1), the identity up to eps. affine adds a per-channel
    weight and bias after whitening, as BatchNorm does.

    Running statistics: running_mean (C,) and running_whitening (num_groups, G, G) follow
    running = (1 - momentum) running + momentum batch in training (momentum=None: the
    cumulative average, as BatchNorm); eval mode uses them. track_running_stats=False always
    uses batch statistics. The running matrix averages the batch whitening matrices (as the
    paper does), not covariances.
    """

    def __init__(self, num_features: int, num_groups: int = 1, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, method: str = "auto", **root_options):
        super().__init__()
        if num_features < 1 or num_groups < 1 or num_features % num_groups:
            raise ValueError(f"ZCAWhitening: num_groups must divide num_features, got num_groups={num_groups} "
                             f"and num_features={num_features}")
        if eps < 0:
            raise ValueError(f"ZCAWhitening: eps must be >= 0, got {eps}")
        self.num_features, self.num_groups = num_features, num_groups
        self.group_size = num_features // num_groups
        self.eps, self.momentum, self.affine = float(eps), momentum, affine
        self.track_running_stats, self.method, self.root_options = track_running_stats, method, dict(root_options)
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            eye = torch.eye(self.group_size).expand(num_groups, -1, -1).clone()
            self.register_buffer("running_whitening", eye)
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_whitening", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_whitening.copy_(torch.eye(self.group_size).expand_as(self.running_whitening))
            self.num_batches_tracked.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"ZCAWhitening: x must be (N, {self.num_features}) or (N, {self.num_features}, *), "
                             f"got shape {tuple(x.shape)}")
        channels = x.transpose(0, 1).reshape(self.num_features, -1)  # (C, M): every sample of each channel
        work_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        groups = channels.to(work_dtype).reshape(self.num_groups, self.group_size, -1)
        if self.training or not self.track_running_stats:
            samples = groups.shape[-1]
            if self.training and samples < 2:
                raise ValueError("ZCAWhitening: expected more than 1 value per channel when training, "
                                 f"got shape {tuple(x.shape)}")
            mean = groups.mean(dim=-1, keepdim=True)
            centered = groups - mean
            cov = centered @ centered.mT / samples
            whitening = api.inv_sqrtm(cov, method=self.method, eps=self.eps, **self.root_options)
            if self.training and self.track_running_stats:
                self._update_running_stats(mean, whitening)
        else:
            mean = self.running_mean.to(work_dtype).reshape(self.num_groups, self.group_size, 1)
            whitening = self.running_whitening.to(work_dtype)
            centered = groups - mean
        out = (whitening @ centered).reshape(self.num_features, -1)
        if self.affine:
            out = out * self.weight.to(work_dtype)[:, None] + self.bias.to(work_dtype)[:, None]
        return out.reshape(self.num_features, x.shape[0], *x.shape[2:]).transpose(0, 1).to(x.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, whitening: torch.Tensor) -> None:
        self.num_batches_tracked.add_(1)
        if self.momentum is None:
            factor = 1.0 / float(self.num_batches_tracked)  # cumulative average, as BatchNorm
        else:
            factor = self.momentum
        self.running_mean.lerp_(mean.detach().flatten().to(self.running_mean.dtype), factor)
        self.running_whitening.lerp_(whitening.detach().to(self.running_whitening.dtype), factor)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, num_groups={self.num_groups}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}, method={self.method!r}"
                + _options_repr(self.root_options))


class CovariancePooling(nn.Module):
    """Global covariance pooling with matrix square-root normalisation (iSQRT-COV / MPN-COV).

    Input (N, C, H, W) feature maps or (N, T, C) tokens; output (N, C (C + 1) / 2), the upper
    triangle of sqrt(Sigma) per sample, Sigma the (divisor-M) covariance of its H W positions or
    T tokens. prenorm ("trace" as iSQRT-COV, "frobenius", or None as MPN-COV), compensate and
    eps are as in `tritonsqrt.functional.covariance_pooling`; vectorize=False returns (N, C, C).
    Typical use: a 1x1 convolution down to C = 64..256 channels, this, then a linear classifier
    with `CovariancePooling.output_features(C)` inputs. No parameters, no state.
    """

    def __init__(self, prenorm: str | None = "trace", compensate: bool = True, vectorize: bool = True,
                 method: str = "auto", eps: float = 1e-5, **root_options):
        super().__init__()
        if prenorm not in functional.PRENORMS:
            raise ValueError(f"CovariancePooling: prenorm must be 'trace', 'frobenius' or None, got {prenorm!r}")
        self.prenorm, self.compensate, self.vectorize = prenorm, compensate, vectorize
        self.method, self.eps, self.root_options = method, float(eps), dict(root_options)

    @staticmethod
    def output_features(channels: int) -> int:
        """Length of the vectorised output for C channels: C (C + 1) / 2."""
        return channels * (channels + 1) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.covariance_pooling(x, prenorm=self.prenorm, compensate=self.compensate,
                                             vectorize=self.vectorize, method=self.method, eps=self.eps,
                                             **self.root_options)

    def extra_repr(self) -> str:
        return (f"prenorm={self.prenorm!r}, compensate={self.compensate}, vectorize={self.vectorize}, "
                f"method={self.method!r}, eps={self.eps}" + _options_repr(self.root_options))


def _options_repr(options: dict) -> str:
    return "".join(f", {key}={value!r}" for key, value in options.items())
