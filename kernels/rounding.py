"""Scalar and element-wise helpers every kernel family shares: torch's rounding, and eps.

Triton's float32 '/' and `tl.sqrt` are approximate; torch's are correctly rounded, and the
kernels are tested against torch to a few ulps, so they use the `_rn` forms (which exist for
float32 only; float64 division and square root are exact already).
"""

from __future__ import annotations

import math
import struct

import triton
import triton.language as tl


@triton.jit
def divide_rn(x, y):
    """x / y correctly rounded."""
    if x.dtype == tl.float64:
        return x / y
    else:
        return tl.div_rn(x, y)


@triton.jit
def reciprocal_rn(x):
    """1 / x correctly rounded: per-matrix scalars, so that tiles multiply instead of divide
    (a correctly rounded division per element costs registers: it made small tiles spill)."""
    if x.dtype == tl.float64:
        return 1.0 / x
    else:
        return tl.div_rn(1.0, x)


@triton.jit
def sqrt_rn(x):
    """Square root correctly rounded."""
    if x.dtype == tl.float64:
        return tl.sqrt(x)
    else:
        return tl.sqrt_rn(x)


@triton.jit
def exponent_power(x):
    """2^floor(log2 x) element-wise for normal x >= 0 (the exponent bits alone): a power of two
    to divide by exactly before squaring. 0 for zero and subnormals, inf for inf and NaN."""
    if x.dtype == tl.float64:
        return (x.to(tl.int64, bitcast=True) & 0x7FF0000000000000).to(tl.float64, bitcast=True)
    else:
        return (x.to(tl.int32, bitcast=True) & 0x7F800000).to(tl.float32, bitcast=True)


@triton.jit
def symmetrize(x):
    return 0.5 * (x + tl.trans(x))


@triton.jit
def eps_value(eps_hi, eps_lo, compute_dtype: tl.constexpr):
    """eps in the compute dtype from the two float32 halves `eps_halves` made.

    Python floats reach kernels as float32, so float64 gets eps back to 48 bits from two
    halves; the casts also keep a float64 scalar (torch.compile) from promoting float32 math.
    """
    if compute_dtype == tl.float64:
        return tl.cast(eps_hi, tl.float64) + tl.cast(eps_lo, tl.float64)
    else:
        return tl.cast(eps_hi, tl.float32)


def eps_halves(eps: float) -> tuple[float, float]:
    """eps as float32 high part + float32 rest, for `eps_value`."""
    as_float32 = lambda x: struct.unpack("f", struct.pack("f", x))[0]  # noqa: E731
    try:
        high = as_float32(eps)
    except OverflowError:  # beyond float32: inf, as a float32 tensor would round it
        return math.copysign(math.inf, eps), 0.0
    return high, as_float32(eps - high)
