"""Machine-independent costs of a call, counted exactly: they catch a lost fusion or a doubled
iteration on a CPU-only machine, where timings are too noisy to.

- matrix products and linalg calls of the torch path (`instrument.count_torch_ops`), forward
  alone and forward+backward, at each case's full (GPU) shape;
- bytes of the tensors saved for backward (`saved_tensors_hooks`), at the full shape;
- kernel launches per call of the Triton path (`instrument.count_launches`), at n = 16 and,
  once the Triton path covers it, just past the fused kernels' largest n; when the kernels and
  the counter exist and can run here (a GPU, or TRITON_INTERPRET=1).

The torch-path counts run on the meta device: shapes and dispatch without arithmetic, so
n = 1024 costs nothing and the figures cannot depend on the machine.
"""

from __future__ import annotations

import torch

from tritonsqrt import testing
from tritonsqrt.paths import routing
from tritonsqrt.testing import instrument
from tritonsqrt.constants import METHODS as ALL_METHODS
from tritonsqrt.plan import resolve

from .cases import Case, public_op

# Every method the torch path implements ("auto" is one of these, per device).
METHODS = tuple(method for method in ALL_METHODS if method != "auto")
LAUNCH_N, LAUNCH_BATCH = 16, 2


def _op_fn(op: str):
    return public_op(op)


def torch_path_costs(case: Case, op: str, method: str) -> dict:
    """Counts of one call at the case's shape (meta tensors, backend="torch")."""
    fn = _op_fn(op)
    a = torch.empty(case.batch, case.n, case.n, dtype=case.torch_dtype, device="meta")
    with instrument.count_torch_ops() as forward:
        fn(a, method=method, backend="torch")
    saved_bytes = 0

    def pack(tensor):
        nonlocal saved_bytes
        saved_bytes += tensor.numel() * tensor.element_size()
        return tensor

    a_req = a.clone().requires_grad_(True)
    with instrument.count_torch_ops() as both:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            out = fn(a_req, method=method, backend="torch")
        torch.autograd.grad(out, a_req, torch.empty_like(out))
    return {"matmuls_forward": forward.matmuls, "linalg_forward": forward.linalg,
            "matmuls_forward_backward": both.matmuls, "linalg_forward_backward": both.linalg,
            "saved_bytes": saved_bytes}


def all_torch_path_costs(cases: list[Case]) -> dict[str, dict]:
    """key "case/op/method" -> counts, for every case (full shape), op and method."""
    return {f"{case.name}/{op}/{method}": torch_path_costs(case, op, method)
            for case in cases for op in case.ops for method in METHODS}


def launch_counting_unavailable(device: torch.device) -> str | None:
    """Why kernel launches cannot be counted here, or None."""
    if not hasattr(instrument, "count_launches"):
        return "tritonsqrt.testing.instrument.count_launches does not exist yet"
    if not routing.kernel_methods():
        return "no Triton kernels yet (tritonsqrt.paths.routing.kernel_methods() is empty)"
    if device.type != "cuda" and not routing.interpreter_on():
        return "no GPU and TRITON_INTERPRET is not 1 (set it before the command to count on CPU)"
    return None


def launch_sizes(device: torch.device) -> list[int]:
    """n = 16 (the fused kernels), and just past the largest fused size when the Triton path
    covers it (the tiled kernels, two launches per step), so both families are gated."""
    sizes = [LAUNCH_N]
    beyond = routing.max_kernel_n() + 16
    probe = torch.empty(0, beyond, beyond, device=device)
    for method in sorted(routing.kernel_methods()):
        try:
            resolve(probe, method, "triton")
        except ValueError:  # no Triton kernel for this size: nothing to gate there
            continue
        return sizes + [beyond]
    return sizes


def launch_counts(device: torch.device) -> dict[str, int]:
    """key "op/mode/method/n=N" -> kernel launches of one call with backend="triton"."""
    counts = {}
    for n in launch_sizes(device):
        a = testing.spd_with_condition(LAUNCH_BATCH, n, 10.0, device=device)
        for method in sorted(routing.kernel_methods()):
            for op in ("sqrtm", "inv_sqrtm"):
                fn = _op_fn(op)
                _tune_first(fn, a, method)
                with instrument.count_launches() as forward:
                    fn(a, method=method, backend="triton")
                a_req = a.clone().requires_grad_(True)
                with instrument.count_launches() as both:
                    out = fn(a_req, method=method, backend="triton")
                    torch.autograd.grad(out, a_req, torch.ones_like(out))
                counts[f"{op}/forward/{method}/n={n}"] = forward.launches
                counts[f"{op}/forward+backward/{method}/n={n}"] = both.launches
    return counts


def _tune_first(fn, a: torch.Tensor, method: str) -> None:
    """One uncounted forward and backward, so that the counted calls find every config chosen:
    with an empty tuning cache the first call also launches each candidate while timing it
    (28 launches counted instead of 10), with a warm one it does not."""
    fn(a, method=method, backend="triton")  # the forward alone is its own kernel variant
    a_req = a.clone().requires_grad_(True)
    out = fn(a_req, method=method, backend="triton")
    torch.autograd.grad(out, a_req, torch.ones_like(out))
