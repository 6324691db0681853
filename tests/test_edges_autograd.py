"""Issue 14, autograd and lyapunov: unsupported transforms raise naming themselves (they used
to return zeros or torch's internal messages); lyapunov's defaults, check and broadcasting."""

import numpy as np
import pytest
import torch

import tritonsqrt as ts
from tritonsqrt.testing import spd_with_condition

A = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))[None]
E = torch.eye(2, dtype=torch.float64)[None]


@pytest.mark.parametrize("method", ["auto", "scaled_ns", "eigh", "mpa"])
@pytest.mark.parametrize("transform,match", [
    (lambda f: torch.func.jvp(f, (A,), (E,)), "forward-mode"),
    (lambda f: torch.func.jacfwd(f)(A), "forward-mode"),
    (lambda f: torch.func.grad(lambda x: f(x).sum())(A), "torch.func.grad"),
    (lambda f: torch.func.vjp(f, A), "torch.func.grad"),
    (lambda f: torch.func.jacrev(f)(A), "torch.func.grad"),
])
def test_unsupported_transforms_raise(method, transform, match):
    with pytest.raises(NotImplementedError, match=match):
        transform(lambda x: ts.sqrtm(x, method=method))


def test_forward_ad_dual_tensors_raise():
    import torch.autograd.forward_ad as fwad

    with fwad.dual_level():
        with pytest.raises(NotImplementedError, match="forward-mode"):
            ts.inv_sqrtm(fwad.make_dual(A, E))
        with pytest.raises(NotImplementedError, match="forward-mode"):
            ts.lyapunov(A, fwad.make_dual(E, E))


def test_double_backward_raises_and_first_order_works():
    x = A.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((ts.sqrtm(x) * E).sum(), x, create_graph=True)
    assert torch.allclose(grad, torch.diag(torch.tensor([0.5, 0.25], dtype=torch.float64))[None])
    with pytest.raises(NotImplementedError, match="double backward"):
        grad.sum().backward()


def test_reverse_mode_jacobian_works():
    jacobian = torch.autograd.functional.jacobian(ts.sqrtm, A[0])
    assert float(jacobian[0, 0, 0, 0]) == pytest.approx(0.5) and float(jacobian[1, 1, 1, 1]) == pytest.approx(0.25)


def test_vmap_works():
    out = torch.func.vmap(ts.sqrtm)(torch.stack([A, 4 * A]))
    assert torch.allclose(out[1], 2 * ts.sqrtm(A))


def _scipy_lyapunov(s, c):
    import scipy.linalg

    return torch.from_numpy(np.stack([scipy.linalg.solve_continuous_lyapunov(si.numpy(), ci.numpy())
                                      for si, ci in zip(s, c)]))


def test_lyapunov_default_matches_the_roots_and_check_catches_divergence():
    s = spd_with_condition(2, 12, 1e5, dtype=torch.float64)
    c = torch.randn(2, 12, 12, dtype=torch.float64)
    c = c + c.mT
    x = ts.lyapunov(s, c, check=True)  # max_condition 1e6 by default: was 77-84% off at 1e3
    exact = _scipy_lyapunov(s, c)
    assert float((x - exact).norm() / exact.norm()) < 1e-9
    with pytest.raises(ValueError, match="did not converge"):
        ts.lyapunov(s, c, max_condition=10.0, check=True)


def test_lyapunov_broadcasts_and_validates():
    s = spd_with_condition(3, 5, 10.0)
    x = ts.lyapunov(s, torch.eye(5))  # the README's call: C shared by the batch
    assert x.shape == (3, 5, 5)
    assert torch.allclose(s @ x + x @ s, torch.eye(5).expand(3, 5, 5), atol=1e-5)
    assert ts.lyapunov(s[:1], torch.eye(5).expand(4, 5, 5)).shape == (4, 5, 5)
    for bad in (0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="max_condition"):
            ts.lyapunov(s, s, max_condition=bad)
    with pytest.raises(ValueError, match="broadcast"):
        ts.lyapunov(s, torch.eye(5).expand(2, 5, 5))
    with pytest.raises(ValueError, match="one size"):
        ts.lyapunov(s, torch.eye(4))
