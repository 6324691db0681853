"""Shapes, dtypes, bad input, batch isolation, zero and singular matrices, eps."""

import pytest
import torch

import tritonsqrt as ts
from tritonsqrt.testing import exact_roots, relative_error, spd_with_condition

METHODS = ["auto", "scaled_ns", "ns", "mpa", "mtp", "eigh"]
MATMUL_METHODS = ["scaled_ns", "ns", "mtp"]  # no LAPACK call: bit-identical alone or batched


@pytest.mark.parametrize("method", METHODS)
def test_any_batch_shape_n1_and_empty(method):
    a = spd_with_condition(6, 5, 10.0).reshape(2, 3, 5, 5)
    for fn in (ts.sqrtm, ts.inv_sqrtm):
        out = fn(a, method=method)
        assert out.shape == a.shape and out.dtype == a.dtype
        flat = fn(a.reshape(6, 5, 5), method=method)
        assert torch.allclose(out.reshape(6, 5, 5), flat)
    assert ts.sqrtm(torch.empty(0, 4, 4), method=method).shape == (0, 4, 4)
    assert ts.inv_sqrtm(torch.empty(2, 0, 3, 3), method=method).shape == (2, 0, 3, 3)
    assert torch.allclose(ts.sqrtm(torch.full((1, 1), 9.0), method=method), torch.tensor([[3.0]]))
    assert torch.allclose(ts.inv_sqrtm(torch.full((3, 1, 1), 4.0), method=method), torch.full((3, 1, 1), 0.5))
    s, y = ts.sqrtm_and_inv_sqrtm(a, method=method)
    assert torch.equal(s, ts.sqrtm(a, method=method)) or method in ("mpa", "mtp")
    if method in ("auto", "scaled_ns", "eigh"):  # the paper methods are not this accurate
        assert torch.allclose(s @ y, torch.eye(5).expand_as(s), atol=1e-4)


@pytest.mark.parametrize("method", METHODS)
def test_odd_size_non_contiguous_and_transposed(method):
    base = spd_with_condition(7, 33, 100.0, seed=3)
    expected = ts.sqrtm(base, method=method)
    transposed = base.mT  # the same symmetric matrices, column-major strides
    strided = torch.stack([base, base], dim=1)[:, 1]  # batch stride twice the matrix
    for a in (transposed, strided):
        assert not a.is_contiguous()
        assert torch.allclose(ts.sqrtm(a, method=method), expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))
    exact = exact_roots(base)[0]
    assert float(relative_error(expected, exact).max()) < (1e-5 if method in ("auto", "scaled_ns", "eigh") else 0.3)


def test_wrong_shapes_and_dtypes_name_the_argument():
    with pytest.raises(ValueError, match=r"sqrtm: A must have at least 2 dimensions .* got shape \(4,\)"):
        ts.sqrtm(torch.ones(4))
    with pytest.raises(ValueError, match=r"inv_sqrtm: expected a square matrix .* got shape \(4, 3, 5\)"):
        ts.inv_sqrtm(torch.ones(4, 3, 5))
    for dtype in (torch.int64, torch.bool, torch.complex64):
        with pytest.raises(TypeError, match="sqrtm: A must be float16, bfloat16, float32 or float64"):
            ts.sqrtm(torch.ones(3, 3, dtype=dtype))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        ts.sqrtm([[1.0]])
    with pytest.raises(ValueError, match="method: expected one of"):
        ts.sqrtm(torch.eye(3), method="cholesky")
    with pytest.raises(ValueError, match="degree: only for method 'mtp' or 'mpa'"):
        ts.sqrtm(torch.eye(3), method="ns", degree=4)
    with pytest.raises(ValueError, match="iterations: expected a positive int"):
        ts.sqrtm(torch.eye(3), method="ns", iterations=0)
    with pytest.raises(ValueError, match="lyapunov: S and C must hold matrices of one size"):
        ts.lyapunov(torch.eye(3), torch.eye(4))


def test_check_names_the_offending_batch_indices():
    a = spd_with_condition(6, 4, 10.0).reshape(2, 3, 4, 4)
    bad = a.clone()
    bad[1, 2, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"non-finite entries .* at batch index \(1, 2\)"):
        ts.sqrtm(bad, check=True)
    bad = a.clone()
    bad[0, 1, 0, 3] += 1.0
    with pytest.raises(ValueError, match=r"asymmetry .* at batch index \(0, 1\)"):
        ts.sqrtm(bad, check=True)
    bad = a.clone()
    bad[1, 0] = -bad[1, 0]
    with pytest.raises(ValueError, match=r"eigenvalue that is negative .* at batch index \(1, 0\)"):
        ts.inv_sqrtm(bad, check=True)
    bad = a.clone()
    bad[0, 0] = 0
    ts.sqrtm(bad, check=True)  # PSD: fine for sqrtm
    with pytest.raises(ValueError, match=r"zero matrix .* at batch index \(0, 0\)"):
        ts.inv_sqrtm(bad, check=True)
    ts.inv_sqrtm(a, check=True)  # valid input passes


