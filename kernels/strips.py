"""A Newton–Schulz or Lyapunov step in one launch: column strips (issue #13, item 4; launched by
`tiled.py`, chosen by `strips_pay` for small problems).

The tiled step (`tiled._newton_schulz_step_kernel`) needs all of M = Z Y before any tile of
Y M can start, hence two launches a step. Here a program owns one column strip j of a result
and forms it through a product of its own:

    Y'[:, j] = a Y[:, j] + b Y (Z Y[:, j])        Z'[:, j] = a Z[:, j] + b Z (Y Z[:, j])

Column j of Y T (T = a I + b Z Y) needs only column j of T, and Z Y[:, j] is a product of the
whole Z and the strip; Z' = Z (a I + b Y Z) equals the reference's T Z for any Y and Z
(Z (Y Z)^k = (Z Y)^k Z), so both are the stable coupled iteration in another product order.
The intermediate strip goes to a scratch buffer the program alone writes and then reads, so no
program waits for another and the step is one launch; the price is a fourth product (the
tiled step forms M once for both updates: 3). The iterates are not re-symmetrised (a strip
cannot see its mirror), as on the torch path, where only the result is symmetrised: the last
step's results go through `tiled.unscale_roots(..., symmetrize=True)`.

Grid: (strips x batch, roles). Program (i, r) forms strip i % strips of matrix i // strips;
role r + first_role: 0 forms Y', 1 forms Z'. The roles differ only in their pointers (chosen per
program, one compiled product loop; `step_tiles`, split roles).

The Lyapunov sign step likewise (`_lyapunov_strip_kernel`, one program a strip of both B' and C'),
its result's symmetric part taken by `_symmetric_part_kernel` after the last step.
"""

import triton
import triton.language as tl

from .tile_blocks import load_block, product_tile, store_block, store_split, tile_indices, tile_position


@triton.jit
def strip_plane(n, BLOCK: tl.constexpr):
    """`tile_blocks.operand_plane` for a strip grid (strips x batch programs on axis 0)."""
    batch = tl.num_programs(0) // tl.cdiv(n, BLOCK)
    return batch.to(tl.int64) * n * n


