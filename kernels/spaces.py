"""Every kernel's launch settings as data: the default config and the autotune space of the fused
forward (`kernels/fused_roots.py`), the fused backward (`kernels/fused_lyapunov.py`) and the tiled
kernels (`kernels/tiled.py`, pruned by matrix size and shared memory). What
`tritonsqrt.tuning.cache` times, `tritonsqrt warmup` fills the cache with, and every module's
`compile_specs` (hence `tritonsqrt compile-report`) compiles."""

from __future__ import annotations

import functools
import os

import torch
import triton

from tritonsqrt.versions import version_tuple

# ---------------------------------------------------------------------------------------
# Tiled kernels

# (BLOCK, BLOCK_K, GROUP, num_warps, most stages) per dtype and kernel, the launcher's default
# first. Every entry compiles for sm_80 and sm_90, with every dot precision and every flag set
# `tiled_path` launches, without register spills on Triton 3.9 (on 3.6, 27 of 446 spill 4-76
# bytes, docs/compile-report.md, "Triton versions"; docs/large-and-tuning.md).
# Left out for spilling: 128-wide tiles (0.3-1.5 KB with 8 warps; the chained kernels split over
# two programs a tile 172-1100 bytes at 8 or 16 warps), 64-wide tiles with 4 warps unsplit,
# BLOCK_K = 32 in kernels with two or more products, 64-wide float64 tiles in the power step.
# Stages are lowered until the operand tiles fit in shared memory, else the entry is dropped.
_ONE_PRODUCT = ((64, 32, 8, 8, 3), (64, 16, 8, 8, 4), (32, 32, 1, 4, 2), (32, 16, 1, 4, 3))
# 32-wide at 3 stages: 4-8 bytes of spill in the chained step (`chained.py`), ieee sm_80.
_PRODUCTS = ((64, 16, 8, 8, 4), (32, 16, 1, 4, 2))
GPU_SPACE = {
    "float32": {
        "power_step": _ONE_PRODUCT,
        "product": _ONE_PRODUCT,
        # Split over two programs a tile at 4 warps (one accumulator a program, `step_tiles`):
        # modeled H100 ieee, B = 16, n = 1024 forward+backward 74.3 -> 63.8 ms against the
        # unsplit 8-warp entry next (seventh session, docs/large-and-tuning.md).
        "newton_schulz_chained": ((64, 16, 8, 4, 2, 2),) + _PRODUCTS,
        "newton_schulz_step_ends": _PRODUCTS,
        # Its products and update over several steps in one kernel. Split at 4 warps with BLOCK_K 8
        # fits for ieee and tf32 at every n; at BLOCK_K 16 ieee spills 80-100 bytes where n is not
        # a multiple of 16, and every unsplit 64-wide entry tried spills on sm_80 somewhere.
        "lyapunov_chained": ((64, 8, 8, 4, 2, 2), (32, 16, 1, 4, 2)),
    },
    "float64": {
        "power_step": ((32, 16, 1, 4, 2), (32, 32, 1, 4, 2)),
        "product": ((32, 16, 1, 4, 3), (64, 16, 8, 8, 2), (32, 32, 1, 4, 2)),
        "newton_schulz_chained": ((32, 16, 1, 4, 3), (64, 16, 8, 8, 2)),
        "newton_schulz_step_ends": ((32, 16, 1, 4, 3), (64, 16, 8, 8, 2)),
        # 64-wide spills 16 bytes on sm_90, split or not.
        "lyapunov_chained": ((32, 16, 1, 4, 3), (32, 16, 1, 4, 2)),
    },
}
# tf32x3 (float32) reads its operands as TF32 high and low planes, split once when stored
# (`tile_blocks.store_split`): fewer registers than splitting in the loop, so narrower warp
# counts fit. Per kernel, entries that compile without spill on sm_80 and sm_90 for every
# flag set, fastest in the performance model first (docs/large-and-tuning.md, "tf32x3").
# Left out for spilling: 128-wide tiles (the product's SYMMETRIC=1 variant 0.7-0.8 KB, the
# other kernels 1-4 KB), 64-wide ones at 4 warps in the power step and the kernels with two
# or more products (8-264 bytes), but for the Lyapunov update at BLOCK_K 8 and 2 stages.
# A sixth entry, 2, splits a two-result kernel's results over two programs a tile
# (`step_tiles`, split roles): one accumulator a program, so 64-wide tiles at 4 warps (full-width
# wgmma on sm_90) fit. The first Newton–Schulz step, and the last where it forms one root or n
# is not a multiple of 16, keep a space of their own, unsplit: their epilogues (the norm, the
# unscale) spill 84-156 bytes in a split program.
TF32X3_SPACE = {
    "power_step": _ONE_PRODUCT,
    "product": ((64, 16, 8, 4, 3), (64, 32, 8, 8, 3), (32, 16, 1, 4, 3)),
    # Also the last step where it forms both roots and n is a multiple of 16: its split unscale
    # epilogue spills 80-156 bytes at 3 stages, none at 2 (the later steps model the same at
    # either); at other n 84-156 bytes at 2 as well, so there the last step keeps the ends space.
    "newton_schulz_chained": ((64, 16, 8, 4, 2, 2), (32, 16, 8, 2, 3), (64, 16, 8, 8, 4)),
    "newton_schulz_step_ends": ((32, 16, 8, 2, 3), (64, 16, 8, 8, 4)),
    # The chained Lyapunov step (products, then the update): split, one accumulator a program.
    # Unsplit 64-wide entries spill 96-632 bytes (the products and the update in one kernel), the
    # 32-wide split one at 2 warps 36-56 where n is not a multiple of 16;
    # modeled H100 of the update alone when it had its own launch: B = 1, n = 1024 43.3 -> 33.2 us
    # a step split; B = 32, n = 256 19.0 -> 17.5; B = 16, n = 1024 346 -> 335.
    "lyapunov_chained": ((64, 16, 8, 4, 2, 2), (64, 16, 8, 8, 3, 2), (32, 16, 1, 4, 2)),
}
# "tf32" (float32): where its fastest spill-free entries differ from ieee's, which share GPU_SPACE.
# Modeled H100, B = 16, n = 1024 forward+backward: 55.5 ms with the 32-wide Lyapunov entry ieee
# needed until the seventh session, 9.8 ms with these (A100 100.1 -> 20.8 ms).
TF32_SPACE = dict(
    GPU_SPACE["float32"],
    newton_schulz_chained=((64, 32, 8, 4, 2, 2),) + GPU_SPACE["float32"]["newton_schulz_chained"],
    lyapunov_chained=((64, 16, 8, 4, 2, 2),) + GPU_SPACE["float32"]["lyapunov_chained"],
)
# Entries put first where n is a multiple of 16, which the launcher specializes (aligned rows:
# vectorized loads, fewer registers); elsewhere they spill (tf32x3 BLOCK_K 32: 108-192 bytes in
# the chained Lyapunov kernel, 112 in the Newton–Schulz one on sm_80). Modeled H100 tf32x3,
# B = 32, n = 256 forward+backward: 744 -> 687 us; n = 1024 unchanged (tensor-bound either way).
ALIGNED_FIRST = {
    ("tf32x3", "newton_schulz_chained"): ((64, 32, 8, 4, 2, 2),),
    ("tf32x3", "lyapunov_chained"): ((64, 32, 8, 4, 2, 2),),
}
# TMA (sm_90, issue #13 item 2): entries whose product loops load their operand tiles through
# tensor descriptors made in the kernel (`tile_blocks._descriptor`: the chained kernels pick their
# matrices per step by pointer, so a descriptor made on the host could not follow), a seventh
# entry 1. Put first on sm_90 where n is a multiple of 16 (TMA wants 16-byte aligned rows and
# bases; such n also have their own tuning key). No address tiles or masks in the loop: fewer
# instructions and registers. Modeled H100 cycles per 64x64 product at n = 1024
# (docs/large-and-tuning.md, "TMA"): tf32 Newton–Schulz 6560 -> 4432 and Lyapunov 8896 -> 4432
# (its TMA entry fits at BLOCK_K 32: 138 registers), both now tensor-bound; tf32x3 stays
# tensor-bound at 13296 (issue 7936 -> 7040 a product), B = 32, n = 256 forward+backward
# 687 -> 676 us from the instructions outside the loops. ieee (FFMA from shared memory) gains
# nothing and takes none. On Triton 3.6 the tf32x3 ones spill 16-56 bytes at 255 registers
# (BLOCK_K 16 or 32), as its pointer entries there do (docs/compile-report.md): from 3.9 on only.
TMA_FIRST = {
    ("tf32", "newton_schulz_chained"): ((64, 32, 8, 4, 2, 2, 1),),
    ("tf32", "lyapunov_chained"): ((64, 32, 8, 4, 2, 2, 1),),
    **({("tf32x3", "newton_schulz_chained"): ((64, 32, 8, 4, 2, 2, 1),),
        ("tf32x3", "lyapunov_chained"): ((64, 32, 8, 4, 2, 2, 1),)}
       if version_tuple(triton.__version__) >= (3, 9) else {}),
}
# The narrowest K a `tl.dot` of 32-bit operands takes on the installed Triton (its NVIDIA backend's
# `min_dot_size`): 8 from 3.9 on, 16 before (3.6, the GPU image, asserts K >= 16 at compile time).
MIN_BLOCK_K = 8 if version_tuple(triton.__version__) >= (3, 9) else 16
# The interpreter runs programs one after another at a fixed cost per operation: 64-wide
# tiles are 10x faster there than 16-wide ones (n = 130: 0.4 s against 6 s a launch) and
# still leave the tests' sizes (65, 96, 130) several tiles, ragged edges and a GROUP of 2
# (tests/test_tiled.py also runs 32-wide tiles).
INTERPRETER_SPACE = ((64, 64, 2, 1, 1, 2), (64, 32, 1, 1, 1))
# The spaces whose kernels may split their two results over two programs (`step_tiles`, split roles);
# for the others a sixth entry is ignored.
SPLIT_SPACES = ("newton_schulz_chained", "lyapunov_chained")

