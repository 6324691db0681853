"""The Lyapunov backward (`kernels/fused_lyapunov.py`, whose kernels stay as tuning candidates)
built for the tensor cores: one matrix per program, 4 warps (one warpgroup), tf32x3 operands
split into their TF32 parts once (`kernels/tf32_split.py`). Two forms:

- `_lyapunov_backward_tc_kernel` (BLOCK 32, 2 warps: mma.sync tiles have 16 rows, so 4 warps
  would compute every product twice): whole iterates in registers, each operand split once a
  step (B feeds four products), B^2 C formed as B (B C);
- `_lyapunov_backward_tc_streamed_kernel` (BLOCK 64, where the register form spills 150-600
  bytes on sm_90 however the step is ordered): B, C, -B C and 2 B^2 live in a per-program
  scratch as split pairs, written once a step; every product streams K panels of them into
  shared memory (cp.async, pipelined), so only B, C and one accumulator occupy registers.
  Every right operand is B or C (B^2 C as B^2 C, B^3 as B^2 B), which are kept exactly
  symmetric, so on sm_90 their panels are read as columns (`streamed_product`).
"""

from __future__ import annotations

import triton
import triton.language as tl

from .fused_lyapunov import _load_per_matrix, _root_scale
from .rounding import divide_rn, symmetrize
from .tf32_split import split_dot, split_if, store_operand, streamed_product, streamed_product_into


@triton.jit
def _product(x, y, PRECISION: tl.constexpr):
    """x y, both operands split here."""
    x_hi, x_lo = split_if(x, PRECISION)
    y_hi, y_lo = split_if(y, PRECISION)
    return split_dot(x_hi, x_lo, y_hi, y_lo, PRECISION)


@triton.jit
def _load_matrix(ptr, program, batch_stride, row_stride, col_stride, rows, cols, n):
    base = ptr + program * batch_stride
    return tl.load(base + rows * row_stride + cols * col_stride, mask=(rows < n) & (cols < n), other=0.0)


