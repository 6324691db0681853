"""A Newton–Schulz or Lyapunov step of the tiled path in one launch, whatever the size (issue #13,
item 4): the step's two dependent phases in one grid, ordered by tickets rather than by a
launch boundary (docs/large-and-tuning.md, "Chained steps").

A tiled Newton–Schulz step needs all of M = Z Y before any tile of Y M can start; a Lyapunov
step needs all of B^2 and B C - C B before C'. Here the programs of one launch do both: the
first `producers` programs of each matrix form its intermediate's tiles (phase 1), the next
`consumers` its update's tiles (phase 2, `step_tiles.newton_schulz_tile` / `step_tiles.lyapunov_update_tile`,
the same code as the two-launch form, so the same sums in the same order). A phase-2 program
waits until its matrix's phase-1 programs have all stored their tiles.

Waiting inside a launch is safe only if every program waited for is running or done. A program
therefore takes its place from a ticket counter (an atomic add) rather than from its program
id: the GPU may start programs in any order, but a program holding ticket t knows that tickets
0 .. t - 1 were taken by programs already running, and it only ever waits for lower tickets
(matrix-major order, phase 1 before phase 2). So there is no deadlock whatever the residency,
and no need for the whole grid to fit on the GPU at once (the order of CUB's single-pass scan:
Merrill and Garland, "Single-pass Parallel Prefix Scan with Decoupled Look-back", NVIDIA
NVR-2016-002). The interpreter runs programs one after another in program-id order, which is
ticket order, so a wait there always finds its producers done: the same code is tested on CPU.

Memory order: a phase-1 program stores its tiles, passes a block barrier, then one thread adds
1 to the matrix's `produced` counter with release semantics; a phase-2 program spins on an
acquire read of it, then passes a block barrier before loading (the pattern of CUTLASS's
`GenericBarrier`, https://github.com/NVIDIA/cutlass, include/cutlass/barrier.h). On sm_80 and
sm_90 the acquire compiles to an L1 invalidation (CCTL.IVALL), so no stale line is read.

Counters (int32, zeroed by the chain's prepare launch, `tiled.prepare_forward` /
`tiled.prepare_backward`): [0] the ticket; [1 + m] matrix m's finished phase-1 programs;
[1 + batch + m] its finished phase-2 programs. Each launch leaves them zero again (the last
ticket resets the ticket, the last phase-2 program of a matrix its two counters), so the next
step reuses them and the tuner can rerun a launch (`tuning.select_config`).
"""

import triton
import triton.language as tl

from .tile_blocks import product_tile, store_split, tile_indices, tile_position_of
from .step_tiles import lyapunov_products_tile, lyapunov_update_tile, newton_schulz_tile


@triton.jit
def _take_ticket(counters_ptr):
    """This program's place in the launch; the program that takes the last one resets the counter."""
    ticket = tl.atomic_add(counters_ptr, 1, sem="relaxed")
    if ticket == tl.num_programs(0) - 1:  # every ticket is taken: the counter is free again
        tl.atomic_xchg(counters_ptr, 0, sem="relaxed")
    return ticket


@triton.jit
def _signal_produced(produced_ptr):
    # Every thread's stores of the tile are issued before the barrier; the release publishes them.
    tl.debug_barrier()
    tl.atomic_add(produced_ptr, 1, sem="release")


@triton.jit
def _wait_for_producers(produced_ptr, producers):
    while tl.atomic_add(produced_ptr, 0, sem="acquire") < producers:
        pass
    tl.debug_barrier()  # no thread loads before the acquire has been seen


@triton.jit
def _finish_consumer(produced_ptr, consumed_ptr, consumers):
    """Count this phase-2 program; the matrix's last resets both of its counters (every phase-2
    program of it has passed its wait, so nothing reads them again in this launch)."""
    if tl.atomic_add(consumed_ptr, 1) == consumers - 1:
        tl.atomic_xchg(produced_ptr, 0)
        tl.atomic_xchg(consumed_ptr, 0)


