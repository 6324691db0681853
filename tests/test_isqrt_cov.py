"""method="ns" is iSQRT-COV's matrix square root (Li, Xie, Wang, Gao, CVPR 2018), forward and backward.

The reference is written here from the paper's equations (its Sec. 3: pre-normalisation by the
trace, the coupled Newton–Schulz iteration, post-compensation by the square root of the trace);
the paper's backward is the chain rule through those same steps, so autograd through this
reference is the gradient the official code (MPNCOV.py, `Sqrtm`) computes by hand.
"""

from __future__ import annotations

import pytest
import torch

import tritonsqrt as ts
import tritonsqrt.nn as tnn
from tritonsqrt.testing import random_symmetric, relative_error, spd_with_condition


def isqrt_cov_sqrtm(a: torch.Tensor, iterations: int) -> torch.Tensor:
    """Paper, Eqs. (2)-(4): A_hat = A / tr(A); Y_0 = A_hat, Z_0 = I;
    Y_k = Y_{k-1} (3I - Z_{k-1} Y_{k-1}) / 2, Z_k = (3I - Z_{k-1} Y_{k-1}) Z_{k-1} / 2; C = sqrt(tr A) Y_N."""
    trace = a.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    three = 3.0 * torch.eye(a.shape[-1], dtype=a.dtype)
    y, z = a / trace, torch.eye(a.shape[-1], dtype=a.dtype).expand_as(a)
    for _ in range(iterations):
        t = 0.5 * (three - z @ y)
        y, z = y @ t, t @ z
    return y * trace.sqrt()


def isqrt_cov_head(x: torch.Tensor, iterations: int = 5) -> torch.Tensor:
    """The official head without its reduction: Covpool (I_hat = (I - 11^T / M) / M), Sqrtm, Triuvec."""
    features = x.flatten(2)
    m = features.shape[-1]
    centering = (torch.eye(m, dtype=x.dtype) - 1.0 / m) / m
    cov = features @ centering @ features.mT
    root = isqrt_cov_sqrtm(cov, iterations)
    rows, cols = torch.triu_indices(cov.shape[-1], cov.shape[-1])
    return root[:, rows, cols]


def value_and_grad(fn, a, upstream):
    a = a.detach().clone().requires_grad_(True)
    out = fn(a)
    (grad,) = torch.autograd.grad(out, a, upstream)
    return out.detach(), grad


# Fused kernels at n = 12, tiled at n = 65 (under the interpreter on CPU: one case, it is slow),
# the torch path at both.
@pytest.mark.parametrize("backend, n, iterations", [
    ("torch", 12, 3), ("torch", 12, 5), ("triton", 12, 3), ("triton", 12, 5), ("torch", 65, 3), ("torch", 65, 5),
    ("triton", 65, 3),
])
def test_ns_is_isqrt_cov_forward_and_backward(backend, n, iterations):
    # Condition 1e3: far from converged at 3 and 5 iterations, so only the same iteration agrees.
    a = spd_with_condition(2, n, 1e3, seed=iterations, dtype=torch.float64)
    upstream = random_symmetric(2, n, seed=7, dtype=torch.float64)
    want, want_grad = value_and_grad(lambda x: isqrt_cov_sqrtm(x, iterations), a, upstream)
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-6)):
        got, got_grad = value_and_grad(
            lambda x: ts.sqrtm(x, method="ns", iterations=iterations, backend=backend), a.to(dtype), upstream.to(dtype))
        assert float(relative_error(got.double(), want).max()) <= tol, f"forward {dtype}"
        assert float(relative_error(got_grad.double(), want_grad).max()) <= 10 * tol, f"backward {dtype}"
    # Not converged: the exact root is far, so agreement above is the iteration's, not the root's.
    exact = ts.sqrtm(a, method="eigh")
    assert float(relative_error(want, exact).min()) > 1e-3


def test_ns_inverse_root_is_the_same_iteration():
    """Y = Z_N / sqrt(tr A), differentiated through the iteration, on every backend."""
    a = spd_with_condition(3, 10, 50.0, seed=3, dtype=torch.float64)
    upstream = random_symmetric(3, 10, seed=4, dtype=torch.float64)

    def reference(x):
        trace = x.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
        eye = torch.eye(10, dtype=x.dtype)
        y, z = x / trace, eye.expand_as(x)
        for _ in range(4):
            t = 1.5 * eye - 0.5 * z @ y
            y, z = y @ t, t @ z
        return z / trace.sqrt()

    want, want_grad = value_and_grad(reference, a, upstream)
    for backend in ("torch", "triton"):
        got, got_grad = value_and_grad(lambda x: ts.inv_sqrtm(x, method="ns", iterations=4, backend=backend),
                                       a, upstream)
        assert float(relative_error(got, want).max()) <= 1e-12
        assert float(relative_error(got_grad, want_grad).max()) <= 1e-12


def test_covariance_pooling_reproduces_an_isqrt_cov_head():
    x = torch.randn(3, 16, 7, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    upstream = torch.randn(3, 16 * 17 // 2, dtype=torch.float64)
    head = tnn.CovariancePooling(prenorm="trace", method="ns", iterations=5, eps=0.0)
    want, want_grad = value_and_grad(isqrt_cov_head, x, upstream)
    got, got_grad = value_and_grad(head, x, upstream)
    assert float(relative_error(got[:, None], want[:, None]).max()) <= 1e-10
    assert float(relative_error(got_grad[None], want_grad[None]).max()) <= 1e-10


def test_the_benchmark_competitor_is_isqrt_cov():
    from tritonsqrt.perf.competitors import isqrt_cov_newton_schulz

    a = spd_with_condition(2, 9, 1e2, seed=5, dtype=torch.float64)
    assert float(relative_error(isqrt_cov_newton_schulz(a, 5), isqrt_cov_sqrtm(a, 5)).max()) <= 1e-13


@pytest.mark.parametrize("outputs", ["sqrt", "both"])
def test_ns_custom_op_registration(outputs):
    """ns keeps A / tr A for its backward: the op's layout, fake kernel and autograd still check out."""
    from tritonsqrt.paths.custom_ops import encode_plan as plan_to_args, roots
    from tritonsqrt.plan import resolve

    a = spd_with_condition(3, 6, 10.0, seed=1).requires_grad_(True)
    args = (a, outputs, 0.0, True, *plan_to_args(resolve(a, "ns", "torch", iterations=3)))
    torch.library.opcheck(roots, args, test_utils=("test_schema", "test_autograd_registration", "test_faketensor",
                                                   "test_aot_dispatch_dynamic"))