@triton.jit
def _lyapunov_backward_tc_kernel(
    sqrt_ptr, sqrt_batch_stride, sqrt_row_stride, sqrt_col_stride,
    norm_ptr, norm_batch_stride,
    inv_ptr, inv_batch_stride, inv_row_stride, inv_col_stride,
    grad_sqrt_ptr, grad_sqrt_batch_stride, grad_sqrt_row_stride, grad_sqrt_col_stride,
    grad_inv_ptr, grad_inv_batch_stride, grad_inv_row_stride, grad_inv_col_stride,
    steps_ptr, num_steps,
    out_ptr,
    batch, n,
    HAS_GRAD_SQRT: tl.constexpr,
    HAS_GRAD_INV: tl.constexpr,
    BLOCK: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """dL/dA of one matrix per program (grid = batch); arguments as `_lyapunov_backward_kernel`
    without MATRICES."""
    compute_dtype = sqrt_ptr.dtype.element_ty
    program = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    rows = lanes[:, None]
    cols = lanes[None, :]

    rhs = tl.zeros((BLOCK, BLOCK), dtype=compute_dtype)
    if HAS_GRAD_SQRT:
        rhs = symmetrize(_load_matrix(grad_sqrt_ptr, program, grad_sqrt_batch_stride, grad_sqrt_row_stride,
                                      grad_sqrt_col_stride, rows, cols, n).to(compute_dtype))
    if HAS_GRAD_INV:
        inv_mat = _load_matrix(inv_ptr, program, inv_batch_stride, inv_row_stride, inv_col_stride, rows, cols,
                               n).to(compute_dtype)
        grad_inv = symmetrize(_load_matrix(grad_inv_ptr, program, grad_inv_batch_stride, grad_inv_row_stride,
                                           grad_inv_col_stride, rows, cols, n).to(compute_dtype))
        inner = _product(inv_mat, grad_inv, PRECISION)
        rhs = rhs - _product(inner, inv_mat, PRECISION)

    norm = _load_per_matrix(norm_ptr, program, batch, norm_batch_stride, 1).to(compute_dtype)
    scale = _root_scale(norm)
    b_mat = divide_rn(_load_matrix(sqrt_ptr, program, sqrt_batch_stride, sqrt_row_stride, sqrt_col_stride, rows,
                                   cols, n).to(compute_dtype), scale)
    c_mat = divide_rn(rhs, scale)

    for step in range(num_steps):
        a = tl.load(steps_ptr + 2 * step)
        b = tl.load(steps_ptr + 2 * step + 1)
        # C <- sym(a C + 2b B (B C) - b (B C) B), B <- sym(a B + b B B^2), B^2 C as B (B C): each
        # operand split once a step (B feeds four products), 218 registers at 2 warps.
        b_hi, b_lo = split_if(b_mat, PRECISION)
        c_hi, c_lo = split_if(c_mat, PRECISION)
        b_c = split_dot(b_hi, b_lo, c_hi, c_lo, PRECISION)
        x_hi, x_lo = split_if(b_c, PRECISION)
        c_mat = a * c_mat + (2 * b) * split_dot(b_hi, b_lo, x_hi, x_lo, PRECISION)
        c_mat = symmetrize(c_mat - b * split_dot(x_hi, x_lo, b_hi, b_lo, PRECISION))
        b_sq = split_dot(b_hi, b_lo, b_hi, b_lo, PRECISION)
        s_hi, s_lo = split_if(b_sq, PRECISION)
        b_mat = symmetrize(a * b_mat + b * split_dot(b_hi, b_lo, s_hi, s_lo, PRECISION))

    grad = symmetrize(0.5 * c_mat)
    lanes = tl.arange(0, BLOCK) + (num_steps < 0).to(tl.int32)  # fresh indices (see fused_roots_tc)
    rows = lanes[:, None]
    cols = lanes[None, :]
    tl.store(out_ptr + program * n * n + rows * n + cols, grad, mask=(rows < n) & (cols < n))


@triton.jit
def _lyapunov_backward_tc_streamed_kernel(
    sqrt_ptr, sqrt_batch_stride, sqrt_row_stride, sqrt_col_stride,
    norm_ptr, norm_batch_stride,
    inv_ptr, inv_batch_stride, inv_row_stride, inv_col_stride,
    grad_sqrt_ptr, grad_sqrt_batch_stride, grad_sqrt_row_stride, grad_sqrt_col_stride,
    grad_inv_ptr, grad_inv_batch_stride, grad_inv_row_stride, grad_inv_col_stride,
    steps_ptr, num_steps,
    out_ptr,
    scratch_ptr,
    batch, n,
    HAS_GRAD_SQRT: tl.constexpr,
    HAS_GRAD_INV: tl.constexpr,
    BLOCK: tl.constexpr,
    CHUNK: tl.constexpr,
    PRECISION: tl.constexpr,
    SYMMETRIC_PANELS: tl.constexpr = True,
):
    """As `_lyapunov_backward_tc_kernel`, plus scratch_ptr: [batch, 4, PARTS, BLOCK, BLOCK] float32
    (PARTS = 2 for tf32x3, else 1), written before read; CHUNK: the K panel of the products;
    SYMMETRIC_PANELS: read the right operands' panels as columns (`streamed_product`'s
    SYMMETRIC_Y; `spaces.SYMMETRIC_PANEL_ARCHS` says where)."""
    compute_dtype = sqrt_ptr.dtype.element_ty
    program = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    rows = lanes[:, None]
    cols = lanes[None, :]
    tile = rows * BLOCK + cols
    parts: tl.constexpr = 2 if PRECISION == "tf32x3" else 1
    pair: tl.constexpr = parts * BLOCK * BLOCK
    k_end = tl.cdiv(n, CHUNK) * CHUNK  # n = 48: 48-deep products with CHUNK 16

    rhs = tl.zeros((BLOCK, BLOCK), dtype=compute_dtype)
    if HAS_GRAD_SQRT:
        rhs = symmetrize(_load_matrix(grad_sqrt_ptr, program, grad_sqrt_batch_stride, grad_sqrt_row_stride,
                                      grad_sqrt_col_stride, rows, cols, n).to(compute_dtype))
    panels: tl.constexpr = SYMMETRIC_PANELS
    if HAS_GRAD_INV:  # - Y sym(dL/dY) Y through the scratch: Y and G in slots 0 and 1, Y G in 2
        y_slot = scratch_ptr + program * 4 * pair
        g_slot = y_slot + pair
        yg_slot = g_slot + pair
        store_operand(y_slot, symmetrize(_load_matrix(inv_ptr, program, inv_batch_stride, inv_row_stride,
                                                      inv_col_stride, rows, cols, n).to(compute_dtype)),
                      tile, BLOCK, PRECISION)
        store_operand(g_slot, symmetrize(_load_matrix(grad_inv_ptr, program, grad_inv_batch_stride,
                                                      grad_inv_row_stride, grad_inv_col_stride, rows, cols,
                                                      n).to(compute_dtype)), tile, BLOCK, PRECISION)
        tl.debug_barrier()
        store_operand(yg_slot, streamed_product(y_slot, g_slot, k_end, BLOCK, CHUNK, PRECISION, panels), tile,
                      BLOCK, PRECISION)
        tl.debug_barrier()
        rhs = rhs - streamed_product(yg_slot, y_slot, k_end, BLOCK, CHUNK, PRECISION, panels)

    norm = _load_per_matrix(norm_ptr, program, batch, norm_batch_stride, 1).to(compute_dtype)
    scale = _root_scale(norm)
    b_mat = divide_rn(_load_matrix(sqrt_ptr, program, sqrt_batch_stride, sqrt_row_stride, sqrt_col_stride, rows,
                                   cols, n).to(compute_dtype), scale)
    c_mat = divide_rn(rhs, scale)

    for step in range(num_steps):
        a = tl.load(steps_ptr + 2 * step)
        b = tl.load(steps_ptr + 2 * step + 1)
        # Slots B, C, X = B C, B^2, addressed anew each step from an opaque 0 (a multiple of 16,
        # so the alignment stays known): hoisted, each slot's addresses would be a 64-bit pointer
        # per element live through the loop.
        b_slot = scratch_ptr + program * 4 * pair + (step // num_steps) * 16
        c_slot = b_slot + pair
        x_slot = c_slot + pair
        sq_slot = x_slot + pair
        tl.debug_barrier()  # every warp is done reading the previous step's slots
        store_operand(b_slot, b_mat, tile, BLOCK, PRECISION)
        store_operand(c_slot, c_mat, tile, BLOCK, PRECISION)
        tl.debug_barrier()
        # C <- sym(a C + b (2 B^2 C - (B C) B)), B <- sym(a B + b B^2 B): -B C and 2 B^2 are stored
        # (exact), so the C update's two products share one accumulator; every right operand is B
        # or C, stored exactly symmetric, so SYMMETRIC_PANELS may read their panels as columns.
        store_operand(x_slot, -streamed_product(b_slot, c_slot, k_end, BLOCK, CHUNK, PRECISION, panels), tile,
                      BLOCK, PRECISION)
        store_operand(sq_slot, 2 * streamed_product(b_slot, b_slot, k_end, BLOCK, CHUNK, PRECISION, panels), tile,
                      BLOCK, PRECISION)
        tl.debug_barrier()
        update = streamed_product(sq_slot, c_slot, k_end, BLOCK, CHUNK, PRECISION, panels)
        update = streamed_product_into(update, x_slot, b_slot, k_end, BLOCK, CHUNK, PRECISION, panels)
        c_mat = symmetrize(a * c_mat + b * update)
        b_mat = symmetrize(a * b_mat + (0.5 * b) * streamed_product(sq_slot, b_slot, k_end, BLOCK, CHUNK, PRECISION,
                                                                     panels))

    grad = symmetrize(0.5 * c_mat)
    lanes = tl.arange(0, BLOCK) + (num_steps < 0).to(tl.int32)  # fresh indices (see fused_roots_tc)
    rows = lanes[:, None]
    cols = lanes[None, :]
    tl.store(out_ptr + program * n * n + rows * n + cols, grad, mask=(rows < n) & (cols < n))
