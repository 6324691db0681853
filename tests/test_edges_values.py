"""Issue 14, values and options: scale, non-finite matrices, singular inputs, empty batches,
one gradient per entry point, option validation. Each test failed before its fix."""

import pytest
import torch

import tritonsqrt as ts
from tritonsqrt.testing import relative_error, spd_with_condition

ITERATIVE = ["scaled_ns", "mpa", "mtp"]
# Entries from 1e-30 to 1e30 (float32) and 1e-300 to 1e300 (float64): their squares overflow
# or vanish, which the Frobenius norm used to do.
SCALES = [(torch.float32, 1e-30), (torch.float32, 1e30), (torch.float64, 1e-300), (torch.float64, 1e300)]


def _base(n: int, dtype) -> torch.Tensor:
    return spd_with_condition(2, n, 10.0, dtype=torch.float64, seed=1).to(dtype)


def _scaled_case(dtype, scale, method, backend, n=4):
    a = _base(n, dtype)
    big = a * scale
    # A root is positively homogeneous: f(c A) = c^(+-1/2) f(A); eigh gets it right at any scale.
    for fn, power in ((ts.sqrtm, 0.5), (ts.inv_sqrtm, -0.5)):
        got = fn(big, method=method, backend=backend).double()
        want = fn(a, method=method, backend=backend).double() * scale**power
        assert torch.isfinite(got).all(), (fn.__name__, method, backend, scale)
        assert float(relative_error(got, want).max()) < 1e-5, (fn.__name__, method, backend, scale)
        if method == "scaled_ns":
            assert float(relative_error(got, fn(big, method="eigh").double()).max()) < 1e-4


@pytest.mark.parametrize("dtype,scale", SCALES)
@pytest.mark.parametrize("method", ITERATIVE)
def test_scale_torch_path(dtype, scale, method):
    _scaled_case(dtype, scale, method, "torch")


@pytest.mark.parametrize("dtype,scale", SCALES)
def test_scale_fused_kernels(dtype, scale):
    for method in ("scaled_ns", "mtp"):
        _scaled_case(dtype, scale, method, "triton")


def test_scale_tiled_kernels():
    # n = 65 is the smallest tiled size; one call (the interpreter is slow here).
    a = spd_with_condition(1, 65, 10.0, dtype=torch.float64, seed=1)
    got = ts.sqrtm_and_inv_sqrtm((a * 1e30).float(), method="scaled_ns", backend="triton")
    for root, power in zip(got, (0.5, -0.5)):
        want = ts.sqrtm(a, method="eigh") if power > 0 else ts.inv_sqrtm(a, method="eigh")
        assert float(relative_error(root.double(), want * 1e30**power).max()) < 1e-5


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_scale_check_true_accepts_a_valid_matrix(scale):
    a = _base(4, torch.float32) * scale  # its norms vanished or overflowed: "zero matrix", "negative eigenvalue"
    y = ts.inv_sqrtm(a, check=True)
    assert float(relative_error(y.double(), ts.inv_sqrtm(a, method="eigh").double()).max()) < 1e-5


def test_scale_lyapunov():
    s = _base(5, torch.float32)
    c = torch.eye(5).expand_as(s)
    x = ts.lyapunov(s, c)
    x_big = ts.lyapunov(s * 1e20, c)  # S^2 overflowed float32 in the scale
    assert float(relative_error(x_big * 1e20, x).max()) < 1e-5


@pytest.mark.parametrize("n", [3, 8, 25])
def test_one_nan_matrix_leaves_the_batch_alone_with_eigh(n):
    x = torch.randn(3, n, 2 * n)
    a = x @ x.mT / (2 * n) + 0.1 * torch.eye(n)
    clean = ts.sqrtm(a)
    a[1, 0, 0] = float("nan")
    for method in ("auto", "eigh", "mpa"):
        out = ts.sqrtm(a, method=method)
        assert out[1].isnan().all()
        assert torch.allclose(out[[0, 2]], ts.sqrtm(a[[0, 2]], method=method), atol=1e-6)
    assert torch.equal(ts.sqrtm(a)[[0, 2]], clean[[0, 2]])
    a[1, 0, 0] = float("inf")
    a.requires_grad_(True)
    out = ts.inv_sqrtm(a)
    out.sum().backward()
    assert out[1].isnan().all() and torch.isfinite(out[[0, 2]]).all() and torch.isfinite(a.grad[[0, 2]]).all()


