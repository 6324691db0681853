"""SyncDecorrelatedBatchNorm on two CPU processes (gloo) equals one process on the whole batch.

Each process whitens its half of a batch; the reference is DecorrelatedBatchNorm on the
concatenated batch in this process. Outputs, input gradients, running statistics and the
parameter gradients (summed over the processes, as DDP's all-reduce would) must agree to
float32 rounding.
"""

from __future__ import annotations

import os
import socket
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import tritonsqrt.nn as tnn
from tritonsqrt.testing import relative_error

WORLD = 2
SHAPES = [(6, 8, 3, 3), (10, 8, 3, 3)]  # unequal shards: counts are reduced, not assumed


def batch():
    gen = torch.Generator().manual_seed(0)
    mixing = torch.randn(8, 8, generator=gen)
    x = torch.cat([torch.randn(*shape, generator=gen) for shape in SHAPES])
    return torch.einsum("dc,nchw->ndhw", mixing, x) + 0.3, torch.randn(x.shape, generator=gen)


def build():
    torch.manual_seed(1)
    layer = tnn.DecorrelatedBatchNorm(8, num_groups=2, eps=1e-3, momentum=0.5)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.normal_()
    return layer


def run(layer, x, upstream):
    x = x.clone().requires_grad_(True)
    out = layer(x)
    out.backward(upstream)
    return {"out": out.detach(), "grad_x": x.grad, "grad_weight": layer.weight.grad, "grad_bias": layer.bias.grad,
            "running_mean": layer.running_mean.clone(), "running_whitening": layer.running_whitening.clone()}


def _worker(rank, port, folder):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        layer = tnn.convert_sync_decorrelated_batchnorm(torch.nn.Sequential(build()))[0]
        assert isinstance(layer, tnn.SyncDecorrelatedBatchNorm)
        x, upstream = batch()
        start = sum(shape[0] for shape in SHAPES[:rank])
        shard = slice(start, start + SHAPES[rank][0])
        torch.save(run(layer, x[shard], upstream[shard]), os.path.join(folder, f"rank{rank}.pt"))
        # Both ranks done before either tears gloo down: a rank that leaves first can abort the
        # other's connection threads ("terminate called without an active exception", seen once in CI).
        dist.barrier()
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_processes_equal_one_process_on_the_whole_batch():
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_worker, args=(free_port(), folder), nprocs=WORLD, join=True)
        ranks = [torch.load(os.path.join(folder, f"rank{r}.pt")) for r in range(WORLD)]
    x, upstream = batch()
    whole = run(build(), x, upstream)
    err = lambda a, b: float(relative_error(a.reshape(1, 1, -1).double(), b.reshape(1, 1, -1).double()))  # noqa: E731
    assert err(torch.cat([r["out"] for r in ranks]), whole["out"]) < 1e-5
    assert err(torch.cat([r["grad_x"] for r in ranks]), whole["grad_x"]) < 1e-5
    for name in ("grad_weight", "grad_bias"):
        assert err(ranks[0][name] + ranks[1][name], whole[name]) < 1e-5, name
    for name in ("running_mean", "running_whitening"):
        assert err(ranks[0][name], whole[name]) < 1e-5 and torch.equal(ranks[0][name], ranks[1][name]), name
    # Not trivially equal: one shard alone whitens with other statistics.
    alone = run(build(), x[:6], upstream[:6])
    assert err(alone["out"], whole["out"][:6]) > 1e-2


def test_without_distributed_it_is_decorrelated_batch_norm():
    x, upstream = batch()
    plain, synced = build(), tnn.convert_sync_decorrelated_batchnorm(build())
    assert type(synced) is tnn.SyncDecorrelatedBatchNorm and synced.num_groups == 2 and synced.eps == 1e-3
    a, b = run(plain, x, upstream), run(synced, x, upstream)
    assert all(torch.equal(a[k], b[k]) for k in a)
