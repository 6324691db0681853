"""What a call will compute: method, its settings, and the `auto` choice per device and dtype.

A `Plan` is resolved once per call from the user's keywords and the input's device, n and
dtype (never its values, so nothing here synchronises). It names its path ("torch", "fused",
"tiled"; `tritonsqrt.paths.routing` holds the rules) and, on torch, why not Triton; the custom
op, the paths, the kernels and `tritonsqrt info` read it and never decide again.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import torch

from .constants import (BACKENDS, MAX_CONDITION_LIMIT, METHODS, PRECISIONS, TF32X3_MIN_N, compute_dtype_for,
                        default_precision, dtype_name)
from .numerics.coefficients import scaled_ns_schedule
from .paths import routing


# Defaults of the seed paper and of iSQRT-COV.
DEFAULT_TAYLOR_DEGREE = 10
DEFAULT_PADE_DEGREES = (5, 5)
DEFAULT_NS_ITERATIONS = 5
# The scaled iteration and every Lyapunov backward are designed for spectra whose condition
# number is at most this; larger ones still come out, less converged (README, "Accuracy").
DEFAULT_MAX_CONDITION = 1e6


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything that decides the numbers of one call, and where it runs.

    `backend` is "torch" or "triton" (decided: never "auto"); `path` follows from it, the
    method and n by `routing.path_for`. `reason`: why a plan is on torch where backend="auto"
    might have taken Triton (None otherwise).
    """

    method: str
    compute_dtype: torch.dtype
    n: int
    backend: str = "torch"
    taylor_degree: int = DEFAULT_TAYLOR_DEGREE
    pade_degrees: tuple[int, int] = DEFAULT_PADE_DEGREES
    ns_iterations: int = DEFAULT_NS_ITERATIONS
    max_condition: float = DEFAULT_MAX_CONDITION
    precision: str = "ieee"
    eigh_dtype: torch.dtype | None = None  # eigh computes in this dtype (float64 on CPU auto)
    reason: str | None = None
    path: str = dataclasses.field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "path", routing.path_for(self.method, self.n, self.backend))

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.compute_dtype)

    @property
    def scaled_ns_steps(self) -> tuple[tuple[float, float], ...]:
        return scaled_ns_schedule(spectrum_lower_bound(self.n, self.max_condition), self.dtype_name)

    @property
    def forward_steps(self) -> tuple[tuple[float, float], ...]:
        """(a, b) per coupled Newton–Schulz step of the forward (ns and scaled_ns)."""
        if self.method == "ns":
            return ((1.5, -0.5),) * self.ns_iterations
        return self.scaled_ns_steps

    @property
    def backward_steps(self) -> tuple[tuple[float, float], ...]:
        """(a, b) per step of the Lyapunov sign iteration (the iterative methods but ns, whose
        backward runs through its own forward steps)."""
        return self.scaled_ns_steps

    def matmuls(self, op: str, backward: bool) -> int:
        """Matrix products per matrix of one sqrtm or inv_sqrtm call of an iterative method.

        Tests hold this against the products counted on the torch path, so the README's cost
        figures come from here.
        """
        inverse = op == "inv_sqrtm"
        if self.method in ("ns", "scaled_ns"):
            # First step 1 product (Z0 = I), then 3; the last Z update only for the inverse.
            n_fwd = 3 * len(self.forward_steps) - 2 - (0 if inverse else 1)
        else:
            n_fwd = {"mtp": self.taylor_degree - 1, "mpa": max(self.pade_degrees) - 1}[self.method]
        if not backward:
            return n_fwd
        if self.method == "ns":  # `reference.newton_schulz_backward`: recompute, then reverse through it
            k = len(self.forward_steps)
            recompute = 1 + 3 * (k - 1) - (1 if k > 1 else 0)
            reverse = 6 * (k - 1) - (2 if (k > 1 and not inverse) else 0) + 2
            return n_fwd + recompute + reverse
        extra_forward = 1 if (inverse and self.method in ("mtp", "mpa")) else 0
        rhs = 2 if inverse else 0
        return n_fwd + extra_forward + rhs + 5 * len(self.backward_steps)

    def describe(self) -> str:
        detail = {
            "mtp": f"degree {self.taylor_degree}",
            "mpa": f"[{self.pade_degrees[0]}, {self.pade_degrees[1]}]",
            "ns": f"iSQRT-COV, {self.ns_iterations} iterations",
            "scaled_ns": f"{len(self.scaled_ns_steps)} minimax steps for condition <= {self.max_condition:g}",
            "eigh": f"eigh in {self.eigh_dtype or self.compute_dtype}".replace("torch.", ""),
        }[self.method]
        products = f", products {self.precision}" if self.precision != "ieee" else ""
        return f"{self.method} ({detail}), backend {self.backend}, compute {self.dtype_name}{products}"

    @property
    def where(self) -> str:
        """" (fused kernels)" / " (tiled kernels)" on a Triton path, "" on torch: for `info` and the demo."""
        return f" ({self.path} kernels)" if self.path != "torch" else ""


def spectrum_lower_bound(n: int, max_condition: float) -> float:
    """Smallest x = sqrt(lambda / ||A||_F) for a spectrum of condition <= max_condition.

    lambda_max >= ||A||_F / sqrt(n), so x >= n^(-1/4) max_condition^(-1/2).
    """
    return min(1.0, max(n, 1) ** -0.25 / math.sqrt(max_condition))


