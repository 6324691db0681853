"""Forward and backward of a resolved plan on the torch reference.

One of the three paths of `tritonsqrt.paths` (protocol and saved records: `records`); the
Triton paths `fused_path` and `tiled_path` take and return the same things, so the paths differ
only in where the arithmetic runs. Every step is a function of `tritonsqrt.numerics.reference`.

Saved for backward: eigh saves (eigenvalues, eigenvectors); the iterative methods save the
square root S and the per-matrix norm, plus the inverse root Y when the inverse is an output;
ns (differentiated through its iteration) saves A / tr A in place of S and the trace as the norm.
"""

from __future__ import annotations

import dataclasses

import torch

from ..numerics import emulation
from ..numerics import reference as ref
from ..plan import Plan
from .records import EighSaved, Roots, iterative_saved


def roots_forward(a: torch.Tensor, plan: Plan, want_sqrt: bool, want_inv: bool, need_backward: bool, eps: float = 0.0):
    """Roots of sym(a) + eps I for a batch (B, n, n) of any float dtype.

    Returns `Roots(sqrt or None, inv or None, saved)`, results in a's dtype.
    """
    work_dtype = plan.eigh_dtype if (plan.method == "eigh" and plan.eigh_dtype) else plan.compute_dtype
    work = ref.symmetrize(a.to(work_dtype))
    if eps:
        work = work + eps * ref.identity_like(work)
    cast = lambda t: t.to(a.dtype) if t is not None else None  # noqa: E731
    with _products_at_kernel_precision(plan):
        sqrt_mat, inv_mat, saved = _roots(work, plan, want_sqrt, want_inv, need_backward)
    return Roots(cast(sqrt_mat), cast(inv_mat), saved)


def _roots(a: torch.Tensor, plan: Plan, want_sqrt: bool, want_inv: bool, need_backward: bool):
    if plan.method == "eigh":
        sqrt_mat, inv_mat, evals, evecs = ref.eigh_roots(a)
        saved = EighSaved(evals, evecs) if need_backward else ()
        return sqrt_mat if want_sqrt else None, inv_mat if want_inv else None, saved

    if plan.method == "ns":  # iSQRT-COV: trace pre-normalisation, backward through the iteration
        a_hat, trace = ref.trace_normalize(a)
        sqrt_hat, inv_hat = ref.coupled_newton_schulz(a_hat, plan.forward_steps, want_inverse=want_inv)
        sqrt_mat = ref.unscale(sqrt_hat, trace, inverse=False)
        inv_mat = ref.unscale(inv_hat, trace, inverse=True) if want_inv else None
        saved = iterative_saved("ns", a_hat, trace, inv_mat) if need_backward else ()
        return sqrt_mat if want_sqrt else None, inv_mat, saved

    a_hat, norm = ref.frobenius_normalize(a)
    if plan.method == "scaled_ns":
        sqrt_hat, inv_hat = ref.coupled_newton_schulz(a_hat, plan.forward_steps, want_inverse=want_inv)
        sqrt_mat = ref.unscale(sqrt_hat, norm, inverse=False)
        inv_mat = ref.unscale(inv_hat, norm, inverse=True) if want_inv else None
    else:
        inv_hat = _expansion(a_hat, plan, inverse=True) if want_inv else None
        if want_sqrt or inv_hat is None:
            sqrt_hat = _expansion(a_hat, plan, inverse=False)
        else:  # the backward needs S: one product instead of a second expansion
            sqrt_hat = ref.symmetrize(a_hat @ inv_hat) if need_backward else None
        sqrt_mat = ref.unscale(sqrt_hat, norm, inverse=False) if sqrt_hat is not None else None
        inv_mat = ref.unscale(inv_hat, norm, inverse=True) if inv_hat is not None else None
    saved = iterative_saved(plan.method, sqrt_mat, norm, inv_mat) if need_backward else ()
    return sqrt_mat if want_sqrt else None, inv_mat, saved


def newton_schulz_saved(a: torch.Tensor, eps: float, trace: torch.Tensor, inv_out, plan: Plan):
    """What ns's backward keeps when a kernel ran the forward: (A / tr A, tr A[, Y]) in the
    compute dtype, tr A being the kernel's own (element-wise torch ops, no product, no sync)."""
    work = ref.symmetrize(a.to(plan.compute_dtype))
    if eps:
        work = work + eps * ref.identity_like(work)
    a_hat = work / torch.where(trace == 0, torch.ones_like(trace), trace)
    inv = inv_out.to(plan.compute_dtype) if inv_out is not None else None
    return iterative_saved("ns", a_hat, trace, inv)


def _products_at_kernel_precision(plan: Plan):
    """The Triton kernels' `tl.dot` input precision, emulated (`tritonsqrt.numerics.emulation`) for every
    product of the iterative methods; eigh has no kernel and stays in full precision."""
    return emulation.products_at("ieee" if plan.method == "eigh" else plan.precision)


def _expansion(a_hat: torch.Tensor, plan: Plan, inverse: bool) -> torch.Tensor:
    if plan.method == "mtp":
        return ref.taylor_root(a_hat, plan.taylor_degree, inverse)
    return ref.pade_root(a_hat, *plan.pade_degrees, inverse)


def roots_backward(plan: Plan, saved, grad_sqrt, grad_inv) -> torch.Tensor:
    """dL/dA from dL/dS and/or dL/dY (either may be None), for the symmetric input A."""
    if plan.precision != "ieee" and plan.method != "eigh":  # products at the kernels' precision
        with _products_at_kernel_precision(plan):
            return roots_backward(dataclasses.replace(plan, precision="ieee"), saved, grad_sqrt, grad_inv)
    if plan.method == "eigh":
        evals, evecs = saved.evals, saved.evecs
        grad = torch.zeros_like(evecs)
        if grad_sqrt is not None:
            grad = grad + ref.loewner_backward(evals, evecs, ref.symmetrize(grad_sqrt.to(evecs.dtype)), False)
        if grad_inv is not None:
            grad = grad + ref.loewner_backward(evals, evecs, ref.symmetrize(grad_inv.to(evecs.dtype)), True)
        return ref.symmetrize(grad)

    if plan.method == "ns":  # no Lyapunov solve: back through the iteration
        a_hat, trace = saved.a_hat, saved.trace
        cast = lambda g: g.to(a_hat.dtype) if g is not None else None  # noqa: E731
        return ref.newton_schulz_backward(a_hat, trace, plan.forward_steps, cast(grad_sqrt), cast(grad_inv))

    sqrt_mat, norm = saved.sqrt, saved.norm
    rhs = ref.symmetrize(grad_sqrt.to(sqrt_mat.dtype)) if grad_sqrt is not None else torch.zeros_like(sqrt_mat)
    if grad_inv is not None:
        # Y = S^-1, so <G_Y, dY> = <-Y G_Y Y, dS>.
        inv_mat = saved.inv
        rhs = rhs - inv_mat @ ref.symmetrize(grad_inv.to(sqrt_mat.dtype)) @ inv_mat
    # sqrt(||A||_F) bounds the largest eigenvalue of S, so B = S / scale has spectrum in (0, 1].
    scale = torch.where(norm == 0, torch.ones_like(norm), norm.sqrt())
    return ref.symmetrize(ref.lyapunov_sign(sqrt_mat, rhs, scale, plan.backward_steps))
