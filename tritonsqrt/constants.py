"""The names every layer shares, defined once: methods, backends, paths, precisions, and the
rule for the dtype a computation runs in."""

from __future__ import annotations

import os

import torch

METHODS = ("auto", "scaled_ns", "ns", "mpa", "mtp", "eigh")
# Methods built from matrix products only, so a Triton kernel runs them; eigh stays on torch
# (an eigendecomposition is no chain of products).
KERNEL_METHODS = ("scaled_ns", "ns", "mpa", "mtp")
BACKENDS = ("auto", "torch", "triton")  # what the user asks for
PATHS = ("torch", "fused", "tiled")  # where a resolved plan runs (tritonsqrt.paths)
# Triton tl.dot input precisions; float64 always computes in "ieee".
PRECISIONS = ("ieee", "tf32x3", "tf32")
# The fixed schedules reach float64 rounding within their 60-step cap up to about here
# (45 steps at n = 4096; 1e60 hits the cap).
MAX_CONDITION_LIMIT = 1e30


def compute_dtype_for(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other dtype (float32, bfloat16, float16) computes in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """"float64" or "float32": the compute dtype of `dtype` by name (tuning keys, schedules)."""
    return "float64" if dtype == torch.float64 else "float32"


def interpreter_on() -> bool:
    """TRITON_INTERPRET=1: Triton kernels run on CPU tensors through numpy."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
