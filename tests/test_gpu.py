"""Checks that need a CUDA GPU (run by perf/device.sh on a lent machine; skipped elsewhere).

The same properties are tested on CPU through the Triton interpreter; these prove them on the
hardware: kernels against the torch reference, CUDA-graph capture of forward and backward
(no host synchronisation), and torch.compile with Inductor.
"""

import pytest
import torch

import tritonsqrt as ts
from tritonsqrt.testing import measure, random_symmetric, spd_with_condition

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

KERNEL_METHODS = ["scaled_ns", "ns", "mpa", "mtp"]


@pytest.mark.parametrize("n", [16, 33, 48, 64, 256])
@pytest.mark.parametrize("method", KERNEL_METHODS)
def test_kernels_match_the_torch_reference_on_gpu(method, n):
    a = spd_with_condition(8, n, 100.0, seed=n, device="cuda")
    g = random_symmetric(8, n, device="cuda")
    for fn in (ts.sqrtm, ts.inv_sqrtm):
        ours, theirs = a.clone().requires_grad_(True), a.clone().requires_grad_(True)
        # The same products on both sides: ieee, as the kernels' own default would be tf32x3 from n = 16
        out = fn(ours, method=method, backend="triton", precision="ieee")
        ref = fn(theirs, method=method, backend="torch", precision="ieee")
        (g_ours,) = torch.autograd.grad(out, ours, g)
        (g_ref,) = torch.autograd.grad(ref, theirs, g)
        assert float((out - ref).norm() / ref.norm()) < 1e-5
        assert float((g_ours - g_ref).norm() / g_ref.norm()) < 1e-5


@pytest.mark.parametrize("kappa,bounds", [(1e2, (5e-6, 1e-5, 1e-5, 3e-5)), (1e4, (2e-5, 3e-4, 2e-4, 1e-3))])
def test_gpu_default_meets_the_table(kappa, bounds):
    for n in (16, 64, 256):
        a = spd_with_condition(4, n, kappa, seed=n, device="cuda")
        g = random_symmetric(4, n, device="cuda")
        s_fwd, s_bwd = measure(ts.sqrtm, a, g, False)
        i_fwd, i_bwd = measure(ts.inv_sqrtm, a, g, True)
        errors = (s_fwd, i_fwd, s_bwd, i_bwd)
        assert all(e <= b for e, b in zip(errors, bounds)), (n, errors)


@pytest.mark.parametrize("op", (ts.inv_sqrtm, ts.sqrtm))
@pytest.mark.parametrize("batch, n", ((64, 64), (4, 200), (1, 96)))
def test_cuda_graph_captures_forward_and_backward(batch, n, op):
    """The fused launches (n = 64) and the whole tiled chain (n = 200: ragged 64-wide tiles, split
    programs, the chained launches of every Newton–Schulz and Lyapunov step; n = 96, B = 1: a few
    programs a step) replay from one CUDA graph: no host sync."""
    a = spd_with_condition(batch, n, 100.0, device="cuda").requires_grad_(True)
    features = torch.randn(batch, n, 32, device="cuda")

    def step():
        a.grad = None
        loss = (op(a, eps=1e-5) @ features).square().sum()
        loss.backward()
        return loss

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm-up: compile and tune every kernel before capture
            step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    a.grad = None
    with torch.cuda.graph(graph):
        loss = (op(a, eps=1e-5) @ features).square().sum()
        loss.backward()
    graph.replay()
    torch.cuda.synchronize()
    captured = a.grad.clone()
    graph.replay()  # the chained steps' counters are left zero: a second replay is the same
    torch.cuda.synchronize()
    assert torch.equal(a.grad, captured)
    a.grad = None
    (expected_grad,) = torch.autograd.grad((op(a, eps=1e-5) @ features).square().sum(), a)
    assert torch.allclose(captured, expected_grad, rtol=1e-4, atol=1e-6)


