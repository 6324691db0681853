"""The autograd function behind every public op: one class, three output modes.

It sees a batch (B, n, n) of symmetric matrices in the compute dtype and a resolved Plan, and
hands the arithmetic to the plan's backend (torch reference or Triton kernels).
"""

from __future__ import annotations

import torch

from . import torch_path
from .plan import Plan

OUTPUTS = ("sqrt", "inv", "both")


def _backend(plan: Plan):
    if plan.backend == "triton":
        from . import triton_path

        return triton_path
    return torch_path


class MatrixRoots(torch.autograd.Function):
    """Roots of sym(A) + eps I for A (B, n, n) of any float dtype and strides.

    The backend returns results in A's dtype; only the symmetric part of A is read, so the
    gradient is symmetric.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, plan: Plan, outputs: str, eps: float, grad_enabled: bool):
        want_sqrt = outputs in ("sqrt", "both")
        want_inv = outputs in ("inv", "both")
        # Inside forward grad mode is always off; the caller's mode says whether a backward can come.
        need_backward = grad_enabled and ctx.needs_input_grad[0]
        sqrt_mat, inv_mat, saved = _backend(plan).roots_forward(a, plan, want_sqrt, want_inv, need_backward, eps)
        ctx.plan, ctx.outputs, ctx.input_dtype = plan, outputs, a.dtype
        ctx.save_for_backward(*saved)
        if outputs == "sqrt":
            return sqrt_mat
        if outputs == "inv":
            return inv_mat
        return sqrt_mat, inv_mat

    @staticmethod
    def backward(ctx, *grads):
        if ctx.outputs == "sqrt":
            grad_sqrt, grad_inv = grads[0], None
        elif ctx.outputs == "inv":
            grad_sqrt, grad_inv = None, grads[0]
        else:
            grad_sqrt, grad_inv = grads
        grad = _backend(ctx.plan).roots_backward(ctx.plan, ctx.saved_tensors, grad_sqrt, grad_inv)
        return grad.to(ctx.input_dtype), None, None, None, None


class Lyapunov(torch.autograd.Function):
    """X solving S X + X S = C; differentiable in C (the map is linear and self-adjoint)."""

    @staticmethod
    def forward(ctx, s_mat, rhs, scale, steps):
        from .reference import lyapunov_sign

        ctx.save_for_backward(s_mat, scale)
        ctx.steps = steps
        return lyapunov_sign(s_mat, rhs, scale, steps)

    @staticmethod
    def backward(ctx, grad):
        from .reference import lyapunov_sign, symmetrize

        s_mat, scale = ctx.saved_tensors
        return None, lyapunov_sign(s_mat, symmetrize(grad), scale, ctx.steps), None, None
