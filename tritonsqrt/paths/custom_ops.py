"""The public ops as torch.library custom ops, with their autograd and fake (meta) kernels.

`tritonsqrt::roots` runs a plan's forward on its path (`plan.path`: torch, fused or tiled)
and returns the results plus what the backward needs; `tritonsqrt::roots_backward` turns
output gradients into dL/dA. Being custom ops, both are opaque single nodes to
torch.compile(fullgraph=True) and export, and `torch.library.opcheck` tests them.

Outputs of `roots` (no two alias; an unused one is an empty tensor):
  sqrt, inv    the requested roots in A's dtype
  saved_sqrt   S in the compute dtype when the backward needs it and `sqrt` is not it
               (ns: always A / tr A, which its backward differentiates through)
  saved_inv    Y likewise (only when the inverse is an output)
  aux1, aux2   iterative methods: (norm, -); eigh: (eigenvalues, eigenvectors)
The four saved slots are a path's saved record (`records`) laid flat: `_slots` writes them,
`_record` reads them back. The Plan crosses as scalars: `encode_plan` / `decode_plan`.
"""

from __future__ import annotations

import torch

from ..constants import compute_dtype_for
from ..plan import Plan
from . import fused_path, tiled_path, torch_path
from .records import EighSaved, iterative_saved

_EMPTY_SHAPE = (0,)
_PATHS = {"torch": torch_path, "fused": fused_path, "tiled": tiled_path}


def encode_plan(plan: Plan) -> tuple:
    """The Plan as the custom ops' trailing scalar arguments (torch.library takes no dataclass):
    (method, backend, taylor_degree, pade_num, pade_den, ns_iterations, max_condition, precision,
    eigh_float64). The compute dtype and n are not encoded: they come with the tensors. The path
    is not either: `decode_plan` rebuilds it from (method, n, backend) by the same routing rule."""
    return (plan.method, plan.backend, plan.taylor_degree, plan.pade_degrees[0], plan.pade_degrees[1],
            plan.ns_iterations, plan.max_condition, plan.precision, plan.eigh_dtype == torch.float64)


def decode_plan(args: tuple, compute_dtype: torch.dtype, n: int) -> Plan:
    """The Plan `encode_plan` encoded, for matrices of size n computed in compute_dtype."""
    method, backend, taylor_degree, pade_num, pade_den, ns_iterations, max_condition, precision, eigh_float64 = args
    return Plan(method=method, compute_dtype=compute_dtype, n=n, backend=backend, taylor_degree=taylor_degree,
                pade_degrees=(pade_num, pade_den), ns_iterations=ns_iterations, max_condition=max_condition,
                precision=precision, eigh_dtype=torch.float64 if eigh_float64 else None)


def _layout(a, plan: Plan, outputs: str, need_backward: bool):
    """Shapes and dtypes of the six outputs; shared by the real and the fake kernel."""
    batch, n = a.shape[0], a.shape[-1]
    matrix = (batch, n, n)
    want_sqrt, want_inv = outputs in ("sqrt", "both"), outputs in ("inv", "both")
    compute = plan.compute_dtype
    iterative = plan.method != "eigh"
    same_dtype = a.dtype == compute
    layout = {
        "sqrt": (matrix if want_sqrt else _EMPTY_SHAPE, a.dtype),
        "inv": (matrix if want_inv else _EMPTY_SHAPE, a.dtype),
        # ns keeps A / tr A here (its backward runs through the iteration), never an output.
        "saved_sqrt": (matrix if need_backward and iterative and (plan.method == "ns" or not (want_sqrt and same_dtype))
                       else _EMPTY_SHAPE, compute),
        "saved_inv": (matrix if need_backward and iterative and want_inv and not same_dtype else _EMPTY_SHAPE, compute),
    }
    eigh_dtype = plan.eigh_dtype or compute
    if not need_backward:
        layout["aux1"] = layout["aux2"] = (_EMPTY_SHAPE, compute)
    elif iterative:
        layout["aux1"], layout["aux2"] = ((batch, 1, 1), compute), (_EMPTY_SHAPE, compute)
    else:
        layout["aux1"], layout["aux2"] = ((batch, n), eigh_dtype), (matrix, eigh_dtype)
    return layout


