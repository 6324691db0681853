"""The tiled kernels (n beyond the fused size) against the torch reference, under the interpreter.

Each case runs `tiled_path` and `torch_path` on the same batch and compares results, saved
tensors and gradients. Sizes 65, 96 and 130 give several tiles with ragged edges at the
interpreter's 64-wide default tile (one case forces 32-wide tiles). Tuning is off here (the
default config); tests/test_tuning.py covers it.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from tritonsqrt.paths import tiled_path, torch_path  # noqa: E402
from tritonsqrt.tuning import cache as tuning  # noqa: E402
from tritonsqrt.testing.instrument import count_launches  # noqa: E402
from tritonsqrt.kernels import spaces as tiled_space, tiled  # noqa: E402
from tritonsqrt.plan import Plan  # noqa: E402
from tritonsqrt.testing import random_symmetric, spd_with_condition  # noqa: E402

# Short schedules keep the interpreter quick; the code paths are those of the defaults.
SETTINGS = dict(max_condition=10.0, ns_iterations=4, taylor_degree=6)


@pytest.fixture(autouse=True)
def _default_configs(monkeypatch, tmp_path):
    monkeypatch.setenv("TRITONSQRT_TUNE", "0")
    monkeypatch.setenv("TRITONSQRT_CACHE_DIR", str(tmp_path))
    tuning.clear_memory()


def _plan(method, n, dtype=torch.float32):
    return Plan(method=method, compute_dtype=dtype, n=n, **SETTINGS)


def _rel(x, y):
    return float((x.double() - y.double()).norm() / y.double().norm())


def _forward_error(method, ours, theirs, a, plan, want_sqrt, want_inv):
    """Relative difference from the torch path; for mpa, the error against float64 of the same
    algorithm, which must stay within twice torch's own float32 error (below)."""
    if method != "mpa":
        return _rel(ours, theirs)
    plan64 = Plan(method="mpa", compute_dtype=torch.float64, n=plan.n, **SETTINGS)
    exact = torch_path.roots_forward(a.double(), plan64, want_sqrt, want_inv, False)
    exact = exact[0] if want_sqrt else exact[1]
    return _rel(ours, exact) - 2 * _rel(theirs, exact)


# (method, op, n): every method and both ops, sizes spread over the cases.
CASES = [
    ("mtp", "sqrtm", 65), ("mtp", "inv_sqrtm", 130),
    ("mpa", "sqrtm", 96), ("mpa", "inv_sqrtm", 65),
    ("ns", "sqrtm", 130), ("ns", "inv_sqrtm", 65),
    ("scaled_ns", "sqrtm", 96), ("scaled_ns", "inv_sqrtm", 96),
]


@pytest.mark.parametrize("method,op,n", CASES)
def test_forward_and_backward_match_the_torch_path(method, op, n):
    # n = 130 (three tiles a side) with one matrix: the interpreter's time grows with tiles x
    # batch (mtp's inverse took 61 s with two); the other sizes keep a batch of 2.
    batch = 1 if n > 128 else 2
    a = spd_with_condition(batch, n, 10.0, seed=n)
    grad = random_symmetric(batch, n, seed=n + 1)
    plan = _plan(method, n)
    want_sqrt, want_inv = op == "sqrtm", op == "inv_sqrtm"
    sqrt_ours, inv_ours, saved_ours = tiled_path.roots_forward(a, plan, want_sqrt, want_inv, True)
    sqrt_ref, inv_ref, saved_ref = torch_path.roots_forward(a, plan, want_sqrt, want_inv, True)
    ours, theirs = (sqrt_ours, sqrt_ref) if want_sqrt else (inv_ours, inv_ref)
    assert (sqrt_ours is None) == (sqrt_ref is None) and (inv_ours is None) == (inv_ref is None)
    assert ours.dtype == torch.float32 and ours.shape == a.shape
    assert _forward_error(method, ours, theirs, a, plan, want_sqrt, want_inv) <= 1e-5
    assert len(saved_ours) == len(saved_ref)
    assert _rel(saved_ours[1], saved_ref[1]) <= 1e-6  # the norm
    if method != "mpa":
        assert all(_rel(x, y) <= 1e-5 for x, y in zip(saved_ours, saved_ref))
    assert torch.equal(ours, ours.mT) or method == "mpa"  # symmetric by construction

    # Backward on the same saved tensors: the tiled Lyapunov chain against the reference.
    grads = (grad, None) if want_sqrt else (None, grad)
    expected = torch_path.roots_backward(plan, saved_ref, *grads)
    assert _rel(tiled_path.roots_backward(plan, saved_ref, *grads), expected) <= 1e-5
    # And end to end, from our own forward.
    assert _rel(tiled_path.roots_backward(plan, saved_ours, *grads), expected) <= 1e-4