@triton.jit
def _newton_schulz_strip_kernel(
    y_ptr, z_ptr, p_ptr, q_ptr, y_out_ptr, z_out_ptr, steps_ptr, step, first_role, n,
    BLOCK: tl.constexpr, ROWS: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
):
    """One coupled Newton–Schulz step after the first, one column strip of Y' or Z' a program.

    y_ptr, z_ptr: Y and Z, of shape [batch, n, n], contiguous, compute dtype (with tf32x3:
        split buffers, their planes behind them).
    p_ptr, q_ptr: scratch of the same shape (split buffers with tf32x3): Z Y[:, j] and Y Z[:, j].
    y_out_ptr, z_out_ptr: Y' and Z', same shape (split buffers with tf32x3).
    steps_ptr: the (a, b) of every step, of shape [steps, 2], compute dtype; step: this one.
    first_role: the role of grid row 0 (0: Y'; 1: Z', when only Z' is wanted).
    n: matrix size. BLOCK: strip width. ROWS: rows of the strip a pass forms (all warps on one
        ROWS x BLOCK tile, rather than a narrow strip's few rows a warp). BLOCK_K: K step. PRECISION: tl.dot
        input precision ("tf32x3": three "tf32" products on the stored planes).
    """
    strips = tl.cdiv(n, BLOCK)
    matrix = (tl.program_id(0) // strips).to(tl.int64)
    cols = tile_indices(tl.program_id(0) % strips, BLOCK)
    forms_y = (tl.program_id(1) + first_role) == 0
    base = matrix * n * n
    # Y': left Z, then Y; Z': left Y, then Z. `updated` is the iterate whose strip is formed.
    left = tl.where(forms_y, z_ptr, y_ptr) + base
    updated = tl.where(forms_y, y_ptr, z_ptr) + base
    scratch = tl.where(forms_y, p_ptr, q_ptr) + base
    out = tl.where(forms_y, y_out_ptr, z_out_ptr) + base
    plane = strip_plane(n, BLOCK)
    zeros = tl.zeros((ROWS, BLOCK), dtype=y_ptr.dtype.element_ty)
    for row_start in range(0, n, ROWS):
        rows = row_start + tl.arange(0, ROWS)
        inner = product_tile(zeros, left, updated, rows, cols, n, plane, BLOCK_K, PRECISION)
        store_split(scratch, inner, rows, cols, n, plane, False, PRECISION == "tf32x3")
    # The strip is read back by other threads of this program: their stores must land first.
    tl.debug_barrier()
    a = tl.load(steps_ptr + 2 * step)
    b = tl.load(steps_ptr + 2 * step + 1)
    for row_start in range(0, n, ROWS):
        rows = row_start + tl.arange(0, ROWS)
        outer = product_tile(zeros, updated, scratch, rows, cols, n, plane, BLOCK_K, PRECISION)
        new = a * load_block(updated, rows, cols, n) + b * outer
        store_split(out, new, rows, cols, n, plane, False, PRECISION == "tf32x3")




@triton.jit
def _lyapunov_strip_kernel(
    b_ptr, c_ptr, q_ptr, d_ptr, b_out_ptr, c_out_ptr, steps_ptr, step, n,
    UPDATE_B: tl.constexpr, LAST: tl.constexpr,
    BLOCK: tl.constexpr, ROWS: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
):
    """One step of the Lyapunov sign iteration (`reference.lyapunov_sign`), one column strip j of
    B' and C' a program: with Q_j = B B[:, j] and D_j = B C[:, j] - C B[:, j] (its own scratch),

        B'[:, j] = a B[:, j] + b B Q_j        C'[:, j] = a C[:, j] + b (B D_j + C Q_j)

    which is B^2 C + C B^2 - B C B column by column (B (B C - C B) + C B^2): six products where
    the tiled step takes 3.5, in one launch rather than two. Not re-symmetrised, as `_newton_schulz_strip_kernel`;
    with LAST, X = C' / 2 is stored as it is and `symmetric_part` takes its symmetric part.
    b_ptr, c_ptr: B and C, of shape [batch, n, n], contiguous, compute dtype (split buffers with tf32x3).
    q_ptr, d_ptr: scratch of that shape (split buffers with tf32x3).
    b_out_ptr, c_out_ptr: B' and C' (split buffers with tf32x3; with LAST, c_out_ptr a plain one).
    steps_ptr, step, n, BLOCK, ROWS, BLOCK_K, PRECISION: as for `_newton_schulz_strip_kernel`.
    UPDATE_B: B' is wanted (not after the last step).
    """
    strips = tl.cdiv(n, BLOCK)
    matrix = (tl.program_id(0) // strips).to(tl.int64)
    cols = tile_indices(tl.program_id(0) % strips, BLOCK)
    base = matrix * n * n
    b_ptr += base
    c_ptr += base
    q_ptr += base
    d_ptr += base
    plane = strip_plane(n, BLOCK)
    zeros = tl.zeros((ROWS, BLOCK), dtype=b_ptr.dtype.element_ty)
    for row_start in range(0, n, ROWS):
        rows = row_start + tl.arange(0, ROWS)
        square = product_tile(zeros, b_ptr, b_ptr, rows, cols, n, plane, BLOCK_K, PRECISION)
        store_split(q_ptr, square, rows, cols, n, plane, False, PRECISION == "tf32x3")
        commutator = product_tile(zeros, b_ptr, c_ptr, rows, cols, n, plane, BLOCK_K, PRECISION)
        # - C B[:, j] as exact negations of the accumulator (`tiled._lyapunov_update_kernel`)
        commutator = -product_tile(-commutator, c_ptr, b_ptr, rows, cols, n, plane, BLOCK_K, PRECISION)
        store_split(d_ptr, commutator, rows, cols, n, plane, False, PRECISION == "tf32x3")
    tl.debug_barrier()  # the strips are read back by other threads of this program
    a = tl.load(steps_ptr + 2 * step)
    b = tl.load(steps_ptr + 2 * step + 1)
    for row_start in range(0, n, ROWS):
        rows = row_start + tl.arange(0, ROWS)
        if UPDATE_B:
            cube = product_tile(zeros, b_ptr, q_ptr, rows, cols, n, plane, BLOCK_K, PRECISION)
            store_split(b_out_ptr + base, a * load_block(b_ptr, rows, cols, n) + b * cube, rows, cols, n, plane,
                        False, PRECISION == "tf32x3")
        update = product_tile(zeros, b_ptr, d_ptr, rows, cols, n, plane, BLOCK_K, PRECISION)
        update = product_tile(update, c_ptr, q_ptr, rows, cols, n, plane, BLOCK_K, PRECISION)
        c_new = a * load_block(c_ptr, rows, cols, n) + b * update
        if LAST:  # the gradient: no product reads it
            store_block(c_out_ptr + base, 0.5 * c_new, rows, cols, n)
        else:
            store_split(c_out_ptr + base, c_new, rows, cols, n, plane, False, PRECISION == "tf32x3")


@triton.jit
def _symmetric_part_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    """out = (X + X^T) / 2 (`reference.symmetrize`), a tile a program (tiles^2 x batch): after the
    last Lyapunov strip step. x_ptr, out_ptr: [batch, n, n], contiguous, compute dtype."""
    matrix, tile_row, tile_col = tile_position(n, BLOCK, 1)
    base = matrix * n * n
    rows = tile_indices(tile_row, BLOCK)
    cols = tile_indices(tile_col, BLOCK)
    mirror = tl.load(x_ptr + base + cols[None, :] * n + rows[:, None],
                     mask=(rows[:, None] < n) & (cols[None, :] < n), other=0.0)
    store_block(out_ptr + base, 0.5 * (load_block(x_ptr + base, rows, cols, n) + mirror), rows, cols, n)


# Largest n where strip steps pay (modeled, tf32x3, inv_sqrtm, B = 1, H100: forward at n = 192
# 109 against 128 us, at n = 256 152 against 140 us; the Lyapunov steps at n = 96 save 16 us of
# 197, at n = 128 3 us (A100: 2.7 us more; kept for one launch a step), at n = 160 cost 63 us
# more: docs/large-and-tuning.md, "Strip steps").
STRIPS_MAX_N = 192
LYAPUNOV_STRIPS_MAX_N = 128


def strips_pay(n: int, batch: int, sms: int | None, backward: bool = False) -> bool:
    """Whether strip steps beat the tiled steps (two launches a step) for `batch` matrices of
    size n on a GPU with `sms` SMs; backward: the Lyapunov steps, else the Newton–Schulz steps.

    They do while a step is short next to a launch (n <= STRIPS_MAX_N, Lyapunov: <= 128, its
    strip step has 6 products against 3) and their programs fit in one wave, counted at 32-wide
    strips and two roles (Newton–Schulz) or 16-wide strips (Lyapunov). At B = 16, n = 128 on an
    A100 (108 SMs) neither does: modeled 158 against 135 us forward, 434 against 309 us for both.
    Off the GPU (sms None: the interpreter) the tiled steps run; tests ask for the strips themselves.
    """
    if sms is None:
        return False
    if backward:
        return n <= LYAPUNOV_STRIPS_MAX_N and batch * -(-n // 16) <= sms
    return n <= STRIPS_MAX_N and batch * -(-n // 32) * 2 <= sms
