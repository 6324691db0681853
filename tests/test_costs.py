"""What a call costs, counted on the torch path (not read off the code)."""

import pytest
import torch

import tritonsqrt as ts
from tritonsqrt.testing.instrument import count_torch_ops
from tritonsqrt.plan import auto_method, resolve
from tritonsqrt.testing import spd_with_condition


@pytest.mark.parametrize("method", ["scaled_ns", "ns", "mpa", "mtp"])
@pytest.mark.parametrize("op", [ts.sqrtm, ts.inv_sqrtm])
def test_counted_products_match_the_plan(method, op):
    a = spd_with_condition(3, 64, 100.0).requires_grad_(True)
    with count_torch_ops() as forward_only:
        with torch.no_grad():
            op(a, method=method, backend="torch")
    with count_torch_ops() as both:
        op(a, method=method, backend="torch").sum().backward()
    plan = resolve(a, method, "torch")
    assert forward_only.matmuls == plan.matmuls(op.__name__, backward=False)
    assert both.matmuls == plan.matmuls(op.__name__, backward=True)
    assert both.linalg == (1 if method == "mpa" else 0)  # the Padé solve


def test_gpu_default_costs_at_most_100_products_at_n64():
    """The issue's budget: n = 64, fp32, one forward plus backward <= 100 products."""
    plan = auto_method("cuda", 64, torch.float32)
    for op in (ts.sqrtm, ts.inv_sqrtm):
        a = spd_with_condition(2, 64, 100.0).requires_grad_(True)
        with count_torch_ops() as counts:
            op(a, method=plan.method, backend="torch").sum().backward()
        assert counts.matmuls <= 100 and counts.linalg == 0


def test_official_code_costs_what_the_design_notes_say():
    from tritonsqrt.perf.competitors import official_lya

    a = spd_with_condition(2, 64, 100.0).requires_grad_(True)
    with count_torch_ops() as counts:
        official_lya(a, "mpa", False).sum().backward()
    # 4 powers of Z, and 8 backward steps of 5 products (the official code writes 6: C B^2).
    assert counts.matmuls == 4 + 8 * 5 and counts.linalg == 1
