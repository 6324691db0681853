"""The emulated tensor-core precision (tritonsqrt.numerics.emulation): hand-computed products, the error
against ieee, and the torch path honouring `precision=`."""

import pytest
import torch

import tritonsqrt as ts
from tritonsqrt.numerics import emulation


def scalar_product(x: float, y: float, precision: str) -> float:
    a = torch.tensor([[x]], dtype=torch.float32)
    b = torch.tensor([[y]], dtype=torch.float32)
    return float(emulation.matmul(a, b, precision).double())


def test_tf32_rounding_by_hand():
    ulp = 2.0 ** -10  # TF32 has 10 mantissa bits
    x = torch.tensor([1 + ulp / 2, -(1 + ulp / 2), 1 + ulp / 4, 1 + 3 * ulp / 4, 3.0, float("inf"), float("-inf")])
    # cvt.rna: a tie goes away from zero, either sign
    assert emulation.round_to_tf32(x)[:5].tolist() == [1 + ulp, -(1 + ulp), 1.0, 1 + ulp, 3.0]
    # what the MMA reads: the low 13 bits dropped, toward zero
    assert emulation.truncate_to_tf32(x)[:5].tolist() == [1.0, -1.0, 1.0, 1.0, 3.0]
    assert emulation.round_to_tf32(x)[5:].tolist() == [float("inf"), float("-inf")]
    assert torch.isnan(emulation.round_to_tf32(torch.tensor([float("nan")]))).all()
    hi, lo = emulation.split_tf32(torch.tensor([1 + ulp / 2]))
    assert (hi.item(), lo.item()) == (1 + ulp, -ulp / 2)


def test_products_by_hand():
    # x = 1 + 2^-11: TF32 keeps 1; tf32x3: hi = 1 + 2^-10, lo = -2^-11, and
    # hi hi + 2 hi lo = 1 + 2^-10 exactly: the true product 1 + 2^-10 + 2^-22 less lo lo = 2^-22.
    x = 1 + 2.0 ** -11
    assert scalar_product(x, x, "ieee") == 1 + 2.0 ** -10 + 2.0 ** -22
    assert scalar_product(x, x, "tf32") == 1.0
    assert scalar_product(x, x, "tf32x3") == 1 + 2.0 ** -10
    # Triton's NaN guard: an infinite operand times an exact TF32 value stays inf (hi=1, lo=0).
    assert scalar_product(1.0, float("inf"), "tf32x3") == float("inf")
    # a 2x2 product: the sums are exact here, so each entry is the hand value
    a = torch.tensor([[1 + 2.0 ** -11, 2.0], [0.5, 1 + 2.0 ** -12]])
    b = torch.tensor([[1.0, 1 + 2.0 ** -11], [3.0, 0.25]])
    assert emulation.matmul(a, b, "tf32").tolist() == [[7.0, 1.5], [3.5, 0.75]]


@pytest.mark.parametrize("precision, low, high", [("tf32", 5e-5, 2e-3), ("tf32x3", 0.0, 4e-7)])
def test_error_against_ieee(precision, low, high):
    """tf32 around 1e-3 of sum |a b|, tf32x3 within a few float32 ulps (2^-24 = 6e-8)."""
    a, b = torch.randn(8, 64, 64), torch.randn(8, 64, 64)
    exact = a.double() @ b.double()
    scale = a.double().abs() @ b.double().abs()
    error = ((emulation.matmul(a, b, precision).double() - exact).abs() / scale).max().item()
    ieee = ((emulation.matmul(a, b, "ieee").double() - exact).abs() / scale).max().item()
    assert low <= error <= high, error
    if precision == "tf32x3":
        assert error <= 4 * max(ieee, 2.0 ** -24)


def test_float64_and_ieee_untouched():
    a = torch.randn(3, 5, 5, dtype=torch.float64)
    assert torch.equal(emulation.matmul(a, a, "tf32"), a @ a)
    f = torch.randn(5, 5)
    with emulation.products_at("ieee"):
        assert torch.equal(f @ f, torch.matmul(f, f))
    with emulation.products_at("tf32"):
        assert torch.equal(f @ f, emulation.matmul(f, f, "tf32"))
    with pytest.raises(ValueError, match="precision"):
        emulation.matmul(f, f, "fp16")


def test_torch_path_honours_precision():
    """scaled_ns at tf32 is off by ~1e-3, at tf32x3 it matches ieee's accuracy; both gradients too."""
    from tritonsqrt.testing import spd_with_condition

    a = spd_with_condition(2, 24, 100.0, seed=3, dtype=torch.float32, device="cpu")
    exact = ts.sqrtm(a.double(), method="eigh")
    errors = {}
    for precision in ("ieee", "tf32x3", "tf32"):
        x = a.clone().requires_grad_(True)
        root = ts.sqrtm(x, method="scaled_ns", backend="torch", precision=precision)
        root.sum().backward()
        errors[precision] = ((root.double() - exact).norm() / exact.norm()).item()
        assert torch.isfinite(x.grad).all()
    assert errors["ieee"] < 1e-5 and errors["tf32x3"] < 2 * errors["ieee"] + 1e-6
    assert 1e-5 < errors["tf32"] < 5e-3, errors


def test_check_prints_the_table_at_a_precision(capsys):
    from tritonsqrt import cli

    assert cli.main(["check", "--precision", "tf32x3", "--n", "2", "8", "--batch", "2", "--methods", "scaled_ns"]) == 0
    captured = capsys.readouterr()
    assert "products at tf32x3 (emulated" in captured.out
    rows = [line for line in captured.out.splitlines() if line.startswith("scaled_ns")]
    # tf32x3 holds the targets up to kappa 1e4; at 1e6 its inverse root is 3.5e-2 here (ieee 1.3e-2)
    assert len(rows) == 3 and rows[0].endswith("yes") and rows[1].endswith("yes")
    assert "check: scaled_ns (1/1), kappa 1e+02" in captured.err  # progress on stderr


