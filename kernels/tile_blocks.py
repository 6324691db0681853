"""Shared `@triton.jit` pieces of the tiled kernels (`kernels/tiled.py`): tile positions and
pointers, the product loop, block loads and stores (the mirrored store of symmetric results),
the per-matrix norm scalars and the unscale epilogue."""

import triton
import triton.language as tl

from .rounding import reciprocal_rn, sqrt_rn
from .tf32_split import split, split_dot_into


@triton.jit
def tile_position(n, BLOCK: tl.constexpr, GROUP: tl.constexpr):
    """(matrix index, tile row, tile column) of this program; the grid is tiles^2 x batch, flattened."""
    return tile_position_of(tl.program_id(0), n, BLOCK, GROUP)


@triton.jit
def tile_position_of(pid, n, BLOCK: tl.constexpr, GROUP: tl.constexpr):
    """(matrix index, tile row, tile column) of tile program `pid` of a tiles^2 x batch grid, flattened.

    Within a matrix, tiles are visited GROUP tile rows at a time, column by column, so that
    programs running together read the same operand tiles from L2.
    """
    tiles = tl.cdiv(n, BLOCK)
    matrix = (pid // (tiles * tiles)).to(tl.int64)
    pid = pid % (tiles * tiles)
    per_group = GROUP * tiles
    group_first = (pid // per_group) * GROUP
    group_rows = tl.minimum(tiles - group_first, GROUP)
    tile_row = group_first + (pid % per_group) % group_rows
    tile_col = (pid % per_group) // group_rows
    return matrix, tile_row, tile_col


@triton.jit
def tile_indices(tile, BLOCK: tl.constexpr):
    # int32 within a matrix (n^2 < 2^31 up to n = 46340); the batch offset is added to the pointers.
    return tile * BLOCK + tl.arange(0, BLOCK)


@triton.jit
def _left_pointers(ptr, rows, n, BLOCK_K: tl.constexpr):
    """Pointers to X[rows, 0:BLOCK_K]. Rows past n are wrapped back in: loaded, never stored."""
    return ptr + (rows % n)[:, None] * n + tl.arange(0, BLOCK_K)[None, :]


@triton.jit
def _right_pointers(ptr, cols, n, BLOCK_K: tl.constexpr):
    """Pointers to Y[0:BLOCK_K, cols] (columns past n wrapped as in `_left_pointers`)."""
    return ptr + tl.arange(0, BLOCK_K)[:, None] * n + (cols % n)[None, :]


@triton.jit
def operand_plane(n, BLOCK: tl.constexpr):
    """Elements from an operand's values to its TF32 high plane (and from high to low) in a
    split buffer (`tiled_path`: shape (3, batch, n, n), values first): batch x n^2, the batch
    read off the grid (tiles^2 x batch programs), so no launch needs another argument."""
    tiles = tl.cdiv(n, BLOCK)
    batch = tl.num_programs(0) // (tiles * tiles)
    return batch.to(tl.int64) * n * n


@triton.jit
def _presplit_dot(acc, x_ptr, y_ptr, x_offsets, y_offsets, in_k, plane):
    """acc + X Y for one K step of tf32x3 from the high and low planes (split once, when the
    operands were stored): three "tf32" products accumulated in place (`tf32_split`). Scalar
    plane pointers plus one offset tile per operand: four pointer tiles spilled on sm_80."""
    x_high = tl.load(x_ptr + plane + x_offsets, mask=in_k[None, :], other=0.0)
    x_low = tl.load(x_ptr + 2 * plane + x_offsets, mask=in_k[None, :], other=0.0)
    y_high = tl.load(y_ptr + plane + y_offsets, mask=in_k[:, None], other=0.0)
    y_low = tl.load(y_ptr + 2 * plane + y_offsets, mask=in_k[:, None], other=0.0)
    return split_dot_into(x_high, x_low, y_high, y_low, acc, "tf32x3")


@triton.jit
def _descriptor(base, n, BLOCK: tl.constexpr, BLOCK_K: tl.constexpr, K_FIRST: tl.constexpr):
    """A TMA descriptor of the n x n row-major matrix at base, loading BLOCK_K x BLOCK blocks
    (K_FIRST: a right operand's, Y[k, cols]) or BLOCK x BLOCK_K ones (X[rows, k]), zero outside
    the matrix (so no masks, no wrapped rows). Made in the kernel, as the chained kernels pick their
    matrices per step by pointer; TMA wants a 16-byte aligned base and rows (`spaces.TMA_FIRST`)."""
    if K_FIRST:
        descriptor = tl.make_tensor_descriptor(base, shape=[n, n], strides=[n, 1], block_shape=[BLOCK_K, BLOCK])
    else:
        descriptor = tl.make_tensor_descriptor(base, shape=[n, n], strides=[n, 1], block_shape=[BLOCK, BLOCK_K])
    return descriptor


@triton.jit
def _descriptor_tile(descriptor, first, k_start, K_FIRST: tl.constexpr, TRANSPOSE: tl.constexpr):
    """A K step's block of a `_descriptor`: at [k_start, first] (K_FIRST) or [first, k_start],
    transposed with TRANSPOSE (in shared memory: the MMA reads it as the other major order)."""
    if K_FIRST:
        tile = descriptor.load([k_start, first])
    else:
        tile = descriptor.load([first, k_start])
    if TRANSPOSE:
        tile = tl.trans(tile)
    return tile


@triton.jit
def _product_tile_tma(acc, x_ptr, y_ptr, row_start, col_start, n, plane, BLOCK_K: tl.constexpr,
                      PRECISION: tl.constexpr, MIRROR: tl.constexpr):
    """`product_tile` (MIRROR: `mirror_product_tile`) with its operand tiles brought to shared
    memory by the TMA unit (sm_90). The mirror's left operand Y^T[rows, k] is the block Y[k, rows]
    transposed, its right X^T[k, cols] the block X[cols, k] transposed."""
    BLOCK: tl.constexpr = acc.shape[0]
    if MIRROR:
        left_ptr, right_ptr = y_ptr, x_ptr
    else:
        left_ptr, right_ptr = x_ptr, y_ptr
    LEFT_K_FIRST: tl.constexpr = MIRROR
    RIGHT_K_FIRST: tl.constexpr = not MIRROR
    if PRECISION == "tf32x3":  # the high and low planes (`store_split`)
        left_high = _descriptor(left_ptr + plane, n, BLOCK, BLOCK_K, LEFT_K_FIRST)
        left_low = _descriptor(left_ptr + 2 * plane, n, BLOCK, BLOCK_K, LEFT_K_FIRST)
        right_high = _descriptor(right_ptr + plane, n, BLOCK, BLOCK_K, RIGHT_K_FIRST)
        right_low = _descriptor(right_ptr + 2 * plane, n, BLOCK, BLOCK_K, RIGHT_K_FIRST)
        for k_start in range(0, n, BLOCK_K):
            acc = split_dot_into(_descriptor_tile(left_high, row_start, k_start, LEFT_K_FIRST, MIRROR),
                                 _descriptor_tile(left_low, row_start, k_start, LEFT_K_FIRST, MIRROR),
                                 _descriptor_tile(right_high, col_start, k_start, RIGHT_K_FIRST, MIRROR),
                                 _descriptor_tile(right_low, col_start, k_start, RIGHT_K_FIRST, MIRROR), acc, "tf32x3")
    else:
        left = _descriptor(left_ptr, n, BLOCK, BLOCK_K, LEFT_K_FIRST)
        right = _descriptor(right_ptr, n, BLOCK, BLOCK_K, RIGHT_K_FIRST)
        for k_start in range(0, n, BLOCK_K):
            acc = tl.dot(_descriptor_tile(left, row_start, k_start, LEFT_K_FIRST, MIRROR),
                         _descriptor_tile(right, col_start, k_start, RIGHT_K_FIRST, MIRROR), acc,
                         input_precision=PRECISION, out_dtype=acc.dtype)
    return acc


@triton.jit
def product_tile(acc, x_ptr, y_ptr, rows, cols, n, plane, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                 TMA: tl.constexpr = False):
    """acc + X[rows, :] @ Y[:, cols] for n x n row-major X and Y (pointers at the matrix).

    tf32x3 reads X and Y split (`store_split`: high and low planes `plane` and 2 `plane`
    elements on) rather than splitting every loaded tile again in each product; the other
    precisions read the values. Kernels with two products run two of these loops one after
    the other rather than one loop with two accumulators: the shared operand is read twice
    (from L2), but each loop keeps fewer operand registers live.
    """
    if TMA:  # the tile's first row and column (rows, cols: tile_indices)
        acc = _product_tile_tma(acc, x_ptr, y_ptr, tl.min(rows, axis=0), tl.min(cols, axis=0), n, plane, BLOCK_K,
                                PRECISION, False)
    else:
        acc = _product_tile_pointers(acc, x_ptr, y_ptr, rows, cols, n, plane, BLOCK_K, PRECISION)
    return acc


@triton.jit
def _product_tile_pointers(acc, x_ptr, y_ptr, rows, cols, n, plane, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr):
    """`product_tile` with pointer loads (any n, any arch)."""
    ks = tl.arange(0, BLOCK_K)
    if PRECISION == "tf32x3":
        # Rows past n are wrapped back in, as in `_left_pointers`.
        x_offsets = (rows % n)[:, None] * n + ks[None, :]
        y_offsets = ks[:, None] * n + (cols % n)[None, :]
        for k_start in range(0, n, BLOCK_K):
            acc = _presplit_dot(acc, x_ptr + k_start, y_ptr + k_start * n, x_offsets, y_offsets, ks < n - k_start,
                                plane)
    else:
        x_tiles = _left_pointers(x_ptr, rows, n, BLOCK_K)
        y_tiles = _right_pointers(y_ptr, cols, n, BLOCK_K)
        for k_start in range(0, n, BLOCK_K):
            in_k = ks < n - k_start
            acc = tl.dot(tl.load(x_tiles, mask=in_k[None, :], other=0.0),
                         tl.load(y_tiles, mask=in_k[:, None], other=0.0),
                         acc, input_precision=PRECISION, out_dtype=acc.dtype)  # Triton 3.6 assumes float32 without it
            x_tiles += BLOCK_K
            y_tiles += BLOCK_K * n
    return acc


@triton.jit
def mirror_product_tile(acc, x_ptr, y_ptr, rows, cols, n, plane, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
                        TMA: tl.constexpr = False):
    """acc + (X @ Y)[cols, rows]^T = acc + (Y^T X^T)[rows, cols]: the mirror tile, transposed,
    formed in this tile's layout from transposed loads (Y^T[r, k] = Y[k, r], X^T[k, c] = X[c, k]),
    so it accumulates into the same registers as `product_tile`."""
    if TMA:
        acc = _product_tile_tma(acc, x_ptr, y_ptr, tl.min(rows, axis=0), tl.min(cols, axis=0), n, plane, BLOCK_K,
                                PRECISION, True)
    else:
        acc = _mirror_product_tile_pointers(acc, x_ptr, y_ptr, rows, cols, n, plane, BLOCK_K, PRECISION)
    return acc


@triton.jit
def _mirror_product_tile_pointers(acc, x_ptr, y_ptr, rows, cols, n, plane, BLOCK_K: tl.constexpr,
                                  PRECISION: tl.constexpr):
    """`mirror_product_tile` with pointer loads."""
    ks = tl.arange(0, BLOCK_K)
    left_offsets = ks[None, :] * n + (rows % n)[:, None]  # Y^T[rows, k]; wrapped as in `_left_pointers`
    right_offsets = (cols % n)[None, :] * n + ks[:, None]  # X^T[k, cols]
    for k_start in range(0, n, BLOCK_K):
        in_k = ks < n - k_start
        if PRECISION == "tf32x3":
            acc = _presplit_dot(acc, y_ptr + k_start * n, x_ptr + k_start, left_offsets, right_offsets, in_k, plane)
        else:
            acc = tl.dot(tl.load(y_ptr + k_start * n + left_offsets, mask=in_k[None, :], other=0.0),
                         tl.load(x_ptr + k_start + right_offsets, mask=in_k[:, None], other=0.0),
                         acc, input_precision=PRECISION, out_dtype=acc.dtype)
    return acc


@triton.jit
def symmetric_part_tile(zeros, x_ptr, y_ptr, rows, cols, diagonal_tile, n, plane, BLOCK_K: tl.constexpr,
                        PRECISION: tl.constexpr, TMA: tl.constexpr = False):
    """sym(X @ Y)[rows, cols] = (X Y[rows, cols] + X Y[cols, rows]^T) / 2, for a tile on or above the diagonal.

    For the coupled Newton–Schulz products (Y Z Y, Z Y Z): symmetric in exact arithmetic,
    but one computed triangle mirrored keeps the skew part of the rounding, which breaks the
    coupling of Y and Z (n = 65, kappa 1e6: 2.2e-4 against 1.5e-5 of the reference);
    the average drops it, as `reference.symmetrize` would. Both tiles cost a full product.
    The mirror tile is summed into the same accumulator (`mirror_product_tile`): one
    accumulator live rather than two (at 4 warps, two spilled).
    """
    total = product_tile(zeros, x_ptr, y_ptr, rows, cols, n, plane, BLOCK_K, PRECISION, TMA)
    if diagonal_tile:  # its own mirror
        total = total + tl.trans(total)
    else:
        total = mirror_product_tile(total, x_ptr, y_ptr, rows, cols, n, plane, BLOCK_K, PRECISION, TMA)
    return 0.5 * total


@triton.jit
def load_block(ptr, rows, cols, n):
    """Block [rows, cols] of an n x n row-major matrix at ptr; zero outside it."""
    mask = (rows[:, None] < n) & (cols[None, :] < n)
    return tl.load(ptr + rows[:, None] * n + cols[None, :], mask=mask, other=0.0)


@triton.jit
def store_block(ptr, value, rows, cols, n):
    mask = (rows[:, None] < n) & (cols[None, :] < n)
    tl.store(ptr + rows[:, None] * n + cols[None, :], value.to(ptr.dtype.element_ty), mask=mask)


@triton.jit
def store_symmetric(ptr, value, rows, cols, n):
    """Store a tile on or above the diagonal and its mirror image below it.

    On a diagonal tile only the upper triangle is kept (its lower triangle is the mirror), so
    the stored matrix is exactly symmetric. The mirror is transposed in registers, which keeps
    its store coalesced.
    """
    value = value.to(ptr.dtype.element_ty)
    inside = (rows[:, None] < n) & (cols[None, :] < n)
    tl.store(ptr + rows[:, None] * n + cols[None, :], value, mask=inside & (rows[:, None] <= cols[None, :]))
    mirror_inside = (cols[:, None] < n) & (rows[None, :] < n) & (rows[None, :] < cols[:, None])
    tl.store(ptr + cols[:, None] * n + rows[None, :], tl.trans(value), mask=mirror_inside)


@triton.jit
def store_antisymmetric(ptr, value, rows, cols, n):
    """`store_symmetric` for an antisymmetric result: the mirror image stored negated. A diagonal
    tile must be antisymmetric itself (X - X^T: its diagonal exactly 0)."""
    value = value.to(ptr.dtype.element_ty)
    inside = (rows[:, None] < n) & (cols[None, :] < n)
    tl.store(ptr + rows[:, None] * n + cols[None, :], value, mask=inside & (rows[:, None] <= cols[None, :]))
    mirror_inside = (cols[:, None] < n) & (rows[None, :] < n) & (rows[None, :] < cols[:, None])
    tl.store(ptr + cols[:, None] * n + rows[None, :], -tl.trans(value), mask=mirror_inside)


@triton.jit
def store_output(ptr, value, rows, cols, n, SYMMETRIC: tl.constexpr, ANTISYMMETRIC: tl.constexpr = False):
    if ANTISYMMETRIC:
        store_antisymmetric(ptr, value, rows, cols, n)
    elif SYMMETRIC:
        store_symmetric(ptr, value, rows, cols, n)
    else:
        store_block(ptr, value, rows, cols, n)


@triton.jit
def store_split(ptr, value, rows, cols, n, plane, SYMMETRIC: tl.constexpr, SPLIT: tl.constexpr,
                ANTISYMMETRIC: tl.constexpr = False):
    """Store an iterate that later products read: its values and, with SPLIT (tf32x3), its TF32
    high and low planes (`tf32_split.split`, as `emulation.split_tf32` rounds), split once
    here rather than in every product that loads it. ANTISYMMETRIC: mirrored negated (the
    split of -x is minus the split of x: both roundings act on the magnitude bits)."""
    value = value.to(ptr.dtype.element_ty)
    store_output(ptr, value, rows, cols, n, SYMMETRIC, ANTISYMMETRIC)
    if SPLIT:
        high, low = split(value)
        store_output(ptr + plane, high, rows, cols, n, SYMMETRIC, ANTISYMMETRIC)
        store_output(ptr + 2 * plane, low, rows, cols, n, SYMMETRIC, ANTISYMMETRIC)


@triton.jit
def _norm_from_partials(partials_ptr, matrix, num_partials, PARTIALS: tl.constexpr):
    """||W||_F from the per-band sums of squares that `_prepare_forward_kernel` wrote."""
    lanes = tl.arange(0, PARTIALS)
    squares = tl.load(partials_ptr + matrix * num_partials + lanes, mask=lanes < num_partials, other=0.0)
    return sqrt_rn(tl.sum(squares, axis=0))


@triton.jit
def step_norm(partials_ptr, norm_ptr, matrix, num_partials, tile_row, tile_col, FIRST: tl.constexpr,
               PARTIALS: tl.constexpr):
    """||W||_F of this program's matrix: the first product launch of a forward reduces it from the
    partial sums (and its first tile stores it for the later launches), which load it."""
    if FIRST:
        norm = _norm_from_partials(partials_ptr, matrix, num_partials, PARTIALS)
        if (tile_row == 0) & (tile_col == 0):
            tl.store(norm_ptr + matrix, norm)
    else:
        norm = tl.load(norm_ptr + matrix)
    return norm


@triton.jit
def _safe_norm(norm):
    # `reference.frobenius_normalize`: a zero matrix stays zero (no 0/0); NaN stays NaN.
    return tl.where(norm == 0, 1.0, norm)


@triton.jit
def norm_scalars(norm):
    """(1 / ||A||, sqrt(||A||), 1 / sqrt(||A||)) of a per-matrix norm, 1 standing in for 0 where
    the reference avoids 0/0 (1 / sqrt(||A||) is then also the inverse of the Lyapunov scale,
    sqrt(||A||_F) or 1 for A = 0, of `torch_path.roots_backward`).

    Kernels take them before their product loop: the correctly rounded division and square root
    have a slow path whose register saves spilled (4-12 bytes) when it ran in the epilogue.
    """
    root_norm = sqrt_rn(norm)
    return reciprocal_rn(_safe_norm(norm)), root_norm, reciprocal_rn(tl.where(norm == 0, 1.0, root_norm))


@triton.jit
def _unscale(root_hat, norm, root_norm, inverse_root, diagonal, INVERSE: tl.constexpr):
    """`reference.unscale`: the root of A from that of A / ||A||_F; the zero matrix gives 0 or diag(+inf)."""
    if INVERSE:
        return tl.where(norm == 0, tl.where(diagonal, float("inf"), 0.0), root_hat * inverse_root)
    else:
        return root_hat * root_norm


@triton.jit
def store_root(root_hat, norm, root_norm, inverse_root, diagonal, out_ptr, saved_ptr, rows, cols, n,
                INVERSE: tl.constexpr, STORE: tl.constexpr, SAVE: tl.constexpr, SYMMETRIC: tl.constexpr):
    """Unscale a root and store it in the output (A's dtype) and/or the saved copy (compute dtype)."""
    if STORE or SAVE:
        root = _unscale(root_hat, norm, root_norm, inverse_root, diagonal, INVERSE)
        if STORE:
            store_output(out_ptr, root, rows, cols, n, SYMMETRIC)
        if SAVE:
            store_output(saved_ptr, root, rows, cols, n, SYMMETRIC)
