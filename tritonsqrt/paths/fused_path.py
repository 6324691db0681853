"""Forward and backward of a resolved plan on the fused Triton kernels.

The twin of `tritonsqrt.paths.torch_path`: same arguments, same results, same saved tensors, so
the custom op in `ops.py` calls either. Each forward is one launch of
`kernels/fused_roots.py` (it reads A through its strides and does the symmetrisation, the eps
shift and the upcast itself); each backward one launch of `kernels/fused_lyapunov.py` (ns:
torch products through its iteration, as `torch_path`). eigh has no kernel
(`backends.kernel_methods`); a plan for it is passed to the torch path.
"""

from __future__ import annotations

import torch

from . import torch_path
from ..plan import Plan


def roots_forward(a: torch.Tensor, plan: Plan, want_sqrt: bool, want_inv: bool, need_backward: bool, eps: float = 0.0):
    """Roots of sym(a) + eps I for a batch (B, n, n) of any float dtype and strides.

    Returns (sqrt or None, inv or None, saved tensors tuple), results in a's dtype; saved is
    () without need_backward, else (S, norm) or (S, norm, Y) with S, Y in the compute dtype
    and norm (B, 1, 1), exactly as `torch_path.roots_forward`.
    """
    if plan.method == "eigh":
        return torch_path.roots_forward(a, plan, want_sqrt, want_inv, need_backward, eps)
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
        return out.sqrt, out.inv, saved
    elif plan.method == "scaled_ns":
        out = fused_roots.newton_schulz_roots(a, plan.forward_steps, **common)
    else:
        raise ValueError(f"plan.method: no Triton kernel for {plan.method!r}")
    saved = ()
    if need_backward:
        saved = (out.saved_sqrt, out.norm, out.saved_inv) if want_inv else (out.saved_sqrt, out.norm)
    return out.sqrt, out.inv, saved


def roots_backward(plan: Plan, saved, grad_sqrt, grad_inv) -> torch.Tensor:
    """dL/dA from dL/dS and/or dL/dY (either may be None), in the compute dtype."""
    if plan.method in ("eigh", "ns"):  # ns: torch products through the iteration (no kernel yet)
        return torch_path.roots_backward(plan, saved, grad_sqrt, grad_inv)
    from ..kernels.fused_lyapunov import lyapunov_backward

    sqrt_mat, norm = saved[0], saved[1]
    inv_mat = saved[2] if grad_inv is not None else None
    return lyapunov_backward(sqrt_mat, norm, inv_mat, grad_sqrt, grad_inv, plan.backward_steps, plan.precision)