# (n, kappa): the sizes at kappa 1e6, and the table's smaller condition numbers once.
CONDITIONED = [(65, 1e6), (96, 1e6), (130, 1e6), (96, 1e4), (65, 1e2)]


@pytest.mark.parametrize("n,kappa", CONDITIONED)
@pytest.mark.parametrize("op", ["sqrtm", "inv_sqrtm"])
def test_as_accurate_as_the_torch_path_when_ill_conditioned(n, kappa, op):
    """Root and gradient errors against float64 eigh, through the public op: the tiled kernels
    within 1.2x of the torch path of the same method (measured: 0.4x-1.14x). Before the
    Newton–Schulz products were averaged with their mirror (`tile_blocks.symmetric_part_tile`),
    n = 65, kappa 1e6 gave 2.2e-4 against the torch path's 1.5e-5."""
    import tritonsqrt

    from tritonsqrt.testing import measure

    fn = getattr(tritonsqrt, op)
    a = spd_with_condition(1, n, kappa, seed=n)
    grad = random_symmetric(1, n, seed=n + 1)
    errors = {backend: measure(lambda x: fn(x, method="scaled_ns", backend=backend), a, grad, op == "inv_sqrtm")
              for backend in ("torch", "triton")}
    (torch_forward, torch_gradient), (tiled_forward, tiled_gradient) = errors["torch"], errors["triton"]
    assert tiled_forward <= 1.2 * torch_forward, errors
    assert tiled_gradient <= 1.2 * torch_gradient, errors
    if op == "sqrtm":  # the accuracy table's targets for the square root (README)
        assert tiled_forward <= {1e2: 5e-6, 1e4: 2e-5, 1e6: 2e-4}[kappa] / 2, errors


def test_newton_schulz_iterates_are_symmetric_averages():
    """Every stored Newton–Schulz iterate is exactly symmetric and, after the first step, equals
    a X + b sym(Y M) / sym(M Z) to float32 rounding: both triangles averaged, not one mirrored
    (how much that matters shows only over many steps: the test above)."""
    from tritonsqrt.numerics import reference

    n, steps = 96, ((1.5, -0.5), (1.5, -0.5))
    a = spd_with_condition(1, n, 1e4, seed=21)
    w = torch.empty_like(a)
    partials = torch.empty(1, tiled.partial_count(n))
    counters = tiled.new_counters(1, a.device)
    tiled.prepare_forward(a, 0.0, w, partials, counters=counters)
    table = tiled.coefficient_table(steps, torch.float32, a.device)
    norm = torch.empty(1, 1, 1)
    y, z, m, y_next, z_next = (torch.empty_like(a) for _ in range(5))
    tiled.newton_schulz_first_step(w, table, norm, partials, y_out=y, z_out=z, update_y=True, update_z=True,
                                   unscale=False, precision="ieee")
    tiled.newton_schulz_chained_steps(y, z, m, table, 1, 1, norm, counters, y_out=y_next, z_out=z_next, update_y=True,
                                      update_z=True, unscale=False, precision="ieee")
    assert not counters.any()  # the chained launch leaves its counters zero
    m_alone = torch.empty_like(m)
    tiled.product(z, y, m_alone, symmetric=False, precision="ieee")
    assert torch.equal(m, m_alone)  # the chained step's M is the product kernel's, bit for bit
    assert torch.equal(y, y.mT) and torch.equal(z, z.mT)
    assert torch.equal(y_next, y_next.mT) and torch.equal(z_next, z_next.mT)
    y64, z64, m64 = y.double(), z.double(), m.double()
    expected_y = 1.5 * y64 - 0.5 * reference.symmetrize(y64 @ m64)
    expected_z = 1.5 * z64 - 0.5 * reference.symmetrize(m64 @ z64)
    assert _rel(y_next, expected_y) <= 2e-7 and _rel(z_next, expected_z) <= 2e-7  # measured 4.6e-8


