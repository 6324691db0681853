"""The work of one output tile of a Newton–Schulz or Lyapunov step, as `@triton.jit` functions
that take the tile's place as arguments: `tiled.py`'s step kernels call them with their program
ids, `chained.py`'s with the place their ticket gives (the same code, so the same sums).

Split roles (SPLIT_PROGRAMS = 2): a two-result step may form its results in two programs a tile,
`role` 0 the first result and 1 the second, each with one accumulator and its operand tiles rather
than two, which is what lets 64-wide tiles at 4 warps (one warpgroup: full-width wgmma on sm_90)
fit without spilling. The roles differ only in their operand pointers, chosen per program, so
one product loop is compiled, not two behind a branch (that spilled 300-350 bytes).

TMA (the chained kernels' sm_90 entries, `spaces.TMA_FIRST`): the product loops load their operand
tiles through tensor descriptors made from the pointers the step chose (`tile_blocks.product_tile`).
"""

import triton
import triton.language as tl

from .tile_blocks import (load_block, mirror_product_tile, norm_scalars, product_tile, step_norm, store_output,
                          store_root, store_split, store_symmetric, symmetric_part_tile, tile_indices)


@triton.jit
def newton_schulz_tile(
    y_ptr, z_ptr, m_ptr,
    y_out_ptr, y_saved_ptr, z_out_ptr, z_saved_ptr,
    steps_ptr, step, norm_ptr, partials_ptr, num_partials, n, matrix, tile_row, tile_col, role, plane,
    FIRST: tl.constexpr, UPDATE_Y: tl.constexpr, UPDATE_Z: tl.constexpr, UNSCALE: tl.constexpr,
    STORE_Y: tl.constexpr, SAVE_Y: tl.constexpr, STORE_Z: tl.constexpr, SAVE_Z: tl.constexpr,
    PARTIALS: tl.constexpr, BLOCK: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
    TRACE_NORM: tl.constexpr, SPLIT_PROGRAMS: tl.constexpr, TMA: tl.constexpr = False,
):
    """Tile (tile_row, tile_col) of matrix `matrix` of one Newton–Schulz update, as program `role`
    (0 or 1) of the tile: the work of `tiled._newton_schulz_step_kernel`'s programs and of `chained.py`'s.
    plane: `tile_blocks.operand_plane` of the launch."""
    if SPLIT_PROGRAMS == 2 and UPDATE_Y and UPDATE_Z and not FIRST:
        if tile_row <= tile_col:
            # Y' = a Y + b sym(Y M) or Z' = a Z + b sym(M Z): one form, the operands chosen per program.
            first_role = role == 0
            base = matrix * n * n
            left = tl.where(first_role, y_ptr, m_ptr) + base
            right = tl.where(first_role, m_ptr, z_ptr) + base
            previous = tl.where(first_role, y_ptr, z_ptr) + base
            rows = tile_indices(tile_row, BLOCK)
            cols = tile_indices(tile_col, BLOCK)
            if UNSCALE:  # the norm's scalars before the loop (`norm_scalars`)
                norm = tl.load(norm_ptr + matrix)
                _, root_norm, inverse_root = norm_scalars(norm)
                # `_unscale` of either root: sqrt(||A||) Y', or Z' / sqrt(||A||) (diag(+inf) for A = 0)
                scale = tl.where(first_role, root_norm, inverse_root)
                scaled = first_role | (norm != 0)
            acc = symmetric_part_tile(tl.zeros((BLOCK, BLOCK), dtype=norm_ptr.dtype.element_ty), left, right, rows,
                                      cols, tile_row == tile_col, n, plane, BLOCK_K, PRECISION, TMA)
            new = tl.load(steps_ptr + 2 * step) * load_block(previous, rows, cols, n) + \
                tl.load(steps_ptr + 2 * step + 1) * acc
            if UNSCALE:  # the last step: the roots, each where its flags want it
                root = tl.where(scaled, new * scale, tl.where(rows[:, None] == cols[None, :], float("inf"), 0.0))
                # One store of each kind, its pointer and flag chosen per program (four spilled).
                if tl.where(first_role, STORE_Y, STORE_Z):
                    store_output(tl.where(first_role, y_out_ptr, z_out_ptr) + base, root, rows, cols, n, True)
                if tl.where(first_role, SAVE_Y, SAVE_Z):
                    store_output(tl.where(first_role, y_saved_ptr, z_saved_ptr) + base, root, rows, cols, n, True)
            else:
                store_split(tl.where(first_role, y_out_ptr, z_out_ptr) + base, new, rows, cols, n, plane, True,
                            PRECISION == "tf32x3")
    elif (tile_row <= tile_col) & (role == 0):
        compute_dtype = norm_ptr.dtype.element_ty
        base = matrix * n * n
        y_ptr += base
        z_ptr += base
        m_ptr += base
        rows = tile_indices(tile_row, BLOCK)
        cols = tile_indices(tile_col, BLOCK)
        diagonal = rows[:, None] == cols[None, :]
        a = tl.load(steps_ptr + 2 * step)
        b = tl.load(steps_ptr + 2 * step + 1)
        if TRACE_NORM:
            norm = tl.load(norm_ptr + matrix)
        else:
            norm = step_norm(partials_ptr, norm_ptr, matrix, num_partials, tile_row, tile_col, FIRST, PARTIALS)
        inverse_norm, root_norm, inverse_root = norm_scalars(norm)
        zeros = tl.zeros((BLOCK, BLOCK), dtype=compute_dtype)
        # Both products before any epilogue work: address and mask tiles of the epilogue kept
        # live across a product loop made every configuration spill.
        acc_y = zeros
        acc_z = zeros
        diagonal_tile = tile_row == tile_col
        if UPDATE_Y:
            if FIRST:  # W W: W is exactly symmetric, so a mirror tile sums the same products
                acc_y = product_tile(zeros, y_ptr, m_ptr, rows, cols, n, plane, BLOCK_K, PRECISION, TMA)
            else:  # Y M = Y Z Y, averaged with its mirror (`symmetric_part_tile`: one triangle is not enough)
                acc_y = symmetric_part_tile(zeros, y_ptr, m_ptr, rows, cols, diagonal_tile, n, plane, BLOCK_K,
                                            PRECISION, TMA)
        if UPDATE_Z and not FIRST:
            # T Z = a Z + b M Z, in this order: Z M = Z Z Y equals it only in exact arithmetic,
            # and that form loses the coupled iteration's stability (7.7e-3 after 12 steps).
            acc_z = symmetric_part_tile(zeros, m_ptr, z_ptr, rows, cols, diagonal_tile, n, plane, BLOCK_K, PRECISION,
                                        TMA)

        # Y' is stored before Z' is formed, so that few tiles are live at once.
        if UPDATE_Y:
            if FIRST:
                a_hat = load_block(y_ptr, rows, cols, n) * inverse_norm
                y_new = a * a_hat + b * ((acc_y * inverse_norm) * inverse_norm)
            else:
                y_new = a * load_block(y_ptr, rows, cols, n) + b * acc_y
            if UNSCALE:
                store_root(y_new, norm, root_norm, inverse_root, diagonal, y_out_ptr + base, y_saved_ptr + base,
                            rows, cols, n, False, STORE_Y, SAVE_Y, True)
            else:
                store_split(y_out_ptr + base, y_new, rows, cols, n, plane, True, PRECISION == "tf32x3")
        if UPDATE_Z:
            if FIRST:  # Z' = T = a I + b A_hat: no product
                z_new = tl.where(diagonal, a, 0.0) + b * (load_block(y_ptr, rows, cols, n) * inverse_norm)
            else:
                z_new = a * load_block(z_ptr, rows, cols, n) + b * acc_z
            if UNSCALE:
                store_root(z_new, norm, root_norm, inverse_root, diagonal, z_out_ptr + base, z_saved_ptr + base,
                            rows, cols, n, True, STORE_Z, SAVE_Z, True)
            else:
                store_split(z_out_ptr + base, z_new, rows, cols, n, plane, True, PRECISION == "tf32x3")


