"""inv_root / root for p = 1, 2, 4, 8.

The families and tolerances are those of Distributed Shampoo's `matrix_inverse_root` tests
(facebookresearch/optimizers, distributed_shampoo/preconditioner/tests/matrix_functions_test.py):
the identity, two tridiagonal families over (alpha, beta) in {1e-3, ..., 100}^2 with
2 beta <= alpha, a diagonal and a 3 x 3 matrix with known inverse square root, and an epsilon
shift. Re-implemented here from their published expectations; every family is one batched call.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import tritonsqrt as ts
from tritonsqrt import testing

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small batched products: on a shared 2-core machine two torch threads made them 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SHAMPOO_SCALES = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
ALPHA_BETA = [(alpha, beta) for alpha, beta in itertools.product(SHAMPOO_SCALES, repeat=2) if 2 * beta <= alpha]
# Their 3 x 3 case: A and its inverse square root (condition number ~7e5).
DENSE_A = [[1195.0, -944.0, -224.0], [-944.0, 746.0, 177.0], [-224.0, 177.0, 42.0]]
DENSE_INV_SQRT = [[1.0, 1.0, 1.0], [1.0, 2.0, -3.0], [1.0, -3.0, 18.0]]


def tridiagonal(n: int, alpha: float, beta: float, family: int) -> torch.Tensor:
    """Family 1: alpha on the diagonal, beta beside it, +beta at both corners (eigenvalues
    alpha + 2 beta cos(j pi / n)); family 2: -beta at the first corner only
    (alpha + 2 beta cos(2 j pi / (2 n + 1)))."""
    diag = torch.full((n,), alpha)
    if family == 1:
        diag[0] += beta
        diag[-1] += beta
    else:
        diag[0] -= beta
    off = torch.full((n - 1,), beta)
    return torch.diag(diag) + torch.diag(off, 1) + torch.diag(off, -1)


def shampoo_relative_error(x: torch.Tensor, a: torch.Tensor, p: int) -> torch.Tensor:
    """Their figure: ||X^(-p) - A||_inf / max(1, ||A||_inf), per matrix, in float64."""
    back = torch.linalg.matrix_power(x.double(), -p)
    norm = torch.linalg.matrix_norm(a.double(), ord=math.inf)
    return torch.linalg.matrix_norm(back - a.double(), ord=math.inf) / norm.clamp_min(1.0)


@pytest.mark.parametrize("method", ["auto", "scaled_ns"])
@pytest.mark.parametrize("n", [10, 100])
def test_identity(method, n):
    for p in (1, 2, 4, 8):
        x = ts.inv_root(torch.eye(n), p, method=method)
        assert shampoo_relative_error(x, torch.eye(n), p).item() <= 1e-6, p


@pytest.mark.parametrize("method, roots", [("auto", (1, 2, 4, 8)), ("scaled_ns", (2, 4))])
@pytest.mark.parametrize("family", [1, 2])
@pytest.mark.parametrize("n", [10, 100])
def test_tridiagonal_families(method, roots, family, n):
    a = torch.stack([tridiagonal(n, alpha, beta, family) for alpha, beta in ALPHA_BETA])
    for p in roots:
        errors = shampoo_relative_error(ts.inv_root(a, p, method=method), a, p)
        assert errors.max().item() <= 1e-4, (p, ALPHA_BETA[int(errors.argmax())], errors.max().item())


@pytest.mark.parametrize("method", ["auto", "scaled_ns"])
def test_known_inverse_roots(method):
    diag = torch.tensor([[1.0, 0.0], [0.0, 4.0]])
    dense, dense_root = torch.tensor(DENSE_A), torch.tensor(DENSE_INV_SQRT)
    for a, expected in ((diag, torch.tensor([[1.0, 0.0], [0.0, 0.5]])), (dense, dense_root)):
        # Their tolerances (atol 0.05, rtol 1e-2), for A^(-1/2) and A^-1 = (A^(-1/2))^2.
        torch.testing.assert_close(ts.inv_root(a, 2, method=method), expected, atol=0.05, rtol=1e-2)
        torch.testing.assert_close(ts.inv_root(a, 1, method=method), expected @ expected, atol=0.05, rtol=1e-2)
        # p = 4 from the same expectation: (A^(-1/4))^2 = A^(-1/2).
        fourth = ts.inv_root(a, 4, method=method)
        torch.testing.assert_close(fourth @ fourth, expected, atol=0.05, rtol=1e-2)


def test_epsilon_shift():
    # diag(0.1, 3.1) + 0.9 I = diag(1, 4).
    a = torch.tensor([[0.1, 0.0], [0.0, 3.1]])
    for method in ("auto", "scaled_ns"):
        torch.testing.assert_close(ts.inv_root(a, 2, eps=0.9, method=method), torch.diag(torch.tensor([1.0, 0.5])))
        torch.testing.assert_close(ts.inv_root(a, 4, eps=0.9, method=method),
                                   torch.diag(torch.tensor([1.0, 0.5**0.5])))
        torch.testing.assert_close(ts.root(a, 4, eps=0.9, method=method), torch.diag(torch.tensor([1.0, 2**0.5])))


@pytest.mark.parametrize("method, forward_tol, grad_tol", [("auto", 1e-7, 1e-7), ("scaled_ns", 2e-6, 2e-5)])
def test_fourth_roots_and_gradients_against_float64(method, forward_tol, grad_tol):
    a = testing.spd_with_condition(3, 33, 1e2, seed=5)
    g = testing.random_symmetric(3, 33)
    for inverse in (False, True):
        fn = (lambda x: ts.inv_root(x, 4, method=method)) if inverse else (lambda x: ts.root(x, 4, method=method))
        forward, gradient = testing.measure(fn, a, g, inverse, p=4)
        assert forward <= forward_tol and gradient <= grad_tol, (inverse, forward, gradient)


def test_chain_is_the_public_square_roots():
    a = testing.spd_with_condition(2, 12, 1e3, seed=2)
    s = ts.sqrtm(a, method="scaled_ns", max_condition=1e6)
    expected = ts.inv_sqrtm(s, method="scaled_ns", max_condition=1e3)
    torch.testing.assert_close(ts.inv_root(a, 4, method="scaled_ns"), expected, rtol=0, atol=0)
    torch.testing.assert_close(ts.root(a, 2, method="scaled_ns"), ts.sqrtm(a, method="scaled_ns"), rtol=0, atol=0)


def test_batch_shape_dtype_and_root_one():
    a = testing.spd_with_condition(6, 8, 10.0, seed=3).reshape(2, 3, 8, 8)
    assert ts.inv_root(a, 8).shape == (2, 3, 8, 8)
    torch.testing.assert_close(ts.root(a, 1, eps=0.5), a + 0.5 * torch.eye(8))
    half = ts.inv_root(a.bfloat16(), 4)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), ts.inv_root(a, 4), rtol=1e-2, atol=1e-2)


def test_triton_kernels_match_the_torch_path():
    a = torch.stack([tridiagonal(10, 1.0, beta, 1) for beta in (0.1, 0.3)])
    kernels = ts.inv_root(a, 4, method="scaled_ns", backend="triton")
    torch_path = ts.inv_root(a, 4, method="scaled_ns", backend="torch")
    torch.testing.assert_close(kernels, torch_path, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("p", [0, 3, 6, -2, 2.0, True, "4"])
def test_p_must_be_a_power_of_two(p):
    with pytest.raises(ValueError, match=r"inv_root: p must be a power of two"):
        ts.inv_root(torch.eye(3), p)


def test_bad_matrix_names_the_argument():
    with pytest.raises(ValueError, match=r"root: expected a square matrix .* of A"):
        ts.root(torch.ones(2, 3), 4)
    with pytest.raises(ValueError, match="max_condition"):
        ts.inv_root(torch.eye(3), 4, max_condition=0.5)


def test_product_count_of_the_chain_is_the_counted_one():
    from tritonsqrt.roots import chain_matmuls
    from tritonsqrt.perf.cases import BY_NAME
    from tritonsqrt.perf.costs import torch_path_costs

    counted = torch_path_costs(BY_NAME["shampoo-p4-n1024"], "inv_root4", "scaled_ns")  # meta tensors, n = 1024
    assert counted["matmuls_forward"] == chain_matmuls(1024, 4, True, False) == 61
    assert counted["matmuls_forward_backward"] == chain_matmuls(1024, 4, True, True) == 173
    assert chain_matmuls(1024, 4, True, False, max_condition=1e4) == 52


def test_shampoo_bench_cases_and_eigh_provider():
    from tritonsqrt.perf import cases, providers
    from tritonsqrt.perf.runner import Settings, run, schedule

    for name, n in (("shampoo-p4-n1024", 1024), ("shampoo-p4-n4096", 4096)):
        case = cases.BY_NAME[name]
        assert (case.n, case.ops, case.modes, case.kappa) == (n, ("inv_root4",), ("forward",), 1e4)
        assert case.on("cpu").n <= 512 and name not in cases.QUICK + cases.GATE
    tiny = cases.Case("tiny-p4", 2, 24, ("inv_root4",), "test", modes=("forward",), kappa=1e4)
    chosen = [providers.BY_NAME[name] for name in ("tritonsqrt:scaled_ns", "eigh-inv-root", "eigh-autograd")]
    settings = Settings(budget_s=0.01)
    rows, _ = run(schedule([tiny], chosen, settings), torch.device("cpu"), settings)
    errors = {row["provider"]: row["fwd_error"] for row in rows}
    assert set(errors) == {"tritonsqrt:scaled_ns", "eigh-inv-root"}  # eigh-autograd has square roots only
    assert errors["tritonsqrt:scaled_ns"] < 1e-4 and errors["eigh-inv-root"] < 1e-2


def test_compiles_into_one_graph():
    a = testing.spd_with_condition(3, 16, 100.0, seed=6).requires_grad_(True)
    compiled = torch.compile(lambda x: ts.inv_root(x, 4, method="scaled_ns"), fullgraph=True)  # no graph break
    out = compiled(a)
    (grad,) = torch.autograd.grad(out, a, torch.ones_like(out))
    eager = ts.inv_root(a, 4, method="scaled_ns")
    (eager_grad,) = torch.autograd.grad(eager, a, torch.ones_like(eager))
    torch.testing.assert_close(out, eager, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grad, eager_grad, rtol=1e-5, atol=1e-6)


def test_check_names_inv_root_and_the_bad_matrix():
    good = torch.eye(4)
    indefinite = torch.diag(torch.tensor([1.0, 1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match=r"inv_root: A has an eigenvalue that is negative or zero .* index \(1,\)"):
        ts.inv_root(torch.stack([good, indefinite]), 4, check=True)
    with pytest.raises(ValueError, match=r"root: A has a negative eigenvalue"):
        ts.root(indefinite, 4, check=True)
    singular = torch.diag(torch.tensor([1.0, 1.0, 1.0, 0.0]))
    torch.testing.assert_close(ts.root(singular, 4, check=True), singular, atol=1e-6, rtol=0)  # semidefinite: fine
    torch.testing.assert_close(ts.inv_root(indefinite, 4, eps=2.0, check=True),  # eps makes it definite
                               torch.diag(torch.tensor([3 ** -0.25] * 3 + [1.0])))


def test_shampoo_example_trains_and_prints_both_runs(capsys):
    pytest.importorskip("sklearn")
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "examples" / "shampoo.py"
    spec = importlib.util.spec_from_file_location("shampoo_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--steps", "40"]) == 0
    ours, eigh, roots = capsys.readouterr().out.splitlines()
    for line in (ours, eigh):
        first, last = (float(word) for word in line.split("loss ")[1].split()[:3:2])
        assert last < 0.7 * first, line
    assert ours.startswith("inv_root(p=4, method=scaled_ns)") and eigh.startswith("eigh (float32)")
    assert float(roots.split("inv_root ")[1].split(",")[0]) < 1e-4