def test_one_triangle_products_are_symmetric_and_equal_the_full_product():
    """The launches that compute one block triangle and mirror it (docs/large-and-tuning.md,
    "Symmetry"): bit-for-bit symmetric results, equal to the full float64 product to float32
    rounding. X, Y polynomials of one matrix (they commute); B, C as the Lyapunov step sees them."""
    n = 130  # three 64-wide tiles a side, ragged
    s = spd_with_condition(1, n, 100.0, seed=31)
    s = s / torch.linalg.matrix_norm(s, ord=2, keepdim=True)
    x, y = s, 0.5 * s @ s - s
    x64, y64 = x.double(), y.double()
    out = torch.empty_like(x)
    tiled.product(x, y.contiguous(), out, symmetric=True, precision="ieee")
    assert torch.equal(out, out.mT)
    assert _rel(out, x64 @ y64) <= 5e-7

    b, c = s, random_symmetric(1, n, seed=32)
    b_sq, commutator, b_next, c_next = (torch.empty_like(b) for _ in range(4))
    table = tiled.coefficient_table(((1.5, -0.5),), torch.float32, b.device)
    tiled.lyapunov_chained_steps(b, c, b_sq, commutator, table, 0, 1, torch.zeros(3, dtype=torch.int32),
                                 b_out=b_next, c_out=c_next, last=False, precision="ieee")
    for result in (b_sq, b_next, c_next):
        assert torch.equal(result, result.mT)
    assert torch.equal(commutator, -commutator.mT)  # B C - C B, exactly antisymmetric
    b64, c64 = b.double(), c.double()
    b_sq64 = b64 @ b64
    assert _rel(b_sq, b_sq64) <= 5e-7
    # against |B C|: the commutator itself is a difference of nearly equal products
    assert float((commutator.double() - (b64 @ c64 - c64 @ b64)).norm() / (b64 @ c64).norm()) <= 5e-7
    assert _rel(b_next, 1.5 * b64 - 0.5 * b64 @ b_sq64) <= 5e-7
    expected_c = 1.5 * c64 - 0.5 * (b_sq64 @ c64 + c64 @ b_sq64 - b64 @ c64 @ b64)
    assert _rel(c_next, expected_c) <= 5e-7  # measured 1.1e-7 and below for all five


@pytest.mark.parametrize("last", [False, True])
def test_split_lyapunov_steps_are_the_unsplit_ones_bit_for_bit(monkeypatch, last):
    """B^2, B C - C B, C' and B' formed by two programs a tile (`SPLIT_PROGRAMS = 2`) sum the same
    products in the same order as one program forming both; the last step (C' only) leaves
    program 1 of the update idle. Two steps in one launch (`kernels/chained.py`) are the two
    steps launched one by one, bit for bit, whichever buffer each lands in. Each launch runs twice
    on its counters (as the tuner reruns a candidate): the same results, the counters zero again."""
    n = 130
    b = spd_with_condition(2, n, 100.0, seed=33)
    b = b / torch.linalg.matrix_norm(b, ord=2, keepdim=True)
    c = random_symmetric(2, n, seed=34)
    table = tiled.coefficient_table(((1.5, -0.5), (1.5, -0.5), (1.5, -0.5)), torch.float32, b.device)
    counters = torch.zeros(tiled.counter_count(2), dtype=torch.int32)

    def nans():
        return torch.full_like(b, float("nan"))

    def one_by_one():
        b_sq, commutator, b_mid, c_mid, b_next, c_next = (nans() for _ in range(6))
        tiled.lyapunov_chained_steps(b, c, b_sq, commutator, table, 0, 1, counters, b_out=b_mid, c_out=c_mid,
                                     last=False, precision="ieee")
        tiled.lyapunov_chained_steps(b_mid, c_mid, b_sq, commutator, table, 1, 1, counters,
                                     b_out=None if last else b_next, c_out=c_next, last=last, precision="ieee")
        return b_sq, commutator, b_next, c_next

    results = []
    for split in (2, 1):
        monkeypatch.setattr(tiled_space, "INTERPRETER_SPACE", ((64, 64, 2, 1, 1, split),))
        for _ in range(2):
            results.append(one_by_one())
            assert not counters.any()
    assert all(torch.equal(x, y) or (x.isnan().all() and y.isnan().all()) for x, y in zip(results[0], results[1]))
    (sq_split, com_split, b_split, c_split), (sq_one, com_one, b_one, c_one) = results[1], results[2]
    assert torch.equal(sq_split, sq_one) and torch.equal(com_split, com_one)
    assert torch.equal(c_split, c_one) and torch.equal(c_split, c_split.mT)
    assert torch.equal(b_split, b_one) if not last else bool(b_split.isnan().all())
    if not last:  # both steps in one launch: the second lands in the outputs, the first in the spare pair
        b_sq, commutator, b_next, c_next, b_spare, c_spare = (nans() for _ in range(6))
        tiled.lyapunov_chained_steps(b, c, b_sq, commutator, table, 0, 2, counters, b_out=b_next, c_out=c_next,
                                     b_spare=b_spare, c_spare=c_spare, last=False, precision="ieee")
        assert not counters.any()
        assert torch.equal(b_next, b_one) and torch.equal(c_next, c_one) and torch.equal(b_sq, sq_one)
        # three steps: the first and third in the outputs, the second in the spare pair
        tiled.lyapunov_chained_steps(b, c, b_sq, commutator, table, 0, 3, counters, b_out=b_next, c_out=c_next,
                                     b_spare=b_spare, c_spare=c_spare, last=False, precision="ieee")
        assert torch.equal(b_spare, b_one) and torch.equal(c_spare, c_one) and not counters.any()


