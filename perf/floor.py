"""The floor of a case: the least time any implementation of our algorithm could take here.

floor = max(bytes / copy bandwidth, FLOPs / matrix-product rate) + kernels x launch latency,
with the three rates measured on this machine at the start of the run:

- bytes: read A once and write the root once (forward); the backward adds reading the
  incoming gradient and the saved root and writing dL/dA. In the input's dtype.
- FLOPs: 2 n^3 per matrix product times the products of the scaled Newton–Schulz plan
  (`Plan.matmuls`), the method `auto` runs on a GPU. Rate: float32 products (ieee, no TF32),
  the precision our kernels use by default, also for bf16 inputs (upcast in the kernel).
- kernels: one per direction, the fused design (docs/fused-kernels.md).

On CPU the same formula with CPU-measured rates is labelled so in every output.
"""

from __future__ import annotations

import dataclasses

import torch

from tritonsqrt.plan import Plan
from tritonsqrt.roots import chain_matmuls

from .cases import root_order

from .timing import quantile, synchronized_times, time_cuda


@dataclasses.dataclass(frozen=True)
class Rates:
    copy_gb_s: float  # read + write bytes per second, 1e9
    matmul_gflop_s: float  # float32 matrix products
    launch_us: float  # host cost of launching one tiny kernel / dispatching one tiny op
    device_type: str

    @property
    def label(self) -> str:
        where = "GPU" if self.device_type == "cuda" else "CPU (CPU-measured rates, not a GPU floor)"
        return (f"floor rates on {where}: copy {self.copy_gb_s:.1f} GB/s, fp32 matmul "
                f"{self.matmul_gflop_s:.1f} GFLOP/s, launch {self.launch_us:.1f} us")


def _median_seconds(fn, device: torch.device, repeats: int) -> float:
    return quantile(synchronized_times(fn, device, repeats), 0.5)


def measure_rates(device: torch.device) -> Rates:
    if device.type == "cuda":
        elements = 64 * 2**20  # 256 MiB per buffer: far beyond L2
        src = torch.empty(elements, device=device)
        dst = torch.empty_like(src)
        copy_s = time_cuda(lambda: dst.copy_(src)).median_ms * 1e-3
        size = 4096
        x = torch.randn(size, size, device=device)
        previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            mm_s = time_cuda(lambda: x @ x).median_ms * 1e-3
        finally:
            torch.backends.cuda.matmul.allow_tf32 = previous
        flops = 2 * size**3
    else:
        elements = 8 * 2**20  # 32 MiB per buffer: beyond the last-level cache
        src = torch.empty(elements)
        dst = torch.empty_like(src)
        copy_s = _median_seconds(lambda: dst.copy_(src), device, 9)
        x = torch.randn(8, 512, 512)
        mm_s = _median_seconds(lambda: x @ x, device, 9)
        flops = 8 * 2 * 512**3
    tiny = torch.zeros(1, device=device)
    launches = 200

    def many_launches():
        for _ in range(launches):
            tiny.add_(1)

    launch_s = _median_seconds(many_launches, device, 5) / launches
    return Rates(2 * elements * 4 / copy_s / 1e9, flops / mm_s / 1e9, launch_s * 1e6, device.type)


def floor_ms(batch: int, n: int, op: str, mode: str, element_bytes: int, rates: Rates) -> float:
    backward = mode == "forward+backward"
    p, inverse = root_order(op)
    stages = p.bit_length() - 1  # inv_root<p>: log2(p) roots in a chain, one launch each way per root
    matrices = 5 if backward else 2
    bytes_moved = stages * matrices * batch * n * n * element_bytes
    if p == 2:
        products = Plan(method="scaled_ns", compute_dtype=torch.float32, n=n).matmuls(op, backward)
    else:
        products = chain_matmuls(n, p, inverse, backward)
    flops = 2 * n**3 * batch * products
    kernels = stages * (2 if backward else 1)
    seconds = max(bytes_moved / (rates.copy_gb_s * 1e9), flops / (rates.matmul_gflop_s * 1e9))
    return (seconds + kernels * rates.launch_us * 1e-6) * 1e3