# Product loops per program of each tuned kernel, each pipelining 2 operand tiles a step
# (shared memory is counted as if the loops' buffers were not reused).
PRODUCT_LOOPS = {
    "power_step": 1,
    "newton_schulz_chained": 4,  # Y M and M Z, each with its mirror tile (M = Z Y: 1)
    "newton_schulz_step_ends": 4,
    "product": 1,
    "lyapunov_chained": 3,  # B^2, and B C with its mirror; the update B D, C B^2, B B^2
}
# Shared memory a block may use on A100 (sm_80); H100 (sm_90) allows 232448. Static lists
# (compile_specs) are pruned for the smaller one, launches for the device's own.
SM80_SHARED_MEMORY = 166912
SM90_SHARED_MEMORY = 232448


def candidate_configs(kernel_name: str, n: int, dtype_name: str, precision: str = "ieee", interpreter: bool = False,
                      shared_memory: int = SM80_SHARED_MEMORY, tma: bool = False) -> list[dict]:
    """The configs a tuned kernel may launch with at size n and dot precision, pruned to what fits.
    tma: the device takes the TMA entries (`offers_tma`)."""
    if interpreter:
        space = INTERPRETER_SPACE
    else:
        space = gpu_space(kernel_name, dtype_name, precision)
        if n % 16 == 0 and dtype_name == "float32":
            space = ALIGNED_FIRST.get((precision, kernel_name), ()) + space
            if tma:
                space = TMA_FIRST.get((precision, kernel_name), ()) + space
        space = tuple(entry for entry in space if entry[1] >= MIN_BLOCK_K)
    # tf32x3 loads each operand tile as its two TF32 planes (split once, when stored).
    planes = 2 if precision == "tf32x3" and dtype_name == "float32" else 1
    loads = 2 * planes * PRODUCT_LOOPS[kernel_name]
    configs = [dict(config) for config in _pruned(tuple(space), loads, triton.next_power_of_2(n),
                                                  8 if dtype_name == "float64" else 4, interpreter, shared_memory)]
    if kernel_name not in SPLIT_SPACES:  # nor TMA: only the chained kernels load through descriptors
        configs = [{key: value for key, value in dict(config, SPLIT_PROGRAMS=1).items() if key != "TMA"}
                   for config in configs]
        configs = [config for i, config in enumerate(configs) if config not in configs[:i]]
    return configs


