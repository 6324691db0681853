"""Newton–Schulz or Lyapunov steps of the tiled path in one launch, whatever the size (issue #13,
items 3 and 4): each step's two dependent phases, and any number of consecutive steps, in one
grid, ordered by tickets rather than by launch boundaries (docs/large-and-tuning.md,
"Chained steps").

A tiled Newton–Schulz step needs all of M = Z Y before any tile of Y M can start; a Lyapunov
step needs all of B^2 and B C - C B before C'; the next step needs all of the update. Here the
programs of one launch do `steps` steps: per step and matrix, `producers` programs form the
intermediate's tiles (phase 1), then `consumers` programs the update's tiles (phase 2,
`step_tiles.newton_schulz_tile` / `step_tiles.lyapunov_update_tile`, the same code as the
two-launch form, so the same sums in the same order). A phase-2 program waits until its
matrix's phase-1 programs of the step have stored their tiles; a phase-1 program of a later step
waits until its matrix's phase-2 programs of the step before have stored theirs.

Waiting inside a launch is safe only if every program waited for is running or done. A program
therefore takes its place from a ticket counter (an atomic add) rather than from its program
id: the GPU may start programs in any order, but a program holding ticket t knows that tickets
0 .. t - 1 were taken by programs already running, and it only ever waits for lower tickets
(step-major, then matrix, then phase 1 before phase 2). So there is no deadlock whatever the
residency, and no need for the whole grid to fit on the GPU at once (the order of CUB's
single-pass scan: Merrill and Garland, "Single-pass Parallel Prefix Scan with Decoupled
Look-back", NVIDIA NVR-2016-002). The interpreter runs programs one after another in program-id
order, which is ticket order, so a wait there always finds its producers done: the same code is
tested on CPU.

Memory order: a program stores its tiles, passes a block barrier, then one thread adds 1 to its
matrix's counter with release semantics; a waiting program spins on an acquire read of it, then
passes a block barrier before loading (the pattern of CUTLASS's `GenericBarrier`,
https://github.com/NVIDIA/cutlass, include/cutlass/barrier.h). On sm_80 and sm_90 the acquire
compiles to an L1 invalidation (CCTL.IVALL), so no stale line is read.

Buffers: step 0 reads the launch's inputs, which no step writes (so the tuner can rerun a
launch); the steps alternate between the output and a spare buffer so that the last one writes
the output. A buffer is overwritten two steps after it was written, by programs that have
waited (through the step between) for every reader of it.

Counters (int32, zeroed by the chain's prepare launch, `tiled.prepare_forward` /
`tiled.prepare_backward`): [0] the ticket; [1 + m] matrix m's finished phase-1 programs, all
steps; [1 + batch + m] its finished phase-2 programs. Each launch leaves them zero again (the
last ticket resets the ticket, the last phase-2 program of a matrix its two counters), so the
next launch reuses them, the tuner can rerun a launch and a CUDA graph can replay.
"""

import triton
import triton.language as tl

from .step_tiles import lyapunov_products_tile, lyapunov_update_tile, newton_schulz_tile
from .tile_blocks import product_tile, store_split, tile_indices, tile_position_of


@triton.jit
def _take_ticket(counters_ptr):
    """This program's place in the launch; the program that takes the last one resets the counter."""
    ticket = tl.atomic_add(counters_ptr, 1, sem="relaxed")
    if ticket == tl.num_programs(0) - 1:  # every ticket is taken: the counter is free again
        tl.atomic_xchg(counters_ptr, 0, sem="relaxed")
    return ticket


@triton.jit
def _signal(counter_ptr):
    """Count this program done (its tiles stored) and return the count before it."""
    tl.debug_barrier()  # every thread's stores are issued before the barrier; the release publishes them
    return tl.atomic_add(counter_ptr, 1, sem="acq_rel")


@triton.jit
def _wait_for(counter_ptr, count):
    while tl.atomic_add(counter_ptr, 0, sem="acquire") < count:
        pass
    tl.debug_barrier()  # no thread loads before the acquire has been seen


