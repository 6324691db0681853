"""Tensor-core input precision, emulated in plain torch: what `precision=` does to a product.

The Triton kernels pass `precision` to every `tl.dot` of float32 operands:

- "ieee": float32 products on the FMA units (no tensor core); here, a plain float32 matmul.
- "tf32": the operands go to the tensor core unconverted (in the PTX Triton 3.9 emits for a
  64x64x64 `tl.dot` on sm_80: 64 `mma...tf32` and no `cvt.rna.tf32`; tf32x3: 192 and 32), and
  the MMA reads only the top 19 bits of each float32 (sign, 8 exponent, 10 mantissa bits): the
  low 13 bits are dropped, i.e. truncation toward zero (the TF32 format of the PTX ISA applied
  to raw float32 bits; to be confirmed on a GPU). Products of two TF32 values are exact
  in float32 (11 x 11 significant bits), so only the summation differs from a float32 matmul
  of the truncated operands; it is emulated as that matmul, in float32.
- "tf32x3": Triton's F32DotTC pass (lib/Dialect/TritonGPU/Transforms/F32DotTC.cpp,
  github.com/triton-lang/triton, the "3xTF32" trick of NVIDIA/cutlass discussion 385) rewrites
  the dot as hi = cvt.rna.tf32.f32(x) (round to nearest, ties away from zero), lo = x - hi
  (exact in float32, then truncated by the MMA like any "tf32" operand);
  small = dot(lo_a, hi_b) + dot(hi_a, lo_b), NaNs of `small` replaced by 0 (so that an
  infinite operand gives inf, not inf * 0), result = dot(hi_a, hi_b) + small. lo_a lo_b is
  dropped: the error is about 2^-22 of sum |a b|, within a few float32 ulps.

Float64 (and other non-float32) operands ignore `precision`, as the kernels do (float64 is
ieee only). No host synchronisation: element-wise bit operations and matmuls only.

`products_at(precision)` applies this to every `@` / matmul / bmm / mm inside a block, so the
torch reference (`tritonsqrt.numerics.reference`) runs at the kernels' precision without a new argument
on each of its functions; "ieee" leaves the block untouched.
"""

from __future__ import annotations

import contextlib

import torch
from torch.overrides import TorchFunctionMode

from ..constants import PRECISIONS

_LOW_13_BITS_CLEARED = -(1 << 13)  # 0xFFFFE000 as an int32: keeps sign, exponent, 10 mantissa bits
_HALF_TF32_ULP = 1 << 12  # added to the magnitude bits before truncating: round half away from zero


def _check(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")


def truncate_to_tf32(x: torch.Tensor) -> torch.Tensor:
    """What the tensor core reads from a float32 operand: the low 13 mantissa bits dropped."""
    return (x.view(torch.int32) & _LOW_13_BITS_CLEARED).view(torch.float32)


def round_to_tf32(x: torch.Tensor) -> torch.Tensor:
    """PTX `cvt.rna.tf32.f32`: nearest TF32 value, ties away from zero; inf and NaN unchanged.

    Adding half a TF32 ulp to the sign-magnitude bits and truncating rounds the magnitude
    half-up, i.e. away from zero for either sign; a carry into the exponent is the right result
    (up to +-inf past the largest TF32 value).
    """
    rounded = ((x.view(torch.int32) + _HALF_TF32_ULP) & _LOW_13_BITS_CLEARED).view(torch.float32)
    return torch.where(torch.isfinite(x), rounded, x)


def split_tf32(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi, lo) of Triton's tf32x3: hi = round_to_tf32(x), lo = x - hi as the MMA reads it."""
    hi = round_to_tf32(x)
    return hi, truncate_to_tf32(x - hi)


def matmul(a: torch.Tensor, b: torch.Tensor, precision: str = "ieee") -> torch.Tensor:
    """a @ b with the tensor-core input precision of a Triton `tl.dot(a, b, input_precision=...)`."""
    _check(precision)
    if precision == "ieee" or a.dtype != torch.float32 or b.dtype != torch.float32:
        return torch.matmul(a, b)
    if precision == "tf32":
        return torch.matmul(truncate_to_tf32(a), truncate_to_tf32(b))
    a_hi, a_lo = split_tf32(a)
    b_hi, b_lo = split_tf32(b)
    small = torch.matmul(a_lo, b_hi) + torch.matmul(a_hi, b_lo)
    small = torch.where(torch.isnan(small), torch.zeros_like(small), small)
    return torch.matmul(a_hi, b_hi) + small


class _EmulatedProducts(TorchFunctionMode):
    """Routes the matrix products of a block through `matmul` at one precision."""

    _PRODUCTS = {torch.matmul, torch.bmm, torch.mm, torch.Tensor.matmul, torch.Tensor.__matmul__,
                 torch.Tensor.bmm, torch.Tensor.mm}

    def __init__(self, precision: str):
        super().__init__()
        self.precision = precision

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self._PRODUCTS and len(args) == 2 and not kwargs:
            return matmul(args[0], args[1], self.precision)
        if func is torch.Tensor.__rmatmul__ and len(args) == 2 and not kwargs:
            return matmul(args[1], args[0], self.precision)
        return func(*args, **kwargs)


def products_at(precision: str):
    """Context manager: every matrix product inside runs at `precision` ("ieee": unchanged)."""
    _check(precision)
    return contextlib.nullcontext() if precision == "ieee" else _EmulatedProducts(precision)
