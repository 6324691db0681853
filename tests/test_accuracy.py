"""Every method against float64 eigh on matrices of known condition number."""

import pytest
import torch

import tritonsqrt as ts
from tritonsqrt.perf import competitors
from tritonsqrt.testing.accuracy import TARGETS
from tritonsqrt.plan import auto_method
from tritonsqrt.testing import measure, random_symmetric, spd_with_condition

SIZES = (2, 16, 33, 64, 128, 256)


def worst_errors(method, kappa, dtype=torch.float32, sizes=SIZES, batch=3):
    """Worst (sqrtm, inv_sqrtm, d sqrtm, d inv_sqrtm) error over the sizes."""
    worst = [0.0] * 4
    for n in sizes:
        a = spd_with_condition(batch, n, kappa, seed=n + int(kappa), dtype=dtype)
        g = random_symmetric(batch, n, seed=n, dtype=dtype)
        for slot, (fn, inverse) in enumerate(((ts.sqrtm, False), (ts.inv_sqrtm, True))):
            fwd, bwd = measure(lambda x: fn(x, method=method), a, g, inverse)
            worst[slot] = max(worst[slot], fwd)
            worst[slot + 2] = max(worst[slot + 2], bwd)
    return worst


@pytest.mark.parametrize("kappa", [1e2, 1e4, 1e6])
@pytest.mark.parametrize("method", ["auto", "scaled_ns"])  # scaled_ns is what auto runs on a GPU
def test_default_methods_meet_the_float32_table(method, kappa):
    errors = worst_errors(method, kappa)
    targets = TARGETS[torch.float32][kappa]
    assert all(e <= t for e, t in zip(errors, targets)), f"{method} kappa={kappa:g}: {errors} vs {targets}"


@pytest.mark.parametrize("kappa", [1e2, 1e4])
@pytest.mark.parametrize("method", ["auto", "scaled_ns", "eigh"])
def test_float64_reaches_1e_10(method, kappa):
    errors = worst_errors(method, kappa, dtype=torch.float64, sizes=(2, 33, 128))
    assert max(errors) <= 1e-10, errors


def test_gpu_auto_plan_is_scaled_ns_within_100_products():
    plan = auto_method("cuda", 64, torch.float32)
    assert plan.method == "scaled_ns"
    assert plan.matmuls("sqrtm", backward=True) <= 100
    assert plan.matmuls("inv_sqrtm", backward=True) <= 100
    assert auto_method("cpu", 64, torch.float32).method == "eigh"


# The seed paper's methods at the paper's settings: accurate for well-conditioned input only
# (README, "Accuracy"). Bounds are the figures measured here, with headroom, and the backward
# must beat the official 8-step code at every kappa (theirs: 1.9e-2 at kappa 10).
PAPER_BOUNDS = {  # method -> kappa -> (sqrtm, inv_sqrtm) forward bound, n in (2, 33, 64)
    # measured here: mpa 1.0e-2 / 2.5e-2 and 6.4e-2 / 2.8e-1 (= the official code's figures),
    # mtp 8.8e-2 / 3.1e-1 and 2.3e-1 / 6.6e-1, ns (iSQRT-COV: trace norm, 5 steps) 2.4e-1 / 4.1e-1
    # and 2.2e-1 / 6.9e-1 (the trace puts the eigenvalues near 1/n, far from where NS converges fast).
    "mpa": {1e1: (1.2e-2, 3e-2), 1e2: (7.5e-2, 3.2e-1)},
    "mtp": {1e1: (1e-1, 3.5e-1), 1e2: (2.6e-1, 7.5e-1)},
    "ns": {1e1: (2.7e-1, 4.5e-1), 1e2: (2.6e-1, 7.5e-1)},
}


@pytest.mark.parametrize("method", sorted(PAPER_BOUNDS))
@pytest.mark.parametrize("kappa", [1e1, 1e2])
def test_paper_methods_forward_and_backward(method, kappa):
    errors = worst_errors(method, kappa, sizes=(2, 33, 64))
    sqrt_bound, inv_bound = PAPER_BOUNDS[method][kappa]
    assert errors[0] <= sqrt_bound and errors[1] <= inv_bound, errors
    if method == "ns":  # differentiated through its 5 steps, as iSQRT-COV: tests/test_isqrt_cov.py
        return
    # The backward solves the Lyapunov equation of the computed root to convergence:
    # S X + X S = G holds to float32 accuracy (the official 8 steps leave 0.15 at kappa 1e3).
    a = spd_with_condition(3, 64, kappa, seed=5).requires_grad_(True)
    g = random_symmetric(3, 64)
    root = ts.sqrtm(a, method=method)
    (x,) = torch.autograd.grad(root, a, g)
    s = root.detach()
    residual = torch.linalg.matrix_norm(s @ x + x @ s - g) / torch.linalg.matrix_norm(g)
    assert float(residual.max()) < 5e-5