def test_split_last_newton_schulz_step_is_the_unsplit_one_bit_for_bit(monkeypatch):
    """At n a multiple of 16 the last step forms its two roots in two programs a tile (the later
    steps' space): the same roots, bit for bit, as one program forming both, and one launch."""
    n = 96
    a = spd_with_condition(2, n, 1e3, seed=35)
    plan = _plan("scaled_ns", n)
    results = []
    for split in (2, 1):
        monkeypatch.setattr(tiled_space, "INTERPRETER_SPACE", ((64, 64, 2, 1, 1, split),))
        with count_launches() as counted:
            results.append(tiled_path.roots_forward(a, plan, True, True, True))
        assert counted.launches == 4  # prepare, the first step, the steps between, the last
    (sqrt_split, inv_split, saved_split), (sqrt_one, inv_one, saved_one) = results
    assert torch.equal(sqrt_split, sqrt_one) and torch.equal(inv_split, inv_one)
    assert all(torch.equal(x, y) for x, y in zip(saved_split, saved_one) if isinstance(x, torch.Tensor))
    assert torch.equal(inv_split, inv_split.mT)


def _assert_roots_and_gradients_are_the_torch_paths(batch: int, n: int, seed: int):
    """Both roots and both gradients of scaled_ns through the tiled kernels, within 1e-5 of the
    torch path (kappa 10, float32, ieee)."""
    a = spd_with_condition(batch, n, 10.0, seed=seed)
    g_sqrt, g_inv = random_symmetric(batch, n, seed=seed + 1), random_symmetric(batch, n, seed=seed + 2)
    plan = _plan("scaled_ns", n)
    ours = tiled_path.roots_forward(a, plan, True, True, True)
    ref = torch_path.roots_forward(a, plan, True, True, True)
    assert _rel(ours[0], ref[0]) <= 1e-5 and _rel(ours[1], ref[1]) <= 1e-5
    assert _rel(tiled_path.roots_backward(plan, ref[2], g_sqrt, g_inv),
                torch_path.roots_backward(plan, ref[2], g_sqrt, g_inv)) <= 1e-5


def test_both_roots_and_both_gradients_with_32_wide_tiles(monkeypatch):
    monkeypatch.setattr(tiled_space, "INTERPRETER_SPACE", ((32, 32, 1, 1, 1),))
    _assert_roots_and_gradients_are_the_torch_paths(2, 65, seed=3)


def _gpu_first_tilings() -> list[tuple]:
    """(BLOCK, BLOCK_K, GROUP, programs a tile) of the first GPU entry of each chained kernel, at
    every precision, n aligned or not, on any Triton: what a cold cache launches on a GPU."""
    tilings = set()
    for kernel_name in ("newton_schulz_chained", "lyapunov_chained"):
        for precision in tiled.PRECISIONS:
            space = tiled_space.gpu_space(kernel_name, "float32", precision)
            for entry in tiled_space.ALIGNED_FIRST.get((precision, kernel_name), ()) + space[:1]:
                tilings.add((entry[0], entry[1], entry[2], entry[5] if len(entry) > 5 else 1))
    return sorted(tilings)


