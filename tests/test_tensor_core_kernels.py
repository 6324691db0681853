"""The tensor-core fused kernels (kernels/fused_roots_tc.py, kernels/fused_lyapunov_tc.py) and their
TF32 split (kernels/tf32_split.py), in the Triton interpreter.

The interpreter ignores `input_precision`, but these kernels split their operands themselves, in
integer operations: under the interpreter they compute the tf32x3 rounding that
`tritonsqrt.numerics.emulation` applies to the torch path, so the two are held to each other
closely, and both to float64 eigh."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernels are imported

import dataclasses  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from tritonsqrt import testing  # noqa: E402
from tritonsqrt.constants import compute_dtype_for  # noqa: E402
from tritonsqrt.kernels import fused_lyapunov, fused_roots, spaces  # noqa: E402
from tritonsqrt.kernels.fused_lyapunov import lyapunov_backward  # noqa: E402
from tritonsqrt.kernels.tf32_split import split, split_dot  # noqa: E402
from tritonsqrt.numerics import emulation  # noqa: E402
from tritonsqrt.paths import fused_path, torch_path  # noqa: E402
from tritonsqrt.plan import Plan  # noqa: E402
from tritonsqrt.testing.instrument import count_launches  # noqa: E402

# Kernel and torch path take the same split operands; they differ in the order of the float32
# sums (the kernel chains lo hi + hi lo into one accumulator), a few ulps a product.
TOLERANCE = 2e-5


def plan_for(method: str, a: torch.Tensor, precision: str = "tf32x3") -> Plan:
    return Plan(method=method, compute_dtype=compute_dtype_for(a.dtype), n=a.shape[-1], backend="triton",
                precision=precision)


def worst(got: torch.Tensor, want: torch.Tensor) -> float:
    assert torch.isfinite(got).all()
    return testing.relative_error(got, want).max().item()


@triton.jit
def _split_dot_kernel(x_ptr, y_ptr, out_ptr, hi_ptr, lo_ptr, SIZE: tl.constexpr):
    offsets = tl.arange(0, SIZE)[:, None] * SIZE + tl.arange(0, SIZE)[None, :]
    x = tl.load(x_ptr + offsets)
    y = tl.load(y_ptr + offsets)
    x_hi, x_lo = split(x)
    y_hi, y_lo = split(y)
    tl.store(hi_ptr + offsets, x_hi)
    tl.store(lo_ptr + offsets, x_lo)
    tl.store(out_ptr + offsets, split_dot(x_hi, x_lo, y_hi, y_lo, "tf32x3"))


def test_split_and_product_are_the_emulated_tf32x3():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 32, generator=gen) * 10.0 ** torch.randint(-6, 6, (32, 32), generator=gen)
    y = torch.randn(32, 32, generator=gen)
    out, hi, lo = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)
    _split_dot_kernel[(1,)](x, y, out, hi, lo, SIZE=32)
    want_hi, want_lo = emulation.split_tf32(x)
    assert torch.equal(hi, want_hi) and torch.equal(lo, want_lo)  # bit for bit
    want = emulation.matmul(x, y, "tf32x3")
    exact = x.double() @ y.double()
    scale = (x.double().abs() @ y.double().abs())
    assert ((out.double() - want.double()).abs() <= 4 * 2.0**-24 * scale).all()
    # tf32x3 drops lo lo only: within a few float32 ulps of sum |x y| of the exact product
    assert ((out.double() - exact).abs() <= 2.0**-20 * scale).all()


def test_tensor_core_kernels_are_the_defaults_where_offered():
    forward = spaces.fused_roots_candidates(64, "float32", "newton_schulz", "tf32x3", arch="sm_90")
    assert forward[0]["KERNEL"] == "tensor_cores" and len(forward) >= 2  # previous kernels stay candidates
    assert all(c.get("KERNEL") != "tensor_cores"
               for c in spaces.fused_roots_candidates(64, "float32", "newton_schulz", "ieee", arch="sm_90"))
    sm80 = spaces.fused_roots_candidates(64, "float32", "newton_schulz", "tf32x3", arch="sm_80")
    assert [c["KERNEL"] for c in sm80] == ["tensor_cores_streamed"]  # the old one spills there
    backward = spaces.fused_lyapunov_candidates(32, "float32", "tf32x3", arch="sm_80")
    assert backward[0]["kernel"] == "tensor_cores" and len(backward) >= 2
    backward = spaces.fused_lyapunov_candidates(64, "float32", "tf32x3", arch="sm_90")
    assert backward[0]["kernel"] == "tensor_cores_streamed" and len(backward) >= 2
    assert backward[0]["SYMMETRIC_PANELS"] and all(c.get("SYMMETRIC_PANELS") is not False for c in backward)
    sm80 = spaces.fused_lyapunov_candidates(48, "float32", "tf32x3", arch="sm_80")
    assert sm80[0]["kernel"] == "tensor_cores_streamed" and sm80[0]["SYMMETRIC_PANELS"] is False
    assert spaces.fused_lyapunov_candidates(64, "float32", "tf32x3", interpreter=True)[0]["SYMMETRIC_PANELS"]


STREAMED_FORWARD = {"KERNEL": "tensor_cores_streamed", "BLOCK": 64, "MATRICES": 1, "STREAM": True, "CHUNK": 16,
                    "SCRATCH_SLOTS": 3, "num_warps": 4, "num_stages": 2}


@pytest.fixture(params=("registers", "streamed"))
def forward_form(request, monkeypatch):
    """Each tensor-core forward in turn: the register form is the interpreter's default; the
    streamed one (the default on sm_80) is put first here."""
    if request.param == "streamed":
        monkeypatch.setattr(fused_roots, "candidate_configs", lambda n, *args, **kwargs: [dict(STREAMED_FORWARD)])
        return "_newton_schulz_tc_streamed_kernel"
    return "_newton_schulz_tc_kernel"


@pytest.mark.parametrize("method", ("scaled_ns", "ns"))
@pytest.mark.parametrize("n", (40, 64))
def test_forward_matches_emulated_torch_path(method, n, forward_form):
    a = testing.spd_with_condition(3, n, 100.0, seed=n)
    plan = plan_for(method, a)
    with count_launches() as counts:
        got = fused_path.roots_forward(a, plan, True, True, False, 0.0)
    assert counts.names == [forward_form]
    want = torch_path.roots_forward(a, plan, True, True, False, 0.0)
    assert worst(got[0], want[0]) <= TOLERANCE and worst(got[1], want[1]) <= TOLERANCE


@pytest.mark.parametrize("n", (33, 64))
def test_forward_at_kappa_1e6_is_as_accurate_as_the_torch_path(n, forward_form):
    """Against float64 eigh, the kernel's error is the emulated torch path's, not more."""
    a = testing.spd_with_condition(2, n, 1e6, seed=1)
    plan = plan_for("scaled_ns", a)
    got = fused_path.roots_forward(a, plan, True, True, False, 0.0)
    want = torch_path.roots_forward(a, plan, True, True, False, 0.0)
    exact_sqrt, exact_inv = testing.exact_roots(a.double())
    for index, exact in ((0, exact_sqrt), (1, exact_inv)):
        kernel_error = worst(got[index].double(), exact)
        torch_error = worst(want[index].double(), exact)
        assert kernel_error <= 1.2 * torch_error + 1e-6, (index, kernel_error, torch_error)


def test_forward_strides_and_nan_isolation(forward_form):
    a = testing.spd_with_condition(3, 48, 10.0, seed=2)
    plan = plan_for("scaled_ns", a)
    clean = fused_path.roots_forward(a, plan, True, True, False, 0.0)
    transposed = fused_path.roots_forward(a.mT.contiguous().mT, plan, True, True, False, 0.0)
    assert torch.equal(clean[0], transposed[0]) and torch.equal(clean[1], transposed[1])
    poisoned = a.clone()
    poisoned[1, 3, 5] = float("nan")
    dirty = fused_path.roots_forward(poisoned, plan, True, True, False, 0.0)
    assert torch.isnan(dirty[0][1]).all()
    for index in (0, 2):  # the other matrices, bit for bit
        assert torch.equal(dirty[0][index], clean[0][index]) and torch.equal(dirty[1][index], clean[1][index])


@pytest.mark.parametrize("grads", ("sqrt", "inv", "both"))
@pytest.mark.parametrize("n", (20, 32, 48, 64))
def test_backward_matches_emulated_torch_path(grads, n):
    plan = Plan(method="scaled_ns", compute_dtype=torch.float32, n=n, precision="tf32x3")
    a = testing.spd_with_condition(3, n, 100.0, seed=n)
    _, _, saved = torch_path.roots_forward(a, plan, want_sqrt=True, want_inv=True, need_backward=True)
    gen = torch.Generator().manual_seed(n)
    grad_sqrt = torch.randn(3, n, n, generator=gen) if grads in ("sqrt", "both") else None
    grad_inv = torch.randn(3, n, n, generator=gen) if grads in ("inv", "both") else None
    with count_launches() as counts:
        got = lyapunov_backward(saved[0], saved[1], saved[2], grad_sqrt, grad_inv, plan.backward_steps, "tf32x3")
    assert counts.names == ["_lyapunov_backward_tc_kernel" if n <= 32 else "_lyapunov_backward_tc_streamed_kernel"]
    want = torch_path.roots_backward(plan, saved, grad_sqrt, grad_inv)
    assert worst(got, want) <= TOLERANCE
    assert torch.equal(got, got.mT)  # symmetric bit for bit


@pytest.mark.parametrize("n", (40, 64))
def test_streamed_backward_row_panels_are_the_column_panels(n, monkeypatch):
    """sm_80's configuration (row panels) against the default (column panels, sm_90): B and C
    are exactly symmetric, so the two read the same numbers."""
    plan = Plan(method="scaled_ns", compute_dtype=torch.float32, n=n, precision="tf32x3")
    a = testing.spd_with_condition(3, n, 1e4, seed=n)
    _, _, saved = torch_path.roots_forward(a, plan, want_sqrt=True, want_inv=True, need_backward=True)
    gen = torch.Generator().manual_seed(n)
    grad_sqrt, grad_inv = torch.randn(3, n, n, generator=gen), torch.randn(3, n, n, generator=gen)
    columns = lyapunov_backward(saved[0], saved[1], saved[2], grad_sqrt, grad_inv, plan.backward_steps, "tf32x3")
    rows_config = dict(spaces.fused_lyapunov_candidates(n, "float32", "tf32x3", arch="sm_80")[0])
    assert rows_config["SYMMETRIC_PANELS"] is False
    monkeypatch.setattr(fused_lyapunov, "candidate_configs", lambda *args, **kwargs: [dict(rows_config)])
    rows = lyapunov_backward(saved[0], saved[1], saved[2], grad_sqrt, grad_inv, plan.backward_steps, "tf32x3")
    assert worst(rows, columns) <= 1e-6
    assert worst(rows, torch_path.roots_backward(plan, saved, grad_sqrt, grad_inv)) <= TOLERANCE


@pytest.mark.parametrize("n", (24, 40))
def test_backward_nan_isolation(n):
    plan = Plan(method="scaled_ns", compute_dtype=torch.float32, n=n, precision="tf32x3")
    a = testing.spd_with_condition(3, n, 10.0, seed=3)
    _, _, saved = torch_path.roots_forward(a, plan, want_sqrt=True, want_inv=True, need_backward=True)
    grad = torch.randn(3, n, n, generator=torch.Generator().manual_seed(0))
    clean = lyapunov_backward(saved[0], saved[1], None, grad, None, plan.backward_steps, "tf32x3")
    grad[1, 2, 2] = float("nan")
    dirty = lyapunov_backward(saved[0], saved[1], None, grad, None, plan.backward_steps, "tf32x3")
    assert torch.isnan(dirty[1]).any()
    assert torch.equal(dirty[0], clean[0]) and torch.equal(dirty[2], clean[2])
