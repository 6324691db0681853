"""The autotune space of the tiled kernels (`kernels/tiled.py`) and its pruning by matrix size
and shared memory: what `tritonsqrt.tuning.cache` times, `tritonsqrt warmup` fills the cache with and
`tritonsqrt compile-report` compiles."""

from __future__ import annotations

import functools

import torch
import triton

# (BLOCK, BLOCK_K, GROUP, num_warps, most stages) per dtype and kernel, the launcher's default
# first. Every entry compiles for sm_80 and sm_90, with every dot precision and every flag set
# `tiled_path` launches, without register spills (Triton 3.9 and 3.6; docs/large-and-tuning.md).
# Left out for spilling: 128-wide tiles (0.3-1.5 KB with 8 warps), 64-wide tiles with 4 warps,
# BLOCK_K = 32 in kernels with two or more products, 64-wide float64 tiles in the power step.
# Stages are lowered until the operand tiles fit in shared memory, else the entry is dropped.
_ONE_PRODUCT = ((64, 32, 8, 8, 3), (64, 16, 8, 8, 4), (32, 32, 1, 4, 2), (32, 16, 1, 4, 3))
_PRODUCTS = ((64, 16, 8, 8, 4), (32, 16, 1, 4, 3))
GPU_SPACE = {
    "float32": {
        "power_step": _ONE_PRODUCT,
        "product": _ONE_PRODUCT,
        "newton_schulz_step": _PRODUCTS,
        "lyapunov_products": _PRODUCTS,
        "lyapunov_update": ((64, 16, 8, 8, 4), (32, 16, 1, 4, 2)),  # 3 stages: 8 bytes of spill, tf32x3 sm_90
    },
    "float64": {
        "power_step": ((32, 16, 1, 4, 2), (32, 32, 1, 4, 2)),
        "product": ((32, 16, 1, 4, 3), (64, 16, 8, 8, 2), (32, 32, 1, 4, 2)),
        "newton_schulz_step": ((32, 16, 1, 4, 3), (64, 16, 8, 8, 2)),
        "lyapunov_products": ((32, 16, 1, 4, 3), (64, 16, 8, 8, 2)),
        "lyapunov_update": ((32, 16, 1, 4, 3), (64, 16, 8, 8, 2)),
    },
}
# The interpreter runs programs one after another at a fixed cost per operation: 64-wide
# tiles are 10x faster there than 16-wide ones (n = 130: 0.4 s against 6 s a launch) and
# still leave the tests' sizes (65, 96, 130) several tiles, ragged edges and a GROUP of 2
# (tests/test_tiled.py also runs 32-wide tiles).
INTERPRETER_SPACE = ((64, 64, 2, 1, 1), (64, 32, 1, 1, 1))

# Product loops per program of each tuned kernel, each pipelining 2 operand tiles a step
# (shared memory is counted as if the loops' buffers were not reused).
PRODUCT_LOOPS = {
    "power_step": 1,
    "newton_schulz_step": 2,
    "product": 1,
    "lyapunov_products": 2,
    "lyapunov_update": 4,
}
# Shared memory a block may use on A100 (sm_80); H100 (sm_90) allows 232448. Static lists
# (compile_specs) are pruned for the smaller one, launches for the device's own.
SM80_SHARED_MEMORY = 166912


def candidate_configs(kernel_name: str, n: int, dtype_name: str, precision: str = "ieee", interpreter: bool = False,
                      shared_memory: int = SM80_SHARED_MEMORY) -> list[dict]:
    """The configs a tuned kernel may launch with at size n and dot precision, pruned to what fits."""
    space = INTERPRETER_SPACE if interpreter else GPU_SPACE[dtype_name][kernel_name]
    if isinstance(space, dict):  # a kernel's entry may be split by dot precision
        space = space[precision]
    return [dict(config) for config in _pruned(tuple(space), 2 * PRODUCT_LOOPS[kernel_name], triton.next_power_of_2(n),
                                               8 if dtype_name == "float64" else 4, interpreter, shared_memory)]


@functools.lru_cache(maxsize=None)
def _pruned(space: tuple, loads: int, n_pow2: int, element: int, interpreter: bool, shared_memory: int) -> tuple:
    # No tile wider than the matrix needs, but always the narrowest entries.
    largest_block = max(n_pow2, min(entry[0] for entry in space))
    configs = []
    for block, block_k, group, warps, stages in space:
        if block > largest_block:
            continue
        if not interpreter:
            # Pipelined operand tiles, plus one output tile of scratch for the mirrored store.
            needed = lambda s: (s * loads * block * block_k + block * block) * element  # noqa: E731
            while stages > 2 and needed(stages) > shared_memory:
                stages -= 1
            if needed(stages) > shared_memory:
                continue
        configs.append((("BLOCK", block), ("BLOCK_K", block_k), ("GROUP", group), ("num_warps", warps),
                        ("num_stages", stages)))
    return tuple(configs)


@functools.lru_cache(maxsize=None)
def shared_memory_per_block(device: torch.device) -> int:
    """Shared memory per block on this GPU (once per device: a driver query)."""
    try:
        from triton.runtime import driver

        return int(driver.active.utils.get_device_properties(device.index or 0)["max_shared_mem"])
    except Exception:  # an unknown driver API: assume the smaller of the targets
        return SM80_SHARED_MEMORY