@pytest.mark.parametrize("tiling", _gpu_first_tilings())
def test_the_gpu_default_tilings_compute_the_torch_path(monkeypatch, tiling):
    """The interpreter's own space is wide (64 x 64 K steps); the GPU defaults take K steps of 8,
    16 or 32 and split programs. Every such tiling, forced on every tiled kernel, gives both roots
    and both gradients of the torch path (ieee, where the tiling is the only difference)."""
    block, block_k, group, split = tiling
    monkeypatch.setattr(tiled_space, "INTERPRETER_SPACE", ((block, block_k, group, 1, 1, split),))
    # n = 80: a multiple of 16 (the aligned entries' n) with a ragged second tile row
    _assert_roots_and_gradients_are_the_torch_paths(1, 80, seed=11)


@pytest.mark.parametrize("precision", tiled.PRECISIONS)
def test_tma_loads_are_the_pointer_loads_bit_for_bit(monkeypatch, precision):
    """The chained kernels' TMA entries (sm_90: operand tiles through tensor descriptors made in
    the kernel, zero past the matrix) sum the same products in the same order as the pointer loads
    (rows past n wrapped in, K masked): both roots, the saved roots and both gradients equal bit for
    bit, at every precision (tf32x3 through its high and low planes). n = 96: a multiple of 16, as
    the entries are offered, with a ragged second tile row and column."""
    n, batch = 96, 2
    a = spd_with_condition(batch, n, 10.0, seed=41)
    g_sqrt, g_inv = random_symmetric(batch, n, seed=42), random_symmetric(batch, n, seed=43)
    plan = Plan(method="scaled_ns", compute_dtype=torch.float32, n=n, precision=precision, **SETTINGS)
    results = []
    for tma in (0, 1):
        monkeypatch.setattr(tiled_space, "INTERPRETER_SPACE", ((64, 32, 8, 1, 1, 2, tma),))  # TMA_FIRST's tiling
        forward = tiled_path.roots_forward(a, plan, True, True, True)
        results.append((forward[0], forward[1], tiled_path.roots_backward(plan, forward[2], g_sqrt, g_inv)))
    (sqrt_ptr, inv_ptr, grad_ptr), (sqrt_tma, inv_tma, grad_tma) = results
    assert torch.equal(sqrt_tma, sqrt_ptr) and torch.equal(inv_tma, inv_ptr) and torch.equal(grad_tma, grad_ptr)
    assert bool(torch.isfinite(grad_tma).all())
    if precision == "ieee":  # and both the torch path's (the other precisions: tests/test_precision_emulation.py)
        assert _rel(inv_tma, torch_path.roots_forward(a, plan, True, True, True)[1]) <= 1e-5


def test_tma_entries_are_offered_on_sm90_at_aligned_n_only():
    """TMA entries only where asked (an sm_90 device) and n is a multiple of 16, only to the
    chained kernels, and never to a configuration cached before they existed (no TMA key)."""
    for precision, kernel_name in tiled_space.TMA_FIRST:
        offered = tiled_space.candidate_configs(kernel_name, 256, "float32", precision,
                                                shared_memory=tiled_space.SM90_SHARED_MEMORY, tma=True)
        with_tma = [config for config in offered if config.get("TMA")]
        assert with_tma and all(config["SPLIT_PROGRAMS"] == 2 for config in with_tma)
        assert offered[0].get("TMA") is True
        assert all("TMA" not in config for config in offered if config not in with_tma)
        for n, tma in ((250, True), (256, False)):
            assert not any(config.get("TMA") for config in tiled_space.candidate_configs(
                kernel_name, n, "float32", precision, shared_memory=tiled_space.SM90_SHARED_MEMORY, tma=tma))
    for kernel_name in ("product", "power_step", "newton_schulz_step_ends"):
        assert not any("TMA" in config for config in tiled_space.candidate_configs(
            kernel_name, 256, "float32", "tf32", shared_memory=tiled_space.SM90_SHARED_MEMORY, tma=True))
    assert not tiled_space.offers_tma(torch.device("cpu"))