def gpu_space(kernel_name: str, dtype_name: str, precision: str) -> tuple:
    """The GPU autotune space of a tiled kernel for a dtype and dot precision, at any n
    (`candidate_configs` adds the ALIGNED_FIRST entries where n is a multiple of 16)."""
    if dtype_name == "float32" and precision == "tf32x3":
        return TF32X3_SPACE[kernel_name]
    if dtype_name == "float32" and precision == "tf32":
        return TF32_SPACE[kernel_name]
    return GPU_SPACE[dtype_name][kernel_name]


@functools.lru_cache(maxsize=None)
def _pruned(space: tuple, loads: int, n_pow2: int, element: int, interpreter: bool, shared_memory: int) -> tuple:
    # No tile wider than the matrix needs, but always the narrowest entries.
    largest_block = max(n_pow2, min(entry[0] for entry in space))
    configs = []
    for block, block_k, group, warps, stages, *rest in space:
        split, tma = (rest[0] if rest else 1), (rest[1] if len(rest) > 1 else 0)
        if block > largest_block:
            continue
        if not interpreter:
            # Pipelined operand tiles (a split program runs its share of the loops), plus one
            # output tile of scratch for the mirrored store.
            program_loads = loads // split
            needed = lambda s: (s * program_loads * block * block_k + block * block) * element  # noqa: E731
            while stages > 2 and needed(stages) > shared_memory:
                stages -= 1
            if needed(stages) > shared_memory:
                continue
        # TMA only where set: configs cached before it existed stay valid
        configs.append((("BLOCK", block), ("BLOCK_K", block_k), ("GROUP", group), ("num_warps", warps),
                        ("num_stages", stages), ("SPLIT_PROGRAMS", split)) + ((("TMA", True),) if tma else ()))
    return tuple(configs)


