"""The ops as torch.library custom ops: opcheck, torch.compile(fullgraph=True), no graph breaks."""

import pytest
import torch

import tritonsqrt as ts
from tritonsqrt.paths.custom_ops import encode_plan as plan_to_args, roots, roots_backward
from tritonsqrt.plan import resolve
from tritonsqrt.testing import spd_with_condition


@pytest.mark.parametrize("method", ["scaled_ns", "mpa", "eigh", "auto"])
@pytest.mark.parametrize("outputs", ["sqrt", "inv", "both"])
def test_opcheck(method, outputs):
    a = spd_with_condition(3, 8, 10.0, seed=1).requires_grad_(True)
    plan = resolve(a, method, "torch")
    args = (a, outputs, 0.0, True, *plan_to_args(plan))
    torch.library.opcheck(roots, args, test_utils=("test_schema", "test_autograd_registration", "test_faketensor",
                                                   "test_aot_dispatch_dynamic"))


def test_opcheck_backward_op():
    a = spd_with_condition(2, 6, 10.0, seed=2)
    plan = resolve(a, "scaled_ns", "torch")
    sqrt_out, inv_out, saved_sqrt, saved_inv, aux1, aux2 = roots(a, "sqrt", 0.0, True, *plan_to_args(plan))
    g = torch.randn(2, 6, 6)
    args = (g, torch.empty(0), sqrt_out, saved_inv, aux1, aux2, a.dtype, 6, *plan_to_args(plan))
    torch.library.opcheck(roots_backward, args, test_utils=("test_schema", "test_faketensor"))


@pytest.mark.parametrize("method", ["scaled_ns", "eigh"])
def test_torch_compile_fullgraph_forward_and_backward(method):
    def whiten(x, features):
        return ts.inv_sqrtm(x, method=method, eps=1e-4) @ features

    a = spd_with_condition(4, 8, 10.0, seed=3).requires_grad_(True)
    features = torch.randn(4, 8, 5)
    compiled = torch.compile(whiten, fullgraph=True, backend="aot_eager")
    out = compiled(a, features)
    out.square().sum().backward()
    grad_compiled = a.grad.clone()
    a.grad = None
    eager = whiten(a, features)
    eager.square().sum().backward()
    assert torch.allclose(out, eager, rtol=1e-5, atol=1e-6)
    assert torch.allclose(grad_compiled, a.grad, rtol=1e-5, atol=1e-6)


def test_unused_output_gradients_and_no_grad_paths():
    a = spd_with_condition(2, 5, 10.0, seed=4).requires_grad_(True)
    s, y = ts.sqrtm_and_inv_sqrtm(a, method="scaled_ns")
    (grad_s_only,) = torch.autograd.grad(s.sum(), a)
    (expected,) = torch.autograd.grad(ts.sqrtm(a, method="scaled_ns").sum(), a)
    assert torch.allclose(grad_s_only, expected, rtol=1e-6, atol=1e-7)
    with torch.no_grad():
        assert not ts.sqrtm(a).requires_grad
