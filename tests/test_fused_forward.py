"""The fused forward kernels (kernels/fused_roots.py) against the torch reference of the same algorithm.

Runs under the Triton interpreter (CPU). Each case compares `fused_path.roots_forward` with
`torch_path.roots_forward` on the same input and plan: the same steps in a different order of
rounding, so float32 results agree to ~1e-7 relative (MPA: see MPA_TOLERANCE).
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before the kernels are imported

import dataclasses  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

import tritonsqrt  # noqa: E402
from tritonsqrt.paths import fused_path, routing, torch_path  # noqa: E402
from tritonsqrt.testing.accuracy import TARGETS  # noqa: E402
from tritonsqrt.kernels import fused_roots  # noqa: E402
from tritonsqrt.plan import Plan, compute_dtype_for  # noqa: E402
from tritonsqrt.testing import measure, random_symmetric, relative_error, spd_with_condition  # noqa: E402

METHODS = ("mtp", "mpa", "ns", "scaled_ns")
OUTPUTS = {"sqrt": (True, False), "inv": (False, True), "both": (True, True)}
SIZES = (1, 2, 8, 16, 33, 64)
BATCH = 7
TOLERANCE = 1e-5
# The [5, 5] Padé polynomials cancel heavily in float32 (alternating coefficients up to 2.75):
# torch's own float32 MPA is 2-4e-5 from the float64 evaluation of the same steps at n = 64,
# and the kernel's error, as small or smaller (test_mpa_error_is_that_of_torch), is not the
# same rounding: the two differ by up to the sum (measured 3.8e-5).
MPA_TOLERANCE = 6e-5


def plan_for(method: str, a: torch.Tensor, **changes) -> Plan:
    return dataclasses.replace(Plan(method=method, compute_dtype=compute_dtype_for(a.dtype), n=a.shape[-1],
                                    backend="triton"), **changes)


def test_input(batch: int, n: int, seed: int, dtype=torch.float32, kappa: float = 10.0) -> torch.Tensor:
    """SPD matrices plus an antisymmetric part: sym(a) is the SPD matrix, so a kernel that
    skips the symmetrisation (or reads a stride wrong) is far off."""
    spd = spd_with_condition(batch, n, kappa, seed=seed, dtype=torch.float64)
    skew = random_symmetric(batch, n, seed=seed + 1, dtype=torch.float64).triu(1)
    skew = 0.1 * torch.linalg.matrix_norm(spd, keepdim=True) / n * (skew - skew.mT)
    return (spd + skew).to(dtype)


test_input.__test__ = False  # a helper, not a test


def batch_for(n: int) -> int:
    """BATCH where matrices share a program (n <= 16: four to a program, 7 leaves one partly
    filled); 3 above, one matrix a program (first, middle, last). The interpreter runs the
    programs one by one, so this is the cost of the large-n cases."""
    return BATCH if n <= 16 else 3


def in_layout(a: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values with other strides: transposed (column-major) or a strided view."""
    if layout == "contiguous":
        return a.contiguous()
    if layout == "transposed":
        return a.mT.contiguous().mT
    batch, n = a.shape[0], a.shape[-1]
    big = torch.full((2 * batch, n + 3, n + 5), float("nan"), dtype=a.dtype)
    view = big[::2, 1:n + 1, 2:n + 2]
    view.copy_(a)
    return view