@pytest.mark.parametrize("method", METHODS)
def test_a_nan_matrix_leaves_the_rest_of_the_batch_bit_identical(method):
    a = spd_with_condition(5, 33, 100.0, seed=1).requires_grad_(True)
    bad = a.detach().clone()
    bad[2, 3, 4] = float("nan")
    bad.requires_grad_(True)
    g = torch.randn(5, 33, 33)
    for fn in (ts.sqrtm, ts.inv_sqrtm):
        clean_out, poisoned_out = fn(a, method=method), fn(bad, method=method)
        (clean_grad,) = torch.autograd.grad(clean_out, a, g)
        (poisoned_grad,) = torch.autograd.grad(poisoned_out, bad, g)
        assert torch.isnan(poisoned_out[2]).all()
        keep = [0, 1, 3, 4]
        assert torch.equal(poisoned_out[keep], clean_out[keep])
        assert torch.equal(poisoned_grad[keep], clean_grad[keep])
        if method in MATMUL_METHODS:  # and exactly what each matrix gives alone
            alone = torch.cat([fn(a[i : i + 1], method=method) for i in keep])
            assert torch.equal(alone, clean_out[keep])


@pytest.mark.parametrize("method", METHODS)
def test_zero_matrix_gives_zero_root_and_infinite_inverse_root(method):
    a = torch.zeros(2, 4, 4)
    a[1] = torch.eye(4) * 9
    s, y = ts.sqrtm(a, method=method), ts.inv_sqrtm(a, method=method)
    assert torch.equal(s[0], torch.zeros(4, 4))
    assert not torch.isnan(y[0]).any()
    assert torch.isinf(torch.diagonal(y[0])).all() and (torch.diagonal(y[0]) > 0).all()
    tol = 1e-3 if method == "mtp" else 1e-5  # degree-10 Taylor of (1 - z)^-1/2 at z = 1/2
    assert torch.allclose(s[1], 3 * torch.eye(4), atol=tol) and torch.allclose(y[1], torch.eye(4) / 3, atol=tol)


@pytest.mark.parametrize("method", ["auto", "scaled_ns", "eigh"])
def test_psd_singular_sqrtm_and_eps(method):
    # Rank 3 of 6: sqrtm is still defined; eps regularises the inverse.
    v = torch.randn(2, 6, 3, dtype=torch.float64)
    a = (v @ v.mT).float()
    exact = exact_roots(a)[0]
    # The zero eigenvalues converge like sqrt(x) from below: error ~ eigenvalues left unresolved.
    assert float(relative_error(ts.sqrtm(a, method=method), exact).max()) < 2e-3
    eps = 1e-2
    shifted = a + eps * torch.eye(6)
    assert torch.allclose(ts.inv_sqrtm(a, eps=eps, method=method), ts.inv_sqrtm(shifted, method=method), rtol=1e-5, atol=1e-5)
    # Condition number ~1e3 after the shift: the float32 target up to 1e4 is 3e-4.
    assert float(relative_error(ts.inv_sqrtm(a, eps=eps, method=method), exact_roots(shifted)[1]).max()) < 3e-4


def test_versions_parse_release_and_local_strings():
    from tritonsqrt.versions import version_tuple

    assert version_tuple("3.6.0") == (3, 6)
    assert version_tuple("3.10.0+git1a2b3c") == (3, 10)
    assert version_tuple("2.4.0rc1") == (2, 4)
    assert version_tuple("3") == (3, 0)


def test_an_interpreter_that_cannot_run_the_kernels_is_named(monkeypatch):
    """Triton 3.6's interpreter with numpy >= 2.4 is refused with the fix, not an obscure failure."""
    import numpy
    import triton

    from tritonsqrt.paths import routing

    monkeypatch.setattr(triton, "__version__", "3.6.0")
    monkeypatch.setattr(numpy, "__version__", "2.4.6")
    a = spd_with_condition(1, 4, 10.0)
    with pytest.raises(ValueError, match=r"numpy<2\.4"):
        ts.sqrtm(a, backend="triton")
    assert torch.allclose(ts.sqrtm(a, method="scaled_ns"), ts.sqrtm(a, method="scaled_ns", backend="torch"))
    monkeypatch.setattr(numpy, "__version__", "2.3.5")
    assert routing.interpreter_problem() is None
    monkeypatch.setattr(triton, "__version__", "3.9.0")
    monkeypatch.setattr(numpy, "__version__", "2.4.6")
    assert routing.interpreter_problem() is None
