"""The forward of every iterative method (mtp, mpa, ns, scaled_ns), fused into one Triton launch.

One launch does what `tritonsqrt.paths.torch_path.roots_forward` does with a dozen torch ops: read A
through its strides, symmetrise it, add eps I and upcast (float16 / bfloat16 -> float32), take
the Frobenius norm, form Z = I - A / ||A||_F (or the Newton–Schulz start), run the method of
`tritonsqrt.numerics.reference` step for step, unscale (with the zero-matrix rule of `reference.unscale`)
and store the roots, the tensors the backward keeps and the norm.

One program holds whole matrices (n <= 64) for the whole chain; for n <= 16 one program takes
MATRICES matrices as one (MATRICES, 16, 16) stack with batched tl.dot, so a NaN in one matrix
never reaches another. The padded part of every iterate is zero (the identity is masked to n),
so padding never feeds back into the real entries. At BLOCK 64 in float32 the iterates live
in a per-program scratch and every product streams panels from it (`_streamed_product`):
whole operands in registers spill there.

Coefficients (Taylor, Padé, the (a, b) of each Newton–Schulz step) come from a small device
table read inside a runtime loop, not unrolled as constants: the loop compiles once per size
bucket and flags, for every degree and schedule (compile times in docs/fused-kernels.md).

The Padé solve is Gauss–Jordan elimination without pivoting in registers: Q (and P for the
inverse) is symmetric positive definite with condition <= 270 here, and against float64 it
is as accurate as torch's pivoted LU (n = 64, kappa up to 1e6: 1.7e-6 vs 3.7e-6 relative),
where a Cholesky solve gave 3e-5 and 30 Newton–Schulz inverse steps 2.5e-5.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from .launch import LAUNCH_OPTIONS, dot_precision, tuned_launch, tuning_key
from .spaces import FUSED_MAX_N as MAX_N  # noqa: F401 (tests and callers read MAX_N here)
from .spaces import PRE_TENSOR_CORE_FORWARD_ARCHS, arch_name, fused_roots_candidates as candidate_configs, fused_roots_config as launch_config  # noqa: F401
from .rounding import divide_rn, eps_halves, eps_value, exponent_power, reciprocal_rn, sqrt_rn, symmetrize
from .tables import coefficient_table

from tritonsqrt.constants import PRECISIONS, compute_dtype_for, dtype_name as compute_dtype_name
from tritonsqrt.numerics.coefficients import inv_sqrt_taylor, sqrt_pade, sqrt_taylor

# ---------------------------------------------------------------------------------------
# Shared pieces of the kernels


@triton.jit
def _matrix_indices(first, batch, n, BLOCK: tl.constexpr, MATRICES: tl.constexpr):
    """(matrix index, row index, column index) for MATRICES matrices from `first`.

    Shaped to broadcast to one (BLOCK, BLOCK) matrix, or to a (MATRICES, BLOCK, BLOCK) stack
    when MATRICES > 1, so the rest of the code is the same for both. int64 throughout: a batch
    index times a batch stride passes 2**31 long before memory runs out.
    """
    lanes = tl.arange(0, BLOCK).to(tl.int64)
    if MATRICES == 1:
        index = first + tl.zeros((1, 1), dtype=tl.int64)
        rows = lanes[:, None]
        cols = lanes[None, :]
    else:
        index = (first + tl.arange(0, MATRICES).to(tl.int64))[:, None, None]
        rows = lanes[None, :, None]
        cols = lanes[None, None, :]
    return index, rows, cols


@triton.jit
def _matrix_mask(index, rows, cols, batch, n):
    # Formed where it is used, not kept live through the iteration (registers are the limit).
    return (index < batch) & (rows < n) & (cols < n)


@triton.jit
def _add_diagonal(x, value, rows, cols, n):
    """x + value I with I masked to n: `value * eye + x` of the torch reference, bit for bit,
    without an identity matrix held in registers."""
    return tl.where((rows == cols) & (rows < n), x + value, x)


@triton.jit
def _sum_matrix(x):
    """Sum of each matrix, kept as (1, 1) or (MATRICES, 1, 1) to broadcast back."""
    return tl.sum(tl.sum(x, axis=-1, keep_dims=True), axis=-2, keep_dims=True)


@triton.jit
def _max_matrix(x):
    """Largest entry of each matrix, kept as (1, 1) or (MATRICES, 1, 1) to broadcast back."""
    return tl.max(tl.max(x, axis=-1, keep_dims=True), axis=-2, keep_dims=True)


@triton.jit
def _load_normalized(a_ptr, a_batch_stride, a_row_stride, a_col_stride, index, rows, cols, batch, n,
                     eps_hi, eps_lo, compute_dtype: tl.constexpr, TRACE_NORM: tl.constexpr):
    """(A_hat, ||A||_F) of A = sym(a) + eps I, in the compute dtype; with TRACE_NORM (ns, as
    iSQRT-COV) (A / tr A, tr A)."""
    offsets = index * a_batch_stride + rows * a_row_stride + cols * a_col_stride
    mask = _matrix_mask(index, rows, cols, batch, n)
    a = tl.load(a_ptr + offsets, mask=mask, other=0.0).to(compute_dtype)
    a = _add_diagonal(symmetrize(a), eps_value(eps_hi, eps_lo, compute_dtype), rows, cols, n)
    if TRACE_NORM:
        norm = _sum_matrix(tl.where(rows == cols, a, 0.0))
    else:
        # Squares of the entries divided by a power of two near the largest: no overflow from
        # 1e19 or underflow below 1e-23 (float32), and exact, so the norm is bit for bit the
        # plain one wherever that one is finite (`reference.frobenius_norm`).
        power = _max_matrix(exponent_power(tl.abs(a)))
        power = tl.where((power > 0) & (power < float("inf")), power, 1.0)
        a_scaled = a * reciprocal_rn(power)
        norm = sqrt_rn(_sum_matrix(a_scaled * a_scaled)) * power
    a_hat = divide_rn(a, tl.where(norm == 0, 1.0, norm))  # the zero matrix stays zero; NaN stays NaN
    return a_hat, norm


@triton.jit
def _unscale(root_hat, norm, rows, cols, INVERSE: tl.constexpr):
    """`reference.unscale`: the root of A from that of A_hat; the zero matrix gives 0 or diag(+inf)."""
    root_norm = sqrt_rn(norm)
    if INVERSE:
        scaled = divide_rn(root_hat, tl.where(norm == 0, 1.0, root_norm))
        return tl.where(norm == 0, tl.where(rows == cols, float("inf"), 0.0), scaled)
    else:
        return root_hat * root_norm


@triton.jit
def _store_matrix(ptr, value, index, rows, cols, batch, n):
    """Store into a contiguous (batch, n, n) tensor, cast to its dtype."""
    offsets = index * n * n + rows * n + cols
    tl.store(ptr + offsets, value.to(ptr.dtype.element_ty), mask=_matrix_mask(index, rows, cols, batch, n))


@triton.jit
def _store_results(sqrt_hat, inv_hat, norm, index, rows, cols, batch, n,
                   sqrt_ptr, inv_ptr, saved_sqrt_ptr, saved_inv_ptr, norm_ptr,
                   STORE_SQRT: tl.constexpr, SAVE_SQRT: tl.constexpr,
                   STORE_INV: tl.constexpr, SAVE_INV: tl.constexpr):
    if STORE_SQRT or SAVE_SQRT:
        sqrt_mat = _unscale(sqrt_hat, norm, rows, cols, False)
        if STORE_SQRT:
            _store_matrix(sqrt_ptr, sqrt_mat, index, rows, cols, batch, n)
        if SAVE_SQRT:
            _store_matrix(saved_sqrt_ptr, sqrt_mat, index, rows, cols, batch, n)
    if STORE_INV or SAVE_INV:
        inv_mat = _unscale(inv_hat, norm, rows, cols, True)
        if STORE_INV:
            _store_matrix(inv_ptr, inv_mat, index, rows, cols, batch, n)
        if SAVE_INV:
            _store_matrix(saved_inv_ptr, inv_mat, index, rows, cols, batch, n)
    tl.store(norm_ptr + index, norm, mask=index < batch)


@triton.jit
def _solve(matrix, rhs, rows, cols, n):
    """X with matrix X = rhs, by Gauss–Jordan elimination without pivoting on [matrix | rhs].

    For symmetric positive definite `matrix` (Q or P of the Padé approximant) no pivoting is
    needed. Rows and columns are picked out by masked sums, as registers cannot be indexed.
    The padded diagonal is set to 1 so that padding stays an identity block and rhs's zero
    padding stays zero.
    """
    matrix = tl.where((rows == cols) & (rows >= n), 1.0, matrix)
    for k in range(n):
        in_row = rows == k
        in_col = cols == k
        matrix_row = tl.sum(tl.where(in_row, matrix, 0.0), axis=-2, keep_dims=True)
        rhs_row = tl.sum(tl.where(in_row, rhs, 0.0), axis=-2, keep_dims=True)
        pivot = tl.sum(tl.where(in_col, matrix_row, 0.0), axis=-1, keep_dims=True)
        factor = tl.where(in_row, 0.0, tl.sum(tl.where(in_col, matrix, 0.0), axis=-1, keep_dims=True))
        matrix_row = divide_rn(matrix_row, pivot)
        rhs_row = divide_rn(rhs_row, pivot)
        matrix = tl.where(in_row, matrix_row, matrix - factor * matrix_row)
        rhs = tl.where(in_row, rhs_row, rhs - factor * rhs_row)
    return rhs


@triton.jit
def _tf32_part(x, HIGH: tl.constexpr):
    """x rounded to tf32 (to nearest, ties away, as cvt.rna.tf32.f32), or the float32 rest."""
    high = ((x.to(tl.int32, bitcast=True) + 0x1000) & -0x2000).to(tl.float32, bitcast=True)
    if HIGH:
        return high
    else:
        return x - high


@triton.jit
def _streamed_pass(x_slot, y_slot, total, X_PART: tl.constexpr, Y_PART: tl.constexpr, BLOCK: tl.constexpr,
                   CHUNK: tl.constexpr, PRECISION: tl.constexpr):
    """total + X Y, CHUNK columns of X (rows of Y) at a time; X_PART / Y_PART: 0 the operand,
    1 its tf32 part, 2 the rest (`_tf32_part`)."""
    lanes = tl.arange(0, BLOCK)
    panel = tl.arange(0, CHUNK)
    for k in range(0, BLOCK, CHUNK):
        x_panel = tl.load(x_slot + lanes[:, None] * BLOCK + (k + panel)[None, :])
        y_panel = tl.load(y_slot + (k + panel)[:, None] * BLOCK + lanes[None, :])
        if X_PART != 0:
            x_panel = _tf32_part(x_panel, X_PART == 1)
        if Y_PART != 0:
            y_panel = _tf32_part(y_panel, Y_PART == 1)
        total += tl.dot(x_panel, y_panel, input_precision=PRECISION)
    return total


@triton.jit
def _streamed_product(x_slot, y_slot, BLOCK: tl.constexpr, CHUNK: tl.constexpr, PRECISION: tl.constexpr):
    """X Y for row-major BLOCK x BLOCK matrices in a program's scratch, streamed in panels:
    only one panel of each operand is in registers, never a whole operand.

    tf32x3 is done here as its three tf32 products (small terms first, as Triton orders
    them), each in its own loop. Triton's own tf32x3 puts its three dots in one loop, and
    dots that feed each other get an mma layout that hands every one of the 8 warps all 64
    columns (warps [8, 1] instead of [2, 4]): 255 registers and spills on sm_80.
    """
    total = tl.zeros((BLOCK, BLOCK), dtype=x_slot.dtype.element_ty)
    if PRECISION == "tf32x3":
        total = _streamed_pass(x_slot, y_slot, total, 2, 1, BLOCK, CHUNK, "tf32")
        total = _streamed_pass(x_slot, y_slot, total, 1, 2, BLOCK, CHUNK, "tf32")
        total = _streamed_pass(x_slot, y_slot, total, 1, 1, BLOCK, CHUNK, "tf32")
    else:
        total = _streamed_pass(x_slot, y_slot, total, 0, 0, BLOCK, CHUNK, PRECISION)
    return total


# ---------------------------------------------------------------------------------------
# The methods, on registers (whole operands in every tl.dot) or streamed through a scratch


@triton.jit
def _first_polynomial_terms(z, coeffs_ptr, rows, cols, n, FIRST: tl.constexpr, SECOND: tl.constexpr):
    """c_0 I + c_1 Z for the polynomials wanted (column 0 and 1 of the coefficient table)."""
    first_poly = tl.zeros_like(z)
    second_poly = tl.zeros_like(z)
    if FIRST:
        first_poly = _add_diagonal(tl.load(coeffs_ptr + 2) * z, tl.load(coeffs_ptr), rows, cols, n)
    if SECOND:
        second_poly = _add_diagonal(tl.load(coeffs_ptr + 3) * z, tl.load(coeffs_ptr + 1), rows, cols, n)
    return first_poly, second_poly


@triton.jit
def _polynomials_in_registers(z, coeffs_ptr, degree, rows, cols, n,
                              FIRST: tl.constexpr, SECOND: tl.constexpr, PRECISION: tl.constexpr):
    """Both polynomials of Z from one set of powers, summed in the order of `reference.polynomial`."""
    first_poly, second_poly = _first_polynomial_terms(z, coeffs_ptr, rows, cols, n, FIRST, SECOND)
    power = z
    for k in range(2, degree + 1):
        power = tl.dot(power, z, input_precision=PRECISION)
        if FIRST:
            first_poly += tl.load(coeffs_ptr + 2 * k) * power
        if SECOND:
            second_poly += tl.load(coeffs_ptr + 2 * k + 1) * power
    return first_poly, second_poly


@triton.jit
def _slot(scratch, index, BLOCK: tl.constexpr):
    return scratch + index * BLOCK * BLOCK


@triton.jit
def _polynomials_streamed(z, coeffs_ptr, degree, rows, cols, n, scratch,
                          FIRST: tl.constexpr, SECOND: tl.constexpr, BLOCK: tl.constexpr, CHUNK: tl.constexpr,
                          PRECISION: tl.constexpr):
    """`_polynomials_in_registers` with Z (slot 0) and the running power (slots 1, 2) in scratch.

    The power alternates between two slots: the new one is written while other warps may
    still read the old, so one barrier a step suffices.
    """
    tile = (rows * BLOCK + cols).to(tl.int32)
    tl.store(_slot(scratch, 0, BLOCK) + tile, z)
    tl.store(_slot(scratch, 1, BLOCK) + tile, z)
    first_poly, second_poly = _first_polynomial_terms(z, coeffs_ptr, rows, cols, n, FIRST, SECOND)
    tl.debug_barrier()  # the slots are visible to every warp
    for k in range(2, degree + 1):
        power = _streamed_product(_slot(scratch, 1 + k % 2, BLOCK), _slot(scratch, 0, BLOCK), BLOCK, CHUNK,
                                  PRECISION)
        if FIRST:
            first_poly += tl.load(coeffs_ptr + 2 * k) * power
        if SECOND:
            second_poly += tl.load(coeffs_ptr + 2 * k + 1) * power
        tl.store(_slot(scratch, 2 - k % 2, BLOCK) + tile, power)
        tl.debug_barrier()  # the new power is visible; every warp is done with the old
    return first_poly, second_poly


@triton.jit
def _newton_schulz_in_registers(a_hat, steps_ptr, num_steps, rows, cols, n,
                                WANT_INV: tl.constexpr, PRECISION: tl.constexpr):
    """`reference.coupled_newton_schulz` before the final symmetrisation: (Y, Z)."""
    # Z starts at I: the first step is one product, Y = A_hat T with T = a I + b A_hat.
    t = _add_diagonal(tl.load(steps_ptr + 1) * a_hat, tl.load(steps_ptr), rows, cols, n)
    y = tl.dot(a_hat, t, input_precision=PRECISION)
    z = t
    for step in range(1, num_steps - 1):
        z_y = tl.dot(z, y, input_precision=PRECISION)
        t = _add_diagonal(tl.load(steps_ptr + 2 * step + 1) * z_y, tl.load(steps_ptr + 2 * step), rows, cols, n)
        y = tl.dot(y, t, input_precision=PRECISION)
        z = tl.dot(t, z, input_precision=PRECISION)
    if num_steps > 1:
        last = num_steps - 1
        z_y = tl.dot(z, y, input_precision=PRECISION)
        t = _add_diagonal(tl.load(steps_ptr + 2 * last + 1) * z_y, tl.load(steps_ptr + 2 * last), rows, cols, n)
        y = tl.dot(y, t, input_precision=PRECISION)
        if WANT_INV:  # the last Z update only when the inverse is wanted
            z = tl.dot(t, z, input_precision=PRECISION)
    return y, z


@triton.jit
def _newton_schulz_streamed(a_hat, steps_ptr, num_steps, rows, cols, n, y_slot, z_slot, t_slot,
                            WANT_INV: tl.constexpr, BLOCK: tl.constexpr, CHUNK: tl.constexpr,
                            PRECISION: tl.constexpr):
    """`_newton_schulz_in_registers` with Y, Z, T in scratch slots (Z returned only with WANT_INV).

    A barrier after each store makes it visible to every warp, and one before each overwrite
    lets every warp finish reading the old value.
    """
    tile = (rows * BLOCK + cols).to(tl.int32)
    t = _add_diagonal(tl.load(steps_ptr + 1) * a_hat, tl.load(steps_ptr), rows, cols, n)
    tl.store(y_slot + tile, a_hat)
    tl.store(z_slot + tile, t)
    tl.debug_barrier()
    y = _streamed_product(y_slot, z_slot, BLOCK, CHUNK, PRECISION)
    z = t
    tl.debug_barrier()
    tl.store(y_slot + tile, y)
    tl.debug_barrier()
    for step in range(1, num_steps):
        z_y = _streamed_product(z_slot, y_slot, BLOCK, CHUNK, PRECISION)
        t = _add_diagonal(tl.load(steps_ptr + 2 * step + 1) * z_y, tl.load(steps_ptr + 2 * step), rows, cols, n)
        tl.store(t_slot + tile, t)
        tl.debug_barrier()
        y = _streamed_product(y_slot, t_slot, BLOCK, CHUNK, PRECISION)
        if WANT_INV:
            z = _streamed_product(t_slot, z_slot, BLOCK, CHUNK, PRECISION)
            tl.debug_barrier()
            tl.store(z_slot + tile, z)
        else:  # Z lives in its slot only, and its last update is skipped
            if step < num_steps - 1:
                z_next = _streamed_product(t_slot, z_slot, BLOCK, CHUNK, PRECISION)
                tl.debug_barrier()
                tl.store(z_slot + tile, z_next)
        tl.debug_barrier()  # every warp has read the old Y
        tl.store(y_slot + tile, y)
        tl.debug_barrier()
    return y, z


# ---------------------------------------------------------------------------------------
# The kernels


@triton.jit
def _polynomial_roots_kernel(
    a_ptr, a_batch_stride, a_row_stride, a_col_stride,
    coeffs_ptr, degree,
    sqrt_ptr, inv_ptr, saved_sqrt_ptr, saved_inv_ptr, norm_ptr, scratch_ptr,
    eps_hi, eps_lo, batch, n,
    PADE: tl.constexpr,
    SQRT_BY_POLYNOMIAL: tl.constexpr,
    STORE_SQRT: tl.constexpr, SAVE_SQRT: tl.constexpr,
    STORE_INV: tl.constexpr, SAVE_INV: tl.constexpr,
    BLOCK: tl.constexpr, MATRICES: tl.constexpr, STREAM: tl.constexpr, CHUNK: tl.constexpr,
    SCRATCH_SLOTS: tl.constexpr, PRECISION: tl.constexpr,
):
    """MTP (`reference.taylor_root`) or MPA (`reference.pade_root`) roots, one group of matrices per program.

    a_ptr: the input A, of shape [batch, n, n], float16/bfloat16/float32/float64, any strides.
    a_*_stride: element strides of A (batch, row, column).
    coeffs_ptr: coefficients of shape [degree + 1, 2], contiguous, compute dtype: MTP (sqrt, inverse)
        Taylor coefficients; MPA (p, q) Padé coefficients, the shorter one padded with zeros.
    degree: the highest power of Z (Taylor degree, or max of the Padé degrees), >= 1.
    sqrt_ptr, inv_ptr: the roots, of shape [batch, n, n], contiguous, A's dtype.
    saved_sqrt_ptr, saved_inv_ptr: S and Y for the backward, [batch, n, n], contiguous, compute dtype.
    norm_ptr: ||sym(A) + eps I||_F, of shape [batch], compute dtype (its dtype sets the compute dtype).
    scratch_ptr: with STREAM, workspace of shape [programs, SCRATCH_SLOTS, BLOCK, BLOCK], compute
        dtype (written before read, never initialised).
    eps_hi, eps_lo: eps as float32 + float32 (eps_lo used in float64 only).
    batch, n: the batch size and matrix size (n <= BLOCK).
    PADE: MPA (solve Q X = P, P X = Q) instead of MTP (the polynomials are the roots).
    SQRT_BY_POLYNOMIAL: compute S from its polynomial; otherwise, when saved, S = sym(A_hat Y) (one product).
    STORE_SQRT, SAVE_SQRT, STORE_INV, SAVE_INV: which of the four matrix outputs to write
        (STORE_INV is set whenever the inverse is wanted, SAVE_INV only with it).
    BLOCK: n rounded up to a power of two, at least 16 (the smallest tl.dot).
    MATRICES: matrices per program (1, or more for BLOCK = 16).
    STREAM: products stream CHUNK-wide panels from the scratch (MATRICES = 1 only).
    SCRATCH_SLOTS: BLOCK x BLOCK slots of scratch a program (4 here, 3 for Newton–Schulz).
    PRECISION: tl.dot input precision, "ieee", "tf32x3" or "tf32".
    """
    compute_dtype = norm_ptr.dtype.element_ty
    first = tl.program_id(0).to(tl.int64) * MATRICES
    index, rows, cols = _matrix_indices(first, batch, n, BLOCK, MATRICES)
    a_hat, norm = _load_normalized(a_ptr, a_batch_stride, a_row_stride, a_col_stride, index, rows, cols, batch, n,
                                   eps_hi, eps_lo, compute_dtype, False)
    z = _add_diagonal(-a_hat, 1.0, rows, cols, n)  # I - A_hat, zero on the padding

    if STREAM:
        # Slots: Z, the running power (two), A_hat.
        scratch = scratch_ptr + tl.program_id(0).to(tl.int64) * SCRATCH_SLOTS * BLOCK * BLOCK
        if SAVE_SQRT and not SQRT_BY_POLYNOMIAL:
            tl.store(_slot(scratch, 3, BLOCK) + rows * BLOCK + cols, a_hat)
        first_poly, second_poly = _polynomials_streamed(z, coeffs_ptr, degree, rows, cols, n, scratch,
                                                        PADE or SQRT_BY_POLYNOMIAL, PADE or STORE_INV, BLOCK, CHUNK,
                                                        PRECISION)
    else:
        first_poly, second_poly = _polynomials_in_registers(z, coeffs_ptr, degree, rows, cols, n,
                                                            PADE or SQRT_BY_POLYNOMIAL, PADE or STORE_INV,
                                                            PRECISION)

    if PADE:
        sqrt_hat = tl.zeros_like(z)
        inv_hat = tl.zeros_like(z)
        if SQRT_BY_POLYNOMIAL:
            sqrt_hat = _solve(second_poly, first_poly, rows, cols, n)  # Q^-1 P
        if STORE_INV:
            inv_hat = _solve(first_poly, second_poly, rows, cols, n)  # P^-1 Q
    else:
        sqrt_hat = first_poly
        inv_hat = second_poly
    if SAVE_SQRT and not SQRT_BY_POLYNOMIAL:
        # The backward needs S: one product instead of a second expansion, as torch_path does.
        if STREAM:
            tl.store(_slot(scratch, 1, BLOCK) + rows * BLOCK + cols, inv_hat)  # the power slots are free
            tl.debug_barrier()
            sqrt_hat = _streamed_product(_slot(scratch, 3, BLOCK), _slot(scratch, 1, BLOCK), BLOCK, CHUNK, PRECISION)
        else:
            sqrt_hat = tl.dot(a_hat, inv_hat, input_precision=PRECISION)
        sqrt_hat = symmetrize(sqrt_hat)

    _store_results(sqrt_hat, inv_hat, norm, index, rows, cols, batch, n,
                   sqrt_ptr, inv_ptr, saved_sqrt_ptr, saved_inv_ptr, norm_ptr,
                   STORE_SQRT, SAVE_SQRT, STORE_INV, SAVE_INV)


@triton.jit
def _newton_schulz_roots_kernel(
    a_ptr, a_batch_stride, a_row_stride, a_col_stride,
    steps_ptr, num_steps,
    sqrt_ptr, inv_ptr, saved_sqrt_ptr, saved_inv_ptr, norm_ptr, scratch_ptr,
    eps_hi, eps_lo, batch, n,
    STORE_SQRT: tl.constexpr, SAVE_SQRT: tl.constexpr,
    STORE_INV: tl.constexpr, SAVE_INV: tl.constexpr,
    BLOCK: tl.constexpr, MATRICES: tl.constexpr, STREAM: tl.constexpr, CHUNK: tl.constexpr,
    SCRATCH_SLOTS: tl.constexpr, PRECISION: tl.constexpr, TRACE_NORM: tl.constexpr,
):
    """Coupled Newton–Schulz roots (`reference.coupled_newton_schulz`, ns and scaled_ns), one group per program.

    steps_ptr: the (a, b) of each step, of shape [num_steps, 2], contiguous, compute dtype.
    num_steps: the number of steps, >= 1.
    TRACE_NORM: normalise by the trace (ns, as iSQRT-COV) instead of the Frobenius norm
    (scaled_ns); norm_ptr then receives the trace.
    Every other argument as for `_polynomial_roots_kernel`. Without STORE_INV the last Z
    update is skipped.
    """
    compute_dtype = norm_ptr.dtype.element_ty
    first = tl.program_id(0).to(tl.int64) * MATRICES
    index, rows, cols = _matrix_indices(first, batch, n, BLOCK, MATRICES)
    a_hat, norm = _load_normalized(a_ptr, a_batch_stride, a_row_stride, a_col_stride, index, rows, cols, batch, n,
                                   eps_hi, eps_lo, compute_dtype, TRACE_NORM)
    if STREAM:
        # Slots: Y, Z, T.
        scratch = scratch_ptr + tl.program_id(0).to(tl.int64) * SCRATCH_SLOTS * BLOCK * BLOCK
        y, z = _newton_schulz_streamed(a_hat, steps_ptr, num_steps, rows, cols, n, scratch,
                                       _slot(scratch, 1, BLOCK), _slot(scratch, 2, BLOCK), STORE_INV, BLOCK,
                                       CHUNK, PRECISION)
    else:
        y, z = _newton_schulz_in_registers(a_hat, steps_ptr, num_steps, rows, cols, n, STORE_INV, PRECISION)
    _store_results(symmetrize(y), symmetrize(z), norm, index, rows, cols, batch, n,
                   sqrt_ptr, inv_ptr, saved_sqrt_ptr, saved_inv_ptr, norm_ptr,
                   STORE_SQRT, SAVE_SQRT, STORE_INV, SAVE_INV)


# ---------------------------------------------------------------------------------------
# Launchers


class ForwardOutputs(NamedTuple):
    """What one forward launch wrote. sqrt / inv: the requested roots in A's dtype (else None);
    saved_sqrt / saved_inv: S and Y in the compute dtype for the backward (the same tensor as
    sqrt / inv when A is in the compute dtype; None when not needed); norm: (B, 1, 1)."""

    sqrt: torch.Tensor | None
    inv: torch.Tensor | None
    saved_sqrt: torch.Tensor | None
    saved_inv: torch.Tensor | None
    norm: torch.Tensor


def _check_input(a: torch.Tensor, want_sqrt: bool, want_inv: bool, precision: str) -> None:
    if a.dim() != 3 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"fused roots: a: expected (B, n, n), got shape {tuple(a.shape)}")
    if a.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise ValueError(f"fused roots: a: expected float16, bfloat16, float32 or float64, got {a.dtype}")
    if a.shape[-1] > MAX_N:
        raise ValueError(f"fused roots: a: n must be at most {MAX_N}, got {a.shape[-1]}")
    if not (want_sqrt or want_inv):
        raise ValueError("fused roots: want_sqrt, want_inv: at least one root must be wanted")
    if precision not in PRECISIONS:
        raise ValueError(f"fused roots: precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")


def _launch(family, a, table, table_length, want_sqrt, want_inv, need_backward, eps, precision, **flags):
    """Allocate the outputs, pick the pointers and flags, and launch one forward kernel."""
    _check_input(a, want_sqrt, want_inv, precision)
    batch, n = a.shape[0], a.shape[-1]
    compute = compute_dtype_for(a.dtype)
    same_dtype = a.dtype == compute
    new = lambda dtype: torch.empty((batch, n, n), dtype=dtype, device=a.device)  # noqa: E731
    sqrt_out = new(a.dtype) if want_sqrt else None
    inv_out = new(a.dtype) if want_inv else None
    # The backward keeps S (always) and Y (when the inverse is an output) in the compute dtype;
    # an output that already is that tensor is not written twice.
    save_sqrt = need_backward and not (want_sqrt and same_dtype)
    save_inv = need_backward and want_inv and not same_dtype
    saved_sqrt = new(compute) if save_sqrt else (sqrt_out if need_backward else None)
    saved_inv = new(compute) if save_inv else (inv_out if need_backward and want_inv else None)
    norm = torch.empty((batch, 1, 1), dtype=compute, device=a.device)
    if batch == 0 or n == 0:  # nothing to launch; the norm of an empty matrix is 0
        return ForwardOutputs(sqrt_out, inv_out, saved_sqrt, saved_inv, norm.zero_())

    dtype_name = compute_dtype_name(compute)
    precision = dot_precision(dtype_name, precision)
    eps_hi, eps_lo = eps_halves(float(eps))
    unused = norm  # a pointer that is never written (its STORE / SAVE flag is off)
    kernel = _polynomial_roots_kernel if family == "polynomial" else _newton_schulz_roots_kernel

    def run(config):  # repeatable: reads only A and the table, writes only outputs and scratch
        if config.get("KERNEL", "").startswith("tensor_cores"):
            from . import fused_roots_tc

            streamed, block = config["KERNEL"] == "tensor_cores_streamed", config["BLOCK"]
            extra, shape = [], {}
            if streamed:  # Y, Z, T as split pairs: 3 x (2 or 1) BLOCK x BLOCK float32 a matrix
                parts = 2 if precision == "tf32x3" else 1
                extra.append(torch.empty((batch, 3, parts, block, block), dtype=compute, device=a.device))
                shape["CHUNK"] = config["CHUNK"]
            tc_kernel = fused_roots_tc._newton_schulz_tc_streamed_kernel if streamed else \
                fused_roots_tc._newton_schulz_tc_kernel
            tc_kernel[(batch,)](
                a, *a.stride(), table, table_length,
                sqrt_out if want_sqrt else unused, inv_out if want_inv else unused,
                saved_sqrt if save_sqrt else unused, saved_inv if save_inv else unused, norm, *extra,
                eps_hi, eps_lo, batch, n,
                STORE_SQRT=want_sqrt, SAVE_SQRT=save_sqrt, STORE_INV=want_inv, SAVE_INV=save_inv,
                BLOCK=block, PRECISION=precision, **shape,
                num_warps=config["num_warps"], num_stages=config["num_stages"], **flags, **LAUNCH_OPTIONS,
            )
            return
        programs = triton.cdiv(batch, config["MATRICES"])
        block, slots = config["BLOCK"], config["SCRATCH_SLOTS"]
        scratch = unused
        if config["STREAM"]:  # 3-4 BLOCK x BLOCK slots a program (48-64 KiB at BLOCK 64), L1/L2-resident
            scratch = torch.empty((programs, slots, block, block), dtype=compute, device=a.device)
        kernel[(programs,)](
            a, *a.stride(),
            table, table_length,
            sqrt_out if want_sqrt else unused, inv_out if want_inv else unused,
            saved_sqrt if save_sqrt else unused, saved_inv if save_inv else unused, norm, scratch,
            eps_hi, eps_lo, batch, n,
            STORE_SQRT=want_sqrt, SAVE_SQRT=save_sqrt, STORE_INV=want_inv, SAVE_INV=save_inv,
            BLOCK=block, MATRICES=config["MATRICES"], STREAM=config["STREAM"], CHUNK=config["CHUNK"],
            SCRATCH_SLOTS=slots, PRECISION=precision,
            num_warps=config["num_warps"], num_stages=config["num_stages"],
            **flags, **LAUNCH_OPTIONS,
        )

    # The flags that change the kernel's work are part of the tuning key.
    variant = "-".join([family] + [f"{k.lower()}={int(v)}" for k, v in sorted(flags.items())]
                       + [name for name, on in (("sqrt", want_sqrt), ("inv", want_inv), ("saved", need_backward)) if on])
    candidates = candidate_configs(n, dtype_name, family, precision, interpreter=a.device.type != "cuda",
                                   arch=arch_name(a.device))
    key = tuning_key(candidates[0]["BLOCK"], dtype_name, precision, variant)
    tuned_launch(f"fused.{family}_roots", kernel, key, candidates, run, a.device)
    return ForwardOutputs(sqrt_out, inv_out, saved_sqrt, saved_inv, norm)


def taylor_roots(a, degree: int, want_sqrt: bool, want_inv: bool, need_backward: bool, eps: float = 0.0,
                 precision: str = "ieee") -> ForwardOutputs:
    """MTP roots of sym(a) + eps I, a (B, n, n) of any float dtype and strides, in one launch.

    The inverse is its own Taylor series (not an inverse of the square root); with the inverse
    only and need_backward, S = sym(A_hat Y) sqrt(||A||_F), as `torch_path` does.
    """
    if not isinstance(degree, int) or degree < 1:
        raise ValueError(f"taylor_roots: degree: expected an int >= 1, got {degree!r}")
    table = coefficient_table(zip(sqrt_taylor(degree), inv_sqrt_taylor(degree)), compute_dtype_for(a.dtype), a.device)
    return _launch("polynomial", a, table, degree, want_sqrt, want_inv, need_backward, eps, precision,
                   PADE=False, SQRT_BY_POLYNOMIAL=want_sqrt or not want_inv)


def pade_roots(a, num_degree: int, den_degree: int, want_sqrt: bool, want_inv: bool, need_backward: bool,
               eps: float = 0.0, precision: str = "ieee") -> ForwardOutputs:
    """MPA roots: S = Q(Z)^-1 P(Z), Y = P(Z)^-1 Q(Z), solved in the kernel; as `taylor_roots` otherwise."""
    if min(num_degree, den_degree) < 1:
        raise ValueError(f"pade_roots: degrees: expected ints >= 1, got ({num_degree}, {den_degree})")
    p_coeffs, q_coeffs = sqrt_pade(num_degree, den_degree)
    degree = max(num_degree, den_degree)
    pad = lambda c: tuple(c) + (0.0,) * (degree + 1 - len(c))  # noqa: E731 (0 * Z^k adds nothing)
    table = coefficient_table(zip(pad(p_coeffs), pad(q_coeffs)), compute_dtype_for(a.dtype), a.device)
    return _launch("polynomial", a, table, degree, want_sqrt, want_inv, need_backward, eps, precision,
                   PADE=True, SQRT_BY_POLYNOMIAL=want_sqrt or not want_inv)


def newton_schulz_roots(a, steps, want_sqrt: bool, want_inv: bool, need_backward: bool, eps: float = 0.0,
                        precision: str = "ieee", trace_norm: bool = False) -> ForwardOutputs:
    """Coupled Newton–Schulz roots for a schedule of (a, b) steps (ns: (1.5, -0.5) repeated;
    scaled_ns: `coefficients.scaled_ns_schedule`); both roots from one pass. trace_norm: divide
    by the trace rather than the Frobenius norm (ns, as iSQRT-COV); `norm` is then the trace."""
    steps = tuple(steps)
    if not steps:
        raise ValueError("newton_schulz_roots: steps: expected at least one (a, b) step")
    table = coefficient_table(steps, compute_dtype_for(a.dtype), a.device)
    return _launch("newton_schulz", a, table, len(steps), want_sqrt, want_inv, need_backward, eps,
                   precision, TRACE_NORM=trace_norm)


# ---------------------------------------------------------------------------------------
# For kernels/compile_report.py


def compile_specs(n: int, dtype_name: str) -> list[dict]:
    """Every kernel and launch config the launchers may use at size n (every tuning candidate),
    for `triton.compile`.

    Per method (mtp, mpa, ns / scaled_ns) and dot precision, the variant with the most live
    values: both roots, with the backward's float32 copies of a float16 input stored as well;
    the other flag sets are subsets of it. Empty when n is beyond the kernels.
    """
    if not 1 <= n <= MAX_N:
        return []
    element = {"float32": "fp32", "float64": "fp64"}[dtype_name]
    io_element = "fp16" if dtype_name == "float32" else "fp64"  # A and the roots in A's dtype
    separate = dtype_name == "float32"
    methods = {
        "mtp": ("polynomial", _polynomial_roots_kernel, {"PADE": False, "SQRT_BY_POLYNOMIAL": True}),
        "mpa": ("polynomial", _polynomial_roots_kernel, {"PADE": True, "SQRT_BY_POLYNOMIAL": True}),
        # scaled_ns's Frobenius norm; ns's trace norm (TRACE_NORM) keeps fewer values live.
        "ns": ("newton_schulz", _newton_schulz_roots_kernel, {"TRACE_NORM": False}),
    }
    specs = []
    for method, (family, fn, method_flags) in methods.items():
        for precision, config in [(precision, config) for precision in (("ieee",) if dtype_name == "float64" else PRECISIONS)
                                  for config in candidate_configs(n, dtype_name, family, precision)]:
            if config.get("KERNEL", "").startswith("tensor_cores"):
                specs.append(_tensor_core_spec(n, dtype_name, config, precision, io_element, element))
                continue
            old_archs = PRE_TENSOR_CORE_FORWARD_ARCHS.get((config["BLOCK"], dtype_name, family, precision))
            constexprs = dict(method_flags, STORE_SQRT=True, SAVE_SQRT=separate, STORE_INV=True, SAVE_INV=separate,
                              BLOCK=config["BLOCK"], MATRICES=config["MATRICES"], STREAM=config["STREAM"],
                              CHUNK=config["CHUNK"], SCRATCH_SLOTS=config["SCRATCH_SLOTS"], PRECISION=precision)
            signature = _signature(fn, constexprs, io_element, element)
            layout = f"BLOCK={config['BLOCK']},MATRICES={config['MATRICES']}" + (
                f",STREAM,CHUNK={config['CHUNK']}" if config["STREAM"] else "") + f",warps={config['num_warps']}"
            specs.append({
                "name": f"roots_forward[{method},{layout},{precision}]",
                "fn": fn, "signature": signature, "constexprs": constexprs,
                "num_warps": config["num_warps"], "num_stages": config["num_stages"],
                **({"archs": old_archs} if old_archs else {}),
            })
    return specs


def _signature(fn, constexprs: dict, io_element: str, element: str) -> dict:
    """`triton.compile` signature of a forward kernel: A and the roots in the input's element
    type, every other pointer in the compute type; strides, lengths, batch and n int32, the eps
    halves float32."""
    pointers = {"a_ptr": io_element, "sqrt_ptr": io_element, "inv_ptr": io_element}
    signature = {}
    for name in fn.arg_names:
        if name in constexprs:
            signature[name] = "constexpr"
        elif name.endswith("_ptr"):
            signature[name] = "*" + pointers.get(name, element)
        else:
            signature[name] = "fp32" if name.startswith("eps") else "i32"
    return signature


def _tensor_core_spec(n: int, dtype_name: str, config: dict, precision: str, io_element: str, element: str) -> dict:
    """The compile spec of the tensor-core Newton–Schulz kernel (kernels/fused_roots_tc.py),
    compiled only for the archs it is offered on (`spaces.TENSOR_CORE_FORWARD`)."""
    from . import fused_roots_tc
    from .spaces import TENSOR_CORE_FORWARD, TENSOR_CORE_FORWARD_STREAMED, tensor_core_archs

    streamed = config["KERNEL"] == "tensor_cores_streamed"
    kernel = fused_roots_tc._newton_schulz_tc_streamed_kernel if streamed else fused_roots_tc._newton_schulz_tc_kernel
    constexprs = dict(STORE_SQRT=True, SAVE_SQRT=True, STORE_INV=True, SAVE_INV=True, BLOCK=config["BLOCK"],
                      PRECISION=precision, TRACE_NORM=False, **({"CHUNK": config["CHUNK"]} if streamed else {}))
    signature = _signature(kernel, constexprs, io_element, element)
    layout = f"BLOCK={config['BLOCK']}" + (f",CHUNK={config['CHUNK']}" if streamed else "")
    return {"name": f"roots_forward[ns,{config['KERNEL']},{layout},warps={config['num_warps']},{precision}]",
            "fn": kernel, "signature": signature, "constexprs": constexprs,
            "num_warps": config["num_warps"], "num_stages": config["num_stages"],
            "archs": tensor_core_archs(TENSOR_CORE_FORWARD_STREAMED if streamed else TENSOR_CORE_FORWARD, n,
                                       dtype_name, precision)}