def auto_method(device: torch.device | str, n: int, dtype: torch.dtype) -> Plan:
    """The method and settings `method="auto"` uses for this device, size and dtype.

    CPU: eigendecomposition in float64 (LAPACK is fast there, and float64 makes it the most
    accurate choice for every dtype). GPU: the scaled Newton–Schulz iteration, whose matrix
    products are what a GPU does best, with the Lyapunov backward, its products at
    `constants.default_precision` (tf32x3 on the tensor cores from n = 16 on); below n = 16
    float32 and half inputs are computed in float64 (`computes_small_in_float64`).
    """
    device = torch.device(device)
    compute = torch.float64 if computes_small_in_float64(device, n, dtype, "auto") else compute_dtype_for(dtype)
    if device.type == "cpu":
        plan = Plan(method="eigh", compute_dtype=compute, n=n, eigh_dtype=torch.float64)
    else:
        plan = Plan(method="scaled_ns", compute_dtype=compute, n=n)
    # The backend backend="auto" takes there, so that describe() tells what will run.
    return _with_default_precision(_with_backend(plan, device, "auto"), device)


def resolve(
    a: torch.Tensor,
    method: str,
    backend: str,
    *,
    degree: int | None = None,
    iterations: int | None = None,
    max_condition: float | None = None,
    precision: str | None = None,
) -> Plan:
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    n = a.shape[-1]
    plan = auto_method(a.device, n, a.dtype) if method == "auto" else Plan(
        method=method, compute_dtype=compute_dtype_for(a.dtype), n=n
    )
    changes = {}
    if degree is not None:
        if plan.method == "mtp":
            if not _is_count(degree):
                raise ValueError(f"degree: expected a positive int for mtp, got {degree!r}")
            changes["taylor_degree"] = int(degree)
        elif plan.method == "mpa":
            degrees = (degree, degree) if _is_count(degree) else degree
            if not (isinstance(degrees, (tuple, list)) and len(degrees) == 2 and all(map(_is_count, degrees))):
                raise ValueError(
                    f"degree: expected a positive int or a (num, den) pair of them for mpa, got {degree!r}")
            changes["pade_degrees"] = (int(degrees[0]), int(degrees[1]))
        else:
            raise ValueError(f"degree: only for method 'mtp' or 'mpa', not {plan.method!r}")
    if iterations is not None:
        if plan.method != "ns":
            raise ValueError(f"iterations: only for method 'ns', not {plan.method!r}")
        if not _is_count(iterations):
            raise ValueError(f"iterations: expected a positive int, got {iterations!r}")
        changes["ns_iterations"] = int(iterations)
    if max_condition is not None:
        # Beyond the limit the 60-step schedule cap leaves it unconverged (constants.py).
        if isinstance(max_condition, bool) or not isinstance(max_condition, numbers.Real) or not (
                1 <= max_condition <= MAX_CONDITION_LIMIT):
            raise ValueError(f"max_condition: expected a number in [1, {MAX_CONDITION_LIMIT:g}], got {max_condition!r}")
        changes["max_condition"] = float(max_condition)
    if precision is not None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
        changes["precision"] = precision
    plan = _with_backend(dataclasses.replace(plan, **changes), a.device, backend)
    return plan if precision is not None else _with_default_precision(plan, a.device)


def computes_small_in_float64(device: torch.device | str, n: int, dtype: torch.dtype, method: str) -> bool:
    """Whether `method="auto"` computes this call in float64 and rounds the roots back.

    CUDA inputs of compute dtype float32 below n = TF32X3_MIN_N: there tf32x3 misses the accuracy
    table and plain float32 products miss it too on enough draws (n = 2, kappa 1e4: the sqrtm
    gradient 1.4x its target over 50 draws, from float32 rounding in the first steps; README
    "Accuracy"), while float64 holds it by orders of magnitude; at that size the fused kernel is
    one launch of a few thousand multiply-adds a matrix either way."""
    return (method == "auto" and torch.device(device).type == "cuda" and dtype != torch.float64
            and n < TF32X3_MIN_N)


def _with_default_precision(plan: Plan, device) -> Plan:
    """The plan with the precision of a call that names none: `default_precision` where a
    Triton kernel runs it, "ieee" on the torch path (whose emulation of the tensor cores is a
    model of the kernels, slower and never more accurate than plain products)."""
    on_kernels = plan.backend == "triton"
    precision = default_precision(torch.device(device).type, plan.n, plan.compute_dtype) if on_kernels else "ieee"
    return dataclasses.replace(plan, precision=precision)


def _is_count(value) -> bool:
    """A positive int (numpy's included), not a bool or a float such as 2.0."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def _with_backend(plan: Plan, device, backend: str) -> Plan:
    """The routing decision, made here once: the plan with its backend (hence its path) and,
    on torch under backend="auto", the reason. A forced backend="triton" that cannot run raises."""
    if backend == "torch":
        return dataclasses.replace(plan, backend="torch", reason=None)
    reason = routing.unsupported_reason(device, plan, forced=backend == "triton")
    if reason and backend == "triton":
        raise ValueError(f"backend='triton': {reason}")
    return dataclasses.replace(plan, backend="torch" if reason else "triton", reason=reason)
