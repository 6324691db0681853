"""Decorrelated batch normalisation (DBN, Huang et al., CVPR 2018): BatchNorm that also whitens
groups of channels with the inverse square root of their covariance over the batch."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .. import api
from ..constants import compute_dtype_for
from .options import check_eps, check_momentum, check_positive_int, check_root_options, options_repr

# Channels per group when neither num_groups nor group_size is given: DBN whitens groups of 16
# in its CIFAR experiments, and IterNorm (Huang et al., CVPR 2019) uses 16 there too (64 on
# ImageNet). One group of many channels needs a batch far larger than the group, and whitens worse
# (sklearn digits, 64 features, batch 64: 61.9 % with one group, 97.5 % with four).
DEFAULT_GROUP_SIZE = 16


def default_group_size(num_features: int) -> int:
    """The largest divisor of num_features that is at most DEFAULT_GROUP_SIZE."""
    size = min(DEFAULT_GROUP_SIZE, num_features)
    while num_features % size:
        size -= 1
    return size


class DecorrelatedBatchNorm(nn.Module):
    """Decorrelated batch norm: ZCA-whiten groups of channels over the batch, like BatchNorm2d.

    Input (N, C) or (N, C, *) (e.g. (N, C, H, W)); output of the same shape. The C channels are
    split into groups of consecutive channels (num_groups of them, or groups of group_size; by
    default groups of up to 16, see `default_group_size`); each group's samples (all of N and the
    spatial positions) are centred and multiplied by W = (Sigma + eps I)^(-1/2), Sigma their
    covariance with divisor M (the number of samples), so that the output's covariance is the
    identity up to eps. affine adds a per-channel weight and bias, as BatchNorm does. A batch with
    M <= group size gives a singular Sigma (only eps keeps W finite): training warns about it.

    Running statistics: running_mean (C,) and running_whitening (num_groups, G, G) follow
    running = (1 - momentum) running + momentum batch in training (momentum=None: the
    cumulative average, as BatchNorm); eval mode uses them. track_running_stats=False always
    uses batch statistics. The running matrix averages the batch whitening matrices (as the
    paper does), not covariances.
    """

    def __init__(self, num_features: int, num_groups: int | None = None, eps: float = 1e-5,
                 momentum: float | None = 0.1, affine: bool = True, track_running_stats: bool = True,
                 method: str = "auto", *, group_size: int | None = None, **root_options):
        super().__init__()
        name = type(self).__name__
        num_features = check_positive_int(name, num_features, "num_features")
        if num_groups is not None and group_size is not None:
            raise ValueError(f"{name}: give num_groups or group_size, not both")
        if group_size is not None:
            group_size = check_positive_int(name, group_size, "group_size")
            if num_features % group_size:
                raise ValueError(f"{name}: group_size must divide num_features, got group_size={group_size} "
                                 f"and num_features={num_features}")
            num_groups = num_features // group_size
        elif num_groups is None:
            num_groups = num_features // default_group_size(num_features)
        num_groups = check_positive_int(name, num_groups, "num_groups")
        if num_features % num_groups:
            raise ValueError(f"{name}: num_groups must divide num_features, got num_groups={num_groups} "
                             f"and num_features={num_features}")
        self.num_features, self.num_groups = num_features, num_groups
        self.group_size = num_features // num_groups
        self.eps, self.momentum = check_eps(name, eps), check_momentum(name, momentum)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        self.method = method
        self.root_options = check_root_options(name, method, root_options, self.group_size)
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

    def _batch_statistics(self, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean (g, G, 1), covariance (g, G, G) with divisor M) of groups (g, G, M).
        `SyncDecorrelatedBatchNorm` reduces them over processes."""
        mean = groups.mean(dim=-1, keepdim=True)
        centered = groups - mean
        return mean, centered @ centered.mT / groups.shape[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        name = type(self).__name__
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"{name}: x must be (N, {self.num_features}) or (N, {self.num_features}, *), "
                             f"got shape {tuple(x.shape)}")
        channels = x.transpose(0, 1).reshape(self.num_features, -1)  # (C, M): every sample of each channel
        work_dtype = compute_dtype_for(x.dtype)
        groups = channels.to(work_dtype).reshape(self.num_groups, self.group_size, -1)
        if self.training or not self.track_running_stats:
            if self.training and groups.shape[-1] < 2:
                raise ValueError(f"{name}: expected more than 1 value per channel when training, "
                                 f"got shape {tuple(x.shape)}")
            mean, cov = self._batch_statistics(groups)
            samples = groups.shape[-1]  # this process's: a shape, so no sync (Sync reduces more)
            if self.training and samples <= self.group_size:
                warnings.warn(f"{name}: {samples} samples per channel for groups of {self.group_size} channels: "
                              "the covariance is singular and only eps keeps the whitening finite; use a "
                              "larger batch or smaller groups (num_groups / group_size)", stacklevel=2)
            whitening = api.inv_sqrtm(cov, method=self.method, eps=self.eps, **self.root_options)
            if self.training and self.track_running_stats:
                self._update_running_stats(mean, whitening)
        else:
            mean = self.running_mean.to(work_dtype).reshape(self.num_groups, self.group_size, 1)
            whitening = self.running_whitening.to(work_dtype)
        out = (whitening @ (groups - mean)).reshape(self.num_features, -1)
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
                + options_repr(self.root_options))