def test_official_backward_is_unconverged_where_ours_is():
    a = spd_with_condition(3, 64, 1e3, seed=5).requires_grad_(True)
    g = random_symmetric(3, 64)
    _, official = measure(lambda x: competitors.official_lya(x, "mpa", False), a.detach(), g, False)
    _, ours = measure(lambda x: ts.sqrtm(x, method="scaled_ns"), a.detach(), g, False)
    assert official > 0.05 and ours < 1e-5


def test_paper_methods_converge_with_higher_degree():
    """The settings are real: more degree or iterations gives a more accurate root."""
    a = spd_with_condition(2, 16, 10.0, seed=3, dtype=torch.float64)
    exact = torch.linalg.eigh(a)
    exact = (exact[1] * exact[0].sqrt().unsqueeze(-2)) @ exact[1].mT
    def err(**kw):
        return float((ts.sqrtm(a, **kw) - exact).norm() / exact.norm())
    assert err(method="mtp", degree=60) < err(method="mtp") / 100
    assert err(method="mpa", degree=(12, 12)) < err(method="mpa") / 100
    assert err(method="ns", iterations=30) < 1e-12 < err(method="ns")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("method", ["auto", "scaled_ns", "eigh", "mpa"])
def test_half_inputs_are_computed_in_float32_and_cast_back(method, dtype):
    a = spd_with_condition(4, 16, 10.0, seed=2, dtype=torch.float32, log_scale_range=1.0)
    a_half = a.to(dtype)
    for fn in (ts.sqrtm, ts.inv_sqrtm):
        out = fn(a_half, method=method)
        assert out.dtype == dtype and out.shape == a.shape
        # The float32 result of the rounded input, rounded to `dtype`, is what must come out.
        expected = fn(a_half.float(), method=method).to(dtype)
        assert torch.equal(out, expected)


def test_the_float32_gradient_error_comes_from_the_forward_root():
    """README "Accuracy", "Why": at n = 2, kappa 1e4 (draw 47 of `check --n 2 --seeds 50`, the
    worst), the sqrtm gradient misses its target 2e-4; the backward is not the cause: in float64
    on the same float32 root it gives the same error, and from the exact root rounded to float32
    the float32 backward is 65x more accurate (4.3e-6). More backward steps change nothing."""
    from tritonsqrt.numerics import reference as ref
    from tritonsqrt.plan import Plan
    from tritonsqrt.testing import exact_gradients, exact_roots, relative_error
    from tritonsqrt.testing.accuracy import draw_inputs

    a, g = draw_inputs(2, 1e4, 4, 47, "logspaced", torch.float32, "cpu")
    plan = Plan(method="scaled_ns", compute_dtype=torch.float32, n=2)
    a_hat, norm = ref.frobenius_normalize(ref.symmetrize(a))
    root = ref.unscale(ref.coupled_newton_schulz(a_hat, plan.forward_steps)[0], norm, inverse=False)
    exact_root, _ = exact_roots(a)
    exact_grad, _ = exact_gradients(a, g)

    def grad_error(s_mat, dtype, steps=plan.backward_steps):
        x = ref.lyapunov_sign(s_mat.to(dtype), ref.symmetrize(g).to(dtype), norm.to(dtype).sqrt(), steps)
        return float(relative_error(ref.symmetrize(x), exact_grad).max())

    float32 = grad_error(root, torch.float32)
    assert 2e-4 < float32 < 3e-4  # 2.8e-4 measured
    assert grad_error(root, torch.float64) == pytest.approx(float32, rel=0.05)
    assert grad_error(root, torch.float32, plan.backward_steps + ((1.5, -0.5),) * 3) == pytest.approx(float32, rel=0.01)
    assert grad_error(exact_root.float(), torch.float32) < float32 / 25