@triton.jit
def zero_counters(counters_ptr, count, WIDTH: tl.constexpr):
    """Program 0 of a chain's prepare launch zeroes the chain's `count` counters (0: no chain)."""
    if tl.program_id(0) == 0:
        for start in range(0, count, WIDTH):
            offsets = start + tl.arange(0, WIDTH)
            tl.store(counters_ptr + offsets, tl.zeros((WIDTH,), dtype=tl.int32), mask=offsets < count)


@triton.jit
def _place(counters_ptr, n, steps, PHASE1_PER_TILE: tl.constexpr, PHASE2_PER_TILE: tl.constexpr,
           BLOCK: tl.constexpr):
    """This program's ticket read as (step within the launch, matrix, index within its phase,
    phase-1 programs a step, phase-2 programs a step, batch, its matrix's two counters)."""
    tiles = tl.cdiv(n, BLOCK)
    producers = tiles * tiles * PHASE1_PER_TILE
    consumers = tiles * tiles * PHASE2_PER_TILE
    batch = tl.num_programs(0) // (steps * (producers + consumers))
    ticket = _take_ticket(counters_ptr)
    step = ticket // (batch * (producers + consumers))
    matrix = ticket // (producers + consumers) % batch
    local = ticket % (producers + consumers)
    return step, matrix, local, producers, consumers, batch, counters_ptr + 1 + matrix, \
        counters_ptr + 1 + batch + matrix


@triton.jit
def _read(in_ptr, out_ptr, spare_ptr, step, steps):
    """The buffer `step` of `steps` reads: the inputs first, then what the step before wrote."""
    return tl.where(step == 0, in_ptr, tl.where((steps - step) % 2 == 0, out_ptr, spare_ptr))


@triton.jit
def _written(out_ptr, spare_ptr, step, steps):
    """The buffer `step` of `steps` writes: alternating so that the last step writes the output."""
    return tl.where((steps - 1 - step) % 2 == 0, out_ptr, spare_ptr)


@triton.jit
def _buffers(in_ptr, out_ptr, spare_ptr, step, steps):
    """(read, written) by `step` of `steps` (`_read`, `_written`)."""
    return _read(in_ptr, out_ptr, spare_ptr, step, steps), _written(out_ptr, spare_ptr, step, steps)


@triton.jit
def _finish_step(produced_ptr, consumed_ptr, step, steps, consumers):
    """Count this phase-2 program done; the last of its matrix's last step resets both counters
    (every program of the matrix has passed its waits, so nothing reads them again)."""
    if _signal(consumed_ptr) == steps * consumers - 1:
        tl.atomic_xchg(produced_ptr, 0)
        tl.atomic_xchg(consumed_ptr, 0)


def chained_programs(kernel_name: str, n: int, batch: int, block: int, split_programs: int, steps: int = 1) -> int:
    """Programs of one chained launch: per step and matrix, phase-1 and phase-2 programs of every tile."""
    tiles = triton.cdiv(n, block)
    per_tile = {"newton_schulz_chained": 1 + split_programs, "lyapunov_chained": 2 * split_programs}[kernel_name]
    return tiles * tiles * per_tile * batch * steps


def counter_count(batch: int) -> int:
    """int32 counters a chained launch over `batch` matrices uses (the chain's buffer)."""
    return 1 + 2 * batch