def test_default_precision_rule():
    from tritonsqrt.constants import TF32X3_MIN_N, default_precision

    assert TF32X3_MIN_N == 16
    assert [default_precision("cuda", n, torch.float32) for n in (2, 8, 15, 16, 64, 65, 4096)] == (
        ["ieee"] * 3 + ["tf32x3"] * 4)
    assert {default_precision("cuda", n, torch.float64) for n in (2, 64, 4096)} == {"ieee"}
    assert {default_precision("cpu", n, torch.float32) for n in (2, 64, 4096)} == {"ieee"}


def test_plans_take_the_default_precision_unless_one_is_given():
    import dataclasses

    from tritonsqrt.plan import _with_default_precision, auto_method, resolve

    gpu = auto_method("cuda", 64, torch.float32)
    assert gpu.backend == "triton" and gpu.precision == "tf32x3" and "products tf32x3" in gpu.describe()
    assert auto_method("cuda", 8, torch.float32).precision == "ieee"
    assert auto_method("cuda", 64, torch.float64).precision == "ieee"
    assert auto_method("cpu", 64, torch.float32).precision == "ieee"
    # the torch path on a GPU (backend="torch", or no Triton): plain products, no emulation
    assert _with_default_precision(dataclasses.replace(gpu, backend="torch"), "cuda").precision == "ieee"
    a = torch.eye(32).expand(2, 32, 32)
    assert resolve(a, "scaled_ns", "auto").precision == "ieee"
    assert resolve(a, "scaled_ns", "auto", precision="tf32").precision == "tf32"  # explicit wins
    assert resolve(a, "auto", "torch", precision="tf32x3").precision == "tf32x3"


@pytest.mark.parametrize("n, draw, ieee_grad, tf32x3_grad", [(2, 2, 4.293e-05, 2.347e-04), (16, 2, 1.511e-05, 2.357e-05)])
def test_why_tf32x3_starts_at_16(n, draw, ieee_grad, tf32x3_grad):
    """Emulated, kappa 1e4, the table's spectrum: the sqrtm gradient at tf32x3 is 5.5x ieee's and
    over its target (2e-4) at n = 2; at n = 16 it is 1.6x ieee's and 8x below the target."""
    from tritonsqrt.testing.accuracy import TARGETS, _errors, draw_inputs

    a, g = draw_inputs(n, 1e4, 4, draw, "logspaced", torch.float32, "cpu")
    measured = {p: _errors("scaled_ns", a, g, 2, p)[2] for p in ("ieee", "tf32x3")}
    assert measured["ieee"] == pytest.approx(ieee_grad, rel=2e-3)
    assert measured["tf32x3"] == pytest.approx(tf32x3_grad, rel=2e-3)
    target = TARGETS[torch.float32][1e4][2]
    assert (measured["tf32x3"] > target) == (n == 2)


def test_auto_computes_small_cuda_matrices_in_float64():
    """Below n = 16 on CUDA, method="auto" runs float32 (and half) inputs in float64: neither
    tf32x3 nor float32 products hold the accuracy table there on every draw."""
    from tritonsqrt import plan as plan_mod

    assert plan_mod.computes_small_in_float64("cuda", 8, torch.float32, "auto")
    assert plan_mod.computes_small_in_float64("cuda", 15, torch.bfloat16, "auto")
    assert not plan_mod.computes_small_in_float64("cuda", 16, torch.float32, "auto")
    assert not plan_mod.computes_small_in_float64("cuda", 8, torch.float32, "scaled_ns")  # an explicit method
    assert not plan_mod.computes_small_in_float64("cpu", 8, torch.float32, "auto")
    small = plan_mod.auto_method("cuda", 8, torch.float32)
    assert small.compute_dtype == torch.float64 and "compute float64" in small.describe()
    assert plan_mod.auto_method("cuda", 16, torch.float32).describe().endswith("compute float32, products tf32x3")


def test_float64_compute_returns_the_input_dtype_with_gradients(monkeypatch):
    """The upcast wrapper of the public ops (run here on CPU by forcing the rule): roots and
    gradients come back in A's dtype, and equal the float64 computation rounded."""
    import tritonsqrt as ts
    from tritonsqrt import plan as plan_mod
    from tritonsqrt.testing import spd_with_condition

    monkeypatch.setattr(plan_mod, "computes_small_in_float64", lambda device, n, dtype, method: dtype != torch.float64)
    a = spd_with_condition(3, 6, 1e4, seed=0).requires_grad_(True)
    sqrt_mat, inv_mat = ts.sqrtm_and_inv_sqrtm(a)
    assert sqrt_mat.dtype == inv_mat.dtype == torch.float32
    (grad,) = torch.autograd.grad((sqrt_mat.sum() + inv_mat.sum()), a)
    assert grad.dtype == torch.float32
    a64 = a.detach().double().requires_grad_(True)
    s64, i64 = ts.sqrtm_and_inv_sqrtm(a64)
    (grad64,) = torch.autograd.grad((s64.sum() + i64.sum()), a64)
    assert torch.equal(sqrt_mat, s64.float()) and torch.equal(inv_mat, i64.float())
    assert torch.allclose(grad.double(), grad64, rtol=1e-6, atol=0)
