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
            from .ops import IMPLEMENTATIONS

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