@functools.lru_cache(maxsize=None)
def shared_memory_per_block(device: torch.device) -> int:
    """Shared memory per block on this GPU (once per device: a driver query)."""
    try:
        from triton.runtime import driver

        return int(driver.active.utils.get_device_properties(device.index or 0)["max_shared_mem"])
    except Exception:  # an unknown driver API: assume the smaller of the targets
        return SM80_SHARED_MEMORY


# ---------------------------------------------------------------------------------------
# Fused forward kernels (kernels/fused_roots.py)

# n = 128 does not fit one program: with whole operands in registers the Newton–Schulz kernel
# needs 256 KiB of shared memory (tf32x3; H100 has 227 KiB) or spills 94 KB (ieee), and even
# streamed every kernel spills 0.6-2 KB a thread at 16 or 32 warps (docs/fused-kernels.md).
FUSED_MAX_N = 64


def fused_roots_config(n: int, dtype_name: str, kernel: str, precision: str = "ieee") -> dict:
    """BLOCK, matrices per program, streaming, warps and stages for one size, kernel
    ("polynomial" or "newton_schulz") and dot precision.

    BLOCK = 16 (n <= 16): four matrices per program as one (4, 16, 16) stack.
    BLOCK = 32: one matrix per program, whole operands in registers.
    BLOCK = 64: float32 streams its products from a scratch; with whole operands in
    registers every tl.dot holds its full right operand in each warp and the Newton–Schulz
    kernel spills 620-990 bytes (ieee) on sm_90 / sm_80 at any warp count. float64 (an f64
    mma that holds far less) keeps everything in registers.
    Warps: the counts with no spill on sm_80 and sm_90 (`tritonsqrt compile-report`, Triton
    3.9; figures in docs/fused-kernels.md). ptxas caps some kernels at 128 or 80 registers
    and spills a few bytes rather than use more (BLOCK 16 Taylor at 4 warps, Newton–Schulz at
    8), so the choice is per kernel; streamed at 16 warps stays at 83-116 registers.
    `precision` matters at BLOCK 16 only (Newton–Schulz with tf32x3 takes 8 warps).
    """
    if not 1 <= n <= FUSED_MAX_N:
        raise ValueError(f"n: the fused forward kernels take 1 <= n <= {FUSED_MAX_N}, got {n}")
    if kernel not in ("polynomial", "newton_schulz"):
        raise ValueError(f"kernel: expected 'polynomial' or 'newton_schulz', got {kernel!r}")
    block = max(16, triton.next_power_of_2(n))
    config = {"BLOCK": block, "MATRICES": 1, "STREAM": False, "CHUNK": 16, "num_warps": 4, "num_stages": 1,
              "SCRATCH_SLOTS": 4 if kernel == "polynomial" else 3}
    if block == 16:
        # Newton–Schulz at 4 warps: ptxas caps it at 128 registers and, with tf32x3 on sm_80,
        # spills 8 bytes since the norm became scale-safe; 8 warps fit at 79-80 (compile-report).
        wide = kernel == "polynomial" or precision == "tf32x3"
        config.update(MATRICES=4, num_warps=8 if wide else 4)
    elif block == 32 and dtype_name == "float32" and kernel == "newton_schulz" and precision in TENSOR_CORE_PRECISIONS:
        # mma.sync tiles of 16 rows: 4 warps on a 32-row matrix compute every product twice (the
        # same 394 instructions a warp as 2 warps, issue-bound); 2 warps do it once (modeled
        # B = 1024: 40 us against 73 us on H100). 202 registers, no spill (compile-report).
        config.update(num_warps=2)
    elif block == 64 and dtype_name == "float32":
        config.update(STREAM=True, num_warps=16)
    elif block == 64:
        config.update(num_warps=8)
    return config