def _empty(a, shape_dtype):
    shape, dtype = shape_dtype
    return a.new_empty(shape, dtype=dtype)


def _roots_impl(a: torch.Tensor, outputs: str, eps: float, need_backward: bool, method: str, backend: str,
          taylor_degree: int, pade_num: int, pade_den: int, ns_iterations: int, max_condition: float,
          precision: str, eigh_float64: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                       torch.Tensor, torch.Tensor]:
    plan = decode_plan((method, backend, taylor_degree, pade_num, pade_den, ns_iterations, max_condition, precision,
                        eigh_float64), compute_dtype_for(a.dtype), a.shape[-1])
    want_sqrt, want_inv = outputs in ("sqrt", "both"), outputs in ("inv", "both")
    roots_out = _PATHS[plan.path].roots_forward(a, plan, want_sqrt, want_inv, need_backward, eps)
    layout = _layout(a, plan, outputs, need_backward)
    result = dict(sqrt=roots_out.sqrt, inv=roots_out.inv, **_slots(roots_out.saved, layout))
    # Outputs must not alias: a result that is also saved appears once; the rest are empty.
    return tuple(result[name].contiguous() if result[name] is not None else _empty(a, layout[name])
                 for name in layout)


def _slots(saved, layout) -> dict:
    """A saved record as the op's four saved slots; None where the layout has none (an output
    that is itself S or Y is not saved twice: `_setup_context` keeps the output instead)."""
    slots = dict.fromkeys(("saved_sqrt", "saved_inv", "aux1", "aux2"))
    if isinstance(saved, EighSaved):
        slots["aux1"], slots["aux2"] = saved
    elif saved:
        slots["aux1"] = saved[1]
        if layout["saved_sqrt"][0] != _EMPTY_SHAPE:
            slots["saved_sqrt"] = saved[0]
        if layout["saved_inv"][0] != _EMPTY_SHAPE:
            slots["saved_inv"] = saved.inv
    return slots


def _record(plan: Plan, saved_sqrt, saved_inv, aux1, aux2):
    """The saved record of `plan`'s method from the four slots (`_slots` inverted)."""
    if plan.method == "eigh":
        return EighSaved(aux1, aux2)
    return iterative_saved(plan.method, saved_sqrt, aux1, saved_inv if _present(saved_inv) else None)


roots = torch.library.custom_op("tritonsqrt::roots", _roots_impl, mutates_args=())


@roots.register_fake
def _roots_fake(a, outputs, eps, need_backward, method, backend, taylor_degree, pade_num, pade_den,
                ns_iterations, max_condition, precision, eigh_float64):
    plan = decode_plan((method, backend, taylor_degree, pade_num, pade_den, ns_iterations, max_condition, precision,
                        eigh_float64), compute_dtype_for(a.dtype), a.shape[-1])
    return tuple(_empty(a, spec) for spec in _layout(a, plan, outputs, need_backward).values())


def _roots_backward_impl(grad_sqrt: torch.Tensor, grad_inv: torch.Tensor, saved_sqrt: torch.Tensor,
                   saved_inv: torch.Tensor, aux1: torch.Tensor, aux2: torch.Tensor, a_dtype: torch.dtype,
                   n: int, method: str, backend: str, taylor_degree: int, pade_num: int, pade_den: int,
                   ns_iterations: int, max_condition: float, precision: str, eigh_float64: bool) -> torch.Tensor:
    plan = decode_plan((method, backend, taylor_degree, pade_num, pade_den, ns_iterations, max_condition, precision,
                        eigh_float64), compute_dtype_for(a_dtype), n)
    if aux1.shape[0] == 0:  # an empty batch (a shape, not a value: no sync)
        return aux1.new_zeros((0, n, n), dtype=a_dtype)
    saved = _record(plan, saved_sqrt, saved_inv, aux1, aux2)
    grad = _PATHS[plan.path].roots_backward(plan, saved, grad_sqrt if _present(grad_sqrt) else None,
                                            grad_inv if _present(grad_inv) else None)
    return grad.to(a_dtype).contiguous()


