"""A Newton–Schulz step in one launch: column strips (issue #13, item 4; launched by `tiled.py`).

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
program, one compiled product loop; `tiled._split_roles`). When it pays: `strips_pay`.
"""

import triton
import triton.language as tl

from .tile_blocks import load_block, product_tile, store_split, tile_indices


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



# Largest n where strip steps pay (modeled, tf32x3, inv_sqrtm forward, B = 1: H100 n = 192
# 109 against 135 us; n = 256 152 against 148 us: docs/large-and-tuning.md, "Strip steps").
STRIPS_MAX_N = 192
# Strip width the rule counts programs with (the middle of the space, `spaces._STRIPS`).
_COUNTED_WIDTH = 32


def strips_pay(n: int, batch: int, sms: int | None) -> bool:
    """Whether strip steps (one launch, four products a step) beat the tiled steps (two launches,
    three products) for `batch` matrices of size n on a GPU with `sms` SMs.

    They do while a step is short next to a launch (n <= STRIPS_MAX_N) and their programs, two
    a strip, fit in one wave (at B = 16, n = 128 on A100, 108 SMs, they do not: 158 against
    150 us modeled). Off the GPU (sms None: the interpreter) the tiled steps run; tests ask for
    the strips themselves.
    """
    if sms is None or n > STRIPS_MAX_N:
        return False
    return batch * -(-n // _COUNTED_WIDTH) * 2 <= sms