# Launch settings the tuner may pick besides `fused_roots_config`'s, as (MATRICES, num_warps) per
# (BLOCK, dtype, kernel): each compiles without spills for sm_80 and sm_90 with every method and
# dot precision of the kernel, on Triton 3.9 and 3.6 (`tritonsqrt compile-report`; asserted by
# tests/test_compile_report.py). At BLOCK 64 the streamed Newton–Schulz kernel and float64
# spill at every other warp count (2-16 tried), so they keep their one setting.
# (2 matrices at 4 warps, BLOCK 16, float32, left out: 4 bytes of spill on sm_90 for ns tf32x3 and
# mpa tf32 once compiled with n specialized as a launch does, n = 16.)
FUSED_ROOTS_ALTERNATIVES = {
    (16, "float32", "newton_schulz"): ((1, 4), (4, 8)),
    (16, "float32", "polynomial"): ((1, 2),),
    (16, "float64", "newton_schulz"): ((2, 4), (1, 4), (4, 8)),
    (16, "float64", "polynomial"): ((2, 4), (1, 4), (4, 4)),
    (32, "float32", "newton_schulz"): ((1, 8), (1, 2), (1, 4)),
    (32, "float32", "polynomial"): ((1, 8),),
    (32, "float64", "newton_schulz"): ((1, 8), (1, 2)),
    (32, "float64", "polynomial"): ((1, 8), (1, 16)),
    (64, "float32", "polynomial"): ((1, 8),),
}


