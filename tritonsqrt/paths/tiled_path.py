"""Forward and backward of a plan whose path is "tiled": matrices beyond the fused size.

Same protocol and saved records as `torch_path` (`records`); each method is the
chain of launches of `kernels/tiled.py`, step for step as in `tritonsqrt.numerics.reference`:

  launches per call (K steps, d the degree)                      torch path, for comparison
  prepare: sym(A) + eps I, sums of squares        1
  ns / scaled_ns: first step 1, the steps between 1 (chained, `kernels/chained.py`: per step M = Z Y,
    then Y', Z'; 3 products a step), the last 1                      3 products + ~4 others a step
  mtp / mpa: per power of Z (with both sums)      1, d - 1 in all                  1 product + 2 adds
  mpa: torch.linalg.solve_ex (1 or 2), unscale    1 launch after the solves
  only the inverse root + backward (mtp, mpa)     +1 (S = sym(A_hat Y))
  backward: prepare 1, inverse-root rhs +2, the sign steps but the last 1 (chained: per step B^2,
    B C - C B, then C', B'), the last 1                             5 products + ~6 others a step

A chained launch (`kernels/chained.py`) forms each step's intermediate (M; B^2 and the
commutator) and its update, for any number of steps, its programs ordered by tickets; its
counters are zeroed by the prepare launch and left zero by every chained launch. No launch
writes its own inputs (buffers alternate), so the tuner can rerun any launch. Nothing
synchronises with the host. Every stored iterate is exactly
symmetric; the Newton–Schulz updates average each tile with its mirror rather than mirror one
triangle (as accurate as the torch path at kappa 1e6: docs/large-and-tuning.md, "Symmetry").
With tf32x3 every buffer a product reads is a `tiled.split_buffer` (values, TF32 high and low
planes), the planes written by the launch that writes the values (docs/large-and-tuning.md, "tf32x3").
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch

from ..numerics.coefficients import inv_sqrt_taylor, sqrt_pade, sqrt_taylor
from ..constants import KERNEL_METHODS
from ..plan import Plan
from .records import Roots, iterative_saved

TILED_METHODS = KERNEL_METHODS


def _kernels():
    from tritonsqrt.kernels import tiled  # late: Triton is optional for the rest of the package

    return tiled


@dataclasses.dataclass
class _Targets:
    """Where one root goes: `out` in the input's dtype (when wanted), `saved` in the compute dtype
    (when the backward needs it; the same tensor as `out` when the dtypes agree)."""

    out: torch.Tensor | None
    saved: torch.Tensor | None

    @property
    def needed(self) -> bool:
        return self.out is not None or self.saved is not None


def _operand_factory(tiled, like: torch.Tensor, precision: str):
    """New (B, n, n) buffers for iterates that products read: with tf32x3 `tiled.split_buffer`s
    (their TF32 planes written by the launch that writes them), else plain tensors."""
    if tiled.splits_operands(like.dtype, precision):
        return lambda: tiled.split_buffer(like.shape[0], like.shape[-1], like.dtype, like.device)
    return lambda: torch.empty_like(like)


def _split_operand(tiled, x: torch.Tensor, precision: str) -> torch.Tensor:
    """x (contiguous) where a product reads a tensor no launch of ours wrote (a saved root, a
    solve's result): with tf32x3 a `split_buffer` whose planes torch fills (`emulation.split_tf32`,
    the kernels' rounding)."""
    if not tiled.splits_operands(x.dtype, precision):
        return x.contiguous()
    from ..numerics.emulation import split_tf32

    return torch.stack((x, *split_tf32(x)))[0]


def _device_guard(t: torch.Tensor):
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def _check(a: torch.Tensor, plan: Plan) -> None:
    if plan.method not in TILED_METHODS:
        raise ValueError(f"tiled_path: plan.method: expected one of {', '.join(TILED_METHODS)}, got {plan.method!r}")
    if a.dim() != 3 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"tiled_path: a: expected a batch (B, n, n), got shape {tuple(a.shape)}")
    if not a.is_floating_point():
        raise ValueError(f"tiled_path: a: expected a floating-point dtype, got {a.dtype}")