def assert_close(actual, expected, tol, what):
    """Per-matrix relative Frobenius difference <= tol; reports the worst matrix and any NaN."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, \
        f"{what}: got {tuple(actual.shape)} {actual.dtype}, expected {tuple(expected.shape)} {expected.dtype}"
    nan = torch.isnan(actual).flatten(1).any(1) != torch.isnan(expected).flatten(1).any(1)
    assert not nan.any(), f"{what}: NaN differs from the reference in matrices {nan.nonzero().flatten().tolist()}"
    diff = relative_error(actual, expected)
    worst = int(diff.argmax())
    assert diff.max() <= tol, f"{what}: relative difference {float(diff.max()):.2e} > {tol:.0e} at matrix {worst}"
    return float(diff.max())


def both_paths(a, plan, outputs, need_backward=False, eps=0.0):
    want_sqrt, want_inv = OUTPUTS[outputs]
    return (fused_path.roots_forward(a, plan, want_sqrt, want_inv, need_backward, eps),
            torch_path.roots_forward(a, plan, want_sqrt, want_inv, need_backward, eps))


def check_roots(got, want, tol, what):
    for index, name in ((0, "sqrt"), (1, "inv")):
        if want[index] is None:
            assert got[index] is None, f"{what}: {name} was not asked for"
        else:
            assert_close(got[index], want[index], tol, f"{what} {name}")


# ---------------------------------------------------------------------------------------
# Every method, output set, size and layout against the torch reference


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("outputs", OUTPUTS)
@pytest.mark.parametrize("method", METHODS)
def test_matches_torch_path(method, outputs, n):
    a = test_input(batch_for(n), n, seed=n)
    plan = plan_for(method, a)
    got, want = both_paths(a, plan, outputs)
    check_roots(got, want, MPA_TOLERANCE if method == "mpa" else TOLERANCE, f"{method} n={n}")


@pytest.mark.parametrize("layout", ("transposed", "strided"))
@pytest.mark.parametrize("n", (5, 33))
@pytest.mark.parametrize("method", METHODS)
def test_any_strides(method, n, layout):
    a = in_layout(test_input(batch_for(n), n, seed=n), layout)
    assert not a.is_contiguous()
    got, want = both_paths(a, plan_for(method, a), "both")
    check_roots(got, want, MPA_TOLERANCE if method == "mpa" else TOLERANCE, f"{method} {layout} n={n}")


def test_mpa_error_is_that_of_torch():
    """The MPA difference above is float32 rounding of the method itself: against the float64
    evaluation of the same steps, the kernel's error is no larger than torch's."""
    a = test_input(3, 64, seed=3)  # the interpreter runs programs one by one: 3 matrices, not 7
    plan = plan_for("mpa", a)
    got, want = both_paths(a, plan, "both")
    exact = torch_path.roots_forward(a.double(), plan_for("mpa", a.double()), True, True, False)
    for index in (0, 1):
        kernel_error = relative_error(got[index], exact[index]).max()
        torch_error = relative_error(want[index], exact[index]).max()
        assert kernel_error <= 1.25 * torch_error + 1e-6, (float(kernel_error), float(torch_error))


# ---------------------------------------------------------------------------------------
# Dtypes, eps, the zero matrix, NaN


@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16))
@pytest.mark.parametrize("method", ("mpa", "scaled_ns"))
def test_half_inputs(method, dtype):
    """Half inputs are upcast in the kernel and the roots cast back: the result is the torch
    path's (same float32 computation) up to one rounding to the half format."""
    a = test_input(BATCH, 20, seed=5, dtype=dtype)
    got, want = both_paths(a, plan_for(method, a), "both", need_backward=True)
    half_ulp = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}[dtype]
    check_roots(got, want, 2 * half_ulp, f"{method} {dtype}")
    assert got[2][0].dtype == torch.float32, "S is saved in the compute dtype"


@pytest.mark.parametrize("method", METHODS)
def test_float64(method):
    a = test_input(3, 20, seed=7, dtype=torch.float64)
    got, want = both_paths(a, plan_for(method, a), "both", eps=1e-7)
    check_roots(got, want, 1e-12, f"{method} float64")


@pytest.mark.parametrize("method", ("mpa", "scaled_ns"))
def test_eps(method):
    """sym(a) + eps I: a singular (rank-one) batch shifted by eps, and the zero matrix + eps."""
    v = torch.randn(4, 6, 1)
    a = v @ v.mT
    a[3] = 0
    eps = 0.3
    got, want = both_paths(a, plan_for(method, a), "both", eps=eps)
    check_roots(got, want, MPA_TOLERANCE if method == "mpa" else TOLERANCE, f"{method} eps")
    if method == "scaled_ns":  # converged: the roots of eps I
        torch.testing.assert_close(got[0][3], eps**0.5 * torch.eye(6), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got[1][3], eps**-0.5 * torch.eye(6), rtol=1e-5, atol=1e-6)


def neighbourhood_batch(n: int) -> int:
    """Matrices around index 1 that share its program and that do not: four matrices share a
    program for n <= 16, so 6 (two programs); one a program above, so 3. The interpreter runs
    programs one by one, so the batch is the cost of these tests."""
    return 6 if n <= 16 else 3


@pytest.mark.parametrize("n", (5, 20, 40))
@pytest.mark.parametrize("method", METHODS)
def test_zero_matrix(method, n):
    """`reference.unscale`'s rule: sqrt(0) = 0 and inverse diag(+inf), never NaN; the
    neighbours (in the same program for n <= 16) are unaffected."""
    a = test_input(neighbourhood_batch(n), n, seed=n)
    a[1] = 0
    got, want = both_paths(a, plan_for(method, a), "both")
    assert torch.equal(got[0][1], torch.zeros(n, n))
    assert torch.equal(got[1][1], torch.diag_embed(torch.full((n,), float("inf"))))
    keep = [i for i in range(a.shape[0]) if i != 1]
    for index in (0, 1):
        assert not torch.isnan(got[index]).any()
        assert_close(got[index][keep], want[index][keep], MPA_TOLERANCE if method == "mpa" else TOLERANCE, method)


