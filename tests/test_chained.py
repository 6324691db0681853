"""Chained steps (`kernels/chained.py`): a step's two phases in one launch, ordered by tickets.

Under the interpreter: every matrix of a batch gets exactly what it gets alone (a NaN matrix
included), and every chain leaves its counters zero. Compiled for sm_90 (no GPU needed): the
memory-order instructions the waits rely on are in the PTX.
"""

import json
import os
import re
import subprocess
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from tritonsqrt.kernels import chained, tiled  # noqa: E402
from tritonsqrt.paths import tiled_path  # noqa: E402
from tritonsqrt.plan import Plan  # noqa: E402
from tritonsqrt.testing import random_symmetric, spd_with_condition  # noqa: E402
from tritonsqrt.testing.instrument import count_launches  # noqa: E402
from tritonsqrt.tuning import cache as tuning  # noqa: E402


@pytest.fixture(autouse=True)
def _default_configs(monkeypatch, tmp_path):
    monkeypatch.setenv("TRITONSQRT_TUNE", "0")
    monkeypatch.setenv("TRITONSQRT_CACHE_DIR", str(tmp_path))
    tuning.clear_memory()


def test_each_matrix_of_a_batch_gets_what_it_gets_alone_and_the_counters_end_zero(monkeypatch):
    """Matrix 1 is NaN: its waits and counters must not touch matrices 0 and 2, whose roots and
    gradients equal their single-matrix runs bit for bit; the chains leave their counters zero."""
    n = 65
    plan = Plan(method="scaled_ns", compute_dtype=torch.float32, n=n, max_condition=10.0, ns_iterations=3)
    a = spd_with_condition(3, n, 10.0, seed=41)
    a[1] = float("nan")
    grad = random_symmetric(3, n, seed=42)
    counters = []
    new_counters = tiled.new_counters
    monkeypatch.setattr(tiled, "new_counters", lambda *args: counters.append(new_counters(*args)) or counters[-1])

    def run(x, g):
        _, inv, saved = tiled_path.roots_forward(x, plan, False, True, True)
        return inv, tiled_path.roots_backward(plan, saved, None, g)

    with count_launches() as counted:
        inv, grad_a = run(a, grad)
    names = counted.names
    # the steps between the first and the last in one launch, the last in another; likewise back
    assert len(plan.forward_steps) > 2 and len(plan.backward_steps) > 1
    assert names.count("_newton_schulz_chained_kernel") == 2 and names.count("_lyapunov_chained_kernel") == 2
    assert len(counters) == 2 and all(c.numel() == chained.counter_count(3) and not c.any() for c in counters)
    assert inv[1].isnan().all() and grad_a[1].isnan().all()
    for i in (0, 2):
        alone_inv, alone_grad = run(a[i:i + 1], grad[i:i + 1])
        assert torch.equal(inv[i], alone_inv[0]) and torch.equal(grad_a[i], alone_grad[0])


def test_the_modeled_launch_plan_is_the_launch_sequence():
    """`case_model._launch_plan` (what the performance model times) against the launches of a
    scaled_ns inverse root with its backward, kernel for kernel, n = 80."""
    from tritonsqrt.kernels import case_model

    n = 80
    a = spd_with_condition(1, n, 10.0, seed=14)
    plan = Plan(method="scaled_ns", compute_dtype=torch.float32, n=n)
    with count_launches() as counted:
        _, _, saved = tiled_path.roots_forward(a, plan, False, True, True)
        tiled_path.roots_backward(plan, saved, None, random_symmetric(1, n, seed=15))
    base = lambda name: name.strip("_").removeprefix("tiled.").split("[")[0].removesuffix("_kernel")  # noqa: E731
    plan_of_launches = case_model._launch_plan(n, 1, "inv_sqrtm", backward=True)
    assert [base(prefix) for prefix, _, _ in plan_of_launches] == [base(name) for name in counted.names]
    assert len(counted.names) == 9  # prepare, first, between, last; prepare, 2 products, all but last, last


def test_programs_per_launch():
    # n = 130 in 64-wide tiles: 3 x 3 tiles; M on all 9, the update 9 x 2 split programs
    assert chained.chained_programs("newton_schulz_chained", 130, 4, 64, 2) == 9 * 3 * 4
    assert chained.chained_programs("newton_schulz_chained", 130, 4, 64, 2, steps=5) == 9 * 3 * 4 * 5
    assert chained.chained_programs("lyapunov_chained", 130, 4, 64, 2) == 9 * 4 * 4
    assert chained.chained_programs("lyapunov_chained", 130, 4, 64, 1) == 9 * 2 * 4
    assert chained.counter_count(4) == 9


