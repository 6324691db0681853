"""Backward of every method and op: gradcheck, identity, repeated eigenvalues, saved memory."""

import pytest
import torch

import tritonsqrt as ts
from tritonsqrt.testing import exact_gradients, relative_error, spd_with_condition

# Settings under which each forward is exact in float64, so that finite differences of the
# forward test the backward (the Lyapunov backward is the gradient of the exact root).
EXACT_SETTINGS = {
    "auto": {},
    "eigh": {},
    "scaled_ns": {},
    "ns": {"iterations": 30},
    "mpa": {"degree": (12, 12)},
    "mtp": {"degree": 60},
}


def well_conditioned(n=3, batch=2):
    return spd_with_condition(batch, n, 3.0, seed=7, dtype=torch.float64, log_scale_range=0.5)


@pytest.mark.parametrize("method", sorted(EXACT_SETTINGS))
@pytest.mark.parametrize("op", [ts.sqrtm, ts.inv_sqrtm])
def test_gradcheck_float64(method, op):
    a = well_conditioned().requires_grad_(True)
    fn = lambda x: op(x, method=method, **EXACT_SETTINGS[method])  # noqa: E731
    # eps 1e-5: the [12, 12] Padé solve rounds at 1e-13, which finite differences at the
    # default 1e-6 amplify past the tolerance.
    assert torch.autograd.gradcheck(fn, (a,), eps=1e-5, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("method", ["auto", "scaled_ns", "eigh", "ns"])
def test_gradcheck_both_roots_at_once(method):
    a = well_conditioned().requires_grad_(True)
    fn = lambda x: ts.sqrtm_and_inv_sqrtm(x, method=method, **EXACT_SETTINGS[method])  # noqa: E731
    assert torch.autograd.gradcheck(fn, (a,), atol=1e-6, rtol=1e-5)


def test_gradient_is_symmetric_and_uses_the_symmetric_part_of_g():
    a = spd_with_condition(2, 8, 10.0, seed=1, dtype=torch.float64).requires_grad_(True)
    g = torch.randn(2, 8, 8, dtype=torch.float64)
    (grad,) = torch.autograd.grad(ts.sqrtm(a, method="scaled_ns"), a, g)
    assert torch.allclose(grad, grad.mT)
    exact, _ = exact_gradients(a.detach(), 0.5 * (g + g.mT))
    assert float(relative_error(grad, exact).max()) < 1e-12


@pytest.mark.parametrize("method", ["auto", "scaled_ns", "eigh", "ns", "mpa", "mtp"])
@pytest.mark.parametrize("op", [ts.sqrtm, ts.inv_sqrtm])
def test_identity_and_repeated_eigenvalues_give_finite_exact_gradients(method, op):
    # A = 4 I, and a matrix with a 3-fold repeated eigenvalue: autograd through eigh gives NaN.
    q = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))[0]
    repeated = (q * torch.tensor([4.0, 4.0, 4.0, 2.0, 1.0, 1.0], dtype=torch.float64)) @ q.mT
    a = torch.stack([4 * torch.eye(6, dtype=torch.float64), repeated]).requires_grad_(True)
    g = torch.randn(2, 6, 6, dtype=torch.float64)
    g = g + g.mT
    (grad,) = torch.autograd.grad(op(a, method=method), a, g)
    assert torch.isfinite(grad).all()
    # At exact settings (Taylor needs degree 200 here: Z reaches 0.86) the gradient is exact.
    settings = {"degree": 200} if method == "mtp" else EXACT_SETTINGS[method]
    (grad,) = torch.autograd.grad(op(a, method=method, **settings), a, g)
    exact_sqrt, exact_inv = exact_gradients(a.detach(), g)
    exact = exact_inv if op is ts.inv_sqrtm else exact_sqrt
    assert float(relative_error(grad, exact).max()) < 1e-5


def saved_bytes(fn, a):
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(a)
    return total


@pytest.mark.parametrize("method", ["scaled_ns", "ns", "mpa", "mtp", "eigh"])
def test_sqrtm_saves_one_matrix_per_input(method):
    batch, n = 5, 16
    a = spd_with_condition(batch, n, 10.0).requires_grad_(True)
    per_matrix = n * n * 4
    # One n x n matrix in the compute dtype (float32), plus a per-matrix norm or eigenvalues.
    assert saved_bytes(lambda x: ts.sqrtm(x, method=method), a) <= batch * (per_matrix + n * 4)
    # The CPU default (eigh in float64) saves its one matrix in float64.
    assert saved_bytes(lambda x: ts.sqrtm(x), a) <= batch * (2 * per_matrix + n * 8)


def test_inv_sqrtm_saves_two_matrices_per_input():
    batch, n = 5, 16
    a = spd_with_condition(batch, n, 10.0).requires_grad_(True)
    assert saved_bytes(lambda x: ts.inv_sqrtm(x, method="scaled_ns"), a) <= batch * (2 * n * n * 4 + 4)


def test_no_grad_saves_nothing():
    a = spd_with_condition(2, 8, 10.0).requires_grad_(True)
    with torch.no_grad():
        assert saved_bytes(lambda x: ts.sqrtm(x, method="scaled_ns"), a) == 0


def test_both_roots_gradient_is_the_sum_of_the_two():
    a = spd_with_condition(3, 12, 100.0, seed=4, dtype=torch.float64).requires_grad_(True)
    g1, g2 = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    s, y = ts.sqrtm_and_inv_sqrtm(a, method="scaled_ns")
    (both,) = torch.autograd.grad((s * g1).sum() + (y * g2).sum(), a)
    (only_s,) = torch.autograd.grad(ts.sqrtm(a, method="scaled_ns"), a, g1)
    (only_y,) = torch.autograd.grad(ts.inv_sqrtm(a, method="scaled_ns"), a, g2)
    assert torch.allclose(both, only_s + only_y, rtol=1e-10, atol=1e-12)


def test_lyapunov_solves_and_differentiates():
    s = spd_with_condition(4, 20, 1e2, seed=2, dtype=torch.float64)
    c = torch.randn(4, 20, 20, dtype=torch.float64)
    c = (c + c.mT).requires_grad_(True)
    x = ts.lyapunov(s, c).detach()
    residual = torch.linalg.matrix_norm(s @ x + x @ s - c) / torch.linalg.matrix_norm(c)
    assert float(residual.max()) < 1e-12
    assert torch.autograd.gradcheck(lambda rhs: ts.lyapunov(s[:1], rhs), (c.detach()[:1].requires_grad_(True),))
    x32 = ts.lyapunov(s.float(), c.detach().float())
    assert x32.dtype == torch.float32
    assert float(relative_error(x32, x).max()) < 1e-5
