"""The Lyapunov backward (`_lyapunov_backward_kernel` of `kernels/fused_lyapunov.py`, which
stays as a tuning candidate) built for the tensor cores: one matrix per program, 4 warps,
whole iterates in registers, tf32x3 operands split where each product uses them
(`kernels/tf32_split.py`), the products of a step ordered so that C dies before B C B is
formed and at most three iterates are live besides the product's operands."""

from __future__ import annotations

import triton
import triton.language as tl

from .fused_lyapunov import _load_per_matrix, _root_scale
from .rounding import divide_rn, symmetrize
from .tf32_split import split_dot, split_dot_into, split_if


@triton.jit
def _product(x, y, opaque_zero, PRECISION: tl.constexpr):
    """x y with both operands split here; + opaque_zero keeps the compiler from reusing a split
    made for another product, which would keep its TF32 parts live in registers."""
    x_hi, x_lo = split_if(x + opaque_zero, PRECISION)
    y_hi, y_lo = split_if(y + opaque_zero, PRECISION)
    return split_dot(x_hi, x_lo, y_hi, y_lo, PRECISION)


@triton.jit
def _product_into(x, y, total, opaque_zero, PRECISION: tl.constexpr):
    """total + x y, both operands split here (see `_product`)."""
    x_hi, x_lo = split_if(x + opaque_zero, PRECISION)
    y_hi, y_lo = split_if(y + opaque_zero, PRECISION)
    return split_dot_into(x_hi, x_lo, y_hi, y_lo, total, PRECISION)


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
    zero = (num_steps < 0).to(compute_dtype)  # 0, unknown to the compiler

    rhs = tl.zeros((BLOCK, BLOCK), dtype=compute_dtype)
    if HAS_GRAD_SQRT:
        rhs = symmetrize(_load_matrix(grad_sqrt_ptr, program, grad_sqrt_batch_stride, grad_sqrt_row_stride,
                                      grad_sqrt_col_stride, rows, cols, n).to(compute_dtype))
    if HAS_GRAD_INV:
        inv_mat = _load_matrix(inv_ptr, program, inv_batch_stride, inv_row_stride, inv_col_stride, rows, cols,
                               n).to(compute_dtype)
        grad_inv = symmetrize(_load_matrix(grad_inv_ptr, program, grad_inv_batch_stride, grad_inv_row_stride,
                                           grad_inv_col_stride, rows, cols, n).to(compute_dtype))
        inner = _product(inv_mat, grad_inv, zero, PRECISION)
        rhs = rhs - _product(inner, inv_mat, zero, PRECISION)

    norm = _load_per_matrix(norm_ptr, program, batch, norm_batch_stride, 1).to(compute_dtype)
    scale = _root_scale(norm)
    b_mat = divide_rn(_load_matrix(sqrt_ptr, program, sqrt_batch_stride, sqrt_row_stride, sqrt_col_stride, rows,
                                   cols, n).to(compute_dtype), scale)
    c_mat = divide_rn(rhs, scale)

    for step in range(num_steps):
        a = tl.load(steps_ptr + 2 * step)
        b = tl.load(steps_ptr + 2 * step + 1)
        opaque_zero = (step // num_steps).to(compute_dtype)
        # C <- sym(a C + 2b B (B C) - b (B C) B), B <- sym(a B + b B B^2): B^2 C as B (B C), so C
        # dies after its one product, and each product accumulates onto its sum in place.
        b_c = _product(b_mat, c_mat, opaque_zero, PRECISION)
        c_mat = _product_into((2 * b) * b_mat, b_c, a * c_mat, opaque_zero, PRECISION)
        c_mat = symmetrize(_product_into((-b) * b_c, b_mat, c_mat, opaque_zero, PRECISION))
        b_sq = _product(b_mat, b_mat, opaque_zero, PRECISION)
        b_mat = symmetrize(_product_into(b * b_mat, b_sq, a * b_mat, opaque_zero, PRECISION))

    grad = symmetrize(0.5 * c_mat)
    lanes = tl.arange(0, BLOCK) + (num_steps < 0).to(tl.int32)  # fresh indices (see fused_roots_tc)
    rows = lanes[:, None]
    cols = lanes[None, :]
    tl.store(out_ptr + program * n * n + rows * n + cols, grad, mask=(rows < n) & (cols < n))