@pytest.mark.parametrize("method", ["auto", "eigh", "scaled_ns", "mpa", "mtp"])
def test_singular_psd_inverse_root_is_finite(method):
    a = torch.diag(torch.tensor([1.0, 0.0]))
    y = ts.inv_sqrtm(a, method=method)
    assert torch.isfinite(y).all() and y[1, 1] > 1  # large: the null direction
    if method in ("auto", "eigh", "scaled_ns"):  # the well-defined block stays right
        assert abs(float(y[0, 0]) - 1.0) < 1e-3 and float(y[0, 1].abs()) < 1e-3
    assert torch.isinf(ts.inv_sqrtm(torch.zeros(2, 2), method=method).diagonal()).all()  # the zero matrix


@pytest.mark.parametrize("method", ["scaled_ns", "eigh", "mpa", "mtp"])
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_empty_batch_backward(method, backend):
    if backend == "triton" and method == "eigh":
        pytest.skip("no eigh kernel")
    for op in (ts.sqrtm, ts.inv_sqrtm):
        x = torch.empty(0, 3, 3, requires_grad=True)
        op(x, method=method, backend=backend).sum().backward()
        assert x.grad.shape == (0, 3, 3)
    x = torch.empty(0, 3, 3, requires_grad=True)
    sum(t.sum() for t in ts.sqrtm_and_inv_sqrtm(x, method=method, backend=backend)).backward()
    assert x.grad.shape == (0, 3, 3)


def test_zero_size_matrices():
    x = torch.empty(2, 0, 0, requires_grad=True)
    assert ts.sqrtm(x).shape == (2, 0, 0)
    ts.inv_sqrtm(x).sum().backward()
    assert x.grad.shape == (2, 0, 0)
    s, y = ts.sqrtm_and_inv_sqrtm(torch.empty(0, 0))
    assert s.shape == y.shape == (0, 0)


@pytest.mark.parametrize("method", ["mtp", "mpa"])
def test_one_gradient_whatever_the_entry_point(method):
    a = spd_with_condition(2, 6, 10.0, dtype=torch.float64)
    g = torch.randn(2, 6, 6, dtype=torch.float64)
    grads = []
    for both in (False, True):
        x = a.clone().requires_grad_(True)
        y = ts.sqrtm_and_inv_sqrtm(x, method=method)[1] if both else ts.inv_sqrtm(x, method=method)
        (y * g).sum().backward()
        grads.append(x.grad)
    assert torch.equal(grads[0], grads[1])  # differed by up to 0.62 (mtp)
    x1, x2 = a.clone().requires_grad_(True), a.clone().requires_grad_(True)
    (ts.sqrtm(x1, method=method) * g).sum().backward()
    (ts.sqrtm_and_inv_sqrtm(x2, method=method)[0] * g).sum().backward()
    assert torch.equal(x1.grad, x2.grad)


@pytest.mark.parametrize("options,error", [
    (dict(eps=-1e-3), ValueError), (dict(eps=float("nan")), ValueError), (dict(eps=float("inf")), ValueError),
    (dict(eps="1e-3"), TypeError), (dict(eps=True), TypeError),
    (dict(method="mpa", degree=2.0), ValueError), (dict(method="mpa", degree=(5.5, 5)), ValueError),
    (dict(method="mtp", degree=True), ValueError), (dict(method="ns", iterations=2.0), ValueError),
    (dict(method="scaled_ns", max_condition=float("inf")), ValueError),
    (dict(method="scaled_ns", max_condition=1e100), ValueError),
    (dict(method="scaled_ns", max_condition=float("nan")), ValueError),
])
def test_bad_options_name_themselves(options, error):
    a = spd_with_condition(1, 3, 10.0)
    name = [key for key in options if key != "method"][0]
    with pytest.raises(error, match=name):
        ts.sqrtm(a, **options)


def test_max_condition_limit_still_converges():
    a = spd_with_condition(1, 4, 1e3, dtype=torch.float64)
    out = ts.sqrtm(a, method="scaled_ns", max_condition=1e30)
    assert float(relative_error(out, ts.sqrtm(a, method="eigh")).max()) < 1e-12


def test_tiled_pade_solve_never_sees_a_nan_matrix():
    a = spd_with_condition(2, 65, 10.0)
    clean = ts.sqrtm(a, method="mpa", backend="triton")
    a[1, 0, 0] = float("nan")
    out = ts.sqrtm(a, method="mpa", backend="triton")
    assert out[1].isnan().all() and torch.equal(out[0], clean[0])