def test_tma_is_offered_on_sm90_unless_turned_off(monkeypatch):
    """`offers_tma`: an sm_90 device takes the TMA entries, another arch does not, and
    TRITONSQRT_TMA=0 turns them off (their descriptors' scratch is per program)."""
    archs = {0: "sm_90", 1: "sm_80"}
    monkeypatch.setattr(tiled_space, "arch_name", lambda device: archs[device.index])
    assert tiled_space.offers_tma(torch.device("cuda", 0)) and not tiled_space.offers_tma(torch.device("cuda", 1))
    monkeypatch.setenv("TRITONSQRT_TMA", "0")
    assert not tiled_space.offers_tma(torch.device("cuda", 0))
    assert tiled_space.DEVICE_DESCRIPTORS  # Triton 3.6 (the GPU image) and 3.9 both make them in a kernel


def test_half_precision_strided_input_with_eps():
    n = 70
    # float16, not bfloat16: the interpreter truncates float32 -> bfloat16 casts (a GPU rounds to
    # nearest), which would make this a test of the interpreter.
    base = spd_with_condition(2, n, 10.0, seed=7).to(torch.float16)
    a = base.mT  # a non-contiguous view
    plan = _plan("ns", n)
    ours = tiled_path.roots_forward(a, plan, True, True, True, eps=1e-2)
    ref = torch_path.roots_forward(a, plan, True, True, True, eps=1e-2)
    assert ours[0].dtype == torch.float16 and ours[1].dtype == torch.float16
    assert ours[2][0].dtype == torch.float32  # saved in the compute dtype
    # Against the float32 results before their cast: within float16's rounding (2^-11 relative).
    # (ns saves A / tr A, not S, for its backward through the iteration: S comes from float32 input.)
    sqrt_f32 = torch_path.roots_forward(a.float(), plan, True, False, False, eps=1e-2)[0]
    assert _rel(ours[0], sqrt_f32) <= 5e-4 and _rel(ours[1], ref[2][2]) <= 5e-4
    assert _rel(ours[2][0], ref[2][0]) <= 1e-5 and _rel(ours[2][2], ref[2][2]) <= 1e-5
    grad = random_symmetric(1, n, seed=8).to(torch.bfloat16).expand(2, n, n)  # another dtype, batch stride 0
    assert _rel(tiled_path.roots_backward(plan, ref[2], grad, None),
                torch_path.roots_backward(plan, ref[2], grad, None)) <= 1e-5


def test_float64():
    n = 65
    a = spd_with_condition(2, n, 10.0, seed=9, dtype=torch.float64)
    grad = random_symmetric(2, n, seed=10, dtype=torch.float64)
    plan = _plan("scaled_ns", n, torch.float64)
    ours = tiled_path.roots_forward(a, plan, False, True, True)
    ref = torch_path.roots_forward(a, plan, False, True, True)
    assert ours[1].dtype == torch.float64 and _rel(ours[1], ref[1]) <= 1e-12
    assert _rel(tiled_path.roots_backward(plan, ref[2], None, grad),
                torch_path.roots_backward(plan, ref[2], None, grad)) <= 1e-12


@pytest.mark.parametrize("method", ["mtp", "ns"])
def test_zero_matrix_rule(method):
    n = 65
    a = torch.stack([torch.zeros(n, n), spd_with_condition(1, n, 10.0, seed=11)[0]])
    plan = _plan(method, n)
    sqrt_ours, inv_ours, _ = tiled_path.roots_forward(a, plan, True, True, False)
    sqrt_ref, inv_ref, _ = torch_path.roots_forward(a, plan, True, True, False)
    assert torch.equal(sqrt_ours[0], torch.zeros(n, n))
    assert torch.equal(inv_ours[0], torch.diag(torch.full((n,), float("inf"))))
    assert torch.equal(inv_ref[0], inv_ours[0])
    assert _rel(sqrt_ours[1], sqrt_ref[1]) <= 1e-5 and _rel(inv_ours[1], inv_ref[1]) <= 1e-5


@pytest.mark.parametrize("method", ["ns", "scaled_ns", "mtp", "mpa"])
def test_launches_per_step(method):
    """The launch counts of the tiled_path docstring, counted at Triton's launch (n = 65)."""
    n = 65
    a = spd_with_condition(1, n, 10.0, seed=12)
    plan = _plan(method, n)
    with count_launches() as forward:
        _, _, saved = tiled_path.roots_forward(a, plan, False, True, True)
    with count_launches() as backward:
        tiled_path.roots_backward(plan, saved, None, random_symmetric(1, n, seed=13))
    steps, degree = len(plan.forward_steps), plan.taylor_degree
    # ns / scaled_ns: prepare, the first step, the steps between (one launch), the last
    expected = {"ns": 2 + min(steps - 1, 2), "scaled_ns": 2 + min(steps - 1, 2),
                # prepare, one per power, then (inverse only + backward) unscale and S = sym(A_hat Y)
                "mtp": 1 + (degree - 1) + 2,
                "mpa": 1 + (max(plan.pade_degrees) - 1) + 2}[method]
    assert forward.launches == expected, forward.names
    # ns (iSQRT-COV) is differentiated through its iteration by torch products: no tiled launch.
    # prepare, the inverse-root rhs, the sign steps but the last (one launch), the last
    assert backward.launches == (0 if method == "ns" else 1 + 2 + min(len(plan.backward_steps), 2)), backward.names


