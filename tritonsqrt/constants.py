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
# CUDA float32 takes tf32x3 products from this n up (README "Accuracy", "GPU default precision"):
# over the wide check (`tritonsqrt check --seeds 3 --spectra ...`, emulated) tf32x3 holds the
# table's targets with >= 2.5x margin from n = 12 on, and from n = 16 on its worst error per n over
# every spectrum is within 1.35x of ieee's (10 draws); below, up to 2.75x (n = 8) and it misses
# targets ieee meets (n = 2, kappa 1e4: d sqrtm 1.17x the target; n = 8, kappa 1e6: 3.1x, ieee 0.96x).
TF32X3_MIN_N = 16
# The fixed schedules reach float64 rounding within their 60-step cap up to about here
# (45 steps at n = 4096; 1e60 hits the cap).
MAX_CONDITION_LIMIT = 1e30


def compute_dtype_for(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other dtype (float32, bfloat16, float16) computes in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def default_precision(device_type: str, n: int, compute_dtype: torch.dtype) -> str:
    """The `tl.dot` input precision a call gets when it names none (an explicit one always wins).

    float64 and CPU: "ieee" (float64 has no other; on CPU nothing runs on tensor cores, and
    emulating them would only be slower). CUDA float32: "tf32x3" for n >= TF32X3_MIN_N, where
    it is as accurate as "ieee" on the wide check, and "ieee" below, where it is not.
    """
    if compute_dtype == torch.float64 or device_type != "cuda":
        return "ieee"
    return "tf32x3" if n >= TF32X3_MIN_N else "ieee"


def dtype_name(dtype: torch.dtype) -> str:
    """"float64" or "float32": the compute dtype of `dtype` by name (tuning keys, schedules)."""
    return "float64" if dtype == torch.float64 else "float32"


def interpreter_on() -> bool:
    """TRITON_INTERPRET=1: Triton kernels run on CPU tensors through numpy."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
