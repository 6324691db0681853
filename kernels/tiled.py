"""Tiled Triton kernels for matrices too large for one program, and their launchers.

Past the fused kernels' size a matrix no longer fits one program, so every step of every
method becomes a batched, tiled matrix product (grid: output tiles x batch) whose epilogue
does the step's element-wise work: `alpha * X @ Y + beta * W + gamma * I`, the Frobenius
normalisation, the polynomial sums and the final unscale and cast. Products that depend
only on earlier launches share one launch (Y M and Z M; B^2 and the commutator B C - C B; the
two products of the Lyapunov C' and B B^2), and consecutive steps, each an intermediate and its
update, share one chained launch (`chained.py`: M = Z Y, then Y M and M Z; B^2 and B C - C B,
then C' and B'); no launch writes what it reads as input (a chained launch rewrites its
scratch and iterates step by step, `chained.py`, never its inputs), so a launch can be re-run
(that is how candidates are timed).

Symmetry: every launch with a symmetric result computes only the tiles on and above the
diagonal and stores each twice, the second time transposed, so the stored matrix is exactly
symmetric (what `reference.symmetrize` is there for, the Lyapunov iteration's
re-symmetrisation every step included). A product of two polynomials of one matrix (powers
of Z, B^2, B B^2, W W) is one triangle mirrored: its mirror tiles are the same sums up to
rounding, so half the arithmetic. The Newton–Schulz updates Y M = Y Z Y and M Z = Z Y Z are
symmetric only in exact arithmetic; there each upper tile program averages its tile with
its mirror's (`tile_blocks.symmetric_part_tile`, a full product's work): one triangle
mirrored made the tiled roots 15x less accurate than the torch path at kappa 1e6
(docs/large-and-tuning.md, "Symmetry").

tf32x3 (float32): every buffer a product reads is a `split_buffer`, with its TF32 high and low
planes behind its values, written by the launch that writes the iterate (`store_split`); the
product loops run three "tf32" products on them (`tile_blocks.product_tile`), so each operand
is split once, not in every product that reads it (docs/large-and-tuning.md, "tf32x3").

Per-matrix scalars never leave the device: the input's Frobenius norm is reduced from
per-band partial sums written by the first launch, and later launches read it from the
(B, 1, 1) norm tensor; the coefficients of every step come from small device tables.

Launch settings (BLOCK, BLOCK_K, GROUP, warps, stages) are chosen per kernel and matrix-size
bucket through `tritonsqrt.tuning.cache`; `spaces.candidate_configs` is the space,
`compile_specs` lists it for `tritonsqrt compile-report`. The shared `@triton.jit` pieces are in
`tile_blocks.py`, a step's tile of work in `step_tiles.py`.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from .launch import TILED_LAUNCH_OPTIONS, descriptor_scratch, dot_precision, tuned_launch, tuning_key
from .rounding import eps_halves, eps_value
from .tables import coefficient_table  # noqa: F401 (tiled_path calls tiled.coefficient_table)
from .tile_blocks import (load_block, norm_scalars, operand_plane, product_tile, step_norm, store_root, store_split,
                          store_symmetric, tile_indices, tile_position)
from .chained import _lyapunov_chained_kernel, _newton_schulz_chained_kernel, chained_programs, zero_counters
from .chained import counter_count  # noqa: F401 (tiled_path sizes the counters with it)
from .step_tiles import newton_schulz_tile
from .spaces import SM80_SHARED_MEMORY, SM90_SHARED_MEMORY, candidate_configs, offers_tma, shared_memory_per_block

from tritonsqrt.constants import PRECISIONS, dtype_name as _dtype_name
from tritonsqrt.tuning import cache as tuning


# ---------------------------------------------------------------------------------------
# Forward kernels


@triton.jit
def _prepare_forward_kernel(
    a_ptr, a_batch_stride, a_row_stride, a_col_stride,
    w_ptr, partials_ptr, eps_hi, eps_lo, counters_ptr, num_counters, n,
    BLOCK: tl.constexpr, SPLIT: tl.constexpr,
):
    """W = sym(A) + eps I in the compute dtype, and the sum of squares of W per band of rows.

    a_ptr: the input A, of shape [batch, n, n], float16/bfloat16/float32/float64, any strides.
    a_batch_stride, a_row_stride, a_col_stride: element strides of A.
    w_ptr: W, of shape [batch, n, n], contiguous, compute dtype (float32 or float64).
    partials_ptr: sums of squares, of shape [batch, cdiv(n, BLOCK)], compute dtype.
    eps_hi, eps_lo: eps as float32 + float32 (eps_lo used in float64 only).
    counters_ptr, num_counters: the chained steps' counters (int32), zeroed here (`chained.py`).
    n: matrix size.
    BLOCK: rows per program (one band) and columns per step along it.
    SPLIT: tf32x3 products follow: W's TF32 high and low planes are written too (`store_split`).
    """
    compute_dtype = w_ptr.dtype.element_ty
    zero_counters(counters_ptr, num_counters, BLOCK * BLOCK)
    bands = tl.cdiv(n, BLOCK)
    band = tl.program_id(0) % bands
    matrix = (tl.program_id(0) // bands).to(tl.int64)
    plane = (tl.num_programs(0) // bands).to(tl.int64) * n * n  # `operand_plane` of this grid
    eps = eps_value(eps_hi, eps_lo, compute_dtype)
    a_ptr += matrix * a_batch_stride
    w_ptr += matrix * n * n
    # int64: the input's strides are anyone's (a transposed view of a large batch, say).
    rows = tile_indices(band, BLOCK).to(tl.int64)
    squares = tl.zeros((BLOCK, BLOCK), dtype=compute_dtype)
    for col_start in range(0, n, BLOCK):
        cols = col_start + tl.arange(0, BLOCK).to(tl.int64)
        mask = (rows[:, None] < n) & (cols[None, :] < n)
        block = tl.load(a_ptr + rows[:, None] * a_row_stride + cols[None, :] * a_col_stride,
                        mask=mask, other=0.0).to(compute_dtype)
        # The mirror block A[cols, rows], loaded row-major and transposed in registers.
        mirror = tl.load(a_ptr + cols[:, None] * a_row_stride + rows[None, :] * a_col_stride,
                         mask=(cols[:, None] < n) & (rows[None, :] < n), other=0.0).to(compute_dtype)
        w = 0.5 * (block + tl.trans(mirror)) + tl.where(rows[:, None] == cols[None, :], eps, 0.0)
        store_split(w_ptr, w, rows, cols, n, plane, False, SPLIT)
        squares += w * w
    tl.store(partials_ptr + matrix * bands + band, tl.sum(tl.sum(squares, axis=1), axis=0))


@triton.jit
def _power_step_kernel(
    left_ptr, z_ptr, z_out_ptr, power_out_ptr,
    first_in_ptr, second_in_ptr,
    first_out_ptr, first_saved_ptr, second_out_ptr, second_saved_ptr,
    coeffs_ptr, power, norm_ptr, partials_ptr, num_partials, n,
    FIRST: tl.constexpr, WRITE_Z: tl.constexpr, WRITE_POWER: tl.constexpr,
    FIRST_POLY: tl.constexpr, SECOND_POLY: tl.constexpr, UNSCALE: tl.constexpr,
    STORE_FIRST: tl.constexpr, SAVE_FIRST: tl.constexpr, STORE_SECOND: tl.constexpr, SAVE_SECOND: tl.constexpr,
    PARTIALS: tl.constexpr, BLOCK: tl.constexpr, BLOCK_K: tl.constexpr, GROUP: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Z^power and the two polynomials summed up to it (`reference.matrix_powers`, `polynomial`).

    Z = I - W / ||W||_F. MTP sums the square-root and inverse-root Taylor series, MPA the Padé
    numerator P and denominator Q; both from the same powers, in the reference's order.
    left_ptr: FIRST: W; else Z^(power-1); of shape [batch, n, n], contiguous, compute dtype.
    z_ptr: FIRST: W; else Z; same shape.
    z_out_ptr: FIRST with WRITE_Z: Z is written here (the right operand of later powers).
    power_out_ptr: Z^power, written when WRITE_POWER (a later power needs it).
    first_in_ptr, second_in_ptr: the polynomials up to Z^(power-1) (not read when FIRST).
    first_out_ptr, second_out_ptr: the polynomials up to Z^power; with UNSCALE the roots
        (first: square root, second: inverse root), in the output dtype.
    first_saved_ptr, second_saved_ptr: with UNSCALE and SAVE_*: the roots again, compute dtype.
    coeffs_ptr: coefficients, of shape [degree + 1, 2], compute dtype (first, second).
    power: the power this launch forms (>= 2).
    norm_ptr: ||W||_F, of shape [batch], compute dtype: written when FIRST, read with UNSCALE.
    partials_ptr, num_partials: W's sums of squares per band, [batch, num_partials] (FIRST).
    n: matrix size.
    FIRST: power 2 from W: Z^2 = I - 2 W/||W|| + W^2/||W||^2, and the sums start at c0 I + c1 Z.
    FIRST_POLY, SECOND_POLY: which polynomials are wanted.
    UNSCALE: the last power: store the roots (unscaled) rather than the sums.
    STORE_*, SAVE_*: with UNSCALE, which of the output and saved copies to write.
    PARTIALS: num_partials rounded up to a power of two.
    BLOCK: output tile side; BLOCK_K: inner dimension per step; GROUP: tile rows per group.
    PRECISION: tl.dot input precision, "ieee", "tf32x3" or "tf32".
    """
    matrix, tile_row, tile_col = tile_position(n, BLOCK, GROUP)
    if tile_row <= tile_col:  # Z^power is symmetric: the mirror tiles come from here
        compute_dtype = norm_ptr.dtype.element_ty
        base = matrix * n * n
        left_ptr += base
        z_ptr += base
        rows = tile_indices(tile_row, BLOCK)
        cols = tile_indices(tile_col, BLOCK)
        diagonal = rows[:, None] == cols[None, :]
        norm = step_norm(partials_ptr, norm_ptr, matrix, num_partials, tile_row, tile_col, FIRST, PARTIALS)
        inverse_norm, root_norm, inverse_root = norm_scalars(norm)

        plane = operand_plane(n, BLOCK)
        acc = product_tile(tl.zeros((BLOCK, BLOCK), dtype=compute_dtype), left_ptr, z_ptr, rows, cols, n, plane,
                            BLOCK_K, PRECISION)

        # Epilogue: each tile is stored as soon as it is complete, so that few stay live (spills).
        if FIRST:
            w_hat = load_block(left_ptr, rows, cols, n) * inverse_norm
            power_value = tl.where(diagonal, 1.0, 0.0) - 2.0 * w_hat + (acc * inverse_norm) * inverse_norm
            z = tl.where(diagonal, 1.0, 0.0) - w_hat
            if WRITE_Z:
                store_split(z_out_ptr + base, z, rows, cols, n, plane, True, PRECISION == "tf32x3")
        else:
            power_value = acc
        if WRITE_POWER:
            store_split(power_out_ptr + base, power_value, rows, cols, n, plane, True, PRECISION == "tf32x3")
        if FIRST_POLY:
            if FIRST:  # c0 I + c1 Z, as `reference.polynomial` starts
                first = tl.where(diagonal, tl.load(coeffs_ptr), 0.0) + tl.load(coeffs_ptr + 2) * z
            else:
                first = load_block(first_in_ptr + base, rows, cols, n)
            first += tl.load(coeffs_ptr + 2 * power) * power_value
            if UNSCALE:
                store_root(first, norm, root_norm, inverse_root, diagonal, first_out_ptr + base,
                            first_saved_ptr + base, rows, cols, n, False, STORE_FIRST, SAVE_FIRST, True)
            else:
                store_symmetric(first_out_ptr + base, first, rows, cols, n)
        if SECOND_POLY:
            if FIRST:
                second = tl.where(diagonal, tl.load(coeffs_ptr + 1), 0.0) + tl.load(coeffs_ptr + 3) * z
            else:
                second = load_block(second_in_ptr + base, rows, cols, n)
            second += tl.load(coeffs_ptr + 2 * power + 1) * power_value
            if UNSCALE:
                store_root(second, norm, root_norm, inverse_root, diagonal, second_out_ptr + base,
                            second_saved_ptr + base, rows, cols, n, True, STORE_SECOND, SAVE_SECOND, True)
            else:
                store_symmetric(second_out_ptr + base, second, rows, cols, n)


