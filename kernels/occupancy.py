"""Programs (thread blocks) of one kernel that fit on an SM at once: the CUDA occupancy rule.

The limits, each as the CUDA occupancy calculator computes them (cuda_occupancy.h of the CUDA
toolkit; figures in `hardware.py`):

- warps: max resident warps per SM // warps per program;
- blocks: max resident blocks per SM;
- registers: each warp gets registers x 32 rounded up to the allocation unit (256); warps are
  placed in 4 sub-partitions of registers_per_sm / 4 each, never across them, so
  (registers_per_sm / 4 // per-warp) x 4 warps fit, i.e. that // warps per program programs.
  A program whose per-warp registers times its warps rounded up to a multiple of 4 exceed the
  per-block register limit cannot launch (0);
- shared memory: (the kernel's bytes + 1 KB reserved per block) rounded up to 128 bytes; the
  SM's shared memory // that. More than the per-block maximum cannot launch (0).
"""

from __future__ import annotations

from .hardware import Gpu


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def programs_per_sm(gpu: Gpu, registers: int, warps: int, shared_bytes: int) -> tuple[int, str]:
    """(programs resident per SM, the limit that sets it: "warps", "blocks", "registers", "shared")."""
    limits = {"warps": gpu.max_warps_per_sm // warps, "blocks": gpu.max_blocks_per_sm}
    per_warp = _round_up(max(registers, 1) * 32, gpu.register_unit)
    partitions = gpu.schedulers
    if registers > gpu.max_registers_per_thread or per_warp * _round_up(warps, partitions) > gpu.registers_per_block:
        limits["registers"] = 0
    else:
        warps_per_partition = (gpu.registers_per_sm // partitions) // per_warp
        limits["registers"] = warps_per_partition * partitions // warps
    if shared_bytes > gpu.shared_per_block:
        limits["shared"] = 0
    else:
        per_block = _round_up(shared_bytes + gpu.shared_reserved_per_block, gpu.shared_unit)
        limits["shared"] = gpu.shared_per_sm // per_block
    limiter = min(limits, key=lambda name: limits[name])
    return limits[limiter], limiter