# The tensor-core Newton–Schulz forward and Lyapunov backward (kernels/fused_roots_tc.py,
# kernels/fused_lyapunov_tc.py): one matrix per program at 4 warps, for the tensor-core precisions
# in float32. Spill-free (Triton 3.9, ptxas -v) where listed, as (BLOCK, archs): at BLOCK 64 the
# forward needs 254 registers on sm_90 and spills 32 bytes on sm_80 (mma.sync holds more), so it
# is offered on sm_90 only; the backward there keeps its iterates in a scratch (in registers it
# spills 150-600 bytes). The streamed forms take K panels of 16, which bound K by n (n = 48: 48-deep
# products); panels of 32 are 5% faster modeled at n = 64 on sm_90 but spill 12-32 bytes on sm_80.
TENSOR_CORE_PRECISIONS = ("tf32x3", "tf32")
TENSOR_CORE_FORWARD = {64: ("sm_90",)}
TENSOR_CORE_FORWARD_STREAMED = {64: ("sm_80", "sm_90")}
# The pre-tensor-core streamed Newton–Schulz forward at a tensor-core precision, compiled with the
# aligned pointers a launch gets: ptxas holds it to 64 registers at 16 warps on sm_80 and it spills
# 4-12 bytes (tf32x3 spills at 4, 8 and 16 warps, 128 or 255 registers): sm_90 only.
PRE_TENSOR_CORE_FORWARD_ARCHS = {(64, "float32", "newton_schulz", "tf32x3"): ("sm_90",),
                                 (64, "float32", "newton_schulz", "tf32"): ("sm_90",)}
TENSOR_CORE_BACKWARD = {32: ("sm_80", "sm_90"), 64: ("sm_80", "sm_90")}

# The streamed tensor-core backward reads the K panels of its right operands (B and C, stored
# exactly symmetric) as column panels, K-major, where that pays: on sm_90 TF32 wgmma takes its
# shared operand K-major only, so a row panel is scattered into shared memory 4 bytes a copy
# (n = 48: 28.7 -> 24.1 us modeled for B = 64 on H100); on sm_80 it gains nothing and spills
# 40 bytes (tritonsqrt compile-report), so sm_80 keeps row panels.
SYMMETRIC_PANEL_ARCHS = {True: ("sm_90",), False: ("sm_80",)}


def tensor_core_archs(table: dict, n: int, dtype_name: str, precision: str) -> tuple:
    """The archs a tensor-core kernel of `table` serves at size n ((), none)."""
    if dtype_name != "float32" or precision not in TENSOR_CORE_PRECISIONS or not 16 < n <= FUSED_MAX_N:
        return ()
    return table.get(triton.next_power_of_2(n), ())


def _device_descriptors() -> bool:
    """Whether the installed Triton makes tensor descriptors in a kernel (3.4 and later, 3.6
    included) and keeps its scratch allocator where `launch.descriptor_scratch` can set it for one
    launch (a context variable, 3.6 to 3.9); without either no TMA entry is offered."""
    try:
        from triton.runtime import _allocation
    except ImportError:
        return False
    return hasattr(triton.language, "make_tensor_descriptor") and hasattr(_allocation, "_allocator") and \
        hasattr(_allocation, "NullAllocator")


DEVICE_DESCRIPTORS = _device_descriptors()


def offers_tma(device: torch.device) -> bool:
    """Whether the TMA entries (`TMA_FIRST`) are offered on this device: sm_90, the one
    arch they were compiled and checked for, with a Triton that makes descriptors in the kernel,
    unless TRITONSQRT_TMA=0. The descriptors live in scratch that Triton allocates per program
    for the launch (0.5-1.75 KB; B = 16, n = 1024: 138 MB for the forward's chained launch, 352 MB
    for the backward's, tf32x3), which is what the setting is for."""
    return DEVICE_DESCRIPTORS and os.environ.get("TRITONSQRT_TMA", "1") != "0" and arch_name(device) == "sm_90"


