"""Every implementation the benchmarks time, as `Provider`s: a name and a function of A per op.

tritonsqrt with each method; the competitors (official MPA-Lya and MTP-Lya, iSQRT-COV's
trace-normalised Newton–Schulz with autograd, eigh with autograd), all from
`tritonsqrt.perf.competitors` so the benchmark and the tests time the same code; our torch path
eager (`torch:scaled_ns`: the same method as chains of cuBLAS products and element-wise kernels,
what the Triton kernels are measured against) and under torch.compile.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from typing import Callable

import torch

from . import competitors
from tritonsqrt.plan import METHODS, resolve

from .cases import OPS, ROOT_OPS, public_op, root_order

# The gate divides our time by this provider's (see docs/perf.md, "The gate").
ANCHOR = "isqrt-cov:ns5"


@dataclasses.dataclass(frozen=True)
class Provider:
    name: str
    make: Callable[[str], Callable[[torch.Tensor], torch.Tensor]]  # op -> (A -> root)
    kind: str  # "tritonsqrt", "reference", "competitor" or "compiled"
    # Whether the op runs without host synchronisation (then it can be captured in a CUDA
    # graph): torch.linalg.solve / inv / eigh check their info flags on the host.
    graph_safe: Callable[[str, str], bool] = lambda op, backend: True  # (op, backend) -> bool
    ops: tuple[str, ...] | None = OPS  # the op names it computes (perf.cases); None: every one

    def supports(self, op: str) -> bool:
        return self.ops is None or op in self.ops

    def backend(self, a: torch.Tensor) -> str:
        """Where the arithmetic runs for input `a`: "torch", "triton" or "torch.compile"."""
        if self.kind == "tritonsqrt":
            return resolve(a, self.name.split(":", 1)[1], "auto").backend
        return "torch.compile" if self.kind == "compiled" else "torch"

    def detail(self, a: torch.Tensor) -> str:
        if self.kind == "tritonsqrt":
            return resolve(a, self.name.split(":", 1)[1], "auto").describe()
        return ""


def _inverse(op: str) -> bool:
    if op not in ("sqrtm", "inv_sqrtm"):
        raise ValueError(f"op: expected 'sqrtm' or 'inv_sqrtm', got {op!r}")
    return op == "inv_sqrtm"


def _in_float32(fn):
    """The competitors compute in float32 or float64: a bf16 user upcasts and casts back."""

    def wrapped(a):
        if a.dtype in (torch.float32, torch.float64):
            return fn(a)
        return fn(a.float()).to(a.dtype)

    return wrapped


def _ours(method: str) -> Provider:
    def make(op):
        fn = public_op(op)
        return lambda a: fn(a, method=method)

    def graph_safe(op, backend):
        # On the torch path mpa solves with torch.linalg.solve and eigh calls eigh: both sync.
        return method not in ("eigh", "mpa") or backend == "triton"

    return Provider(f"tritonsqrt:{method}", make, "tritonsqrt", graph_safe, ops=None)


def _torch_reference(method: str) -> Provider:
    def make(op):
        fn = public_op(op)
        return lambda a: fn(a, method=method, backend="torch")

    return Provider(f"torch:{method}", make, "reference", lambda op, backend: method not in ("eigh", "mpa"), ops=None)


def _official(method: str) -> Provider:
    def make(op):
        inverse = _inverse(op)
        return _in_float32(lambda a: competitors.official_lya(a, method, inverse))

    # mpa solves; the mtp inverse inverts; only the mtp square root is sync-free.
    return Provider(f"official:{method}-lya", make, "competitor",
                    lambda op, backend: method == "mtp" and op == "sqrtm")


def _isqrt_cov() -> Provider:
    # iSQRT-COV's Sqrtm (MPNCOV.py of github.com/jiangtaoxie/fast-MPN-COV): trace pre-normalisation,
    # 5 classical coupled steps, sqrt(trace) post-compensation, autograd through the iteration
    # (what its hand-written backward computes); tests/test_isqrt_cov.py holds it to the paper.
    def make(op):
        inverse = _inverse(op)
        return _in_float32(lambda a: competitors.isqrt_cov_newton_schulz(a, 5, inverse))

    return Provider(ANCHOR, make, "competitor")


def _eigh_autograd() -> Provider:
    def make(op):
        inverse = _inverse(op)
        return _in_float32(lambda a: competitors.eigh_autograd(a, inverse))

    return Provider("eigh-autograd", make, "competitor", lambda op, backend: False)


def _compiled(method: str) -> Provider:
    def make(op):
        import torch._dynamo

        # A fresh cache per case: the lambdas share one code object, and dynamo stops
        # recompiling it after a few shapes (falling back to eager without saying so).
        torch._dynamo.reset()
        fn = public_op(op)
        return torch.compile(lambda a: fn(a, method=method, backend="torch"))

    return Provider(f"compiled:{method}", make, "compiled", lambda op, backend: method not in ("eigh", "mpa"),
                    ops=None)


def _eigh_inverse_root() -> Provider:
    """Shampoo's eigendecomposition route for A^(-1/p), beside tritonsqrt.inv_root."""
    def make(op):
        p, _ = root_order(op)
        return _in_float32(lambda a: competitors.eigh_inverse_root(a, p))

    return Provider("eigh-inv-root", make, "competitor", lambda op, backend: False, ops=ROOT_OPS)


PROVIDERS = tuple(
    [_ours(m) for m in METHODS]
    + [_torch_reference("scaled_ns"), _official("mpa"), _official("mtp"), _isqrt_cov(), _eigh_autograd(),
       _eigh_inverse_root(), _compiled("scaled_ns")]
)
BY_NAME = {p.name: p for p in PROVIDERS}


def select(patterns: list[str] | None = None, include_compiled: bool = True) -> list[Provider]:
    """Providers matching any of `patterns` (shell wildcards, e.g. 'tritonsqrt:*'), else all."""
    if patterns:
        chosen = [p for p in PROVIDERS if any(fnmatch.fnmatchcase(p.name, pat) for pat in patterns)]
        if not chosen:
            raise ValueError(f"--providers: no provider matches {', '.join(patterns)}; "
                             f"providers are {', '.join(BY_NAME)}")
        return chosen
    return [p for p in PROVIDERS if include_compiled or p.kind != "compiled"]