def _present(t: torch.Tensor) -> bool:
    """Whether an optional slot holds a tensor: absent ones are `_EMPTY_SHAPE`, 1-D; matrices and
    norms have 2 or 3 dimensions. Not numel(): an empty batch has numel 0 and is present."""
    return t.dim() != len(_EMPTY_SHAPE)


roots_backward = torch.library.custom_op("tritonsqrt::roots_backward", _roots_backward_impl, mutates_args=())

# The Python bodies, for instrument.count_torch_ops to step inside the opaque ops.
IMPLEMENTATIONS = {"roots": _roots_impl, "roots_backward": _roots_backward_impl}


@roots_backward.register_fake
def _roots_backward_fake(grad_sqrt, grad_inv, saved_sqrt, saved_inv, aux1, aux2, a_dtype, n, *plan_args):
    batch = aux1.shape[0]
    return aux1.new_empty((batch, n, n), dtype=a_dtype)


def _setup_context(ctx, inputs, output):
    a, outputs, eps, need_backward, *plan_args = inputs
    sqrt_out, inv_out, saved_sqrt, saved_inv, aux1, aux2 = output
    # Where S (or Y) is itself an output in the compute dtype, the output is what we keep.
    if plan_args[0] != "eigh" and need_backward:
        saved_sqrt = saved_sqrt if (_present(saved_sqrt) or plan_args[0] == "ns") else sqrt_out
        saved_inv = saved_inv if (_present(saved_inv) or not _present(inv_out)) else inv_out
    ctx.save_for_backward(saved_sqrt, saved_inv, aux1, aux2)
    ctx.a_dtype, ctx.n, ctx.plan_args = a.dtype, a.shape[-1], plan_args
    # Unused outputs get None, not zeros autograd would make as plain tensors (DTensor inputs
    # cannot mix them with their own); `_backward` passes None on as an empty gradient.
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_sqrt, grad_inv, *unused):
    saved_sqrt, saved_inv, aux1, aux2 = ctx.saved_tensors
    empty = aux1.new_empty(_EMPTY_SHAPE)
    grad = roots_backward(grad_sqrt if grad_sqrt is not None else empty,
                          grad_inv if grad_inv is not None else empty,
                          saved_sqrt, saved_inv, aux1, aux2, ctx.a_dtype, ctx.n, *ctx.plan_args)
    return grad, None, None, None, *([None] * len(ctx.plan_args))


roots.register_autograd(_backward, setup_context=_setup_context)


def _double_backward(ctx, *grads):
    raise NotImplementedError(
        "tritonsqrt: double backward (differentiating a gradient taken with create_graph=True, e.g. a "
        "Hessian or a gradient penalty) is not supported: the backward is a Lyapunov solve / Loewner formula "
        "without a derivative of its own. Use first-order gradients, or differentiate "
        "tritonsqrt.perf.competitors.eigh_autograd (torch.linalg.eigh with torch's autograd; NaN at repeated eigenvalues)."
    )


roots_backward.register_autograd(_double_backward, setup_context=lambda ctx, inputs, output: None)


def matrix_roots(a: torch.Tensor, plan: Plan, outputs: str, eps: float, need_backward: bool):
    """(sqrt or None, inv or None) of sym(a) + eps I for a (B, n, n), through the custom op."""
    sqrt_out, inv_out, *_ = roots(a, outputs, float(eps), bool(need_backward), *encode_plan(plan))
    return (sqrt_out if outputs != "inv" else None), (inv_out if outputs != "sqrt" else None)

