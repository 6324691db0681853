"""The routing rules: which path a plan runs on, and why not Triton when it cannot.

`tritonsqrt.plan.resolve` asks once per call; the Plan then names its path ("torch", "fused"
or "tiled") and nothing downstream decides again. Triton runs CUDA tensors when it imports
and a kernel covers the method; under TRITON_INTERPRET=1 it also runs CPU tensors (how the
tests reach it). Sizes up to `max_kernel_n()` take the fused kernels, larger ones the tiled.
"""

from __future__ import annotations

import torch

from ..constants import KERNEL_METHODS, interpreter_on  # noqa: F401 (interpreter_on: callers read it here)


try:
    import triton  # noqa: F401

    _TRITON_IMPORT_ERROR = None
except Exception as error:  # not installed (macOS, Windows) or broken: the torch path still works
    _TRITON_IMPORT_ERROR = error


def triton_available() -> bool:
    return _TRITON_IMPORT_ERROR is None


def triton_import_problem() -> str | None:
    """Why `import triton` failed, naming the real cause (a missing dependency of an installed
    Triton is not "Triton is not installed"), or None when it imports."""
    error = _TRITON_IMPORT_ERROR
    if error is None:
        return None
    if isinstance(error, ModuleNotFoundError) and error.name == "triton":
        return "Triton is not installed (pip install triton; Linux only)"
    missing = f" (pip install {error.name})" if isinstance(error, ModuleNotFoundError) and error.name else ""
    return f"Triton is installed but failed to import: {type(error).__name__}: {error}{missing}"


def interpreter_problem() -> str | None:
    """Why the Triton interpreter cannot run our kernels here, or None.

    Triton 3.6's interpreter passes runtime scalars as one-element arrays, which numpy 2.4 no
    longer turns into Python numbers: every kernel with a runtime-bound loop fails with
    "only 0-dimensional arrays can be converted". Measured with Triton 3.6.0 (numpy 2.4.6 fails,
    2.3.5 works) and 3.9.0 (both work).
    """
    try:
        import numpy
    except ImportError:
        return "Triton's interpreter (TRITON_INTERPRET=1) needs numpy: pip install numpy"

    from ..versions import version_tuple

    if version_tuple(triton.__version__) < (3, 7) and version_tuple(numpy.__version__) >= (2, 4):
        return (f"the interpreter of Triton {triton.__version__} fails with numpy {numpy.__version__}: "
                "install numpy<2.4 or a newer Triton")
    return None


def kernel_methods() -> frozenset[str]:
    """Methods with a Triton forward (kernels/fused_roots.py, kernels/tiled.py) and backward
    (kernels/fused_lyapunov.py, kernels/tiled.py); ns's backward is torch products on every path."""
    return frozenset(KERNEL_METHODS)


def max_kernel_n() -> int:
    """Largest n the fused kernels take: a whole matrix and its iterates in one program.

    The forward kernels (kernels/fused_roots.py, MAX_N) stop at 64: at n = 128 every variant
    spills registers or exceeds shared memory (docs/fused-kernels.md).
    """
    return 64


def unsupported_reason(device: torch.device | str, plan, forced: bool) -> str | None:
    """None when the Triton kernels can run this plan on this device, else why not (for the
    error of a forced backend, for `Plan.reason` and `tritonsqrt info`). From the device alone:
    `auto_method` and `info` describe devices this process may not have."""
    device = torch.device(device)
    if not triton_available():
        return triton_import_problem()
    if device.type == "cpu" and not forced:
        return "CPU tensors use the torch path unless backend='triton' (with TRITON_INTERPRET=1)"
    if device.type != "cuda" and not (device.type == "cpu" and interpreter_on()):
        return f"tensors on {device.type} need CUDA, or TRITON_INTERPRET=1 for CPU tensors"
    if device.type == "cpu" and interpreter_problem():
        return interpreter_problem()
    if plan.method not in kernel_methods():
        return f"no Triton kernel for method {plan.method!r}"
    return None


def path_for(method: str, n: int, backend: str) -> str:
    """The path of a plan whose backend is decided: "torch", or for "triton" the kernel family
    by size, "fused" (one program per matrix, one launch per direction) or "tiled" (a GEMM
    chain). A method without a kernel stays on torch."""
    if backend == "torch" or method not in kernel_methods():
        return "torch"
    return kernel_family(n)


def kernel_family(n: int) -> str:
    """"fused" up to `max_kernel_n()`, "tiled" above it: the size rule of `path_for`."""
    return "fused" if n <= max_kernel_n() else "tiled"