@triton.jit
def _newton_schulz_step_kernel(
    y_ptr, z_ptr, m_ptr,
    y_out_ptr, y_saved_ptr, z_out_ptr, z_saved_ptr,
    steps_ptr, step, norm_ptr, partials_ptr, num_partials, n,
    FIRST: tl.constexpr, UPDATE_Y: tl.constexpr, UPDATE_Z: tl.constexpr, UNSCALE: tl.constexpr,
    STORE_Y: tl.constexpr, SAVE_Y: tl.constexpr, STORE_Z: tl.constexpr, SAVE_Z: tl.constexpr,
    PARTIALS: tl.constexpr, BLOCK: tl.constexpr, BLOCK_K: tl.constexpr, GROUP: tl.constexpr,
    PRECISION: tl.constexpr, TRACE_NORM: tl.constexpr, SPLIT_PROGRAMS: tl.constexpr = 1,
):
    """One coupled Newton–Schulz update (`reference.coupled_newton_schulz`) with T = a I + b Z Y.

    With M = Z Y (a previous launch): Y' = Y T = a Y + b sym(Y M) and Z' = T Z = a Z + b sym(M Z),
    the products in the reference's order, each averaged with its mirror tile (both tiles
    computed: `symmetric_part_tile`): four product loops, one launch, exactly symmetric iterates.
    FIRST (Y = A_hat, Z = I): Y' = a A_hat + b A_hat^2 (one product of W), Z' = T = a I + b A_hat.
    y_ptr, z_ptr, m_ptr: Y, Z, M, of shape [batch, n, n], contiguous, compute dtype
        (FIRST: y_ptr = m_ptr = W, z_ptr unused).
    y_out_ptr, z_out_ptr: Y', Z' (with UNSCALE: the square root and inverse root, output dtype).
    y_saved_ptr, z_saved_ptr: with UNSCALE and SAVE_*: the roots again, compute dtype.
    steps_ptr: the (a, b) of every step, of shape [steps, 2], compute dtype; step: this one.
    norm_ptr: ||W||_F, of shape [batch], compute dtype: written when FIRST, read with UNSCALE.
    partials_ptr, num_partials: W's sums of squares per band, [batch, num_partials] (FIRST).
    n: matrix size.
    UPDATE_Y, UPDATE_Z: which iterates are wanted (the last step skips what is not needed).
    UNSCALE: the last step: store the roots (unscaled) rather than the iterates.
    STORE_*, SAVE_*: with UNSCALE, which of the output and saved copies to write.
    PARTIALS, BLOCK, BLOCK_K, GROUP, PRECISION: as for `_power_step_kernel`.
    TRACE_NORM: ns (iSQRT-COV): norm_ptr already holds tr W, the divisor in place of ||W||_F.
    SPLIT_PROGRAMS: 2 runs the grid with a second axis of 2 (`step_tiles`, split roles): in a step that
        updates both iterates and is not the first, program 0 of a tile forms Y' (with UNSCALE:
        the square root), program 1 Z' (the inverse root), one accumulator a program; otherwise
        program 0 forms both, as with 1, and program 1 returns.
    """
    matrix, tile_row, tile_col = tile_position(n, BLOCK, GROUP)
    newton_schulz_tile(y_ptr, z_ptr, m_ptr, y_out_ptr, y_saved_ptr, z_out_ptr, z_saved_ptr, steps_ptr, step, norm_ptr,
                       partials_ptr, num_partials, n, matrix, tile_row, tile_col, tl.program_id(1),
                       operand_plane(n, BLOCK), FIRST, UPDATE_Y, UPDATE_Z, UNSCALE, STORE_Y, SAVE_Y, STORE_Z, SAVE_Z,
                       PARTIALS, BLOCK, BLOCK_K, PRECISION, TRACE_NORM, SPLIT_PROGRAMS)