@triton.jit
def _newton_schulz_chained_kernel(
    y_ptr, z_ptr, m_ptr, y_out_ptr, y_saved_ptr, z_out_ptr, z_saved_ptr, y_spare_ptr, z_spare_ptr,
    steps_ptr, first_step, steps, norm_ptr, counters_ptr, n,
    UPDATE_Y: tl.constexpr, UPDATE_Z: tl.constexpr, UNSCALE: tl.constexpr,
    STORE_Y: tl.constexpr, SAVE_Y: tl.constexpr, STORE_Z: tl.constexpr, SAVE_Z: tl.constexpr,
    BLOCK: tl.constexpr, BLOCK_K: tl.constexpr, GROUP: tl.constexpr, PRECISION: tl.constexpr,
    SPLIT_PROGRAMS: tl.constexpr, TMA: tl.constexpr,
):
    """Coupled Newton–Schulz steps first_step .. first_step + steps - 1 (none the first of the
    iteration: `tiled._newton_schulz_step_kernel`), each with its product M = Z Y
    (`tiled._product_kernel`, full, unscaled), in one launch.

    y_ptr, z_ptr: Y and Z before the launch's first step (read only).
    m_ptr: M's buffer (a split buffer with tf32x3), written by every step.
    y_out_ptr, z_out_ptr: Y' and Z' of the last step (with UNSCALE, which needs steps = 1: the
        roots, output dtype); y_saved_ptr, z_saved_ptr: with UNSCALE, the saved roots.
    y_spare_ptr, z_spare_ptr: the other buffers of the alternation (unused when steps = 1).
    steps_ptr: the (a, b) of every step of the iteration, [K, 2]; first_step, steps: this launch's.
    norm_ptr, counters_ptr, n and the flags: as for `_newton_schulz_step_kernel` (FIRST false:
    the norm is read from norm_ptr); counters_ptr: the chain's counters (module docstring).
    Grid: `chained_programs`, one axis: per step and matrix tiles^2 programs form M's tiles,
    then tiles^2 x SPLIT_PROGRAMS programs the step's (the two programs of a tile adjacent).
    """
    step, matrix, local, producers, consumers, batch, produced_ptr, consumed_ptr = _place(
        counters_ptr, n, steps, 1, SPLIT_PROGRAMS, BLOCK)
    plane = batch.to(tl.int64) * n * n
    matrix = matrix.to(tl.int64)
    if UNSCALE:  # steps = 1: the roots (output dtype) are written, no iterate
        y_read, y_written, z_read, z_written = y_ptr, y_out_ptr, z_ptr, z_out_ptr
    else:
        y_read, y_written = _buffers(y_ptr, y_out_ptr, y_spare_ptr, step, steps)
        z_read, z_written = _buffers(z_ptr, z_out_ptr, z_spare_ptr, step, steps)
    if local < producers:  # a tile of M = Z Y, as `_product_kernel` forms it
        # After the first step, wait for the step before: Y and Z complete, M read by all of it.
        if step > 0:
            _wait_for(consumed_ptr, step * consumers)
        _, tile_row, tile_col = tile_position_of(local, n, BLOCK, GROUP)
        base = matrix * n * n
        rows = tile_indices(tile_row, BLOCK)
        cols = tile_indices(tile_col, BLOCK)
        acc = product_tile(tl.zeros((BLOCK, BLOCK), dtype=norm_ptr.dtype.element_ty), z_read + base, y_read + base,
                           rows, cols, n, plane, BLOCK_K, PRECISION, TMA)
        store_split(m_ptr + base, acc, rows, cols, n, plane, False, PRECISION == "tf32x3")
        _signal(produced_ptr)
    else:
        local -= producers
        _, tile_row, tile_col = tile_position_of(local // SPLIT_PROGRAMS, n, BLOCK, GROUP)
        # Every phase-2 program waits, those that form nothing too (the lower tiles,
        # `newton_schulz_tile`): counted done early, they would let the next step start early.
        _wait_for(produced_ptr, (step + 1) * producers)
        newton_schulz_tile(y_read, z_read, m_ptr, y_written, y_saved_ptr, z_written, z_saved_ptr, steps_ptr,
                           first_step + step, norm_ptr, norm_ptr, 1, n, matrix, tile_row, tile_col,
                           local % SPLIT_PROGRAMS, plane, False, UPDATE_Y, UPDATE_Z, UNSCALE, STORE_Y, SAVE_Y,
                           STORE_Z, SAVE_Z, 1, BLOCK, BLOCK_K, PRECISION, False, SPLIT_PROGRAMS, TMA)
        _finish_step(produced_ptr, consumed_ptr, step, steps, consumers)


@triton.jit
def _lyapunov_chained_kernel(
    b_ptr, c_ptr, b_sq_ptr, commutator_ptr, b_out_ptr, c_out_ptr, b_spare_ptr, c_spare_ptr,
    steps_ptr, first_step, steps, counters_ptr, n,
    UPDATE_B: tl.constexpr, LAST: tl.constexpr,
    BLOCK: tl.constexpr, BLOCK_K: tl.constexpr, GROUP: tl.constexpr, PRECISION: tl.constexpr,
    SPLIT_PROGRAMS: tl.constexpr, TMA: tl.constexpr,
):
    """Lyapunov sign steps first_step .. first_step + steps - 1: each B^2 and B C - C B
    (`tiled._lyapunov_products_kernel`), then C' and B' (`tiled._lyapunov_update_kernel`), in one launch.

    b_ptr, c_ptr: B and C before the launch's first step (read only).
    b_sq_ptr, commutator_ptr: scratch for B^2 and B C - C B (split buffers with tf32x3).
    b_out_ptr, c_out_ptr: B' and C' of the last step (with LAST, which needs steps = 1: X = C' / 2).
    b_spare_ptr, c_spare_ptr: the other buffers of the alternation (unused when steps = 1).
    steps_ptr: the (a, b) of every step, [K, 2]; first_step, steps: this launch's.
    counters_ptr: the chain's counters (module docstring); n and the flags as for the update.
    Grid: `chained_programs`, one axis: per step and matrix tiles^2 x SPLIT_PROGRAMS programs of
    the products, then as many of the update, the two programs of a tile adjacent in each.
    """
    step, matrix, local, producers, consumers, batch, produced_ptr, consumed_ptr = _place(
        counters_ptr, n, steps, SPLIT_PROGRAMS, SPLIT_PROGRAMS, BLOCK)
    plane = batch.to(tl.int64) * n * n
    matrix = matrix.to(tl.int64)
    if local < producers:
        # After the first step, wait for the step before: B and C complete, B^2, B C - C B read.
        if step > 0:
            _wait_for(consumed_ptr, step * consumers)
        _, tile_row, tile_col = tile_position_of(local // SPLIT_PROGRAMS, n, BLOCK, GROUP)
        lyapunov_products_tile(_read(b_ptr, b_out_ptr, b_spare_ptr, step, steps),
                               _read(c_ptr, c_out_ptr, c_spare_ptr, step, steps), b_sq_ptr, commutator_ptr, n,
                               matrix, tile_row, tile_col, local % SPLIT_PROGRAMS, plane, BLOCK, BLOCK_K, PRECISION,
                               SPLIT_PROGRAMS, TMA)
        _signal(produced_ptr)
    else:
        local -= producers
        _, tile_row, tile_col = tile_position_of(local // SPLIT_PROGRAMS, n, BLOCK, GROUP)
        _wait_for(produced_ptr, (step + 1) * producers)  # every one (`_newton_schulz_chained_kernel`)
        if LAST:  # steps = 1: the gradient is written, no iterate
            lyapunov_update_tile(b_ptr, c_ptr, b_sq_ptr, commutator_ptr, b_out_ptr, c_out_ptr, steps_ptr,
                                 first_step + step, n, matrix, tile_row, tile_col, local % SPLIT_PROGRAMS, plane,
                                 UPDATE_B, LAST, BLOCK, BLOCK_K, PRECISION, SPLIT_PROGRAMS, TMA)
        else:
            lyapunov_update_tile(_read(b_ptr, b_out_ptr, b_spare_ptr, step, steps),
                                 _read(c_ptr, c_out_ptr, c_spare_ptr, step, steps), b_sq_ptr, commutator_ptr,
                                 _written(b_out_ptr, b_spare_ptr, step, steps),
                                 _written(c_out_ptr, c_spare_ptr, step, steps), steps_ptr, first_step + step, n,
                                 matrix, tile_row, tile_col, local % SPLIT_PROGRAMS, plane, UPDATE_B, LAST, BLOCK,
                                 BLOCK_K, PRECISION, SPLIT_PROGRAMS, TMA)
        _finish_step(produced_ptr, consumed_ptr, step, steps, consumers)
