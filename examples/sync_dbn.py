"""SyncDecorrelatedBatchNorm on two CPU processes (gloo) against one process on the whole batch.

Each process holds half of a batch of 64 correlated 32-channel samples; the converted layer
all-reduces the mean and covariance, so both whiten with the statistics of all 64. Printed: the
largest difference from one process that sees the whole batch (outputs and input gradients), and
the same for plain DecorrelatedBatchNorm per process (what DDP without sync would do).

    python examples/sync_dbn.py
"""

from __future__ import annotations

import os
import socket
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tritonsqrt.nn import DecorrelatedBatchNorm, convert_sync_decorrelated_batchnorm


def data():
    gen = torch.Generator().manual_seed(0)
    mixing = torch.randn(32, 32, generator=gen)
    return torch.randn(64, 32, generator=gen) @ mixing.T, torch.randn(64, 32, generator=gen)


def forward_backward(model, x, upstream):
    x = x.clone().requires_grad_(True)
    out = model(x)
    out.backward(upstream)
    return out.detach(), x.grad


def worker(rank: int, port: int, folder: str, sync: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    model = torch.nn.Sequential(DecorrelatedBatchNorm(32, num_groups=2))  # groups of 16 channels
    if sync:
        model = convert_sync_decorrelated_batchnorm(model)
    x, upstream = data()
    shard = slice(32 * rank, 32 * (rank + 1))
    torch.save(forward_backward(model, x[shard], upstream[shard]), os.path.join(folder, f"{rank}.pt"))
    dist.destroy_process_group()


def main() -> int:
    x, upstream = data()
    whole_out, whole_grad = forward_backward(DecorrelatedBatchNorm(32, num_groups=2), x, upstream)
    for sync in (True, False):
        with tempfile.TemporaryDirectory() as folder, socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            probe.close()
            mp.spawn(worker, args=(port, folder, sync), nprocs=2, join=True)
            parts = [torch.load(os.path.join(folder, f"{rank}.pt")) for rank in range(2)]
        out = torch.cat([p[0] for p in parts])
        grad = torch.cat([p[1] for p in parts])
        name = "SyncDecorrelatedBatchNorm" if sync else "DecorrelatedBatchNorm (no sync)"
        print(f"{name:<32} max |output - one process| {(out - whole_out).abs().max().item():.1e}, "
              f"max |grad - one process| {(grad - whole_grad).abs().max().item():.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