def arch_name(device: torch.device) -> str | None:
    """The compile-report arch whose code a CUDA device runs: "sm_80" for compute capability 8.x
    (mma.sync), "sm_90" for 9.x (wgmma), "other" for the rest (no tensor-core kernel is offered:
    none was compiled for it); None off CUDA (the interpreter runs every kernel)."""
    if device.type != "cuda":
        return None
    major, _ = _capability(device.index if device.index is not None else torch.cuda.current_device())
    return {8: "sm_80", 9: "sm_90"}.get(major, "other")


@functools.lru_cache(maxsize=None)
def _capability(index: int) -> tuple:
    return torch.cuda.get_device_capability(index)


def _offers_tensor_cores(table: dict, n: int, dtype_name: str, precision: str, arch: str | None) -> bool:
    archs = tensor_core_archs(table, n, dtype_name, precision)
    return bool(archs) and (arch is None or arch in archs)


def fused_roots_candidates(n: int, dtype_name: str, kernel: str, precision: str = "ieee",
                           interpreter: bool = False, arch: str | None = None) -> list[dict]:
    """The configs the tuner chooses among at size n, `fused_roots_config`'s first; for
    Newton–Schulz at a tensor-core precision the tensor-core kernel comes first where it fits
    `arch` (None: any), the model's choice (docs/fused-kernels.md), the other kernels after it.

    The interpreter takes the default only: it times nothing that a GPU would choose by.
    """
    default = fused_roots_config(n, dtype_name, kernel, precision)
    old_archs = PRE_TENSOR_CORE_FORWARD_ARCHS.get((default["BLOCK"], dtype_name, kernel, precision))
    candidates = [] if old_archs and arch is not None and arch not in old_archs else [default]
    if kernel == "newton_schulz":
        tensor_cores = []
        if _offers_tensor_cores(TENSOR_CORE_FORWARD, n, dtype_name, precision, arch):
            tensor_cores.append({"KERNEL": "tensor_cores", "BLOCK": default["BLOCK"], "MATRICES": 1, "STREAM": False,
                                 "CHUNK": 16, "SCRATCH_SLOTS": 0, "num_warps": 4, "num_stages": 1})
        if _offers_tensor_cores(TENSOR_CORE_FORWARD_STREAMED, n, dtype_name, precision, arch):
            # K panels of 16 where they bound K by n (n <= 48), else 32 (fewer loop trips)
            streamed = {"KERNEL": "tensor_cores_streamed", "BLOCK": default["BLOCK"], "MATRICES": 1, "STREAM": True,
                        "CHUNK": 16, "SCRATCH_SLOTS": 3, "num_warps": 4, "num_stages": 2}
            tensor_cores.append(streamed)  # after the register form: the model's choice on sm_90 even at n = 48
        candidates = tensor_cores + candidates
    if interpreter:
        return candidates[:1]
    if default in candidates:  # the pre-tensor-core kernel's other settings, where it is offered
        for matrices, warps in FUSED_ROOTS_ALTERNATIVES.get((default["BLOCK"], dtype_name, kernel), ()):
            config = dict(default, MATRICES=matrices, num_warps=warps)
            if config not in candidates:
                candidates.append(config)
    return candidates


# ---------------------------------------------------------------------------------------
# Fused backward kernels (kernels/fused_lyapunov.py)