@pytest.mark.parametrize("n", (5, 20, 40))
@pytest.mark.parametrize("method", METHODS)
def test_nan_stays_in_its_matrix(method, n):
    a = test_input(neighbourhood_batch(n), n, seed=n)
    a[1, 0, 1] = float("nan")
    got, _ = both_paths(a, plan_for(method, a), "both")
    clean = a.clone()
    clean[1] = torch.eye(n)
    want, _ = both_paths(clean, plan_for(method, a), "both")
    for index in (0, 1):
        assert torch.isnan(got[index][1]).all()
        others = [i for i in range(a.shape[0]) if i != 1]
        assert torch.equal(got[index][others], want[index][others]), "a NaN matrix changed its neighbours"


# ---------------------------------------------------------------------------------------
# What the backward keeps


@pytest.mark.parametrize("dtype", (torch.float32, torch.float16))
@pytest.mark.parametrize("outputs", OUTPUTS)
@pytest.mark.parametrize("method", METHODS)
def test_saved_tensors(method, outputs, dtype):
    """(S, norm) or (S, norm, Y) in the compute dtype, as torch_path saves them."""
    a = test_input(3, 10, seed=2, dtype=dtype)
    got, want = both_paths(a, plan_for(method, a), outputs, need_backward=True)
    saved, expected = got[2], want[2]
    assert len(saved) == len(expected)
    tol = MPA_TOLERANCE if method == "mpa" else TOLERANCE
    for name, x, y in zip(("S", "norm", "Y"), saved, expected):
        assert_close(x, y, 1e-6 if name == "norm" else tol, f"{method} {outputs} saved {name}")
    no_backward = fused_path.roots_forward(a, plan_for(method, a), *OUTPUTS[outputs], False)
    assert no_backward[2] == ()


@pytest.mark.parametrize("dtype", (torch.float32, torch.float16))
@pytest.mark.parametrize("method", ("mtp", "mpa"))
def test_saved_sqrt_from_the_inverse_streamed(method, dtype):
    """Inverse only, with backward, n > 32 (the streamed kernels): S = sym(A_hat Y) sqrt(||A||)."""
    a = test_input(2, 40, seed=6, dtype=dtype)
    got, want = both_paths(a, plan_for(method, a), "inv", need_backward=True)
    assert got[0] is None and len(got[2]) == 3
    assert_close(got[2][0], want[2][0], MPA_TOLERANCE if method == "mpa" else TOLERANCE, f"{method} saved S")


@pytest.mark.parametrize("n", (5, 40))
@pytest.mark.parametrize("method, options", [("ns", {"ns_iterations": 1}), ("ns", {"ns_iterations": 2}),
                                             ("mtp", {"taylor_degree": 1}), ("mpa", {"pade_degrees": (1, 1)}),
                                             ("mpa", {"pade_degrees": (2, 4)})])
def test_short_and_uneven_schedules(method, options, n):
    """One step (no loop), two steps (only the last), degree 1, unequal Padé degrees."""
    a = test_input(3, n, seed=8)
    for outputs in ("sqrt", "both"):
        got, want = both_paths(a, plan_for(method, a, **options), outputs)
        check_roots(got, want, MPA_TOLERANCE if method == "mpa" else TOLERANCE, f"{method} {options} {outputs}")


def test_empty_batch():
    a = torch.empty(0, 5, 5)
    sqrt_mat, inv_mat, saved = fused_path.roots_forward(a, plan_for("scaled_ns", a), True, True, True)
    assert sqrt_mat.shape == inv_mat.shape == (0, 5, 5) and saved[1].shape == (0, 1, 1)


@pytest.mark.parametrize("n", (20, 40))
@pytest.mark.parametrize("precision", ("tf32x3", "tf32"))
def test_precision_reaches_the_kernel(precision, n):
    """The interpreter multiplies in float32 whatever the precision; the option must pass
    through, and the streamed kernels' (n > 32) own tf32x3 split must add up."""
    a = test_input(3, n, seed=1)
    plan = plan_for("ns", a, precision=precision)
    got = fused_path.roots_forward(a, plan, True, True, False, 0.0)
    # The torch path emulates the tensor cores' rounding (tritonsqrt/numerics/emulation.py); the
    # interpreter does not, so the kernel is held to the torch path at ieee.
    want = torch_path.roots_forward(a, plan_for("ns", a, precision="ieee"), True, True, False, 0.0)
    check_roots(got, want, TOLERANCE, precision)


@triton.jit
def _tf32_parts_kernel(x_ptr, high_ptr, low_ptr, SIZE: tl.constexpr):
    offsets = tl.arange(0, SIZE)
    x = tl.load(x_ptr + offsets)
    tl.store(high_ptr + offsets, fused_roots._tf32_part(x, True))
    tl.store(low_ptr + offsets, fused_roots._tf32_part(x, False))