@triton.jit
def _place(counters_ptr, n, PHASE1_PER_TILE: tl.constexpr, PHASE2_PER_TILE: tl.constexpr, BLOCK: tl.constexpr):
    """(matrix, index within its phase, phase-1 programs, phase-2 programs, batch, counter pointers)
    of this program's ticket: a matrix's phase-1 programs, then its phase-2 ones, matrix after matrix."""
    tiles = tl.cdiv(n, BLOCK)
    producers = tiles * tiles * PHASE1_PER_TILE
    consumers = tiles * tiles * PHASE2_PER_TILE
    batch = tl.num_programs(0) // (producers + consumers)
    ticket = _take_ticket(counters_ptr)
    matrix = ticket // (producers + consumers)
    local = ticket % (producers + consumers)
    return matrix, local, producers, consumers, batch, counters_ptr + 1 + matrix, counters_ptr + 1 + batch + matrix


@triton.jit
def zero_counters(counters_ptr, count, WIDTH: tl.constexpr):
    """Program 0 of a chain's prepare launch zeroes the chain's `count` counters (0: no chain)."""
    if tl.program_id(0) == 0:
        for start in range(0, count, WIDTH):
            offsets = start + tl.arange(0, WIDTH)
            tl.store(counters_ptr + offsets, tl.zeros((WIDTH,), dtype=tl.int32), mask=offsets < count)


def chained_programs(kernel_name: str, n: int, batch: int, block: int, split_programs: int) -> int:
    """Programs of one chained launch: per matrix, phase-1 and phase-2 programs of every tile."""
    tiles = triton.cdiv(n, block)
    per_tile = {"newton_schulz_chained": 1 + split_programs, "lyapunov_chained": 2 * split_programs}[kernel_name]
    return tiles * tiles * per_tile * batch


def counter_count(batch: int) -> int:
    """int32 counters a chained launch over `batch` matrices uses (the chain's buffer)."""
    return 1 + 2 * batch


