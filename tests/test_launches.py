"""Launch counting through the public ops (wrapping Triton's launch path, not reading code):
one kernel for a forward and one for a backward on a batch of 64 x 64 matrices, and no torch
matrix product or linalg op beside them."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import tritonsqrt as ts  # noqa: E402
from tritonsqrt.testing.instrument import count_launches, count_torch_ops  # noqa: E402
from tritonsqrt.testing import random_symmetric, spd_with_condition  # noqa: E402


@pytest.mark.parametrize("method", ["scaled_ns", "ns", "mpa", "mtp"])
def test_one_launch_forward_one_backward_and_no_torch_products(method):
    op = ts.inv_sqrtm if method in ("scaled_ns", "mpa") else ts.sqrtm
    a = spd_with_condition(2, 64, 100.0).requires_grad_(True)
    g = random_symmetric(2, 64)
    with count_launches() as forward, count_torch_ops() as torch_ops:
        out = op(a, method=method, backend="triton")
    assert forward.launches == 1, forward.names
    with count_launches() as backward, count_torch_ops() as torch_ops_backward:
        torch.autograd.grad(out, a, g)
    assert torch_ops.matmuls == torch_ops.linalg == 0, torch_ops.names
    if method == "ns":  # iSQRT-COV's backward runs through its iteration: torch products, no kernel yet
        plan = ts.plan.resolve(a, "ns", "torch")
        assert backward.launches == 0, backward.names
        assert torch_ops_backward.matmuls == plan.matmuls("sqrtm", True) - plan.matmuls("sqrtm", False)
        return
    assert backward.launches == 1, backward.names
    assert torch_ops_backward.matmuls == torch_ops_backward.linalg == 0, torch_ops_backward.names


def test_descriptor_scratch_sets_an_allocator_for_the_launch_only():
    """TMA launches make their descriptors in global scratch from Triton's allocator
    (`launch.descriptor_scratch`): one backed by torch inside the block where none is set, the
    caller's own where one is, and the process's setting as it was afterwards."""
    from triton.runtime import _allocation

    from tritonsqrt.kernels.launch import _scratch, descriptor_scratch

    assert isinstance(_allocation._allocator.get(), _allocation.NullAllocator)
    with descriptor_scratch():
        assert _allocation._allocator.get() is _scratch
    assert isinstance(_allocation._allocator.get(), _allocation.NullAllocator)

    def mine(size, alignment, stream):
        return None

    token = _allocation._allocator.set(mine)
    try:
        with descriptor_scratch():
            assert _allocation._allocator.get() is mine
        assert _allocation._allocator.get() is mine
    finally:
        _allocation._allocator.reset(token)