@pytest.mark.parametrize("dtype_name, precision", [("float32", p) for p in tiled.PRECISIONS] + [("float64", "ieee")])
def test_a_last_step_in_the_later_steps_space_is_split_or_an_ends_kernel(dtype_name, precision):
    """The last Newton–Schulz step may run in the later steps' space (both roots, n % 16 == 0):
    compile_specs compiles only its split entries there, so its unsplit ones must be the ends'."""
    for n, shared in ((128, tiled.SM80_SHARED_MEMORY), (4096, tiled.SM90_SHARED_MEMORY)):
        ends = tiled_space.candidate_configs("newton_schulz_step_ends", n, dtype_name, precision, shared_memory=shared)
        later = tiled_space.candidate_configs("newton_schulz_chained", n, dtype_name, precision, shared_memory=shared)
        assert all(config in ends for config in later if config["SPLIT_PROGRAMS"] == 1)


def test_compile_specs_cover_the_autotune_space():
    specs = tiled.compile_specs(4096, "float32") + tiled.compile_specs(130, "float32")
    n = 4096
    for space in tiled_space.PRODUCT_LOOPS:  # "newton_schulz_step_ends": the first step's kernel
        kernel = space.removesuffix("_ends")
        names = {spec["name"] for spec in tiled.compile_specs(n, "float32")}
        assert len(names) == len(tiled.compile_specs(n, "float32"))
        for precision in tiled.PRECISIONS:
            configs = tiled_space.candidate_configs(space, n, "float32", precision)
            assert configs
            configs += tiled_space.candidate_configs(space, n, "float32", precision,
                                                     shared_memory=tiled_space.SM90_SHARED_MEMORY, tma=True)
            for config in configs:
                split = "SPLIT_PROGRAMS=2," if config["SPLIT_PROGRAMS"] == 2 else ""
                split += "TMA=1," if config.get("TMA") else ""
                placement = f"GROUP={config['GROUP']},"
                tile = f"{split}BLOCK={config['BLOCK']},BLOCK_K={config['BLOCK_K']},{placement}"
                launch = f"warps={config['num_warps']},stages={config['num_stages']},{precision}]"
                assert any(f"tiled.{kernel}[" in name and tile in name and launch in name for name in names)
                if not split:
                    assert config["SPLIT_PROGRAMS"] == 1
    for spec in specs:
        assert set(spec["signature"]) == set(spec["fn"].arg_names)
        assert {k for k, v in spec["signature"].items() if v == "constexpr"} == set(spec["constexprs"])


def test_unscale_reads_column_major_roots():
    """torch's solve returns column-major matrices: the unscale launch must honour their strides."""
    from tritonsqrt.numerics import reference

    x = torch.randn(2, 40, 40).mT  # not symmetric, not contiguous
    norm = torch.tensor([4.0, 0.0]).reshape(2, 1, 1)
    sqrt_out, inv_out = torch.empty(2, 40, 40), torch.empty(2, 40, 40)
    tiled.unscale_roots(norm, sqrt_hat=x, inv_hat=x, sqrt_out=sqrt_out, inv_out=inv_out)
    assert torch.equal(sqrt_out, reference.unscale(x, norm, inverse=False))
    torch.testing.assert_close(inv_out, reference.unscale(x, norm, inverse=True), rtol=2e-7, atol=0)


# ---------------------------------------------------------------------------------------
# tf32x3: operands split once into TF32 planes when stored, three "tf32" products per K step.
# The split is integer bit operations (`tf32_split.split`), which the interpreter runs, so the
# kernels compute what `emulation` does in torch up to summation order.