@triton.jit
def lyapunov_products_tile(
    b_ptr, c_ptr, b_sq_ptr, commutator_ptr, n, matrix, tile_row, tile_col, role, plane,
    BLOCK: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr, SPLIT_PROGRAMS: tl.constexpr,
    TMA: tl.constexpr = False,
):
    """Tile (tile_row, tile_col) of matrix `matrix` of B^2 and B C - C B, as program `role` of the
    tile: the work of `tiled._lyapunov_products_kernel`'s programs and of `chained.py`'s. plane: `operand_plane`."""
    compute_dtype = b_ptr.dtype.element_ty
    if tile_row <= tile_col:
        base = matrix * n * n
        rows = tile_indices(tile_row, BLOCK)
        cols = tile_indices(tile_col, BLOCK)
        zeros = tl.zeros((BLOCK, BLOCK), dtype=compute_dtype)
        forms_commutator = role == 0 if SPLIT_PROGRAMS == 2 else True
        if SPLIT_PROGRAMS == 2:
            # B C (then its mirror) or B B, the right operand chosen per program.
            acc = product_tile(zeros, b_ptr + base, tl.where(forms_commutator, c_ptr, b_ptr) + base, rows, cols, n,
                               plane, BLOCK_K, PRECISION, TMA)
        else:
            acc = product_tile(zeros, b_ptr + base, c_ptr + base, rows, cols, n, plane, BLOCK_K, PRECISION, TMA)
        if forms_commutator:
            if tile_row == tile_col:  # its own mirror: B C - (B C)^T, exactly antisymmetric
                acc = acc - tl.trans(acc)
            else:  # - (-(B C) + C B), the subtraction as exact negations of the accumulator
                acc = -mirror_product_tile(-acc, b_ptr + base, c_ptr + base, rows, cols, n, plane, BLOCK_K,
                                           PRECISION, TMA)
            store_split(commutator_ptr + base, acc, rows, cols, n, plane, False, PRECISION == "tf32x3", True)
        if SPLIT_PROGRAMS == 2:
            if not forms_commutator:
                store_split(b_sq_ptr + base, acc, rows, cols, n, plane, True, PRECISION == "tf32x3")
        else:
            b_sq = product_tile(zeros, b_ptr + base, b_ptr + base, rows, cols, n, plane, BLOCK_K, PRECISION, TMA)
            store_split(b_sq_ptr + base, b_sq, rows, cols, n, plane, True, PRECISION == "tf32x3")