def roots_forward(a: torch.Tensor, plan: Plan, want_sqrt: bool, want_inv: bool, need_backward: bool,
                  eps: float = 0.0):
    """Roots of sym(a) + eps I for a batch (B, n, n) of any float dtype and strides.

    Returns `Roots` as `torch_path.roots_forward`: results in a's dtype, saved () without
    need_backward, else the method's record in the compute dtype.
    """
    _check(a, plan)
    tiled = _kernels()
    batch, n = a.shape[0], a.shape[-1]
    compute = plan.compute_dtype
    new = lambda dtype=compute: torch.empty((batch, n, n), dtype=dtype, device=a.device)  # noqa: E731

    def targets(wanted: bool, saved: bool) -> _Targets:
        out = new(a.dtype) if wanted else None
        return _Targets(out, (out if (wanted and a.dtype == compute) else new()) if saved else None)

    sqrt_t = targets(want_sqrt, need_backward)
    inv_t = targets(want_inv, need_backward and want_inv)
    norm = torch.empty((batch, 1, 1), dtype=compute, device=a.device)
    if batch:
        with _device_guard(a):
            split = tiled.splits_operands(compute, plan.precision)
            w = tiled.split_buffer(batch, n, compute, a.device) if split else new()
            partials = torch.empty((batch, tiled.partial_count(n)), dtype=compute, device=a.device)
            work, root_power = _prescaled(a, eps, compute)
            counters = tiled.new_counters(batch, a.device) if _chains_forward(plan) else None
            tiled.prepare_forward(work, 0.0, w, partials, split=split, counters=counters)
            if plan.method == "ns":  # iSQRT-COV: divide by tr W (a torch reduction), no S to save
                norm.copy_(w.diagonal(dim1=-2, dim2=-1).sum(-1).reshape(batch, 1, 1))
                a_hat_saved = w / torch.where(norm == 0, torch.ones_like(norm), norm) if need_backward else None
                sqrt_t = _Targets(sqrt_t.out, None)
                inv_t = _Targets(inv_t.out, inv_t.saved)
                _newton_schulz(tiled, w, partials, norm, plan, sqrt_t, inv_t, counters, trace_norm=True)
            elif plan.method == "scaled_ns":
                _newton_schulz(tiled, w, partials, norm, plan, sqrt_t, inv_t, counters)
            else:
                _expansion(tiled, w, partials, norm, plan, sqrt_t, inv_t, need_backward)
            _unprescale(root_power, norm, sqrt_t, inv_t)
    saved = ()
    if need_backward:
        inv = inv_t.saved if want_inv else None
        if plan.method == "ns":  # its backward runs through the iteration from A / tr A (torch_path)
            a_hat = a_hat_saved if batch else torch.empty((0, n, n), dtype=compute, device=a.device)
            saved = iterative_saved("ns", a_hat, norm, inv)
        else:
            saved = iterative_saved(plan.method, sqrt_t.saved, norm, inv)
    return Roots(sqrt_t.out, inv_t.out, saved)


def _prescaled(a: torch.Tensor, eps: float, compute: torch.dtype):
    """((a + eps I) / p^2, p) with p a power of two per matrix near sqrt of the largest entry.

    The tiled kernels square raw entries (the norm's partial sums, the first product W W), which
    overflows from 1e19 in float32 and vanishes below 1e-23; a power of four divides exactly and
    the roots scale by p exactly, so ordinary inputs give the same bits. eps joins here, since
    it must be divided by the same p^2 (the kernels then get eps = 0).
    """
    largest = a.abs().amax(dim=(-2, -1), keepdim=True).to(compute).clamp_min(abs(eps))
    root_power = torch.ldexp(torch.ones_like(largest), torch.div(torch.frexp(largest)[1], 2, rounding_mode="floor"))
    work = a.to(compute)
    if eps:
        work = work + eps * torch.eye(work.shape[-1], dtype=compute, device=work.device)
    return work / (root_power * root_power), root_power


def _unprescale(root_power: torch.Tensor, norm: torch.Tensor, sqrt_t: _Targets, inv_t: _Targets) -> None:
    """Undo `_prescaled` in place: S * p, Y / p, the norm * p^2 (each distinct tensor once)."""
    norm.mul_(root_power * root_power)
    done = []
    for tensor, inverse in ((sqrt_t.out, False), (sqrt_t.saved, False), (inv_t.out, True), (inv_t.saved, True)):
        if tensor is None or any(tensor is seen for seen in done):
            continue
        factor = root_power.to(tensor.dtype)
        tensor.div_(factor) if inverse else tensor.mul_(factor)
        done.append(tensor)


def _chains_forward(plan: Plan) -> bool:
    """Whether the forward runs chained Newton–Schulz steps (`kernels/chained.py`), which need counters."""
    return plan.method in ("ns", "scaled_ns") and len(plan.forward_steps) > 1