@triton.jit
def _product_kernel(
    x_ptr, y_ptr, e_ptr, out_ptr, norm_ptr, alpha, beta, n,
    SYMMETRIC: tl.constexpr, HAS_E: tl.constexpr, SCALE: tl.constexpr, SPLIT_OUT: tl.constexpr,
    BLOCK: tl.constexpr, BLOCK_K: tl.constexpr, GROUP: tl.constexpr, PRECISION: tl.constexpr,
):
    """out = scale(alpha * X @ Y + beta * E), per matrix of a batch.

    x_ptr, y_ptr: X and Y, of shape [batch, n, n], contiguous, compute dtype.
    e_ptr: E, same shape (read when HAS_E).
    out_ptr: the result, of shape [batch, n, n], contiguous, its own dtype.
    norm_ptr: ||A||_F, of shape [batch], compute dtype (read when SCALE is not "none").
    alpha, beta: float32 scalars (+-1 and 0/1 here, exact in any dtype).
    n: matrix size.
    SYMMETRIC: the result is symmetric: compute the upper tiles, store their mirror too.
    SCALE: "none"; "sqrt_of_normalized": X = W, the result is unscale(sym(W_hat Y)), the
        square root from the inverse one (`torch_path`); "lyapunov": divided by the per-matrix
        Lyapunov scale (sqrt(||A||_F), 1 for A = 0).
    SPLIT_OUT: the result is a later product's operand: with tf32x3 its planes are written too.
    BLOCK, BLOCK_K, GROUP, PRECISION: as for `_power_step_kernel`.
    """
    matrix, tile_row, tile_col = tile_position(n, BLOCK, GROUP)
    active = tile_row <= tile_col
    if not SYMMETRIC:
        active = tile_row >= 0
    if active:
        compute_dtype = x_ptr.dtype.element_ty
        base = matrix * n * n
        rows = tile_indices(tile_row, BLOCK)
        cols = tile_indices(tile_col, BLOCK)
        if SCALE != "none":
            norm = tl.load(norm_ptr + matrix)
            inverse_norm, root_norm, inverse_root = norm_scalars(norm)
        plane = operand_plane(n, BLOCK)
        acc = product_tile(tl.zeros((BLOCK, BLOCK), dtype=compute_dtype), x_ptr + base, y_ptr + base, rows, cols, n,
                            plane, BLOCK_K, PRECISION)
        value = tl.cast(alpha, compute_dtype) * acc
        if HAS_E:
            value += tl.cast(beta, compute_dtype) * load_block(e_ptr + base, rows, cols, n)
        if SCALE == "sqrt_of_normalized":
            value = (value * inverse_norm) * root_norm  # unscale(W_hat Y); A = 0 gives W = 0, S = 0
        elif SCALE == "lyapunov":
            value = value * inverse_root
        store_split(out_ptr + base, value, rows, cols, n, plane, SYMMETRIC, SPLIT_OUT and PRECISION == "tf32x3")