def test_chained_steps_with_more_programs_than_the_gpu_holds():
    """B = 8, n = 1024: each chained launch has 8 x 16^2 x 3 (or x 4) programs, many times what
    is resident at once, so phase-2 programs wait for phase-1 programs that start later than
    other waiting ones (`kernels/chained.py`: ticket order, not program order). Roots and
    gradients against the torch path of the same method."""
    from tritonsqrt.paths import tiled_path, torch_path
    from tritonsqrt.plan import Plan

    n = 1024
    a = spd_with_condition(8, n, 100.0, device="cuda")
    grad = torch.randn(8, n, n, device="cuda")
    plan = Plan(method="scaled_ns", compute_dtype=torch.float32, n=n, precision="ieee")
    ours = tiled_path.roots_forward(a, plan, True, True, True)
    ref = torch_path.roots_forward(a, plan, True, True, True)
    rel = lambda x, y: float((x - y).norm() / y.norm())  # noqa: E731
    assert rel(ours[0], ref[0]) <= 1e-4 and rel(ours[1], ref[1]) <= 1e-4
    grad_ours = tiled_path.roots_backward(plan, ref[2], grad, None)
    assert rel(grad_ours, torch_path.roots_backward(plan, ref[2], grad, None)) <= 1e-4


@pytest.mark.parametrize("precision", ["tf32", "tf32x3"])
def test_tma_entries_compute_what_the_pointer_entries_do(monkeypatch, tmp_path, precision):
    """On sm_90 at n a multiple of 16 the chained kernels' first entries load through TMA
    descriptors made in the kernel (`spaces.TMA_FIRST`, scratch from `launch.descriptor_scratch`):
    roots and gradient as with the pointer entries (the same tiles, products and order), within
    float32 rounding, and the TMA launches replay from a CUDA graph."""
    from tritonsqrt.kernels import spaces, tiled
    from tritonsqrt.paths import tiled_path
    from tritonsqrt.plan import Plan
    from tritonsqrt.tuning import cache as tuning

    if not spaces.offers_tma(torch.device("cuda")) or (precision, "lyapunov_chained") not in spaces.TMA_FIRST:
        pytest.skip("TMA entries: sm_90, and for tf32x3 Triton >= 3.9")
    monkeypatch.setenv("TRITONSQRT_TUNE", "0")  # each run takes its first candidate
    monkeypatch.setenv("TRITONSQRT_CACHE_DIR", str(tmp_path))
    n = 256
    a = spd_with_condition(4, n, 100.0, seed=5, device="cuda")
    grad = random_symmetric(4, n, seed=6, device="cuda")
    plan = Plan(method="scaled_ns", compute_dtype=torch.float32, n=n, precision=precision)
    runs = []
    for tma in (False, True):
        tuning.clear_memory()
        monkeypatch.setattr(tiled, "offers_tma", lambda device, tma=tma: tma)
        forward = tiled_path.roots_forward(a, plan, True, True, True)
        runs.append((forward[1], tiled_path.roots_backward(plan, forward[2], None, grad)))
    rel = lambda x, y: float((x - y).norm() / y.norm())  # noqa: E731
    (inv_ptr, grad_ptr), (inv_tma, grad_tma) = runs
    assert rel(inv_tma, inv_ptr) <= 1e-6 and rel(grad_tma, grad_ptr) <= 1e-6
    tiled_path.roots_forward(a, plan, False, True, False)  # compile this flag set before the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = tiled_path.roots_forward(a, plan, False, True, False)[1]
    graph.replay()
    torch.cuda.synchronize()
    assert rel(captured, inv_tma) <= 1e-6


def test_torch_compile_inductor_fullgraph():
    a = spd_with_condition(16, 48, 100.0, device="cuda").requires_grad_(True)
    compiled = torch.compile(lambda x: ts.sqrtm(x).sum(), fullgraph=True)
    compiled(a).backward()
    grad = a.grad.clone()
    a.grad = None
    ts.sqrtm(a).sum().backward()
    assert torch.allclose(grad, a.grad, rtol=1e-5, atol=1e-6)
