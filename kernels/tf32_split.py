"""float32 products on the tensor cores at float32-like accuracy ("tf32x3"), with the operand
split done by the caller once per operand, not once per pass.

The 3xTF32 scheme (NVIDIA CUTLASS, "3xTF32" fast-accurate GEMM; Triton's F32DotTC pass does
the same inside one `tl.dot(..., input_precision="tf32x3")`): x = hi + lo with hi = x rounded
to TF32 (to nearest, ties away) and lo = x - hi as the MMA reads it (truncated to TF32), then
x y ~= lo_x hi_y + hi_x lo_y + hi_x hi_y, dropping lo_x lo_y (about 2^-22 of sum |x y|).
Triton's own tf32x3 re-splits both operands in every `tl.dot`; a Newton–Schulz step uses each
iterate in two products, so splitting once where the iterate is formed halves that work.

The rounding is written out in integer operations, so the Triton interpreter (which ignores
`input_precision`) computes exactly what `tritonsqrt.numerics.emulation.matmul(x, y, "tf32x3")`
does in torch, and a GPU does the same with the tensor cores.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def tf32_high(x):
    """x rounded to TF32 (cvt.rna.tf32.f32: to nearest, ties away from zero)."""
    return ((x.to(tl.int32, bitcast=True) + 0x1000) & -0x2000).to(tl.float32, bitcast=True)


@triton.jit
def tf32_low(x, high):
    """x - high as the tensor core reads it: the low 13 bits dropped (exact on a GPU, which drops
    them anyway; written out so the interpreter agrees)."""
    return ((x - high).to(tl.int32, bitcast=True) & -0x2000).to(tl.float32, bitcast=True)


@triton.jit
def split(x):
    """(hi, lo) of x: the two TF32 operands of a tf32x3 product."""
    high = tf32_high(x)
    return high, tf32_low(x, high)


@triton.jit
def split_dot(x_hi, x_lo, y_hi, y_lo, PRECISION: tl.constexpr):
    """x y from split operands: lo hi + hi lo, a NaN of that sum set to 0 (an infinite operand
    makes lo = inf - inf; the hi hi term carries the inf), + hi hi, in float32 (Triton's order).
    PRECISION other than "tf32x3": x_hi, y_hi are the operands themselves, one plain product."""
    if PRECISION == "tf32x3":
        small = tl.dot(x_lo, y_hi, input_precision="tf32")
        small = tl.dot(x_hi, y_lo, small, input_precision="tf32")
        small = tl.where(small != small, 0.0, small)
        return tl.dot(x_hi, y_hi, small, input_precision="tf32")
    else:
        return tl.dot(x_hi, y_hi, input_precision=PRECISION)


@triton.jit
def split_dot_into(x_hi, x_lo, y_hi, y_lo, total, PRECISION: tl.constexpr):
    """total + x y from split operands, accumulated in place (no second accumulator live): the
    small terms first, then hi hi. Unlike `split_dot`, a NaN of the small terms is kept (an
    infinite operand gives NaN rather than inf; either is non-finite)."""
    if PRECISION == "tf32x3":
        total = tl.dot(x_lo, y_hi, total, input_precision="tf32")
        total = tl.dot(x_hi, y_lo, total, input_precision="tf32")
        return tl.dot(x_hi, y_hi, total, input_precision="tf32")
    else:
        return tl.dot(x_hi, y_hi, total, input_precision=PRECISION)


@triton.jit
def split_if(x, PRECISION: tl.constexpr):
    """`split` for tf32x3; (x, x) otherwise (the second is unused)."""
    if PRECISION == "tf32x3":
        return split(x)
    else:
        return x, x


# ---------------------------------------------------------------------------------------
# Iterates kept in a per-program scratch as split pairs, products streamed over K from it


@triton.jit
def store_operand(slot, x, tile, BLOCK: tl.constexpr, PRECISION: tl.constexpr):
    """Write x where products read it: (hi, lo) in two consecutive BLOCK x BLOCK slots for
    tf32x3 (split once here, read by every product that uses x), else x itself."""
    if PRECISION == "tf32x3":
        high, low = split(x)
        tl.store(slot + tile, high)
        tl.store(slot + BLOCK * BLOCK + tile, low)
    else:
        tl.store(slot + tile, x)


@triton.jit
def streamed_product(x_slot, y_slot, k_end, BLOCK: tl.constexpr, CHUNK: tl.constexpr, PRECISION: tl.constexpr,
                     SYMMETRIC_Y: tl.constexpr = False):
    """X Y for operands written by `store_operand`, CHUNK columns of X (rows of Y) at a time up
    to k_end (n rounded up to CHUNK: the zero padding beyond n adds nothing, so n = 48 does
    48-deep products).

    The panels go from the scratch to shared memory without passing through registers (Triton
    pipelines loads that feed only a tl.dot in a loop, num_stages >= 2), and all three tf32x3
    terms accumulate in place in one accumulator: a NaN of the small terms is kept (an
    infinite operand gives NaN rather than inf; both are non-finite).

    SYMMETRIC_Y: Y is stored exactly symmetric (bit for bit: a transpose that differs by
    rounding is not enough, the Newton–Schulz forward then grows its antisymmetric part step by
    step), so its K panel is read as the transpose of a panel of its columns. TF32 wgmma takes
    its shared-memory operand K-major only (PTX ISA, "wgmma.mma_async": transposition is for
    16-bit types), so a row panel of Y is scattered there 4 bytes a copy; a column panel is
    K-major already and moves 16 bytes a copy (sm_90: 141 -> 103 instructions a K panel)."""
    total = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)
    return streamed_product_into(total, x_slot, y_slot, k_end, BLOCK, CHUNK, PRECISION, SYMMETRIC_Y)


@triton.jit
def streamed_product_into(total, x_slot, y_slot, k_end, BLOCK: tl.constexpr, CHUNK: tl.constexpr,
                          PRECISION: tl.constexpr, SYMMETRIC_Y: tl.constexpr):
    """total + X Y, as `streamed_product` (a sum of products in one accumulator, no pass of its own)."""
    lanes = tl.arange(0, BLOCK)
    panel = tl.arange(0, CHUNK)
    for k in range(0, k_end, CHUNK):
        k = tl.multiple_of(k, CHUNK)
        x_offsets = lanes[:, None] * BLOCK + (k + panel)[None, :]
        if SYMMETRIC_Y:
            y_offsets = x_offsets
        else:
            y_offsets = (k + panel)[:, None] * BLOCK + lanes[None, :]
        x_high = tl.load(x_slot + x_offsets)
        y_high = tl.load(y_slot + y_offsets)
        if PRECISION == "tf32x3":
            x_low = tl.load(x_slot + BLOCK * BLOCK + x_offsets)
            y_low = tl.load(y_slot + BLOCK * BLOCK + y_offsets)
            if SYMMETRIC_Y:
                y_high = tl.trans(y_high)
                y_low = tl.trans(y_low)
            total = tl.dot(x_low, y_high, total, input_precision="tf32")
            total = tl.dot(x_high, y_low, total, input_precision="tf32")
            total = tl.dot(x_high, y_high, total, input_precision="tf32")
        else:
            if SYMMETRIC_Y:
                y_high = tl.trans(y_high)
            total = tl.dot(x_high, y_high, total, input_precision=PRECISION)
    return total
