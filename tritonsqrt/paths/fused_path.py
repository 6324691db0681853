"""Forward and backward of a plan whose path is "fused": one Triton program per matrix.

Same protocol and saved records as `torch_path` (`records`), so the custom op in `custom_ops`
calls any path alike. Each forward is one launch of `kernels/fused_roots.py` (it reads A
through its strides and does the symmetrisation, the eps shift and the upcast itself); each
backward one launch of `kernels/fused_lyapunov.py` (ns: torch products through its iteration,
as `torch_path`). Routing sends only methods with a kernel here (`routing.path_for`).
"""

from __future__ import annotations

import torch

from . import torch_path
from ..plan import Plan
from .records import Roots, iterative_saved


def roots_forward(a: torch.Tensor, plan: Plan, want_sqrt: bool, want_inv: bool, need_backward: bool, eps: float = 0.0):
    """Roots of sym(a) + eps I for a batch (B, n, n) of any float dtype and strides.

    Returns `Roots` as `torch_path.roots_forward`: results in a's dtype, saved () without
    need_backward, else the method's record with S, Y in the compute dtype and norm (B, 1, 1).
    """
    from ..kernels import fused_roots

    common = dict(want_sqrt=want_sqrt, want_inv=want_inv, need_backward=need_backward, eps=eps,
                  precision=plan.precision)
    if plan.method == "mtp":
        out = fused_roots.taylor_roots(a, plan.taylor_degree, **common)
    elif plan.method == "mpa":
        out = fused_roots.pade_roots(a, *plan.pade_degrees, **common)
    elif plan.method == "ns":  # iSQRT-COV: trace norm; the backward runs through the iteration
        out = fused_roots.newton_schulz_roots(a, plan.forward_steps, **common, trace_norm=True)
        saved = torch_path.newton_schulz_saved(a, eps, out.norm, out.saved_inv, plan) if need_backward else ()
        return Roots(out.sqrt, out.inv, saved)
    elif plan.method == "scaled_ns":
        out = fused_roots.newton_schulz_roots(a, plan.forward_steps, **common)
    else:
        raise ValueError(f"fused_path: plan.method: no Triton kernel for {plan.method!r}")
    inv = out.saved_inv if want_inv else None
    saved = iterative_saved(plan.method, out.saved_sqrt, out.norm, inv) if need_backward else ()
    return Roots(out.sqrt, out.inv, saved)


def roots_backward(plan: Plan, saved, grad_sqrt, grad_inv) -> torch.Tensor:
    """dL/dA from dL/dS and/or dL/dY (either may be None), in the compute dtype."""
    if plan.method == "ns":  # torch products through the iteration (no kernel yet)
        return torch_path.roots_backward(plan, saved, grad_sqrt, grad_inv)
    from ..kernels.fused_lyapunov import lyapunov_backward

    inv_mat = saved.inv if grad_inv is not None else None
    return lyapunov_backward(saved.sqrt, saved.norm, inv_mat, grad_sqrt, grad_inv, plan.backward_steps,
                             plan.precision)