@triton.jit
def lyapunov_update_tile(
    b_ptr, c_ptr, b_sq_ptr, commutator_ptr, b_out_ptr, c_out_ptr, steps_ptr, step, n, matrix, tile_row, tile_col,
    role, plane, UPDATE_B: tl.constexpr, LAST: tl.constexpr, BLOCK: tl.constexpr, BLOCK_K: tl.constexpr,
    PRECISION: tl.constexpr, SPLIT_PROGRAMS: tl.constexpr, TMA: tl.constexpr = False,
):
    """Tile (tile_row, tile_col) of matrix `matrix` of C' (and B'), as program `role` of the tile:
    the work of `tiled._lyapunov_update_kernel`'s programs and of `chained.py`'s. plane: `operand_plane`."""
    compute_dtype = b_ptr.dtype.element_ty
    base = matrix * n * n
    if SPLIT_PROGRAMS == 2 and UPDATE_B and not LAST:
        if tile_row <= tile_col:
            forms_c = role == 0
            rows = tile_indices(tile_row, BLOCK)
            cols = tile_indices(tile_col, BLOCK)
            # B D or B B^2: one loop, the right operand chosen per program; C' adds C B^2.
            acc = product_tile(tl.zeros((BLOCK, BLOCK), dtype=compute_dtype), b_ptr + base,
                               tl.where(forms_c, commutator_ptr, b_sq_ptr) + base, rows, cols, n, plane, BLOCK_K,
                               PRECISION, TMA)
            if forms_c:
                acc = product_tile(acc, c_ptr + base, b_sq_ptr + base, rows, cols, n, plane, BLOCK_K, PRECISION, TMA)
            previous = tl.where(forms_c, c_ptr, b_ptr) + base
            new = tl.load(steps_ptr + 2 * step) * load_block(previous, rows, cols, n) + \
                tl.load(steps_ptr + 2 * step + 1) * acc
            store_split(tl.where(forms_c, c_out_ptr, b_out_ptr) + base, new, rows, cols, n, plane, True,
                        PRECISION == "tf32x3")
    elif (tile_row <= tile_col) & (role == 0):
        b_ptr += base
        c_ptr += base
        b_sq_ptr += base
        commutator_ptr += base
        rows = tile_indices(tile_row, BLOCK)
        cols = tile_indices(tile_col, BLOCK)
        a = tl.load(steps_ptr + 2 * step)
        b = tl.load(steps_ptr + 2 * step + 1)
        zeros = tl.zeros((BLOCK, BLOCK), dtype=compute_dtype)
        # All products before any epilogue work (see `newton_schulz_tile`).
        acc_c = product_tile(zeros, b_ptr, commutator_ptr, rows, cols, n, plane, BLOCK_K, PRECISION, TMA)
        acc_c = product_tile(acc_c, c_ptr, b_sq_ptr, rows, cols, n, plane, BLOCK_K, PRECISION, TMA)
        acc_b = zeros
        if UPDATE_B:
            acc_b = product_tile(zeros, b_ptr, b_sq_ptr, rows, cols, n, plane, BLOCK_K, PRECISION, TMA)
        c_new = a * load_block(c_ptr, rows, cols, n) + b * acc_c
        if LAST:  # the gradient: no product reads it
            store_symmetric(c_out_ptr + base, 0.5 * c_new, rows, cols, n)
        else:
            store_split(c_out_ptr + base, c_new, rows, cols, n, plane, True, PRECISION == "tf32x3")
        if UPDATE_B:
            store_split(b_out_ptr + base, a * load_block(b_ptr, rows, cols, n) + b * acc_b, rows, cols, n, plane,
                        True, PRECISION == "tf32x3")