def test_a_launch_of_several_steps_checks_its_arguments():
    y = torch.zeros(1, 65, 65)
    table = tiled.coefficient_table(((1.5, -0.5),) * 3, torch.float32, y.device)
    counters = torch.zeros(3, dtype=torch.int32)
    with pytest.raises(ValueError, match="steps=2"):  # no spare buffers to alternate with
        tiled.newton_schulz_chained_steps(y, y, y, table, 1, 2, y[:, :1, :1], counters, y_out=y, z_out=y,
                                          update_y=True, update_z=True, unscale=False, precision="ieee")
    with pytest.raises(ValueError, match="steps=2"):  # the unscale epilogue ends one step only
        tiled.newton_schulz_chained_steps(y, y, y, table, 1, 2, y[:, :1, :1], counters, y_out=y, z_out=y,
                                          y_spare=y, z_spare=y, update_y=True, update_z=True, unscale=True,
                                          precision="ieee")
    with pytest.raises(ValueError, match="steps=2"):
        tiled.lyapunov_chained_steps(y, y, y, y, table, 0, 2, counters, b_out=y, c_out=y, b_spare=y, c_spare=y,
                                     last=True, precision="ieee")


def _ptx(kernel_name: str) -> str:
    """The sm_90 PTX of the first ieee config of a chained kernel at n = 130 (32-wide: quick)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from tritonsqrt.kernels import compile_report

    spec = next(s for s in tiled.compile_specs(130, "float32") if s["name"].startswith(f"tiled.{kernel_name}[")
                and s["constexprs"]["PRECISION"] == "ieee" and s["constexprs"]["BLOCK"] == 32)
    compiled = triton.compile(ASTSource(spec["fn"], spec["signature"], spec["constexprs"],
                                        attrs=compile_report._aligned_pointers(spec, 130)),
                              target=GPUTarget("cuda", 90, 32),
                              options={"num_warps": spec["num_warps"], "num_stages": spec["num_stages"],
                                       **spec["options"]})
    return compiled.asm["ptx"]


@pytest.fixture(scope="module")
def ptx():
    """Both kernels' PTX, compiled in a child process (this one runs the interpreter)."""
    env = dict(os.environ, TRITON_INTERPRET="0")
    child = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr[-3000:]
    return json.loads(child.stdout.strip().splitlines()[-1])


@pytest.mark.slow_compile
@pytest.mark.parametrize("kernel_name", ["newton_schulz_chained", "lyapunov_chained"])
def test_the_waits_compile_to_release_and_acquire(ptx, kernel_name):
    """Each counter atomic runs in one thread (predicated), the producer's count is a release
    after a block barrier, the consumer's spin an acquire followed by a block barrier."""
    lines = [line.strip() for line in ptx[kernel_name].splitlines()
             if line.strip() and not line.strip().startswith((".loc", "//", "$L__"))]  # instructions only
    counters = [i for i, line in enumerate(lines) if re.search(r"\b(atom|red)\.global|\bld\.global\.gpu\.acquire", line)]
    assert counters and all(lines[i].startswith("@%p") for i in counters), [lines[i] for i in counters]
    # the ticket: relaxed, taken before any other counter is touched
    assert ".relaxed.add." in lines[counters[0]]
    waits = [i for i in counters if ".acquire." in lines[i]]  # the spins (Triton loads an atomic add of 0)
    counts = [i for i in counters if re.search(r"\.(release|acq_rel)\.add\.", lines[i])]
    assert waits and counts, [lines[i] for i in counters]
    for i in counts:  # every thread's stores before the count: a block barrier just before it
        assert any(line.startswith("bar.sync") for line in lines[i - 8:i]), lines[i - 8:i + 1]
    for i in waits:  # no thread loads before the acquire is seen: a block barrier just after the spin
        assert any(line.startswith("bar.sync") for line in lines[i + 1:i + 12]), lines[i:i + 12]


if __name__ == "__main__":  # the `ptx` fixture's child, without the interpreter
    print(json.dumps({name: _ptx(name) for name in ("newton_schulz_chained", "lyapunov_chained")}))