def _newton_schulz(tiled, w, partials, norm, plan: Plan, sqrt_t: _Targets, inv_t: _Targets, counters,
                   trace_norm: bool = False) -> None:
    """`reference.coupled_newton_schulz` + unscale: step 0 from W, then per step M = Z Y and
    (Y', Z'), the steps between the first and the last in one chained launch, the last in
    another (counters: the chain's, zeroed by the prepare launch).

    M keeps both triangles (its skew part is the coupling's correction); Y' and Z' are symmetric."""
    steps = plan.forward_steps
    table = tiled.coefficient_table(steps, w.dtype, w.device)
    precision = plan.precision
    if len(steps) == 1:
        tiled.newton_schulz_first_step(w, table, norm, partials, y_out=sqrt_t.out, y_saved=sqrt_t.saved,
                                       z_out=inv_t.out, z_saved=inv_t.saved, update_y=sqrt_t.needed,
                                       update_z=inv_t.needed, unscale=True, precision=precision,
                                       trace_norm=trace_norm)
        return
    operand = _operand_factory(tiled, w, precision)
    y, z, m = operand(), operand(), operand()
    tiled.newton_schulz_first_step(w, table, norm, partials, y_out=y, z_out=z, update_y=True, update_z=True,
                                   unscale=False, precision=precision, trace_norm=trace_norm)
    y_next, z_next = w, operand()  # W is not read again: its buffer takes the next Y
    if len(steps) > 2:  # the steps between the first and the last: one launch (`kernels/chained.py`)
        tiled.newton_schulz_chained_steps(y, z, m, table, 1, len(steps) - 2, norm, counters, y_out=y_next,
                                          z_out=z_next, y_spare=operand(), z_spare=operand(), update_y=True,
                                          update_z=True, unscale=False, precision=precision)
        y, z = y_next, z_next
    # The last: the Z update only for the inverse, the Y update only when S is wanted or saved.
    tiled.newton_schulz_chained_steps(y, z, m, table, len(steps) - 1, 1, norm, counters, y_out=sqrt_t.out,
                                      y_saved=sqrt_t.saved, z_out=inv_t.out, z_saved=inv_t.saved,
                                      update_y=sqrt_t.needed, update_z=inv_t.needed, unscale=True, precision=precision)


def _expansion(tiled, w, partials, norm, plan: Plan, sqrt_t: _Targets, inv_t: _Targets, need_backward: bool) -> None:
    """MTP (`reference.taylor_root`) or MPA (`reference.pade_root`), as `torch_path._roots` combines them."""
    pade = plan.method == "mpa"
    want_inv = inv_t.out is not None
    if pade:
        first_coeffs, second_coeffs = sqrt_pade(*plan.pade_degrees)
        degree = max(plan.pade_degrees)
        first_poly = second_poly = True
    else:
        degree = plan.taylor_degree
        first_coeffs, second_coeffs = sqrt_taylor(degree), inv_sqrt_taylor(degree)
        first_poly, second_poly = (sqrt_t.out is not None or not want_inv), want_inv
    # Only the inverse, and the backward needs S: S = sym(A_hat Y_hat) from the unscaled Y_hat.
    sqrt_from_inverse = want_inv and sqrt_t.out is None and need_backward
    # Degree 1 still runs power 2, with zero coefficients (its product is wasted, its sum exact).
    rows = max(degree, 2) + 1
    pad = lambda c: tuple(c) + (0.0,) * (rows - len(c))  # noqa: E731
    table = tiled.coefficient_table(list(zip(pad(first_coeffs), pad(second_coeffs))), w.dtype, w.device)
    hat_sums = pade or sqrt_from_inverse  # the last power writes the sums, not the roots

    top = max(degree, 2)
    new = lambda: torch.empty_like(w)  # noqa: E731
    operand = _operand_factory(tiled, w, plan.precision)  # what a later power reads
    # Sums and powers alternate between two buffers: no launch writes what it reads.
    sum_buffers = [(new() if first_poly else None, new() if second_poly else None) for _ in range(2)]
    powers = (operand(), operand()) if top > 2 else (None, None)
    z = operand() if top > 2 else None
    sums_in = (None, None)
    for k in range(2, top + 1):
        last = k == top
        if last and not hat_sums:
            outputs = dict(first_out=sqrt_t.out if first_poly else None,
                           first_saved=sqrt_t.saved if first_poly else None,
                           second_out=inv_t.out, second_saved=inv_t.saved)
        else:
            outputs = dict(first_out=sum_buffers[k % 2][0], second_out=sum_buffers[k % 2][1])
        tiled.power_step(w if k == 2 else powers[(k - 1) % 2], w if k == 2 else z, table, k, norm, partials,
                         z_out=z if k == 2 else None, power_out=None if last else powers[k % 2],
                         first_in=sums_in[0], second_in=sums_in[1], **outputs, first_poly=first_poly,
                         second_poly=second_poly, unscale=last and not hat_sums, precision=plan.precision)
        sums_in = sum_buffers[k % 2]
    if not hat_sums:
        return

    first_sum, second_sum = sums_in
    if pade:
        # P and Q commute, so Q^-1 P and P^-1 Q are the roots; solve_ex does not check (no sync).
        sqrt_hat = _masked_solve(second_sum, first_sum) if (sqrt_t.out is not None or not want_inv) else None
        inv_hat = _masked_solve(first_sum, second_sum) if want_inv else None
    else:
        sqrt_hat, inv_hat = None, second_sum
    sqrt_out = sqrt_t if sqrt_hat is not None else _Targets(None, None)
    tiled.unscale_roots(norm, sqrt_hat=sqrt_hat, inv_hat=inv_hat, sqrt_out=sqrt_out.out, sqrt_saved=sqrt_out.saved,
                        inv_out=inv_t.out, inv_saved=inv_t.saved)
    if sqrt_from_inverse:  # the product reads row-major operands; torch's solve writes column-major
        tiled.product(w, _split_operand(tiled, inv_hat, plan.precision), sqrt_t.saved, norm=norm, symmetric=True,
                      scale="sqrt_of_normalized", precision=plan.precision, split_out=False)