@triton.jit
def _newton_schulz_chained_kernel(
    y_ptr, z_ptr, m_ptr, y_out_ptr, y_saved_ptr, z_out_ptr, z_saved_ptr, steps_ptr, step, norm_ptr, counters_ptr, n,
    UPDATE_Y: tl.constexpr, UPDATE_Z: tl.constexpr, UNSCALE: tl.constexpr,
    STORE_Y: tl.constexpr, SAVE_Y: tl.constexpr, STORE_Z: tl.constexpr, SAVE_Z: tl.constexpr,
    BLOCK: tl.constexpr, BLOCK_K: tl.constexpr, GROUP: tl.constexpr, PRECISION: tl.constexpr,
    SPLIT_PROGRAMS: tl.constexpr,
):
    """One coupled Newton–Schulz step after the first (`tiled._newton_schulz_step_kernel`) with
    its product M = Z Y (`tiled._product_kernel`, full, unscaled) in the same launch.

    Arguments as for `_newton_schulz_step_kernel` (FIRST false: the norm is read from norm_ptr),
    and m_ptr: M's buffer (a split buffer with tf32x3), written here; counters_ptr: the chain's
    counters (module docstring). Grid: `chained_programs`, one axis: per matrix tiles^2 programs
    form M's tiles, then tiles^2 x SPLIT_PROGRAMS programs the step's (the two programs of a
    tile next to each other).
    """
    matrix, local, producers, consumers, batch, produced_ptr, consumed_ptr = _place(counters_ptr, n, 1,
                                                                                    SPLIT_PROGRAMS, BLOCK)
    plane = batch.to(tl.int64) * n * n
    matrix = matrix.to(tl.int64)
    if local < producers:  # a tile of M = Z Y, as `_product_kernel` forms it
        _, tile_row, tile_col = tile_position_of(local, n, BLOCK, GROUP)
        base = matrix * n * n
        rows = tile_indices(tile_row, BLOCK)
        cols = tile_indices(tile_col, BLOCK)
        acc = product_tile(tl.zeros((BLOCK, BLOCK), dtype=norm_ptr.dtype.element_ty), z_ptr + base, y_ptr + base,
                           rows, cols, n, plane, BLOCK_K, PRECISION)
        store_split(m_ptr + base, acc, rows, cols, n, plane, False, PRECISION == "tf32x3")
        _signal_produced(produced_ptr)
    else:
        local -= producers
        _, tile_row, tile_col = tile_position_of(local // SPLIT_PROGRAMS, n, BLOCK, GROUP)
        if tile_row <= tile_col:  # the others form nothing (`newton_schulz_tile`)
            _wait_for_producers(produced_ptr, producers)
        newton_schulz_tile(y_ptr, z_ptr, m_ptr, y_out_ptr, y_saved_ptr, z_out_ptr, z_saved_ptr, steps_ptr, step,
                           norm_ptr, norm_ptr, 1, n, matrix, tile_row, tile_col, local % SPLIT_PROGRAMS, plane,
                           False, UPDATE_Y, UPDATE_Z, UNSCALE, STORE_Y, SAVE_Y, STORE_Z, SAVE_Z, 1, BLOCK, BLOCK_K,
                           PRECISION, False, SPLIT_PROGRAMS)
        _finish_consumer(produced_ptr, consumed_ptr, consumers)


@triton.jit
def _lyapunov_chained_kernel(
    b_ptr, c_ptr, b_sq_ptr, commutator_ptr, b_out_ptr, c_out_ptr, steps_ptr, step, counters_ptr, n,
    UPDATE_B: tl.constexpr, LAST: tl.constexpr,
    BLOCK: tl.constexpr, BLOCK_K: tl.constexpr, GROUP: tl.constexpr, PRECISION: tl.constexpr,
    SPLIT_PROGRAMS: tl.constexpr,
):
    """One Lyapunov sign step: B^2 and B C - C B (`tiled._lyapunov_products_kernel`), then C' and
    B' (`tiled._lyapunov_update_kernel`), in one launch.

    Arguments as for `_lyapunov_update_kernel`, with b_sq_ptr and commutator_ptr written here
    (split buffers with tf32x3); counters_ptr: the chain's counters (module docstring). Grid:
    `chained_programs`, one axis: per matrix tiles^2 x SPLIT_PROGRAMS programs of the products,
    then as many of the update, the two programs of a tile next to each other in each.
    """
    matrix, local, producers, consumers, batch, produced_ptr, consumed_ptr = _place(counters_ptr, n, SPLIT_PROGRAMS,
                                                                                    SPLIT_PROGRAMS, BLOCK)
    plane = batch.to(tl.int64) * n * n
    matrix = matrix.to(tl.int64)
    if local < producers:
        _, tile_row, tile_col = tile_position_of(local // SPLIT_PROGRAMS, n, BLOCK, GROUP)
        lyapunov_products_tile(b_ptr, c_ptr, b_sq_ptr, commutator_ptr, n, matrix, tile_row, tile_col,
                               local % SPLIT_PROGRAMS, plane, BLOCK, BLOCK_K, PRECISION, SPLIT_PROGRAMS)
        _signal_produced(produced_ptr)
    else:
        local -= producers
        _, tile_row, tile_col = tile_position_of(local // SPLIT_PROGRAMS, n, BLOCK, GROUP)
        if tile_row <= tile_col:
            _wait_for_producers(produced_ptr, producers)
        lyapunov_update_tile(b_ptr, c_ptr, b_sq_ptr, commutator_ptr, b_out_ptr, c_out_ptr, steps_ptr, step, n, matrix,
                             tile_row, tile_col, local % SPLIT_PROGRAMS, plane, UPDATE_B, LAST, BLOCK, BLOCK_K,
                             PRECISION, SPLIT_PROGRAMS)
        _finish_consumer(produced_ptr, consumed_ptr, consumers)
