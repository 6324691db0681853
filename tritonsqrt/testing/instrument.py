"""Counting what a call really does: matrix products on the torch path, kernel launches.

Both counters wrap the execution path (torch's dispatcher, Triton's launch), so they see what
ran rather than what the code seems to say. Tests and the perf gate share them.
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_MATMUL_OPS = {"mm", "bmm", "matmul", "addmm", "baddbmm", "addbmm", "dot", "mv", "addmv"}
_LINALG_OPS = {"linalg_solve_ex", "linalg_solve", "linalg_lu_factor_ex", "linalg_lu_solve", "linalg_inv_ex",
               "linalg_eigh", "_linalg_eigh", "linalg_cholesky_ex", "_linalg_solve_ex", "lu_unpack",
               "linalg_qr", "cholesky_solve", "triangular_solve", "linalg_solve_triangular"}


@dataclasses.dataclass
class OpCounts:
    matmuls: int = 0  # batched products count once per call (= once per matrix of the batch)
    linalg: int = 0  # solves, factorisations, eigendecompositions
    names: list = dataclasses.field(default_factory=list)


class _CountingMode(TorchDispatchMode):
    def __init__(self, counts: OpCounts):
        super().__init__()
        self.counts = counts

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if func.namespace == "tritonsqrt":
            # Our custom ops are single opaque nodes: run their Python body so we count inside.
            from ..paths.custom_ops import IMPLEMENTATIONS

            with self:  # the mode is popped while its handler runs: push it back for the body
                return IMPLEMENTATIONS[name](*args, **(kwargs or {}))
        if name in _MATMUL_OPS:
            self.counts.matmuls += 1
            self.counts.names.append(name)
        elif name in _LINALG_OPS:
            self.counts.linalg += 1
            self.counts.names.append(name)
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def count_torch_ops():
    """with count_torch_ops() as counts: ... -> counts.matmuls, counts.linalg (forward and backward)."""
    counts = OpCounts()
    with _CountingMode(counts):
        yield counts


@dataclasses.dataclass(eq=False)  # identity: nested contexts are told apart by object
class LaunchCounts:
    launches: int = 0
    names: list = dataclasses.field(default_factory=list)


_active_launch_counts: list = []
_original_runs: dict = {}


def _launch_classes() -> list:
    """Triton's launch entry points: `kernel[grid](...)` calls `.run` on one of these
    (compiled JITFunction, or the interpreter's InterpretedFunction under TRITON_INTERPRET=1);
    autotuners and heuristics wrappers end in the same `.run`."""
    from triton.runtime import jit

    classes = [jit.JITFunction]
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:  # an interpreter-less build
        pass
    else:
        classes.append(InterpretedFunction)
    return classes


def _counting_run(original, returns_kernel: bool):
    def run(self, *args, grid, warmup, **kwargs):
        result = original(self, *args, grid=grid, warmup=warmup, **kwargs)
        # warmup compiles without launching; a compiled run that returns no kernel did not
        # launch (asynchronous compilation); the interpreter's run returns nothing but ran.
        if not warmup and (result is not None or not returns_kernel):
            name = getattr(getattr(self, "fn", None), "__name__", None) or repr(self)
            for counts in _active_launch_counts:
                counts.launches += 1
                counts.names.append(name)
        return result

    return run


@contextlib.contextmanager
def count_launches():
    """with count_launches() as counts: ... -> counts.launches, counts.names (Triton kernels run).

    Wraps Triton's own launch method for the duration, so it sees every launch whoever makes
    it; contexts may nest (each counts what ran inside it).
    """
    counts = LaunchCounts()
    if not _active_launch_counts:
        for cls in _launch_classes():
            _original_runs[cls] = cls.__dict__["run"]
            cls.run = _counting_run(cls.__dict__["run"], returns_kernel=cls.__name__ == "JITFunction")
    _active_launch_counts.append(counts)
    try:
        yield counts
    finally:
        _active_launch_counts.remove(counts)
        if not _active_launch_counts:
            for cls, original in _original_runs.items():
                cls.run = original
            _original_runs.clear()
