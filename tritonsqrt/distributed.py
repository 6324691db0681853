"""DTensor inputs: the custom ops run shard by shard, with no communication.

Every matrix of a batch is independent, so a DTensor sharded on a batch dimension is handled
by running the ops on each rank's local shard; a replicated one by running them on every rank.
Both are registered as the sharding strategies of `tritonsqrt::roots` and
`tritonsqrt::roots_backward` (torch.distributed.tensor.experimental.register_sharding), so
autograd, the saved tensors and the backward stay DTensors with the same placements.

A matrix dimension cannot be split (a root mixes every entry of its matrix), and a Partial
placement is an unreduced sum: both raise a ValueError naming the placement before anything
runs, rather than letting DTensor gather or reduce the matrices behind the user's back.
"""

from __future__ import annotations

import sys

import torch

_REGISTERED = False


def is_dtensor(a) -> bool:
    # Without torch.distributed.tensor imported there can be no DTensor: no import cost per call.
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and isinstance(a, module.DTensor)


def check_placements(name: str, argument: str, a) -> None:
    """ValueError naming the placement unless every one is Replicate or a Shard of the first
    (batch) dimension; registers the sharding strategies on first use."""
    if not is_dtensor(a):
        return
    from torch.distributed.tensor import Replicate, Shard

    for mesh_dim, placement in enumerate(a.placements):
        if isinstance(placement, Replicate):
            continue
        if isinstance(placement, Shard) and placement.dim % a.dim() < a.dim() - 2:
            if placement.dim % a.dim() != 0:
                raise ValueError(
                    f"{name}: {argument} is a DTensor sharded on batch dimension {placement.dim} (mesh dimension "
                    f"{mesh_dim}); shard it on dimension 0, where the matrices are split between ranks without "
                    "communication")
            continue
        what = (f"sharded on a matrix dimension ({placement})" if isinstance(placement, Shard) else
                f"placed as {placement}; only Replicate and Shard(0) are supported")
        raise ValueError(
            f"{name}: {argument} is a DTensor {what} on mesh dimension {mesh_dim}. Every matrix must lie whole on "
            f"one rank: shard dimension 0 (the batch), or call {argument}.redistribute(placements=[Replicate()] * "
            "mesh.ndim) first (that gathers or sums the matrices)")
    register_sharding_strategies()


def register_sharding_strategies() -> None:
    """Register Replicate and Shard(0) for both custom ops (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from torch.distributed.tensor import DTensor
    from torch.distributed.tensor._op_schema import RuntimeSchemaInfo
    from torch.distributed.tensor.experimental import register_sharding

    from .paths import custom_ops  # noqa: F401 (defines the custom ops)

    forward, backward = torch.ops.tritonsqrt.roots.default, torch.ops.tritonsqrt.roots_backward.default
    register_sharding(forward)(_roots_strategies)
    register_sharding(backward)(_roots_backward_strategies)
    # register_sharding keys its cache on the arguments from the first int one on; the
    # string, float and bool arguments before it (outputs, eps, need_backward, method)
    # change the output shapes, so every non-tensor argument must be part of the key (without
    # this, inv_sqrtm after sqrtm of the same shape reuses sqrtm's empty `inv` output spec and
    # fails). op_to_schema_info is torch's private table (torch 2.13); register_sharding has no
    # argument for it.
    propagator = DTensor._op_dispatcher.sharding_propagator
    for op in (forward, backward):
        propagator.op_to_schema_info[op] = RuntimeSchemaInfo(static_argnum=1, needs_pytree=True)
    _REGISTERED = True


def _placements():
    from torch.distributed.tensor import Replicate, Shard

    return Replicate(), Shard(0)


def _roots_strategies(a, outputs, eps, need_backward, *plan_args):
    """Shard(0) in, Shard(0) out (or all Replicate). Absent outputs (shape (0,)) are always
    Replicate, as the empty gradients autograd's side makes are: no slot is ever redistributed."""
    from .constants import compute_dtype_for
    from .paths.custom_ops import _EMPTY_SHAPE, _layout, decode_plan

    probe = torch.empty(a.shape, dtype=a.tensor_meta.dtype, device="meta")
    plan = decode_plan(plan_args, compute_dtype_for(probe.dtype), probe.shape[-1])
    layout = _layout(probe, plan, outputs, need_backward)
    absent = [shape == _EMPTY_SHAPE for shape, _ in layout.values()]
    replicate, _ = _placements()
    return [([replicate if empty else placement for empty in absent], [placement] + [None] * (3 + len(plan_args)))
            for placement in _placements()]


def _roots_backward_strategies(grad_sqrt, grad_inv, saved_sqrt, saved_inv, aux1, aux2, a_dtype, n, *plan_args):
    replicate, _ = _placements()
    slots = (grad_sqrt, grad_inv, saved_sqrt, saved_inv, aux1, aux2)
    absent = [slot.ndim == 1 for slot in slots]  # shape (0,): no gradient or nothing saved there
    return [([placement], [replicate if empty else placement for empty in absent] + [None] * (2 + len(plan_args)))
            for placement in _placements()]
