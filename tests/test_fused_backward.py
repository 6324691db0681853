"""The fused Lyapunov backward kernel against the torch reference, in the Triton interpreter."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernels are imported

import pytest  # noqa: E402
import torch  # noqa: E402

from tritonsqrt import testing  # noqa: E402
from tritonsqrt.paths import torch_path  # noqa: E402
from tritonsqrt.testing.instrument import count_launches  # noqa: E402
from tritonsqrt.kernels.fused_lyapunov import lyapunov_backward  # noqa: E402
from tritonsqrt.plan import Plan  # noqa: E402

BATCH = 7
TOLERANCE = 1e-5  # relative Frobenius difference per matrix, float32 kernel vs float32 torch


def batch_for(n: int) -> int:
    """BATCH where matrices share a program (n <= 16, several to a program; 7 leaves one partly
    filled); 3 above, one matrix a program (first, middle, last). The interpreter runs the
    programs one by one, so this is the cost of the large-n cases."""
    return BATCH if n <= 16 else 3


def saved_forward(n: int, kappa: float = 100.0, seed: int = 0, batch: int = BATCH):
    """(plan, saved tensors) of a scaled_ns forward that returned both roots."""
    plan = Plan(method="scaled_ns", compute_dtype=torch.float32, n=n)
    a = testing.spd_with_condition(batch, n, kappa, seed=seed)
    _, _, saved = torch_path.roots_forward(a, plan, want_sqrt=True, want_inv=True, need_backward=True)
    return plan, saved


def worst_difference(result: torch.Tensor, expected: torch.Tensor) -> float:
    assert not torch.isnan(result).any(), f"NaN at {torch.isnan(result).nonzero()[0].tolist()}"
    per_matrix = testing.relative_error(result, expected)
    return per_matrix.max().item()


def layout(grad: torch.Tensor, how: str) -> torch.Tensor:
    if how == "transposed":
        return grad.mT.contiguous().mT  # same values, column-major strides
    if how == "expanded":
        return grad[:1].expand_as(grad)  # batch stride 0, as from .sum().backward()
    return grad


@pytest.mark.parametrize("n", [1, 2, 8, 16, 33, 64])
@pytest.mark.parametrize("grads", ["sqrt", "inv", "both"])
def test_matches_torch_path(n, grads):
    batch = batch_for(n)
    plan, saved = saved_forward(n, batch=batch)
    gen = torch.Generator().manual_seed(n)
    grad_sqrt = torch.randn(batch, n, n, generator=gen) if grads in ("sqrt", "both") else None
    grad_inv = torch.randn(batch, n, n, generator=gen) if grads in ("inv", "both") else None
    expected = torch_path.roots_backward(plan, saved, grad_sqrt, grad_inv)
    result = lyapunov_backward(saved[0], saved[1], saved[2], grad_sqrt, grad_inv, plan.backward_steps)
    assert result.dtype == torch.float32 and result.shape == (batch, n, n)
    assert worst_difference(result, expected) <= TOLERANCE


@pytest.mark.parametrize("n", [8, 33])
@pytest.mark.parametrize("how", ["transposed", "expanded"])
def test_any_strides(n, how):
    batch = batch_for(n)
    plan, saved = saved_forward(n, batch=batch)
    gen = torch.Generator().manual_seed(1)
    grad_sqrt = layout(torch.randn(batch, n, n, generator=gen), how)
    grad_inv = layout(torch.randn(batch, n, n, generator=gen), how)
    expected = torch_path.roots_backward(plan, saved, grad_sqrt.contiguous(), grad_inv.contiguous())
    result = lyapunov_backward(saved[0], saved[1], saved[2], grad_sqrt, grad_inv, plan.backward_steps)
    assert worst_difference(result, expected) <= TOLERANCE


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_grad_dtypes_are_upcast(dtype):
    n = 16
    plan, saved = saved_forward(n)
    grad_sqrt = torch.randn(BATCH, n, n).to(dtype)
    expected = torch_path.roots_backward(plan, saved, grad_sqrt, None)
    result = lyapunov_backward(saved[0], saved[1], None, grad_sqrt, None, plan.backward_steps)
    assert result.dtype == torch.float32
    assert worst_difference(result, expected) <= TOLERANCE


@pytest.mark.parametrize("n", [16, 33])
def test_float64_compute(n):
    plan = Plan(method="scaled_ns", compute_dtype=torch.float64, n=n)
    batch = batch_for(n)
    a = testing.spd_with_condition(batch, n, 100.0, dtype=torch.float64)
    _, _, saved = torch_path.roots_forward(a, plan, True, True, True)
    grad_sqrt = torch.randn(batch, n, n, dtype=torch.float64)
    grad_inv = torch.randn(batch, n, n, dtype=torch.float64)
    expected = torch_path.roots_backward(plan, saved, grad_sqrt, grad_inv)
    result = lyapunov_backward(saved[0], saved[1], saved[2], grad_sqrt, grad_inv, plan.backward_steps)
    assert result.dtype == torch.float64
    assert worst_difference(result, expected) <= 1e-12


@pytest.mark.parametrize("n", [8, 33])  # several matrices per program, and one per program
def test_nan_matrix_leaves_the_others_bit_identical(n):
    # n = 8: matrices 0-3 share a program with the NaN, 4-6 do not; n = 33: its neighbours.
    batch, neighbours = (BATCH, (0, 1, 3, 6)) if n <= 16 else (4, (1, 3))
    plan, saved = saved_forward(n, batch=batch)
    sqrt_mat, norm, inv_mat = (t.clone() for t in saved)
    grad_sqrt = torch.randn(batch, n, n)
    sqrt_mat[2, 0, 0] = float("nan")
    result = lyapunov_backward(sqrt_mat, norm, inv_mat, grad_sqrt, None, plan.backward_steps)
    assert torch.isnan(result[2]).all()
    for i in neighbours:
        alone = lyapunov_backward(sqrt_mat[i:i + 1], norm[i:i + 1], None, grad_sqrt[i:i + 1], None,
                                  plan.backward_steps)
        assert torch.equal(result[i], alone[0]), f"matrix {i} changed by the NaN in matrix 2"


@pytest.mark.parametrize("n", [8, 33])
def test_zero_matrix_uses_scale_one_like_torch(n):
    plan = Plan(method="scaled_ns", compute_dtype=torch.float32, n=n)
    batch = BATCH if n <= 16 else 5  # n = 33: the zero matrix and two neighbours each side
    a = testing.spd_with_condition(batch, n, 10.0)
    a[3] = 0.0
    _, _, saved = torch_path.roots_forward(a, plan, True, False, True)
    grad_sqrt = torch.randn(batch, n, n)
    expected = torch_path.roots_backward(plan, saved, grad_sqrt, None)
    result = lyapunov_backward(saved[0], saved[1], None, grad_sqrt, None, plan.backward_steps)
    assert torch.isfinite(result).all()
    torch.testing.assert_close(result[3], expected[3], rtol=1e-5, atol=1e-6)
    others = [i for i in range(batch) if i != 3]
    assert worst_difference(result[others], expected[others]) <= TOLERANCE


def test_steps_as_tensor_match_pairs():
    plan, saved = saved_forward(8)
    grad = torch.randn(BATCH, 8, 8)
    as_pairs = lyapunov_backward(saved[0], saved[1], None, grad, None, plan.backward_steps)
    as_tensor = lyapunov_backward(saved[0], saved[1], None, grad, None, torch.tensor(plan.backward_steps))
    assert torch.equal(as_pairs, as_tensor)


@pytest.mark.parametrize("n", [8, 33])
def test_one_launch_per_call(n):
    plan, saved = saved_forward(n, batch=2)  # the count does not depend on the batch; its cost does
    grad = torch.randn(2, n, n)
    with count_launches() as counts:
        lyapunov_backward(saved[0], saved[1], saved[2], grad, grad, plan.backward_steps)
    assert counts.launches == 1, counts.names
    assert counts.names[0].startswith("_lyapunov_backward")


def test_count_launches_nests_and_restores():
    from triton.runtime.interpreter import InterpretedFunction

    original = InterpretedFunction.__dict__["run"]
    plan, saved = saved_forward(2)
    grad = torch.randn(BATCH, 2, 2)
    with count_launches() as outer:
        lyapunov_backward(saved[0], saved[1], None, grad, None, plan.backward_steps)
        with count_launches() as inner:
            lyapunov_backward(saved[0], saved[1], None, grad, None, plan.backward_steps)
    assert (outer.launches, inner.launches) == (2, 1)
    assert InterpretedFunction.__dict__["run"] is original


def test_errors_name_the_argument():
    plan, saved = saved_forward(8)
    grad = torch.randn(BATCH, 8, 8)
    with pytest.raises(ValueError, match="grad_sqrt"):
        lyapunov_backward(saved[0], saved[1], None, grad[:, :4], None, plan.backward_steps)
    with pytest.raises(ValueError, match="inv_mat"):
        lyapunov_backward(saved[0], saved[1], None, None, grad, plan.backward_steps)
    with pytest.raises(ValueError, match="precision"):
        lyapunov_backward(saved[0], saved[1], None, grad, None, plan.backward_steps, precision="fp8")