def fused_lyapunov_config(n: int, dtype_name: str, precision: str) -> dict:
    """Which kernel, BLOCK, matrices per program and warps for one size, dtype and precision.

    From `tritonsqrt compile-report` (ptxas -v, sm_80 and sm_90, Triton 3.9): the in-register
    kernel is spill-free for BLOCK 16 (4 matrices, one warp each in the batched tl.dot), and
    for BLOCK 32 with ieee (8 warps) or tf32 (4 warps) in float32; tf32x3 at BLOCK 32 and
    every BLOCK >= 64 spill there (n = 64: 300-60000 bytes in every warp count), so they take
    the streamed kernel: spill-free up to BLOCK 64 (8 warps), still spilling at BLOCK 128 (so the
    fused backward stops where the fused forward does, at FUSED_MAX_N).
    """
    if not 1 <= n <= FUSED_MAX_N:
        raise ValueError(f"n: the fused Lyapunov kernel takes 1 <= n <= {FUSED_MAX_N}, got {n}")
    block = max(16, triton.next_power_of_2(n))
    if block == 16:
        return {"kernel": "registers", "BLOCK": 16, "MATRICES": 4, "num_warps": 4, "num_stages": 1}
    if block == 32 and dtype_name == "float32" and precision in ("ieee", "tf32"):
        warps = 8 if precision == "ieee" else 4
        return {"kernel": "registers", "BLOCK": 32, "MATRICES": 1, "num_warps": warps, "num_stages": 1}
    warps = {32: 4 if dtype_name == "float32" else 8, 64: 8}[block]
    return {"kernel": "streamed", "BLOCK": block, "CHUNK": 16, "num_warps": warps, "num_stages": 1}


# Launch settings the tuner may pick besides `fused_lyapunov_config`'s, as (MATRICES, num_warps) for
# the in-register kernel or num_warps for the streamed one, per (BLOCK, dtype, kernel): each compiles
# without spills for sm_80 and sm_90 with every dot precision it serves, on Triton 3.9 and 3.6
# (`tritonsqrt compile-report`; asserted by tests/test_compile_report.py). At BLOCK 64 4 and 16
# warps spill, so 8 stays alone.
FUSED_LYAPUNOV_ALTERNATIVES = {
    (16, "float32", "registers"): ((2, 4), (1, 4), (4, 8)),
    (16, "float64", "registers"): ((2, 4), (1, 4), (4, 8)),
    (32, "float32", "registers"): ((1, 8),),  # tf32's default is 4 warps; ieee spills at 4
    (32, "float32", "streamed"): (8, 16),
    (32, "float64", "streamed"): (16,),
}


def fused_lyapunov_candidates(n: int, dtype_name: str, precision: str = "ieee", interpreter: bool = False,
                              arch: str | None = None) -> list[dict]:
    """The configs the tuner chooses among at size n, `fused_lyapunov_config`'s first, after the
    tensor-core kernel where it serves (as `fused_roots_candidates`; the interpreter takes the
    first only)."""
    default = fused_lyapunov_config(n, dtype_name, precision)
    candidates = [default]
    if _offers_tensor_cores(TENSOR_CORE_BACKWARD, n, dtype_name, precision, arch):
        if default["BLOCK"] == 64:  # the iterates in a scratch (the register form spills there)
            streamed = {"kernel": "tensor_cores_streamed", "BLOCK": 64, "CHUNK": 16, "num_warps": 4, "num_stages": 2}
            candidates[0:0] = [dict(streamed, SYMMETRIC_PANELS=symmetric) for symmetric in (True, False)
                               if arch is None or arch in SYMMETRIC_PANEL_ARCHS[symmetric]]
        else:  # 2 warps: mma.sync tiles of 16 rows, so 4 warps would compute a 32-row product twice
            candidates.insert(0, {"kernel": "tensor_cores", "BLOCK": default["BLOCK"], "num_warps": 2,
                                  "num_stages": 1})
    if interpreter:
        return candidates[:1]
    for other in FUSED_LYAPUNOV_ALTERNATIVES.get((default["BLOCK"], dtype_name, default["kernel"]), ()):
        if default["kernel"] == "streamed":
            config = dict(default, num_warps=other)
        else:
            config = dict(default, MATRICES=other[0], num_warps=other[1])
        if config not in candidates:
            candidates.append(config)
    return candidates