def test_a_split_product_is_the_emulated_tf32x3_product():
    """One product from split buffers. X I is exact in float32 at any summation order, so it
    shows the rounding itself: bit for bit `emulation.matmul(X, I, "tf32x3")` = hi + lo, which
    is not X (lo is truncated to TF32; the exact-input product gives X back). A general product
    is the three-term product to float32 summation, and the stored planes are the split."""
    from tritonsqrt.numerics import emulation

    n = 130
    torch.manual_seed(41)
    x = torch.rand(1, n, n) + 1.0
    split = lambda t: torch.stack((t, *emulation.split_tf32(t)))[0]  # noqa: E731
    out = tiled.split_buffer(1, n, torch.float32, x.device)
    tiled.product(split(x), split(torch.eye(n).expand(1, n, n)), out, symmetric=False, precision="tf32x3")
    high, low = emulation.split_tf32(x)
    assert torch.equal(out, emulation.matmul(x, torch.eye(n), "tf32x3")) and torch.equal(out, high + low)
    assert (out != x).float().mean() > 0.1  # measured 0.12: where the low part lost bits

    y = torch.rand(1, n, n) + 1.0
    tiled.product(split(x), split(y), out, symmetric=False, precision="tf32x3")
    y_high, y_low = emulation.split_tf32(y)
    three = high.double() @ y_high.double() + low.double() @ y_high.double() + high.double() @ y_low.double()
    assert _rel(out, three) <= 2e-7  # measured 1.1e-7: float32 summation
    stored = out._base  # the (3, 1, n, n) buffer: values, high, low
    out_high, out_low = emulation.split_tf32(out)
    assert torch.equal(stored[1], out_high) and torch.equal(stored[2], out_low)


@pytest.mark.parametrize("n", [65, 96])  # 130 (a third tile row): the kappa 1e6 test below
def test_tf32x3_matches_the_emulated_torch_path(n):
    """Both roots and both gradients of scaled_ns at tf32x3 against the torch path at tf32x3
    (emulated products), kappa 1e2: the same rounding, so held to 2e-5 (measured 4.5e-7 to 2.7e-6)."""
    a = spd_with_condition(1, n, 1e2, seed=n)
    g_sqrt, g_inv = random_symmetric(1, n, seed=n + 1), random_symmetric(1, n, seed=n + 2)
    plan = Plan(method="scaled_ns", compute_dtype=torch.float32, n=n, max_condition=1e2, ns_iterations=4,
                precision="tf32x3")
    sqrt_ours, inv_ours, saved_ours = tiled_path.roots_forward(a, plan, True, True, True)
    sqrt_ref, inv_ref, saved_ref = torch_path.roots_forward(a, plan, True, True, True)
    assert _rel(sqrt_ours, sqrt_ref) <= 2e-5 and _rel(inv_ours, inv_ref) <= 2e-5
    assert torch.equal(sqrt_ours, sqrt_ours.mT) and torch.equal(inv_ours, inv_ours.mT)
    expected = torch_path.roots_backward(plan, saved_ref, g_sqrt, g_inv)
    assert _rel(tiled_path.roots_backward(plan, saved_ref, g_sqrt, g_inv), expected) <= 2e-5
    assert _rel(tiled_path.roots_backward(plan, saved_ours, g_sqrt, g_inv), expected) <= 2e-5


@pytest.mark.parametrize("n", [65, 96, 130])
@pytest.mark.parametrize("op", ["sqrtm", "inv_sqrtm"])
def test_tf32x3_as_accurate_as_the_emulated_torch_path_when_ill_conditioned(n, op):
    """Root and gradient errors against float64 eigh at kappa 1e6, scaled_ns at tf32x3 through
    the public op: the tiled kernels within 1.2x of the torch path's emulated tf32x3."""
    import tritonsqrt

    from tritonsqrt.testing import measure

    fn = getattr(tritonsqrt, op)
    a = spd_with_condition(1, n, 1e6, seed=n)
    grad = random_symmetric(1, n, seed=n + 1)
    errors = {backend: measure(lambda x: fn(x, method="scaled_ns", backend=backend, precision="tf32x3"), a, grad,
                               op == "inv_sqrtm")
              for backend in ("torch", "triton")}
    (torch_forward, torch_gradient), (tiled_forward, tiled_gradient) = errors["torch"], errors["triton"]
    assert tiled_forward <= 1.2 * torch_forward, errors
    assert tiled_gradient <= 1.2 * torch_gradient, errors
