"""What every path's forward returns and its backward keeps, as typed records.

The protocol of the three paths (`torch_path`, `fused_path`, `tiled_path`):

    roots_forward(a, plan, want_sqrt, want_inv, need_backward, eps) -> Roots
    roots_backward(plan, saved, grad_sqrt, grad_inv) -> dL/dA in the compute dtype

`a` is a batch (B, n, n) of any float dtype and strides; the roots come back in a's dtype;
`saved` is `()` without need_backward, else the record of the plan's method family below,
its tensors in the compute dtype. The custom op (`custom_ops`) carries a record across
torch.library's boundary as four tensor slots and rebuilds it (`to_slots` / `from_slots`).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch


class LyapunovSaved(NamedTuple):
    """mtp, mpa, scaled_ns: their backward solves S X + X S = rhs (the paper's Lyapunov backward)."""

    sqrt: torch.Tensor  # S
    norm: torch.Tensor  # ||A||_F per matrix, (B, 1, 1)
    inv = None  # no inverse root was asked for (a class attribute, not a field)


class LyapunovSavedInverse(NamedTuple):
    """As `LyapunovSaved`, when the inverse root is an output: its gradient needs Y = S^-1."""

    sqrt: torch.Tensor
    norm: torch.Tensor
    inv: torch.Tensor  # Y


class NewtonSchulzSaved(NamedTuple):
    """ns (iSQRT-COV): its backward runs back through the iteration from A / tr A."""

    a_hat: torch.Tensor  # A / tr A
    trace: torch.Tensor  # tr A per matrix, (B, 1, 1)
    inv = None


class NewtonSchulzSavedInverse(NamedTuple):
    """As `NewtonSchulzSaved`, when the inverse root is an output."""

    a_hat: torch.Tensor
    trace: torch.Tensor
    inv: torch.Tensor  # Y


class EighSaved(NamedTuple):
    """eigh: the Loewner-matrix backward in the eigenbasis."""

    evals: torch.Tensor  # (B, n), clamped at 0
    evecs: torch.Tensor  # (B, n, n)


Saved = Union[LyapunovSaved, LyapunovSavedInverse, NewtonSchulzSaved, NewtonSchulzSavedInverse, EighSaved, tuple]


def iterative_saved(method: str, first: torch.Tensor, scale: torch.Tensor, inv: Optional[torch.Tensor] = None):
    """The record of an iterative method: (S, norm[, Y]) for the Lyapunov family, (A / tr A,
    tr A[, Y]) for ns. Only a record with an inverse has the `inv` field, so iterating a record
    yields tensors only."""
    if method == "ns":
        return NewtonSchulzSaved(first, scale) if inv is None else NewtonSchulzSavedInverse(first, scale, inv)
    return LyapunovSaved(first, scale) if inv is None else LyapunovSavedInverse(first, scale, inv)


class Roots(NamedTuple):
    """A forward's result: the requested roots in the input's dtype (None where not asked for)
    and what the backward keeps (`()` without need_backward)."""

    sqrt: Optional[torch.Tensor]
    inv: Optional[torch.Tensor]
    saved: Saved = ()
