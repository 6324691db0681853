"""Coupled Newton–Schulz roots (ns, scaled_ns; `method="auto"` on CUDA) in one launch built for
the tensor cores: one matrix per program, one warpgroup (4 warps: full-width 64x64x8 wgmma on
sm_90), and with tf32x3 every operand split into its TF32 parts once (`kernels/tf32_split.py`),
not once per pass. Two forms:

- `_newton_schulz_tc_kernel`: whole iterates in registers (sm_90 at BLOCK 64: 254 registers);
- `_newton_schulz_tc_streamed_kernel`: Y, Z, T in a per-program scratch as split pairs, written
  once a step, every product streaming K panels of them into shared memory up to n (so n = 48
  does 48-deep products); 198-206 registers, and spill-free on sm_80 where the register form
  spills 32 bytes.

Same algorithm, inputs and outputs as `_newton_schulz_roots_kernel` (`kernels/fused_roots.py`,
kept as a tuning candidate). What differs besides the products is register economy, which
decides how many programs share an SM (docs/fused-kernels.md, "Tensor-core kernels"):
- indices are int32 tensors and each output is addressed from one scalar base pointer, so no
  64-bit offset per element lives through the iteration or the stores (those spilled 400-500
  bytes around the loop at 255 registers);
- Y, T and Z are split again for their second product (an opaque + 0.0 keeps the compiler from
  reusing the first split), so no iterate's TF32 parts stay live between its two products;
- the roots are unscaled and stored one at a time.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .fused_roots import _add_diagonal, _load_normalized, _unscale
from .rounding import symmetrize
from .tf32_split import split_dot, split_if, store_operand, streamed_product


@triton.jit
def _store_root(ptr, value, program, rows, cols, n):
    """Store one (BLOCK, BLOCK) root of matrix `program` into a contiguous (batch, n, n) tensor."""
    base = ptr + program * n * n  # one 64-bit address; the per-element part is int32
    tl.store(base + rows * n + cols, value.to(ptr.dtype.element_ty), mask=(rows < n) & (cols < n))


@triton.jit
def _newton_schulz_tc_kernel(
    a_ptr, a_batch_stride, a_row_stride, a_col_stride,
    steps_ptr, num_steps,
    sqrt_ptr, inv_ptr, saved_sqrt_ptr, saved_inv_ptr, norm_ptr,
    eps_hi, eps_lo, batch, n,
    STORE_SQRT: tl.constexpr, SAVE_SQRT: tl.constexpr,
    STORE_INV: tl.constexpr, SAVE_INV: tl.constexpr,
    BLOCK: tl.constexpr, PRECISION: tl.constexpr, TRACE_NORM: tl.constexpr,
):
    """One matrix per program (grid = batch); arguments as `_newton_schulz_roots_kernel`,
    without the scratch and the MATRICES / STREAM / CHUNK settings."""
    compute_dtype = norm_ptr.dtype.element_ty
    program = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    rows = lanes[:, None]
    cols = lanes[None, :]
    index = program + tl.zeros((1, 1), dtype=tl.int64)
    a_hat, norm = _load_normalized(a_ptr, a_batch_stride, a_row_stride, a_col_stride, index, rows, cols, batch, n,
                                   eps_hi, eps_lo, compute_dtype, TRACE_NORM)

    # Z starts at I: the first step is one product, Y = A_hat T with T = a I + b A_hat.
    t = _add_diagonal(tl.load(steps_ptr + 1) * a_hat, tl.load(steps_ptr), rows, cols, n)
    a_hi, a_lo = split_if(a_hat, PRECISION)
    t_hi, t_lo = split_if(t, PRECISION)
    y = split_dot(a_hi, a_lo, t_hi, t_lo, PRECISION)
    z = t
    for step in range(1, num_steps):
        opaque_zero = (step // num_steps).to(compute_dtype)  # 0 for every step, unknown at compile time
        y_hi, y_lo = split_if(y, PRECISION)
        z_hi, z_lo = split_if(z, PRECISION)
        z_y = split_dot(z_hi, z_lo, y_hi, y_lo, PRECISION)
        t = _add_diagonal(tl.load(steps_ptr + 2 * step + 1) * z_y, tl.load(steps_ptr + 2 * step), rows, cols, n)
        y_hi, y_lo = split_if(y + opaque_zero, PRECISION)
        t_hi, t_lo = split_if(t, PRECISION)
        y = split_dot(y_hi, y_lo, t_hi, t_lo, PRECISION)
        if STORE_INV or step < num_steps - 1:  # the last Z update only when the inverse is wanted
            t_hi, t_lo = split_if(t + opaque_zero, PRECISION)
            z_hi, z_lo = split_if(z + opaque_zero, PRECISION)
            z = split_dot(t_hi, t_lo, z_hi, z_lo, PRECISION)

    # Fresh indices for the stores (num_steps < 0 is false, which the compiler cannot know): the
    # loop's own would be kept alive through it and, at 255 registers, spilled.
    _store_roots(y, z, norm, program, n, num_steps, sqrt_ptr, inv_ptr, saved_sqrt_ptr, saved_inv_ptr,
                 BLOCK, STORE_SQRT, SAVE_SQRT, STORE_INV, SAVE_INV)
    tl.store(norm_ptr + index, norm)


@triton.jit
def _store_roots(y, z, norm, program, n, num_steps, sqrt_ptr, inv_ptr, saved_sqrt_ptr, saved_inv_ptr,
                 BLOCK: tl.constexpr, STORE_SQRT: tl.constexpr, SAVE_SQRT: tl.constexpr,
                 STORE_INV: tl.constexpr, SAVE_INV: tl.constexpr):
    """Unscale and store the roots one at a time, from fresh indices (see `_newton_schulz_tc_kernel`)."""
    lanes = tl.arange(0, BLOCK) + (num_steps < 0).to(tl.int32)
    rows = lanes[:, None]
    cols = lanes[None, :]
    if STORE_SQRT or SAVE_SQRT:
        sqrt_mat = _unscale(symmetrize(y), norm, rows, cols, False)
        if STORE_SQRT:
            _store_root(sqrt_ptr, sqrt_mat, program, rows, cols, n)
        if SAVE_SQRT:
            _store_root(saved_sqrt_ptr, sqrt_mat, program, rows, cols, n)
    if STORE_INV or SAVE_INV:
        inv_mat = _unscale(symmetrize(z), norm, rows, cols, True)
        if STORE_INV:
            _store_root(inv_ptr, inv_mat, program, rows, cols, n)
        if SAVE_INV:
            _store_root(saved_inv_ptr, inv_mat, program, rows, cols, n)


@triton.jit
def _newton_schulz_tc_streamed_kernel(
    a_ptr, a_batch_stride, a_row_stride, a_col_stride,
    steps_ptr, num_steps,
    sqrt_ptr, inv_ptr, saved_sqrt_ptr, saved_inv_ptr, norm_ptr, scratch_ptr,
    eps_hi, eps_lo, batch, n,
    STORE_SQRT: tl.constexpr, SAVE_SQRT: tl.constexpr,
    STORE_INV: tl.constexpr, SAVE_INV: tl.constexpr,
    BLOCK: tl.constexpr, CHUNK: tl.constexpr, PRECISION: tl.constexpr, TRACE_NORM: tl.constexpr,
):
    """As `_newton_schulz_tc_kernel`, plus scratch_ptr: [batch, 3, PARTS, BLOCK, BLOCK] float32
    (PARTS = 2 for tf32x3, else 1), written before read; CHUNK: the K panel of the products."""
    compute_dtype = norm_ptr.dtype.element_ty
    program = tl.program_id(0).to(tl.int64)
    lanes = tl.arange(0, BLOCK)
    rows = lanes[:, None]
    cols = lanes[None, :]
    index = program + tl.zeros((1, 1), dtype=tl.int64)
    a_hat, norm = _load_normalized(a_ptr, a_batch_stride, a_row_stride, a_col_stride, index, rows, cols, batch, n,
                                   eps_hi, eps_lo, compute_dtype, TRACE_NORM)
    parts: tl.constexpr = 2 if PRECISION == "tf32x3" else 1
    pair: tl.constexpr = parts * BLOCK * BLOCK
    k_end = tl.cdiv(n, CHUNK) * CHUNK
    tile = rows * BLOCK + cols

    y_slot = scratch_ptr + program * 3 * pair
    z_slot = y_slot + pair
    t = _add_diagonal(tl.load(steps_ptr + 1) * a_hat, tl.load(steps_ptr), rows, cols, n)
    store_operand(y_slot, a_hat, tile, BLOCK, PRECISION)
    store_operand(z_slot, t, tile, BLOCK, PRECISION)
    tl.debug_barrier()
    y = streamed_product(y_slot, z_slot, k_end, BLOCK, CHUNK, PRECISION)
    z = t
    for step in range(1, num_steps):
        # Slot addresses formed anew each step from an opaque 0, a multiple of 16 so that the
        # alignment stays known: hoisted, they are a 64-bit pointer per element and slot.
        y_slot = scratch_ptr + program * 3 * pair + (step // num_steps) * 16
        z_slot = y_slot + pair
        t_slot = z_slot + pair
        tl.debug_barrier()  # every warp is done reading the slots about to be overwritten
        store_operand(y_slot, y, tile, BLOCK, PRECISION)
        store_operand(z_slot, z, tile, BLOCK, PRECISION)
        tl.debug_barrier()
        z_y = streamed_product(z_slot, y_slot, k_end, BLOCK, CHUNK, PRECISION)
        t = _add_diagonal(tl.load(steps_ptr + 2 * step + 1) * z_y, tl.load(steps_ptr + 2 * step), rows, cols, n)
        store_operand(t_slot, t, tile, BLOCK, PRECISION)
        tl.debug_barrier()
        y = streamed_product(y_slot, t_slot, k_end, BLOCK, CHUNK, PRECISION)
        if STORE_INV or step < num_steps - 1:  # the last Z update only when the inverse is wanted
            z = streamed_product(t_slot, z_slot, k_end, BLOCK, CHUNK, PRECISION)
    _store_roots(y, z, norm, program, n, num_steps, sqrt_ptr, inv_ptr, saved_sqrt_ptr, saved_inv_ptr,
                 BLOCK, STORE_SQRT, SAVE_SQRT, STORE_INV, SAVE_INV)
    tl.store(norm_ptr + index, norm)
