"""Decorrelated batch norm whose statistics cover the batch of every process, as SyncBatchNorm."""

from __future__ import annotations

import torch
from torch import nn

from .decorrelated_batch_norm import DecorrelatedBatchNorm


class _AllReduceSum(torch.autograd.Function):
    """Sum over the processes; the gradient is summed the same way, so every process's inputs get
    the gradient of the loss summed over all processes, as SyncBatchNorm's do."""

    @staticmethod
    def forward(ctx, t, group):
        import torch.distributed as dist

        ctx.group = group
        total = t.clone()
        dist.all_reduce(total, group=group)
        return total

    @staticmethod
    def backward(ctx, grad):
        import torch.distributed as dist

        total = grad.clone()
        dist.all_reduce(total, group=ctx.group)
        return total, None


def _all_reduce_sum(t: torch.Tensor, group) -> torch.Tensor:
    return _AllReduceSum.apply(t, group)


class SyncDecorrelatedBatchNorm(DecorrelatedBatchNorm):
    """`DecorrelatedBatchNorm` with the mean and covariance all-reduced over a process group.

    In training, under an initialised torch.distributed with more than one process, each group's
    mean and then its covariance are summed over the processes (two all-reduces; the centred
    form, not E[x x^T] - m m^T, keeps float32 accurate), so every process whitens with the
    statistics of the whole batch and updates identical running statistics. Gradients flow
    through the collectives. Without distributed, in eval mode, or with one process it is
    `DecorrelatedBatchNorm`. process_group: None for the default group. Processes may hold
    batches of different sizes. Convert a model with `convert_sync_decorrelated_batchnorm`.
    """

    def __init__(self, num_features: int, num_groups: int | None = None, eps: float = 1e-5,
                 momentum: float | None = 0.1, affine: bool = True, track_running_stats: bool = True,
                 method: str = "auto", *, group_size: int | None = None, process_group=None, **root_options):
        super().__init__(num_features, num_groups, eps, momentum, affine, track_running_stats, method,
                         group_size=group_size, **root_options)
        self.process_group = process_group

    def _synchronised(self) -> bool:
        import torch.distributed as dist

        return (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size(self.process_group) > 1)

    def _batch_statistics(self, groups: torch.Tensor):
        if not self._synchronised():
            return super()._batch_statistics(groups)
        import torch.distributed as dist

        # Sample counts may differ between processes: reduce the sums and the count.
        local = groups.new_full((1,), groups.shape[-1])
        counts = [torch.zeros_like(local) for _ in range(dist.get_world_size(self.process_group))]
        dist.all_gather(counts, local, group=self.process_group)  # static per step: no autograd needed
        total = torch.stack(counts).sum()
        mean = _all_reduce_sum(groups.sum(dim=-1, keepdim=True), self.process_group) / total
        centered = groups - mean
        cov = _all_reduce_sum(centered @ centered.mT, self.process_group) / total
        return mean, cov

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.process_group is None else f", process_group={self.process_group}")

    @classmethod
    def convert_sync_decorrelated_batchnorm(cls, module: nn.Module, process_group=None) -> nn.Module:
        """Replace every DecorrelatedBatchNorm in module by a SyncDecorrelatedBatchNorm with the same
        settings, parameters and running statistics (as SyncBatchNorm.convert_sync_batchnorm)."""
        return convert_sync_decorrelated_batchnorm(module, process_group)


def convert_sync_decorrelated_batchnorm(module: nn.Module, process_group=None) -> nn.Module:
    """Return module with each DecorrelatedBatchNorm (itself included) replaced by a
    SyncDecorrelatedBatchNorm sharing its parameters and buffers; other modules are kept."""
    if isinstance(module, DecorrelatedBatchNorm) and not isinstance(module, SyncDecorrelatedBatchNorm):
        converted = SyncDecorrelatedBatchNorm(
            module.num_features, module.num_groups, module.eps, module.momentum, module.affine,
            module.track_running_stats, module.method, process_group=process_group, **module.root_options)
        if module.affine:
            with torch.no_grad():
                converted.weight = module.weight
                converted.bias = module.bias
        if module.track_running_stats:
            converted.running_mean = module.running_mean
            converted.running_whitening = module.running_whitening
            converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        module.add_module(name, convert_sync_decorrelated_batchnorm(child, process_group))
    return module
