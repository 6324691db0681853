"""Launch plumbing shared by every kernel family: compile options, the source hash and tuning
key of a launch, and the config choice through `tritonsqrt.tuning.cache`.

A launcher builds its candidate configs (`kernels/spaces.py`) and a `run(config)` that launches
once, then calls `tuned_launch`: the cache (memory, the user's file, the shipped
`kernels/configs/<gpu>.json`) answers, or the candidates are timed once and the answer stored.
"""

from __future__ import annotations

import contextlib

import torch
import triton

from tritonsqrt.tuning import cache as tuning
from tritonsqrt.versions import version_tuple

# Fused multiply-add, as every accuracy and speed figure was measured: Triton 3.9 turns it on by
# default with a warning, and 3.10 is to default to separate multiplies and adds.
LAUNCH_OPTIONS = {"enable_fp_fusion": True}


# The ptxas of Triton 3.6 caps some tiled kernels at 80 or 128 registers and spills 8-12 bytes;
# with the hardware limit stated it uses 96-164 and spills nothing. Triton 3.9's ptxas does not
# cap them, and with the limit stated it spills in one lyapunov_update config: so only before 3.9
# (docs/compile-report.md, "Triton versions").
TILED_LAUNCH_OPTIONS = dict(LAUNCH_OPTIONS, **({"maxnreg": 255} if version_tuple(triton.__version__) < (3, 9) else {}))

# The streamed fused backward (8 warps): with the aligned pointers a launch specializes on,
# Triton 3.9's ptxas holds it to 128 registers on sm_80 and spills 52 bytes (ieee); with the
# hardware limit stated it takes 151-252 registers and spills nothing on sm_80 or sm_90.
STREAMED_BACKWARD_LAUNCH_OPTIONS = dict(LAUNCH_OPTIONS, maxnreg=255)

_SOURCE_HASHES: dict = {}


def source_hash(name: str, kernel) -> str:
    """The hash of a kernel's source and the @triton.jit helpers it calls, once per process and
    kernel name: a stored config is used only while the code it was tuned on is unchanged."""
    if name not in _SOURCE_HASHES:
        _SOURCE_HASHES[name] = tuning.kernel_source_hash(kernel)
    return _SOURCE_HASHES[name]


def dot_precision(dtype_name: str, precision: str) -> str:
    """tf32 has no float64 form: float64 products are always exact-input ("ieee")."""
    return "ieee" if dtype_name == "float64" else precision


def tuning_key(n_bucket: int, dtype_name: str, precision: str, variant: str, batch_bucket: int | None = None) -> dict:
    """What a stored config is keyed by besides the kernel: the size bucket (BLOCK for the fused
    kernels, `tuning.size_bucket(n)` for the tiled), dtype, dot precision, the flags that
    change the kernel's work and, for the tiled kernels, `tuning.batch_bucket(batch)`."""
    key = {"n": n_bucket, "dtype": dtype_name, "precision": precision, "variant": variant}
    if batch_bucket is not None:
        key["batch"] = batch_bucket
    return key


def tuned_launch(name: str, kernel, key: dict, candidates: list, run, device) -> None:
    """Choose the config of one launch (cached, shipped, or timed now) and launch with it.

    name: the kernel's name in the cache ("fused.newton_schulz_roots", "tiled.product", ...);
    run(config): launches once, repeatable (reads its inputs, writes only outputs and scratch).
    """
    run(tuning.select_config(name, source_hash(name, kernel), key, candidates, run, device=device))


def _scratch(size: int, alignment: int, stream) -> torch.Tensor:
    # Triton asks per launch, on the launch's stream; under CUDA-graph capture torch serves it from
    # the graph's pool, so a replay finds the same address.
    return torch.empty(size, dtype=torch.int8, device="cuda")


@contextlib.contextmanager
def descriptor_scratch():
    """Global scratch for the tensor descriptors a kernel makes itself (`tile_blocks._descriptor`):
    Triton takes it from the allocator of `triton.set_allocator`. An allocator the caller has set
    is used; otherwise one backed by torch is set for this launch only (Triton keeps it in a context
    variable, reset afterwards), so the process's own setting is left as it was."""
    from triton.runtime import _allocation

    current = _allocation._allocator
    if not isinstance(current.get(), _allocation.NullAllocator):
        yield
        return
    token = current.set(_scratch)
    try:
        yield
    finally:
        current.reset(token)
