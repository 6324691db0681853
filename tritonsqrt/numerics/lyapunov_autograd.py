"""Autograd of the public `lyapunov` solve (the roots' autograd lives with their custom op in `tritonsqrt.paths.custom_ops`)."""

from __future__ import annotations

import torch

from .reference import lyapunov_sign, symmetrize


class Lyapunov(torch.autograd.Function):
    """X solving S X + X S = C; differentiable in C (the map is linear and self-adjoint)."""

    @staticmethod
    def forward(ctx, s_mat, rhs, scale, steps):
        ctx.save_for_backward(s_mat, scale)
        ctx.steps = steps
        return lyapunov_sign(s_mat, rhs, scale, steps)

    @staticmethod
    def backward(ctx, grad):
        s_mat, scale = ctx.saved_tensors
        return None, lyapunov_sign(s_mat, symmetrize(grad), scale, ctx.steps), None, None