def test_tf32_split():
    """The tf32x3 split: high = x rounded to 10 mantissa bits (to nearest), low = x - high exactly."""
    x = torch.randn(1024) * 10.0 ** torch.randint(-8, 8, (1024,))
    high, low = torch.empty_like(x), torch.empty_like(x)
    _tf32_parts_kernel[(1,)](x, high, low, SIZE=1024)
    assert (high.view(torch.int32) & 0x1FFF == 0).all(), "high has more than 10 mantissa bits"
    assert torch.equal(high.double() + low.double(), x.double())
    assert ((x - high).abs() <= 2.0**-11 * x.abs()).all(), "high is not rounded to nearest"


# ---------------------------------------------------------------------------------------
# The public API reaches the kernels


class _CountingKernel:
    """Stands in for a kernel object and counts `kernel[grid](...)` launches."""

    def __init__(self, kernel):
        self.kernel, self.launches = kernel, 0
        self.fn = kernel.fn  # what the launchers' source hash reads, so the proxy hashes as the kernel

    def __getitem__(self, grid):
        self.launches += 1
        return self.kernel[grid]


@pytest.fixture
def counted(monkeypatch):
    kernels = {name: _CountingKernel(getattr(fused_roots, name))
               for name in ("_polynomial_roots_kernel", "_newton_schulz_roots_kernel")}
    for name, proxy in kernels.items():
        monkeypatch.setattr(fused_roots, name, proxy)
    return kernels


def test_public_api_reaches_the_kernel(counted):
    a = test_input(4, 12, seed=4)
    with torch.no_grad():
        sqrt_mat = tritonsqrt.sqrtm(a, method="scaled_ns", backend="triton")
        inv_mat = tritonsqrt.inv_sqrtm(a, method="mpa", backend="triton")
        both = tritonsqrt.sqrtm_and_inv_sqrtm(a.view(2, 2, 12, 12), method="ns", backend="triton")
    assert counted["_newton_schulz_roots_kernel"].launches == 2  # one launch per forward
    assert counted["_polynomial_roots_kernel"].launches == 1
    assert sqrt_mat.shape == inv_mat.shape == (4, 12, 12) and both[1].shape == (2, 2, 12, 12)


@pytest.mark.parametrize("inverse", (False, True))
def test_public_api_accuracy(counted, inverse):
    """scaled_ns through backend='triton', forward and gradient, meets the float32 targets at kappa 1e2."""
    a = spd_with_condition(4, 12, 1e2, seed=11)
    grad = random_symmetric(4, 12, seed=12)
    op = tritonsqrt.inv_sqrtm if inverse else tritonsqrt.sqrtm
    forward, gradient = measure(lambda x: op(x, method="scaled_ns", backend="triton"), a, grad, inverse)
    targets = TARGETS[torch.float32][1e2]
    assert forward <= targets[1 if inverse else 0], forward
    assert gradient <= targets[3 if inverse else 2], gradient
    assert counted["_newton_schulz_roots_kernel"].launches == 1


def test_kernel_coverage():
    assert routing.kernel_methods() == {"mtp", "mpa", "ns", "scaled_ns"}
    assert routing.max_kernel_n() == fused_roots.MAX_N
    # Past the fused limit the tiled kernels take over (tests/test_tiled.py checks them).
    assert routing.kernel_family(fused_roots.MAX_N) == "fused"
    assert routing.kernel_family(fused_roots.MAX_N + 1) == "tiled"


@pytest.mark.parametrize("dtype_name", ("float32", "float64"))
def test_compile_specs(dtype_name):
    """The specs kernels/compile_report.py compiles: every kernel argument typed, one per method,
    precision and tuning candidate (the launcher's default among them)."""
    precisions = ("ieee",) if dtype_name == "float64" else fused_roots.PRECISIONS
    for n in (1, 16, 17, 64):
        specs = fused_roots.compile_specs(n, dtype_name)
        expected = sum(len(fused_roots.candidate_configs(n, dtype_name, family, precision))
                       for family in ("polynomial", "polynomial", "newton_schulz") for precision in precisions)
        assert len(specs) == expected >= 3 * len(precisions)
        assert len({spec["name"] for spec in specs}) == len(specs)
        for family in ("polynomial", "newton_schulz"):
            default = fused_roots.launch_config(n, dtype_name, family)
            assert any(spec["num_warps"] == default["num_warps"] and f"MATRICES={default['MATRICES']}," in spec["name"]
                       for spec in specs)
        for spec in specs:
            assert set(spec["signature"]) == set(spec["fn"].arg_names)
            assert all(spec["signature"][name] == "constexpr" for name in spec["constexprs"])
            assert spec["num_warps"] in (2, 4, 8, 16)
    assert fused_roots.compile_specs(fused_roots.MAX_N + 1, dtype_name) == []
