"""The named workloads every perf command runs: who calls the op, at what batch, size and dtype.

Shapes are the users' (README, "Use": whitening, covariance pooling, style transfer,
preconditioners). A case too slow for a 2-core CPU carries a
smaller `cpu_shape`; `for_device` swaps it in on CPU and records what it replaced, so every
table and file can say that the CPU figures are of scaled-down cases.
"""

from __future__ import annotations

import dataclasses
import fnmatch

import torch

OPS = ("sqrtm", "inv_sqrtm")
# inv_root<p>: (A)^(-1/p) by tritonsqrt.inv_root (Shampoo's preconditioner roots).
ROOT_OPS = ("inv_root4",)
MODES = ("forward", "forward+backward")


@dataclasses.dataclass(frozen=True)
class Case:
    """One workload: `batch` matrices of size `n` in `dtype`, for the listed ops and modes."""

    name: str
    batch: int
    n: int
    ops: tuple[str, ...]
    user: str
    modes: tuple[str, ...] = MODES
    dtype: str = "float32"
    kappa: float = 1e2  # condition number of the test matrices (spd_with_condition)
    launch_bound: bool = False  # small enough that launch latency dominates: also timed in a CUDA graph
    cpu_shape: tuple[int, int] | None = None  # (batch, n) used on CPU instead
    scaled_from: tuple[int, int] | None = None  # set by for_device when cpu_shape was applied

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    @property
    def shape_label(self) -> str:
        label = f"B={self.batch} n={self.n}"
        if self.scaled_from:
            label += f" (full: B={self.scaled_from[0]} n={self.scaled_from[1]})"
        return label

    def on(self, device: torch.device | str) -> "Case":
        """This case as run on `device`: the CPU shape where one is given."""
        if torch.device(device).type != "cpu" or self.cpu_shape is None:
            return self
        batch, n = self.cpu_shape
        return dataclasses.replace(self, batch=batch, n=n, cpu_shape=None, scaled_from=(self.batch, self.n))


CASES = (
    Case("zca-b1", 1, 64, ("inv_sqrtm",), "ZCA whitening, one group", launch_bound=True),
    Case("zca-b64", 64, 64, ("inv_sqrtm",), "ZCA whitening / decorrelated batch norm, 64 groups", launch_bound=True),
    Case("sovit", 64, 48, ("sqrtm",), "So-ViT second-order head", launch_bound=True),
    Case("sovit-bf16", 64, 48, ("sqrtm",), "So-ViT head under bfloat16 autocast", dtype="bfloat16",
         launch_bound=True),
    Case("small-b1024-n32", 1024, 32, OPS, "many small matrices", launch_bound=True, cpu_shape=(256, 32)),
    Case("small-b256-n64", 256, 64, OPS, "many small matrices", launch_bound=True, cpu_shape=(128, 64)),
    Case("covpool", 32, 256, ("sqrtm",), "global covariance pooling (iSQRT-COV)", cpu_shape=(2, 256)),
    Case("covpool-bf16", 32, 256, ("sqrtm",), "covariance pooling under bfloat16 autocast", dtype="bfloat16",
         cpu_shape=(2, 256)),
    Case("style", 4, 512, OPS, "style transfer (whitening and colouring)", cpu_shape=(1, 512)),
    Case("large-b16-n1024", 16, 1024, OPS, "large matrices with gradients (tiled kernels' target shape)",
         cpu_shape=(1, 256)),
    # Preconditioner roots are taken without gradient, of worse-conditioned statistics.
    Case("shampoo", 16, 1024, ("inv_sqrtm",), "Shampoo preconditioner blocks", modes=("forward",), kappa=1e4,
         cpu_shape=(2, 512)),
    # Two-sided Shampoo: A^(-1/4) of each Kronecker factor (tritonsqrt.inv_root). On CPU the
    # 4096 blocks run at n = 512: a float32 eigh of one 4096 matrix would take ~20 s there
    # (n^3 from the measured n = 512 time, README "Inverse p-th roots").
    Case("shampoo-p4-n1024", 16, 1024, ("inv_root4",), "Shampoo (two-sided) A^(-1/4) of 1024-blocks",
         modes=("forward",), kappa=1e4, cpu_shape=(2, 256)),
    Case("shampoo-p4-n4096", 4, 4096, ("inv_root4",), "Shampoo (two-sided) A^(-1/4) of 4096-blocks",
         modes=("forward",), kappa=1e4, cpu_shape=(1, 512)),
)

# --quick: one case per kind of cost (launch-bound, bf16, many small, GEMM-bound); well
# under two minutes on the 2-core CPU machines.
QUICK = ("zca-b64", "sovit-bf16", "small-b1024-n32", "covpool")
# The regression gate times these (CPU-scaled on CPU): the same kinds, fp32 only.
GATE = ("zca-b64", "sovit", "small-b1024-n32", "covpool")

BY_NAME = {case.name: case for case in CASES}


def root_order(op: str) -> tuple[int, bool]:
    """(p, inverse) of an op name: sqrtm (2, False), inv_sqrtm (2, True), inv_root<p> (p, True)."""
    if op in OPS:
        return 2, op == "inv_sqrtm"
    if op in ROOT_OPS:
        return int(op[len("inv_root"):]), True
    raise ValueError(f"op: expected one of {', '.join(OPS + ROOT_OPS)}, got {op!r}")


def public_op(op: str):
    """The tritonsqrt function an op name stands for, as `fn(A, **keywords)`."""
    import tritonsqrt

    p, inverse = root_order(op)
    if op in OPS:
        return tritonsqrt.inv_sqrtm if inverse else tritonsqrt.sqrtm
    return lambda a, **keywords: tritonsqrt.inv_root(a, p, **keywords)


def select(patterns: list[str] | None = None, default: tuple[str, ...] | None = None) -> list[Case]:
    """Cases whose names match any of `patterns` (shell wildcards), else the `default` names, else all."""
    if patterns:
        chosen = [case for case in CASES if any(fnmatch.fnmatchcase(case.name, p) for p in patterns)]
        if not chosen:
            raise ValueError(f"--cases: no case matches {', '.join(patterns)}; cases are {', '.join(BY_NAME)}")
        return chosen
    if default is not None:
        return [BY_NAME[name] for name in default]
    return list(CASES)


def for_device(cases: list[Case], device: torch.device | str, full_size: bool = False) -> list[Case]:
    return list(cases) if full_size else [case.on(device) for case in cases]


def scaled_note(cases: list[Case]) -> str | None:
    """One line saying which cases run scaled down, or None."""
    scaled = [f"{c.name} B={c.scaled_from[0]} n={c.scaled_from[1]} -> B={c.batch} n={c.n}"
              for c in cases if c.scaled_from]
    if not scaled:
        return None
    return "CPU run: cases scaled down from their GPU shapes: " + "; ".join(scaled)