@triton.jit
def _load_strided(ptr, batch_stride, row_stride, col_stride, matrix, rows, cols, n):
    """Block [rows, cols] of matrix `matrix` of a strided (batch, n, n) tensor; zero outside it."""
    ptr += matrix * batch_stride
    rows = rows.to(tl.int64)
    cols = cols.to(tl.int64)
    return tl.load(ptr + rows[:, None] * row_stride + cols[None, :] * col_stride,
                   mask=(rows[:, None] < n) & (cols[None, :] < n), other=0.0)


@triton.jit
def _unscale_roots_kernel(
    sqrt_hat_ptr, sh_batch_stride, sh_row_stride, sh_col_stride,
    inv_hat_ptr, ih_batch_stride, ih_row_stride, ih_col_stride, norm_ptr,
    sqrt_out_ptr, sqrt_saved_ptr, inv_out_ptr, inv_saved_ptr, n,
    STORE_SQRT: tl.constexpr, SAVE_SQRT: tl.constexpr, STORE_INV: tl.constexpr, SAVE_INV: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """The roots of A from those of A_hat (`reference.unscale`), element-wise, for Padé's solves.

    sqrt_hat_ptr, inv_hat_ptr: the roots of A_hat, of shape [batch, n, n], compute dtype, any
        strides (torch's solve returns column-major matrices).
    s*_stride, ih_*_stride: their element strides.
    norm_ptr: ||A||_F, of shape [batch], compute dtype.
    sqrt_out_ptr, inv_out_ptr: the roots in the output dtype, [batch, n, n], contiguous.
    sqrt_saved_ptr, inv_saved_ptr: the roots in the compute dtype, for the backward.
    n: matrix size. STORE_* / SAVE_*: which of the four outputs to write. BLOCK: tile side.
    """
    matrix, tile_row, tile_col = tile_position(n, BLOCK, 1)
    base = matrix * n * n
    rows = tile_indices(tile_row, BLOCK)
    cols = tile_indices(tile_col, BLOCK)
    diagonal = rows[:, None] == cols[None, :]
    norm = tl.load(norm_ptr + matrix)
    _, root_norm, inverse_root = norm_scalars(norm)
    if STORE_SQRT or SAVE_SQRT:
        root_hat = _load_strided(sqrt_hat_ptr, sh_batch_stride, sh_row_stride, sh_col_stride, matrix, rows, cols, n)
        store_root(root_hat, norm, root_norm, inverse_root, diagonal, sqrt_out_ptr + base, sqrt_saved_ptr + base,
                    rows, cols, n, False, STORE_SQRT, SAVE_SQRT, False)
    if STORE_INV or SAVE_INV:
        root_hat = _load_strided(inv_hat_ptr, ih_batch_stride, ih_row_stride, ih_col_stride, matrix, rows, cols, n)
        store_root(root_hat, norm, root_norm, inverse_root, diagonal, inv_out_ptr + base, inv_saved_ptr + base,
                    rows, cols, n, True, STORE_INV, SAVE_INV, False)


# ---------------------------------------------------------------------------------------
# Backward kernels (the Lyapunov sign iteration of `reference.lyapunov_sign`)


@triton.jit
def _load_symmetrized(ptr, batch_stride, row_stride, col_stride, matrix, rows, cols, n, compute_dtype: tl.constexpr):
    """sym(G)[rows, cols] of a strided G of any float dtype, in the compute dtype."""
    block = _load_strided(ptr, batch_stride, row_stride, col_stride, matrix, rows, cols, n).to(compute_dtype)
    # The mirror block G[cols, rows], loaded row-major and transposed in registers.
    mirror = _load_strided(ptr, batch_stride, row_stride, col_stride, matrix, cols, rows, n).to(compute_dtype)
    return 0.5 * (block + tl.trans(mirror))


@triton.jit
def _prepare_backward_kernel(
    s_ptr, grad_sqrt_ptr, gs_batch_stride, gs_row_stride, gs_col_stride,
    grad_inv_ptr, gi_batch_stride, gi_row_stride, gi_col_stride,
    norm_ptr, b_out_ptr, c_out_ptr, grad_inv_out_ptr, counters_ptr, num_counters, n,
    HAS_GRAD_SQRT: tl.constexpr, HAS_GRAD_INV: tl.constexpr, BLOCK: tl.constexpr, SPLIT: tl.constexpr,
):
    """B0 = S / scale and the right-hand side from the output gradients, element-wise.

    s_ptr: S, of shape [batch, n, n], contiguous, compute dtype.
    grad_sqrt_ptr, grad_inv_ptr: dL/dS and dL/dY, of shape [batch, n, n], any float dtype and strides.
    g*_stride: their element strides.
    norm_ptr: ||A||_F, of shape [batch], compute dtype.
    b_out_ptr: B0 = S / scale, [batch, n, n], compute dtype.
    c_out_ptr: without HAS_GRAD_INV, C0 = sym(dL/dS) / scale; with it sym(dL/dS) (or 0), unscaled.
    grad_inv_out_ptr: with HAS_GRAD_INV, sym(dL/dY), compute dtype.
    counters_ptr, num_counters: the chained steps' counters (int32), zeroed here (`chained.py`).
    n: matrix size. BLOCK: tile side.
    SPLIT: tf32x3 products follow: the three outputs get their TF32 planes too (`store_split`).
    """
    compute_dtype = s_ptr.dtype.element_ty
    zero_counters(counters_ptr, num_counters, BLOCK * BLOCK)
    matrix, tile_row, tile_col = tile_position(n, BLOCK, 1)
    base = matrix * n * n
    rows = tile_indices(tile_row, BLOCK)
    cols = tile_indices(tile_col, BLOCK)
    _, _, inverse_scale = norm_scalars(tl.load(norm_ptr + matrix))  # 1 / the Lyapunov scale
    plane = operand_plane(n, BLOCK)
    store_split(b_out_ptr + base, load_block(s_ptr + base, rows, cols, n) * inverse_scale, rows, cols, n, plane, False,
                SPLIT)
    rhs = tl.zeros((BLOCK, BLOCK), dtype=compute_dtype)
    if HAS_GRAD_SQRT:
        rhs = _load_symmetrized(grad_sqrt_ptr, gs_batch_stride, gs_row_stride, gs_col_stride, matrix, rows, cols, n,
                                compute_dtype)
    if HAS_GRAD_INV:
        store_split(c_out_ptr + base, rhs, rows, cols, n, plane, False, SPLIT)
        grad_inv = _load_symmetrized(grad_inv_ptr, gi_batch_stride, gi_row_stride, gi_col_stride, matrix, rows, cols,
                                     n, compute_dtype)
        store_split(grad_inv_out_ptr + base, grad_inv, rows, cols, n, plane, False, SPLIT)
    else:
        store_split(c_out_ptr + base, rhs * inverse_scale, rows, cols, n, plane, False, SPLIT)


# ---------------------------------------------------------------------------------------
# Launch settings

# Element-wise kernels are memory-bound with one fixed setting.
ELEMENTWISE_BLOCK = 32
ELEMENTWISE_WARPS = 4


# Kernels with two results that may form them in two programs (SPLIT_PROGRAMS, `step_tiles`, split roles;
# `spaces.SPLIT_SPACES` names their autotune spaces).
SPLIT_KERNELS = ("newton_schulz_step", "newton_schulz_chained", "lyapunov_chained")
# Kernels that run a step's two phases in one launch (`chained.py`): one grid axis, ticket-ordered.
CHAINED_KERNELS = ("newton_schulz_chained", "lyapunov_chained")

_KERNELS = {
    "power_step": _power_step_kernel,
    "newton_schulz_step": _newton_schulz_step_kernel,
    "product": _product_kernel,
    "newton_schulz_chained": _newton_schulz_chained_kernel,
    "lyapunov_chained": _lyapunov_chained_kernel,
}


def _launch_tuned(kernel_name: str, variant: str, like: torch.Tensor, precision: str, args: tuple, flags: dict,
                  space: str | None = None, steps: int = 1):
    """Select the config of one launch through `tuning.select_config` and launch it.

    like: a (batch, n, n) tensor of the compute dtype on the launch device (sizes the grid).
    variant: the flags that change the kernel's work (part of the tuning key).
    space: the autotune space's name (`spaces.candidate_configs`), the kernel's by default.
    steps: a chained kernel's steps in the launch (`chained.py`).
    """
    kernel = _KERNELS[kernel_name]
    batch, n = like.shape[0], like.shape[-1]
    dtype_name = _dtype_name(like.dtype)
    precision = dot_precision(dtype_name, precision)
    on_gpu = like.device.type == "cuda"
    candidates = candidate_configs(space or kernel_name, n, dtype_name, precision, interpreter=not on_gpu,
                                   shared_memory=shared_memory_per_block(like.device) if on_gpu else SM80_SHARED_MEMORY,
                                   tma=on_gpu and offers_tma(like.device))
    # n a multiple of 16 compiles differently (aligned rows): its own key.
    variant = variant + ("-n16" if n % 16 == 0 else "")
    key = tuning_key(tuning.size_bucket(n), dtype_name, precision, variant, tuning.batch_bucket(batch))

    def run(config):
        if kernel_name in CHAINED_KERNELS:  # both phases' programs on one axis
            grid = (chained_programs(kernel_name, n, batch, config["BLOCK"], config["SPLIT_PROGRAMS"], steps),)
            placement = {"GROUP": config["GROUP"], "SPLIT_PROGRAMS": config["SPLIT_PROGRAMS"],
                         "TMA": config.get("TMA", False)}
        else:
            grid = (triton.cdiv(n, config["BLOCK"]) ** 2 * batch, config["SPLIT_PROGRAMS"])
            placement = {"GROUP": config["GROUP"]}
            if kernel_name in SPLIT_KERNELS:
                placement["SPLIT_PROGRAMS"] = config["SPLIT_PROGRAMS"]
        with descriptor_scratch() if config.get("TMA") and on_gpu else contextlib.nullcontext():
            kernel[grid](*args, **flags, **placement, PRECISION=precision, BLOCK=config["BLOCK"],
                         BLOCK_K=config["BLOCK_K"], num_warps=config["num_warps"], num_stages=config["num_stages"],
                         **TILED_LAUNCH_OPTIONS)

    tuned_launch(f"tiled.{kernel_name}", kernel, key, candidates, run, like.device)


def _elementwise_grid(n: int, batch: int) -> tuple[int]:
    return (triton.cdiv(n, ELEMENTWISE_BLOCK) ** 2 * batch,)


# ---------------------------------------------------------------------------------------
# Launchers (the callers allocate; None marks an output that is not wanted)

def partial_count(n: int) -> int:
    """Sums of squares per matrix that `prepare_forward` writes (one per band of rows)."""
    return triton.cdiv(n, ELEMENTWISE_BLOCK)


def splits_operands(dtype: torch.dtype, precision: str) -> bool:
    """Whether the products at this precision read split operands: tf32x3 in float32. Then every
    buffer a product reads is `split_buffer`'s and every launch that writes one writes its planes."""
    return dot_precision(_dtype_name(dtype), precision) == "tf32x3"


def split_buffer(batch: int, n: int, dtype: torch.dtype, device) -> torch.Tensor:
    """A (batch, n, n) operand buffer with room for its TF32 high and low planes behind it: the
    values of a (3, batch, n, n) tensor (`tile_blocks.operand_plane`)."""
    return torch.empty((3, batch, n, n), dtype=dtype, device=device)[0]


def prepare_forward(a: torch.Tensor, eps: float, w: torch.Tensor, partials: torch.Tensor, *,
                    split: bool = False, counters: torch.Tensor | None = None) -> None:
    """w <- sym(a) + eps I (compute dtype), partials <- its sums of squares per band. One launch.
    split: w is a `split_buffer` and its planes are written too. counters: the chained steps'
    (int32, `new_counters`), zeroed by the same launch."""
    batch, n = a.shape[0], a.shape[-1]
    eps_hi, eps_lo = eps_halves(float(eps))
    _prepare_forward_kernel[(partial_count(n) * batch,)](
        a, *a.stride(), w, partials, eps_hi, eps_lo, _or(counters, partials), _numel(counters), n,
        BLOCK=ELEMENTWISE_BLOCK, SPLIT=split, num_warps=ELEMENTWISE_WARPS, **TILED_LAUNCH_OPTIONS)


def new_counters(batch: int, device) -> torch.Tensor:
    """The counters of a chain of chained steps over `batch` matrices (`chained.py`), uninitialised:
    the chain's prepare launch zeroes them, and every chained launch leaves them zero."""
    return torch.empty(counter_count(batch), dtype=torch.int32, device=device)


def _numel(tensor) -> int:
    return 0 if tensor is None else tensor.numel()


def _or(tensor, fallback):
    return fallback if tensor is None else tensor


def power_step(left, z, table, power: int, norm, partials, *, z_out=None, power_out=None, first_in=None,
               second_in=None, first_out=None, first_saved=None, second_out=None, second_saved=None,
               first_poly: bool, second_poly: bool, unscale: bool, precision: str) -> None:
    """Z^power and the polynomial sums (see `_power_step_kernel`). Power 2 reads W and partials."""
    first = power == 2
    num_partials = partials.shape[-1] if first else 1
    args = (left, z, _or(z_out, left), _or(power_out, left), _or(first_in, left), _or(second_in, left),
            _or(first_out, left), _or(first_saved, left), _or(second_out, left), _or(second_saved, left),
            table, power, norm, partials if first else norm, num_partials, left.shape[-1])
    flags = dict(FIRST=first, WRITE_Z=z_out is not None, WRITE_POWER=power_out is not None,
                 FIRST_POLY=first_poly, SECOND_POLY=second_poly, UNSCALE=unscale,
                 STORE_FIRST=unscale and first_out is not None, SAVE_FIRST=unscale and first_saved is not None,
                 STORE_SECOND=unscale and second_out is not None, SAVE_SECOND=unscale and second_saved is not None,
                 PARTIALS=triton.next_power_of_2(num_partials))
    _launch_tuned("power_step", "first" if first else "next", left, precision, args, flags)


def _root_outputs(y, y_out, y_saved, z_out, z_saved) -> tuple:
    # An output not wanted points at its partner (same dtype): a split last step picks either by role.
    return (_or(y_out, _or(z_out, y)), _or(y_saved, _or(z_saved, y)), _or(z_out, _or(y_out, y)),
            _or(z_saved, _or(y_saved, y)))


def _root_flags(update_y: bool, update_z: bool, unscale: bool, y_out, y_saved, z_out, z_saved) -> dict:
    return dict(UPDATE_Y=update_y, UPDATE_Z=update_z, UNSCALE=unscale,
                STORE_Y=unscale and y_out is not None, SAVE_Y=unscale and y_saved is not None,
                STORE_Z=unscale and z_out is not None, SAVE_Z=unscale and z_saved is not None)


def newton_schulz_first_step(w, table, norm, partials, *, y_out=None, y_saved=None, z_out=None, z_saved=None,
                             update_y: bool, update_z: bool, unscale: bool, precision: str,
                             trace_norm: bool = False) -> None:
    """The first coupled Newton–Schulz update from W and its partial sums of squares (see
    `_newton_schulz_step_kernel`, FIRST; trace_norm: not the partials, norm already holds tr W).
    One launch, in its own space: its epilogue (the norm) takes more registers."""
    num_partials = partials.shape[-1]
    args = (w, w, w, *_root_outputs(w, y_out, y_saved, z_out, z_saved), table, 0, norm, partials, num_partials,
            w.shape[-1])
    flags = dict(FIRST=True, PARTIALS=triton.next_power_of_2(num_partials), TRACE_NORM=trace_norm,
                 **_root_flags(update_y, update_z, unscale, y_out, y_saved, z_out, z_saved))
    variant = "first" + ("-y" if update_y else "") + ("-z" if update_z else "") + ("-unscale" if unscale else "")
    _launch_tuned("newton_schulz_step", variant, w, precision, args, flags, space="newton_schulz_step_ends")


def newton_schulz_chained_steps(y, z, m, table, first_step: int, steps: int, norm, counters, *, y_out=None,
                                y_saved=None, z_out=None, z_saved=None, y_spare=None, z_spare=None, update_y: bool,
                                update_z: bool, unscale: bool, precision: str) -> None:
    """Coupled Newton–Schulz updates first_step .. first_step + steps - 1 (after the first), each
    with its product M = Z Y, in one launch (`chained._newton_schulz_chained_kernel`): from y, z
    (not written) into y_out, z_out, alternating with y_spare, z_spare (steps > 1); with unscale
    (steps = 1) the roots into the wanted outputs. m: M's scratch (a split buffer with tf32x3);
    counters: the chain's (`new_counters`)."""
    if steps < 1 or (unscale and steps != 1) or (steps > 1 and (y_spare is None or z_spare is None)):
        raise ValueError(f"newton_schulz_chained_steps: steps={steps}: at least 1, exactly 1 with unscale, "
                         "and spare buffers for more than 1")
    outputs = _root_outputs(y, y_out, y_saved, z_out, z_saved)
    args = (y, z, m, *outputs, _or(y_spare, outputs[0]), _or(z_spare, outputs[2]), table, first_step, steps, norm,
            counters, y.shape[-1])
    flags = _root_flags(update_y, update_z, unscale, y_out, y_saved, z_out, z_saved)
    variant = "next" + ("-y" if update_y else "") + ("-z" if update_z else "") + ("-unscale" if unscale else "")
    # The last step, where it forms both roots at an n that is a multiple of 16, splits them over
    # two programs in the later steps' space (whose unsplit entries are the ends space's); otherwise
    # it takes the ends space (the split unscale epilogue spills 84-156 bytes at other n).
    split_last = unscale and update_y and update_z and y.shape[-1] % 16 == 0
    _launch_tuned("newton_schulz_chained", variant, y, precision, args, flags, steps=steps,
                  space="newton_schulz_step_ends" if unscale and not split_last else None)


def product(x, y, out, *, e=None, alpha: float = 1.0, beta: float = 0.0, norm=None, symmetric: bool,
            scale: str = "none", precision: str, split_out: bool = True) -> None:
    """out <- scale(alpha X @ Y + beta E) (see `_product_kernel`). split_out: with tf32x3, out
    is a `split_buffer` (a later product reads it) and gets its planes."""
    args = (x, y, _or(e, x), out, _or(norm, x), float(alpha), float(beta), x.shape[-1])
    flags = dict(SYMMETRIC=symmetric, HAS_E=e is not None, SCALE=scale, SPLIT_OUT=split_out)
    _launch_tuned("product", "symmetric" if symmetric else "full", x, precision, args, flags)


def unscale_roots(norm, *, sqrt_hat=None, inv_hat=None, sqrt_out=None, sqrt_saved=None, inv_out=None,
                  inv_saved=None) -> None:
    """The roots of A from those of A_hat, into the wanted outputs. One element-wise launch."""
    like = sqrt_hat if sqrt_hat is not None else inv_hat
    batch, n = like.shape[0], like.shape[-1]
    sqrt_hat, inv_hat = _or(sqrt_hat, like), _or(inv_hat, like)
    _unscale_roots_kernel[_elementwise_grid(n, batch)](
        sqrt_hat, *sqrt_hat.stride(), inv_hat, *inv_hat.stride(), norm, _or(sqrt_out, like), _or(sqrt_saved, like),
        _or(inv_out, like), _or(inv_saved, like), n,
        STORE_SQRT=sqrt_out is not None, SAVE_SQRT=sqrt_saved is not None,
        STORE_INV=inv_out is not None, SAVE_INV=inv_saved is not None,
        BLOCK=ELEMENTWISE_BLOCK, num_warps=ELEMENTWISE_WARPS, **TILED_LAUNCH_OPTIONS)


def prepare_backward(s, grad_sqrt, grad_inv, norm, b_out, c_out, grad_inv_out=None, *, split: bool = False,
                     counters: torch.Tensor | None = None) -> None:
    """B0 = S / scale and C0 (or its parts, with an inverse-root gradient). One element-wise launch.
    split: the outputs are `split_buffer`s and get their planes. counters: as for `prepare_forward`."""
    batch, n = s.shape[0], s.shape[-1]
    gs = _or(grad_sqrt, s)
    gi = _or(grad_inv, s)
    _prepare_backward_kernel[_elementwise_grid(n, batch)](
        s, gs, *gs.stride(), gi, *gi.stride(), norm, b_out, c_out, _or(grad_inv_out, s), _or(counters, norm),
        _numel(counters), n,
        HAS_GRAD_SQRT=grad_sqrt is not None, HAS_GRAD_INV=grad_inv is not None, SPLIT=split,
        BLOCK=ELEMENTWISE_BLOCK, num_warps=ELEMENTWISE_WARPS, **TILED_LAUNCH_OPTIONS)


def lyapunov_chained_steps(b, c, b_sq, commutator, table, first_step: int, steps: int, counters, *, b_out=None,
                           c_out, b_spare=None, c_spare=None, last: bool, precision: str) -> None:
    """Sign-iteration steps first_step .. first_step + steps - 1 in one launch
    (`chained._lyapunov_chained_kernel`): each b_sq <- B^2 and commutator <- B C - C B (scratch,
    split buffers with tf32x3), then C' and B'; from b, c (not written) into b_out, c_out,
    alternating with b_spare, c_spare (steps > 1). last (steps = 1): C' only, X = C' / 2 into
    c_out. counters: the chain's (`new_counters`)."""
    if steps < 1 or (last and steps != 1) or (steps > 1 and (b_spare is None or c_spare is None)) or \
            (not last and b_out is None):
        raise ValueError(f"lyapunov_chained_steps: steps={steps}: at least 1, exactly 1 with last, spare "
                         "buffers for more than 1, and b_out unless last")
    args = (b, c, b_sq, commutator, _or(b_out, b), c_out, _or(b_spare, _or(b_out, b)), _or(c_spare, c_out), table,
            first_step, steps, counters, b.shape[-1])
    flags = dict(UPDATE_B=not last, LAST=last)
    _launch_tuned("lyapunov_chained", "c-only" if last else "with-b", b, precision, args, flags, steps=steps)


# ---------------------------------------------------------------------------------------
# For kernels/compile_report.py

# Per (kernel, autotune space), the flag sets compiled: the heaviest of each structurally different variant.
_UNSCALE_BOTH = dict(UNSCALE=True, STORE_Y=True, SAVE_Y=True, STORE_Z=True, SAVE_Z=True)
_COMPILE_VARIANTS = {
    ("power_step", "power_step"): (
        dict(FIRST=True, WRITE_Z=True, WRITE_POWER=True, FIRST_POLY=True, SECOND_POLY=True, UNSCALE=True,
             STORE_FIRST=True, SAVE_FIRST=True, STORE_SECOND=True, SAVE_SECOND=True),
        dict(FIRST=False, WRITE_Z=False, WRITE_POWER=True, FIRST_POLY=True, SECOND_POLY=True, UNSCALE=True,
             STORE_FIRST=True, SAVE_FIRST=True, STORE_SECOND=True, SAVE_SECOND=True),
    ),
    ("newton_schulz_step", "newton_schulz_step_ends"): (  # the first step
        dict(FIRST=True, UPDATE_Y=True, UPDATE_Z=True, **_UNSCALE_BOTH, TRACE_NORM=False),
    ),
    # The steps after the first; the last where it forms both roots (n % 16 == 0), split.
    ("newton_schulz_chained", "newton_schulz_chained"): (
        dict(UPDATE_Y=True, UPDATE_Z=True, UNSCALE=False, STORE_Y=False, SAVE_Y=False, STORE_Z=False, SAVE_Z=False),
        dict(UPDATE_Y=True, UPDATE_Z=True, **_UNSCALE_BOTH),
    ),
    # The last step elsewhere (one root, or n not a multiple of 16), unsplit.
    ("newton_schulz_chained", "newton_schulz_step_ends"): (dict(UPDATE_Y=True, UPDATE_Z=True, **_UNSCALE_BOTH),),
    ("product", "product"): (dict(SYMMETRIC=True, HAS_E=True, SCALE="lyapunov", SPLIT_OUT=True),
                             dict(SYMMETRIC=False, HAS_E=False, SCALE="none", SPLIT_OUT=True)),
    # Every step but the last (B' and C'), and the last (C' only: X = C' / 2, unsplit, stored symmetric).
    ("lyapunov_chained", "lyapunov_chained"): (dict(UPDATE_B=True, LAST=False), dict(UPDATE_B=False, LAST=True)),
}
# Pointers in the input/output dtype (bfloat16, to compile the conversions); the rest are compute dtype.
_IO_POINTERS = {
    "_power_step_kernel": {"first_out_ptr", "second_out_ptr"},
    "_newton_schulz_step_kernel": {"y_out_ptr", "z_out_ptr"},
    "_newton_schulz_chained_kernel": {"y_out_ptr", "z_out_ptr"},
    "_unscale_roots_kernel": {"sqrt_out_ptr", "inv_out_ptr"},
    "_prepare_forward_kernel": {"a_ptr"},
    "_prepare_backward_kernel": {"grad_sqrt_ptr", "grad_inv_ptr"},
}
_FLOAT_SCALARS = {"alpha", "beta", "eps_hi", "eps_lo"}


def _signature(fn, compute: str, io: str, constexprs: dict) -> dict:
    signature = {}
    io_pointers = _IO_POINTERS.get(fn.fn.__name__, set())
    for name in fn.arg_names:
        if name in constexprs:
            signature[name] = "constexpr"
        elif name == "counters_ptr":  # `chained.py`
            signature[name] = "*i32"
        elif name.endswith("_ptr"):
            signature[name] = f"*{io if name in io_pointers else compute}"
        else:
            signature[name] = "fp32" if name in _FLOAT_SCALARS else "i32"
    return signature


def compile_specs(n: int, dtype_name: str) -> list[dict]:
    """Every tiled kernel with every config of its autotune space at size n and every dot
    precision, as dicts for `triton.compile`; the element-wise kernels with their one setting.

    The space is pruned for each arch's shared memory: a config that keeps more pipeline stages
    on sm_90 than on sm_80 (tf32x3 loads four planes a step) is a spec of its own, compiled for
    sm_90 only ("archs")."""
    compute = {"float32": "fp32", "float64": "fp64"}[dtype_name]
    io = "bf16" if dtype_name == "float32" else "fp64"
    specs = []
    for (kernel_name, space), variants in _COMPILE_VARIANTS.items():
        fn = _KERNELS[kernel_name]
        for flags in variants:
            if space == "newton_schulz_chained" and flags["UNSCALE"] and n % 16:  # never launched there
                continue
            # Outputs in the I/O dtype only where the roots are stored (the unscale epilogue).
            flags_io = io if flags.get("UNSCALE", True) else compute
            for precision in PRECISIONS if dtype_name == "float32" else ("ieee",):
                on_sm80 = candidate_configs(space, n, dtype_name, precision)
                on_sm90 = candidate_configs(space, n, dtype_name, precision, shared_memory=SM90_SHARED_MEMORY,
                                            tma=True)
                for config in on_sm80 + [c for c in on_sm90 if c not in on_sm80]:
                    if space == "newton_schulz_chained" and flags.get("UNSCALE") and config["SPLIT_PROGRAMS"] == 1:
                        continue  # an unsplit last step is the ends space's kernel (the same entries)
                    constexprs = dict(flags, BLOCK=config["BLOCK"], BLOCK_K=config["BLOCK_K"], PRECISION=precision)
                    constexprs["GROUP"] = config["GROUP"]
                    if "TMA" in fn.arg_names:
                        constexprs["TMA"] = config.get("TMA", False)
                    if "PARTIALS" in fn.arg_names:
                        constexprs["PARTIALS"] = triton.next_power_of_2(partial_count(n)) if flags.get("FIRST") else 1
                    split = ""
                    if kernel_name in SPLIT_KERNELS:
                        constexprs["SPLIT_PROGRAMS"] = config["SPLIT_PROGRAMS"]
                        split = f"SPLIT_PROGRAMS={config['SPLIT_PROGRAMS']}," if config["SPLIT_PROGRAMS"] > 1 else ""
                        split += "TMA=1," if config.get("TMA") else ""
                    label = ",".join(f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in flags.items())
                    specs.append({
                        "name": f"tiled.{kernel_name}[{label}{',' if label else ''}{split}BLOCK={config['BLOCK']},"
                                f"BLOCK_K={config['BLOCK_K']},GROUP={config['GROUP']},warps={config['num_warps']},"
                                f"stages={config['num_stages']},{precision}]",
                        "fn": fn, "signature": _signature(fn, compute, flags_io, constexprs), "constexprs": constexprs,
                        "num_warps": config["num_warps"], "num_stages": config["num_stages"],
                        "options": TILED_LAUNCH_OPTIONS,
                        **({} if config in on_sm80 else {"archs": ("sm_90",)}),
                    })
    split = dtype_name == "float32"  # the planes' writes (tf32x3), the heavier variant
    elementwise = (
        (_prepare_forward_kernel, dict(BLOCK=ELEMENTWISE_BLOCK, SPLIT=split)),
        (_unscale_roots_kernel, dict(STORE_SQRT=True, SAVE_SQRT=True, STORE_INV=True, SAVE_INV=True,
                                     BLOCK=ELEMENTWISE_BLOCK)),
        (_prepare_backward_kernel, dict(HAS_GRAD_SQRT=True, HAS_GRAD_INV=True, BLOCK=ELEMENTWISE_BLOCK, SPLIT=split)),
    )
    for fn, constexprs in elementwise:
        specs.append({"name": f"tiled.{fn.fn.__name__.strip('_')}[BLOCK={ELEMENTWISE_BLOCK}]", "fn": fn,
                      "signature": _signature(fn, compute, io, constexprs), "constexprs": constexprs,
                      "num_warps": ELEMENTWISE_WARPS, "num_stages": 1, "options": TILED_LAUNCH_OPTIONS})
    return specs