def _masked_solve(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """left^-1 right with each non-finite pair solved as I and written back as NaN: cuSOLVER
    never sees a NaN matrix (`reference.mask_nonfinite`)."""
    from ..numerics.reference import mask_nonfinite

    (safe_left, bad_left), (safe_right, bad_right) = mask_nonfinite(left), mask_nonfinite(right)
    bad = bad_left | bad_right
    eye = torch.eye(left.shape[-1], dtype=left.dtype, device=left.device)
    solved = torch.linalg.solve_ex(torch.where(bad, eye, safe_left), safe_right)[0]
    return torch.where(bad, float("nan"), solved)


def roots_backward(plan: Plan, saved, grad_sqrt, grad_inv) -> torch.Tensor:
    """dL/dA from dL/dS and/or dL/dY (either may be None), as `torch_path.roots_backward`."""
    if plan.method not in TILED_METHODS:
        raise ValueError(f"tiled_path: plan.method: expected one of {', '.join(TILED_METHODS)}, got {plan.method!r}")
    if plan.method == "ns":  # torch products through its iteration (no tiled kernel for that yet)
        from . import torch_path

        return torch_path.roots_backward(plan, saved, grad_sqrt, grad_inv)
    tiled = _kernels()
    s_mat, norm = saved.sqrt.contiguous(), saved.norm.contiguous()
    if s_mat.shape[0] == 0 or (grad_sqrt is None and grad_inv is None):
        return torch.zeros_like(s_mat)
    precision = plan.precision
    new = _operand_factory(tiled, s_mat, precision)  # every buffer below is read by a product
    with _device_guard(s_mat):
        b_mat, c_mat = new(), new()
        grad_inv_sym = new() if grad_inv is not None else None
        steps = plan.backward_steps
        counters = tiled.new_counters(s_mat.shape[0], s_mat.device) if steps else None
        tiled.prepare_backward(s_mat, grad_sqrt, grad_inv, norm, b_mat, c_mat, grad_inv_sym,
                               split=tiled.splits_operands(s_mat.dtype, precision), counters=counters)
        if grad_inv is not None:
            # rhs = sym(G_S) - Y sym(G_Y) Y (Y = S^-1, <G_Y, dY> = <-Y G_Y Y, dS>), then / scale.
            inv_mat = _split_operand(tiled, saved.inv, precision)
            y_g = new()
            tiled.product(inv_mat, grad_inv_sym, y_g, symmetric=False, precision=precision)
            rhs = grad_inv_sym  # its buffer is free once Y G_Y is formed
            tiled.product(y_g, inv_mat, rhs, e=c_mat if grad_sqrt is not None else None, alpha=-1.0, beta=1.0,
                          norm=norm, symmetric=True, scale="lyapunov", precision=precision)
            c_mat = rhs
        if not steps:
            return 0.5 * c_mat
        table = tiled.coefficient_table(steps, s_mat.dtype, s_mat.device)
        b_sq, b_c, b_next, c_next = new(), new(), new(), new()
        # Per step B^2 and B C - C B into b_sq, b_c, then C' and B': every step but the last in
        # one launch, from (b_mat, c_mat) into (b_next, c_next) by way of a spare pair, then the last.
        if len(steps) > 1:
            tiled.lyapunov_chained_steps(b_mat, c_mat, b_sq, b_c, table, 0, len(steps) - 1, counters, b_out=b_next,
                                         c_out=c_next, b_spare=new(), c_spare=new(), last=False, precision=precision)
            b_mat, c_mat = b_next, c_next
        gradient = torch.empty_like(s_mat)  # no product's operand: a plain tensor, no planes
        tiled.lyapunov_chained_steps(b_mat, c_mat, b_sq, b_c, table, len(steps) - 1, 1, counters, c_out=gradient,
                                     last=True, precision=precision)
        return gradient
