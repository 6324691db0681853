"""The Lyapunov backward of every iterative method, fused into one Triton launch.

`lyapunov_backward` computes in one kernel what `tritonsqrt.paths.torch_path.roots_backward` does
with 5 torch products a step: the right-hand side G = sym(dL/dS) - Y sym(dL/dY) Y, then the
matrix-sign Newton–Schulz iteration of `tritonsqrt.numerics.reference.lyapunov_sign` on
B = S / sqrt(||A||_F), C = G / sqrt(||A||_F), and the symmetric gradient sym(C / 2).

One program holds whole matrices (n <= 64) in registers for the whole iteration; for
n <= 16 one program takes several matrices, each in its own slice of a batched (3-D) tl.dot,
so a NaN in one matrix never reaches another. The (a, b) coefficients of the steps are read
from a small device tensor inside a loop, not unrolled as constants: unrolling 12 steps made
compilation 7-10x slower (sm_90: 17.4 s against 1.8 s at BLOCK 16 ieee, 8.9 s against 1.2 s
at BLOCK 32 tf32; 5x the PTX) and would recompile for every schedule, while the loop
compiles once per size bucket.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .launch import LAUNCH_OPTIONS, STREAMED_BACKWARD_LAUNCH_OPTIONS, dot_precision, tuned_launch, tuning_key
from .spaces import FUSED_MAX_N as MAX_N  # noqa: F401 (tests and callers read MAX_N here)
from .spaces import SYMMETRIC_PANEL_ARCHS, TENSOR_CORE_BACKWARD, arch_name, tensor_core_archs
from .spaces import fused_lyapunov_candidates as candidate_configs, fused_lyapunov_config as launch_config  # noqa: F401
from .rounding import divide_rn, sqrt_rn, symmetrize
from .tables import coefficient_table

from tritonsqrt.constants import PRECISIONS, dtype_name as compute_dtype_name



@triton.jit
def _matrix_offsets(first, batch, n, batch_stride, row_stride, col_stride,
                    BLOCK: tl.constexpr, MATRICES: tl.constexpr):
    """Element offsets and mask of MATRICES matrices from index `first`: (BLOCK, BLOCK), or
    (MATRICES, BLOCK, BLOCK) when MATRICES > 1. int64 throughout: a batch stride times a
    batch index passes 2**31 long before memory runs out."""
    rows = tl.arange(0, BLOCK).to(tl.int64)
    if MATRICES == 1:
        offsets = first * batch_stride + rows[:, None] * row_stride + rows[None, :] * col_stride
        mask = (rows[:, None] < n) & (rows[None, :] < n)  # one program per matrix: first < batch
    else:
        index = first + tl.arange(0, MATRICES).to(tl.int64)
        offsets = (index[:, None, None] * batch_stride + rows[None, :, None] * row_stride
                   + rows[None, None, :] * col_stride)
        mask = (index[:, None, None] < batch) & (rows[None, :, None] < n) & (rows[None, None, :] < n)
    return offsets, mask


@triton.jit
def _load_per_matrix(ptr, first, batch, batch_stride, MATRICES: tl.constexpr):
    """One scalar per matrix, shaped to broadcast against the matrices (0 past the batch)."""
    if MATRICES == 1:
        value = tl.load(ptr + first * batch_stride)
    else:
        index = first + tl.arange(0, MATRICES).to(tl.int64)
        value = tl.load(ptr + index[:, None, None] * batch_stride, mask=index[:, None, None] < batch, other=0.0)
    return value


@triton.jit
def _root_scale(norm):
    """sqrt(norm), 1 where norm is 0 (a zero matrix keeps scale 1 rather than dividing by 0)."""
    return tl.where(norm > 0, sqrt_rn(norm), 1.0)


@triton.jit
def _lyapunov_backward_kernel(
    sqrt_ptr, sqrt_batch_stride, sqrt_row_stride, sqrt_col_stride,
    norm_ptr, norm_batch_stride,
    inv_ptr, inv_batch_stride, inv_row_stride, inv_col_stride,
    grad_sqrt_ptr, grad_sqrt_batch_stride, grad_sqrt_row_stride, grad_sqrt_col_stride,
    grad_inv_ptr, grad_inv_batch_stride, grad_inv_row_stride, grad_inv_col_stride,
    steps_ptr, num_steps,
    out_ptr,
    batch, n,
    HAS_GRAD_SQRT: tl.constexpr,
    HAS_GRAD_INV: tl.constexpr,
    BLOCK: tl.constexpr,
    MATRICES: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """dL/dA for a batch of MATRICES-sized groups, one group per program.

    sqrt_ptr: the square roots S, of shape [batch, n, n], float32 or float64 (the compute dtype).
    norm_ptr: the Frobenius norms ||A||_F, of shape [batch] (any batch stride), compute dtype.
    inv_ptr: the inverse roots Y, of shape [batch, n, n], compute dtype (read only with HAS_GRAD_INV).
    grad_sqrt_ptr: dL/dS, of shape [batch, n, n], any float dtype and strides (read with HAS_GRAD_SQRT).
    grad_inv_ptr: dL/dY, of shape [batch, n, n], any float dtype and strides (read with HAS_GRAD_INV).
    *_batch_stride, *_row_stride, *_col_stride: element strides of each tensor (0 for expanded).
    steps_ptr: the sign-iteration coefficients, of shape [num_steps, 2] (a, b), contiguous, compute dtype.
    out_ptr: the gradient, of shape [batch, n, n], contiguous, compute dtype.
    batch, n: the batch size and the matrix size (n <= BLOCK).
    BLOCK: n rounded up to a power of two, at least 16 (the smallest tl.dot).
    MATRICES: matrices per program (1, or more for n <= 16).
    PRECISION: tl.dot input precision, "ieee", "tf32x3" or "tf32".
    """
    compute_dtype = sqrt_ptr.dtype.element_ty
    first = tl.program_id(0).to(tl.int64) * MATRICES

    offsets, mask = _matrix_offsets(first, batch, n, sqrt_batch_stride, sqrt_row_stride, sqrt_col_stride,
                                    BLOCK, MATRICES)
    sqrt_mat = tl.load(sqrt_ptr + offsets, mask=mask, other=0.0).to(compute_dtype)

    # The right-hand side: dL/dS, plus -Y sym(dL/dY) Y since <G_Y, dY> = <-Y G_Y Y, dS>.
    rhs = tl.zeros_like(sqrt_mat)
    if HAS_GRAD_SQRT:
        offsets, mask = _matrix_offsets(first, batch, n, grad_sqrt_batch_stride, grad_sqrt_row_stride,
                                        grad_sqrt_col_stride, BLOCK, MATRICES)
        rhs = symmetrize(tl.load(grad_sqrt_ptr + offsets, mask=mask, other=0.0).to(compute_dtype))
    if HAS_GRAD_INV:
        offsets, mask = _matrix_offsets(first, batch, n, inv_batch_stride, inv_row_stride, inv_col_stride,
                                        BLOCK, MATRICES)
        inv_mat = tl.load(inv_ptr + offsets, mask=mask, other=0.0).to(compute_dtype)
        offsets, mask = _matrix_offsets(first, batch, n, grad_inv_batch_stride, grad_inv_row_stride,
                                        grad_inv_col_stride, BLOCK, MATRICES)
        grad_inv = symmetrize(tl.load(grad_inv_ptr + offsets, mask=mask, other=0.0).to(compute_dtype))
        inner = tl.dot(inv_mat, grad_inv, input_precision=PRECISION)
        rhs = rhs - tl.dot(inner, inv_mat, input_precision=PRECISION)

    # sqrt(||A||_F) bounds the largest eigenvalue of S, so B has its spectrum in (0, 1].
    norm = _load_per_matrix(norm_ptr, first, batch, norm_batch_stride, MATRICES).to(compute_dtype)
    scale = _root_scale(norm)
    b_mat = divide_rn(sqrt_mat, scale)
    c_mat = divide_rn(rhs, scale)

    for step in range(num_steps):
        a = tl.load(steps_ptr + 2 * step)
        b = tl.load(steps_ptr + 2 * step + 1)
        # C <- sym(a C + b (B^2 C + C B^2 - B C B)) = sym(a C + 2b B^2 C - b B C B) for symmetric
        # B, C: 5 products a step, not 6, one transpose, and C dies before B C B is formed.
        b_sq = tl.dot(b_mat, b_mat, input_precision=PRECISION)
        b_c = tl.dot(b_mat, c_mat, input_precision=PRECISION)
        c_mat = a * c_mat + (2 * b) * tl.dot(b_sq, c_mat, input_precision=PRECISION)
        c_mat = symmetrize(c_mat - b * tl.dot(b_c, b_mat, input_precision=PRECISION))
        # Re-symmetrising B every step keeps fp32 stable (40 classical steps: 5e3 without, 4e-7 with).
        b_mat = symmetrize(a * b_mat + b * tl.dot(b_mat, b_sq, input_precision=PRECISION))

    grad = symmetrize(0.5 * c_mat)
    offsets, mask = _matrix_offsets(first, batch, n, n * n, n, 1, BLOCK, MATRICES)
    tl.store(out_ptr + offsets, grad, mask=mask)


@triton.jit
def _scratch_product(x_ptr, y_ptr, total, x_scale, BLOCK: tl.constexpr, CHUNK: tl.constexpr,
                     PRECISION: tl.constexpr):
    """total + x_scale X Y for row-major BLOCK x BLOCK scratch matrices X, Y.

    CHUNK columns of X (rows of Y) at a time, so only one panel of each operand is ever in
    registers; the sum is accumulated in the product itself (one live matrix, not two).
    """
    rows = tl.arange(0, BLOCK)
    panel = tl.arange(0, CHUNK)
    for k in range(0, BLOCK, CHUNK):
        x_panel = x_scale * tl.load(x_ptr + rows[:, None] * BLOCK + (k + panel)[None, :])
        y_panel = tl.load(y_ptr + (k + panel)[:, None] * BLOCK + rows[None, :])
        total = tl.dot(x_panel, y_panel, total, input_precision=PRECISION, out_dtype=total.dtype)
    return total


@triton.jit
def _lyapunov_backward_streamed_kernel(
    sqrt_ptr, sqrt_batch_stride, sqrt_row_stride, sqrt_col_stride,
    norm_ptr, norm_batch_stride,
    inv_ptr, inv_batch_stride, inv_row_stride, inv_col_stride,
    grad_sqrt_ptr, grad_sqrt_batch_stride, grad_sqrt_row_stride, grad_sqrt_col_stride,
    grad_inv_ptr, grad_inv_batch_stride, grad_inv_row_stride, grad_inv_col_stride,
    steps_ptr, num_steps,
    out_ptr,
    scratch_ptr,
    batch, n,
    HAS_GRAD_SQRT: tl.constexpr,
    HAS_GRAD_INV: tl.constexpr,
    BLOCK: tl.constexpr,
    CHUNK: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """The same iteration as `_lyapunov_backward_kernel`, one matrix per program, for larger n.

    Whole BLOCK x BLOCK operands in registers spill from n = 64 on (every tl.dot holds its
    full right operand in each warp); here the iterates live in a per-program scratch (L1/L2
    resident) and every product streams CHUNK-wide panels from it. Arguments as for
    `_lyapunov_backward_kernel`, plus:
    scratch_ptr: workspace, of shape [batch, 6, BLOCK, BLOCK], contiguous, compute dtype
        (written before read, so never initialised).
    CHUNK: the panel width of the streamed products (divides BLOCK, >= 16).
    """
    compute_dtype = sqrt_ptr.dtype.element_ty
    matrix = tl.program_id(0).to(tl.int64)
    rows = tl.arange(0, BLOCK)
    tile = rows[:, None] * BLOCK + rows[None, :]
    scratch = scratch_ptr + matrix * 6 * BLOCK * BLOCK
    # Slots 0-1 and 2-3: (B, C) of even and odd steps; 4: B^2; 5: B C.
    offsets, mask = _matrix_offsets(matrix, batch, n, sqrt_batch_stride, sqrt_row_stride, sqrt_col_stride,
                                    BLOCK, 1)
    sqrt_mat = tl.load(sqrt_ptr + offsets, mask=mask, other=0.0).to(compute_dtype)
    rhs = tl.zeros_like(sqrt_mat)
    if HAS_GRAD_SQRT:
        offsets, mask = _matrix_offsets(matrix, batch, n, grad_sqrt_batch_stride, grad_sqrt_row_stride,
                                        grad_sqrt_col_stride, BLOCK, 1)
        rhs = symmetrize(tl.load(grad_sqrt_ptr + offsets, mask=mask, other=0.0).to(compute_dtype))
    if HAS_GRAD_INV:
        # -Y sym(dL/dY) Y through the scratch: Y -> slot 4, sym(dL/dY) -> slot 5, Y G -> slot 2.
        offsets, mask = _matrix_offsets(matrix, batch, n, inv_batch_stride, inv_row_stride, inv_col_stride,
                                        BLOCK, 1)
        tl.store(scratch + 4 * BLOCK * BLOCK + tile, tl.load(inv_ptr + offsets, mask=mask, other=0.0).to(compute_dtype))
        offsets, mask = _matrix_offsets(matrix, batch, n, grad_inv_batch_stride, grad_inv_row_stride,
                                        grad_inv_col_stride, BLOCK, 1)
        grad_inv = symmetrize(tl.load(grad_inv_ptr + offsets, mask=mask, other=0.0).to(compute_dtype))
        tl.store(scratch + 5 * BLOCK * BLOCK + tile, grad_inv)
        tl.debug_barrier()
        inner = _scratch_product(scratch + 4 * BLOCK * BLOCK, scratch + 5 * BLOCK * BLOCK, tl.zeros_like(rhs), 1.0,
                                 BLOCK, CHUNK, PRECISION)
        tl.store(scratch + 2 * BLOCK * BLOCK + tile, inner)
        tl.debug_barrier()
        rhs = _scratch_product(scratch + 2 * BLOCK * BLOCK, scratch + 4 * BLOCK * BLOCK, rhs, -1.0, BLOCK, CHUNK,
                               PRECISION)

    norm = _load_per_matrix(norm_ptr, matrix, batch, norm_batch_stride, 1).to(compute_dtype)
    scale = _root_scale(norm)
    tl.store(scratch + tile, divide_rn(sqrt_mat, scale))
    tl.store(scratch + BLOCK * BLOCK + tile, divide_rn(rhs, scale))
    tl.debug_barrier()

    for step in range(num_steps):
        a = tl.load(steps_ptr + 2 * step)
        b = tl.load(steps_ptr + 2 * step + 1)
        # Every slot address is formed from the step's parity: addresses the compiler cannot
        # hoist out of the loop, where it would keep a 64-bit pointer per element alive in
        # registers for each slot (n = 64, 8 warps: 216 registers with fixed slots).
        parity = step % 2
        b_slot = scratch + parity * 2 * BLOCK * BLOCK
        c_slot = b_slot + BLOCK * BLOCK
        new_b_slot = scratch + (1 - parity) * 2 * BLOCK * BLOCK
        new_c_slot = new_b_slot + BLOCK * BLOCK
        sq_slot = b_slot + (4 - 2 * parity) * BLOCK * BLOCK  # always slot 4
        bc_slot = sq_slot + BLOCK * BLOCK
        zero = tl.zeros((BLOCK, BLOCK), dtype=compute_dtype)
        tl.store(sq_slot + tile, _scratch_product(b_slot, b_slot, zero, 1.0, BLOCK, CHUNK, PRECISION))
        tl.store(bc_slot + tile, _scratch_product(b_slot, c_slot, zero, 1.0, BLOCK, CHUNK, PRECISION))
        tl.debug_barrier()
        # The C update as in `_lyapunov_backward_kernel`, sym(a C + 2b B^2 C - b B C B), each
        # product accumulated onto the running sum.
        c_mat = _scratch_product(sq_slot, c_slot, a * tl.load(c_slot + tile), 2 * b, BLOCK, CHUNK, PRECISION)
        c_mat = _scratch_product(bc_slot, b_slot, c_mat, -b, BLOCK, CHUNK, PRECISION)
        tl.store(new_c_slot + tile, symmetrize(c_mat))
        b_mat = _scratch_product(b_slot, sq_slot, a * tl.load(b_slot + tile), b, BLOCK, CHUNK, PRECISION)
        tl.store(new_b_slot + tile, symmetrize(b_mat))
        # The new B, C are visible, and slots 4-5 and the old B, C are free to be overwritten.
        tl.debug_barrier()

    grad = symmetrize(0.5 * tl.load(scratch + ((num_steps % 2) * 2 + 1) * BLOCK * BLOCK + tile))
    offsets, mask = _matrix_offsets(matrix, batch, n, n * n, n, 1, BLOCK, 1)
    tl.store(out_ptr + offsets, grad, mask=mask)


_KERNELS = {"registers": _lyapunov_backward_kernel, "streamed": _lyapunov_backward_streamed_kernel}


def _kernel(kind: str):
    if kind.startswith("tensor_cores"):
        from . import fused_lyapunov_tc  # imports this module: late

        return (fused_lyapunov_tc._lyapunov_backward_tc_streamed_kernel if kind == "tensor_cores_streamed"
                else fused_lyapunov_tc._lyapunov_backward_tc_kernel)
    return _KERNELS[kind]


def steps_tensor(steps, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The (a, b) schedule as a contiguous (num_steps, 2) tensor on `device`.

    A schedule given as Python pairs is copied to the device once and cached, so later calls
    (and CUDA-graph capture after a warm-up call) copy nothing from the host.
    """
    if isinstance(steps, torch.Tensor):
        if steps.dim() != 2 or steps.shape[-1] != 2:
            raise ValueError(f"steps: expected a (num_steps, 2) tensor of (a, b), got shape {tuple(steps.shape)}")
        return steps.to(device=device, dtype=dtype).contiguous()
    return coefficient_table(steps, dtype, device)


def _check_matrices(name: str, t: torch.Tensor, batch: int, n: int) -> None:
    if tuple(t.shape) != (batch, n, n):
        raise ValueError(f"lyapunov_backward: {name}: expected shape {(batch, n, n)}, got {tuple(t.shape)}")
    if not t.dtype.is_floating_point:
        raise ValueError(f"lyapunov_backward: {name}: expected a float dtype, got {t.dtype}")


def lyapunov_backward(sqrt_mat, norm, inv_mat, grad_sqrt, grad_inv, steps, precision: str = "ieee"):
    """dL/dA of the iterative roots from dL/dS and/or dL/dY, in one kernel launch.

    sqrt_mat: S, (B, n, n) float32 or float64 (the compute dtype); norm: ||A||_F per matrix,
    B elements (e.g. (B, 1, 1)); inv_mat: Y, (B, n, n), needed with grad_inv; grad_sqrt,
    grad_inv: (B, n, n) of any float dtype and strides, either may be None; steps: (a, b)
    pairs or a (num_steps, 2) tensor. Returns the symmetric gradient (B, n, n) in the compute
    dtype. No host synchronisation.
    """
    if sqrt_mat.dim() != 3 or sqrt_mat.shape[-1] != sqrt_mat.shape[-2]:
        raise ValueError(f"lyapunov_backward: sqrt_mat: expected (B, n, n), got shape {tuple(sqrt_mat.shape)}")
    if sqrt_mat.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"lyapunov_backward: sqrt_mat: expected float32 or float64, got {sqrt_mat.dtype}")
    if precision not in PRECISIONS:
        raise ValueError(f"lyapunov_backward: precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    batch, n = sqrt_mat.shape[0], sqrt_mat.shape[-1]
    compute_dtype, device = sqrt_mat.dtype, sqrt_mat.device
    if norm.numel() != batch:
        raise ValueError(f"lyapunov_backward: norm: expected {batch} elements, got shape {tuple(norm.shape)}")
    norm = norm.reshape(batch).to(compute_dtype)
    if grad_inv is not None and inv_mat is None:
        raise ValueError("lyapunov_backward: inv_mat: required when grad_inv is given")
    for name, t in (("inv_mat", inv_mat), ("grad_sqrt", grad_sqrt), ("grad_inv", grad_inv)):
        if t is not None:
            _check_matrices(name, t, batch, n)
    if inv_mat is not None:
        inv_mat = inv_mat.to(compute_dtype)
    dtype_name = compute_dtype_name(compute_dtype)
    precision = dot_precision(dtype_name, precision)

    out = torch.empty((batch, n, n), dtype=compute_dtype, device=device)
    if batch == 0:
        return out
    schedule = steps_tensor(steps, compute_dtype, device)

    def pointer_and_strides(t):
        # An absent tensor is never read (its HAS_ flag is off); S stands in for the pointer.
        return (sqrt_mat, 0, 0, 0) if t is None else (t, *t.stride())

    args = [
        sqrt_mat, *sqrt_mat.stride(),
        norm, norm.stride(0),
        *pointer_and_strides(inv_mat if grad_inv is not None else None),
        *pointer_and_strides(grad_sqrt),
        *pointer_and_strides(grad_inv),
        schedule, schedule.shape[0],
        out,
    ]

    def run(config):  # repeatable: reads the inputs and the schedule, writes only out and scratch
        block, extra = config["BLOCK"], []
        if config["kernel"] == "streamed":
            extra.append(torch.empty((batch, 6, block, block), dtype=compute_dtype, device=device))
            grid, shape = (batch,), {"CHUNK": config["CHUNK"]}
        elif config["kernel"] == "tensor_cores":
            grid, shape = (batch,), {}
        elif config["kernel"] == "tensor_cores_streamed":
            parts = 2 if precision == "tf32x3" else 1
            extra.append(torch.empty((batch, 4, parts, block, block), dtype=compute_dtype, device=device))
            grid, shape = (batch,), {"CHUNK": config["CHUNK"], "SYMMETRIC_PANELS": config["SYMMETRIC_PANELS"]}
        else:
            grid, shape = (triton.cdiv(batch, config["MATRICES"]),), {"MATRICES": config["MATRICES"]}
        _kernel(config["kernel"])[grid](
            *args, *extra, batch, n,
            HAS_GRAD_SQRT=grad_sqrt is not None,
            HAS_GRAD_INV=grad_inv is not None,
            BLOCK=block,
            PRECISION=precision,
            num_warps=config["num_warps"],
            num_stages=config["num_stages"],
            **shape,
            **(STREAMED_BACKWARD_LAUNCH_OPTIONS if config["kernel"] == "streamed" else LAUNCH_OPTIONS),
        )

    candidates = candidate_configs(n, dtype_name, precision, interpreter=device.type != "cuda", arch=arch_name(device))
    kernel_kind = candidates[0]["kernel"]
    variant = "-".join(name for name, on in (("grad_sqrt", grad_sqrt is not None), ("grad_inv", grad_inv is not None))
                       if on)
    key = tuning_key(candidates[0]["BLOCK"], dtype_name, precision, variant)
    name = "fused.lyapunov_backward" + ("" if kernel_kind == "registers" else "_" + kernel_kind)
    tuned_launch(name, _kernel(kernel_kind), key, candidates, run, device)
    return out


# Kernel kinds as compile-report names them (short enough for its one-line-per-family table).
_SPEC_LABELS = {"tensor_cores": "tc", "tensor_cores_streamed": "tc_streamed"}


def compile_specs(n: int, dtype_name: str) -> list[dict]:
    """Every (kernel, config) `lyapunov_backward` can launch at size n, for `triton.compile`.

    One spec per dot precision (float64: ieee only), with both gradients given (the variant
    with the most live values; the others are its subsets) and gradients in the compute
    dtype. Empty when n is beyond the kernels.
    """
    if not 1 <= n <= MAX_N:
        return []
    element = {"float32": "fp32", "float64": "fp64"}[dtype_name]
    signature = {}
    for tensor in ("sqrt", "norm", "inv", "grad_sqrt", "grad_inv"):
        signature[f"{tensor}_ptr"] = f"*{element}"
        strides = ("batch_stride",) if tensor == "norm" else ("batch_stride", "row_stride", "col_stride")
        signature.update({f"{tensor}_{stride}": "i32" for stride in strides})
    signature.update({"steps_ptr": f"*{element}", "num_steps": "i32", "out_ptr": f"*{element}"})
    specs = []
    for precision, config in [(precision, config) for precision in (("ieee",) if dtype_name == "float64" else PRECISIONS)
                              for config in candidate_configs(n, dtype_name, precision)]:
        constexprs = {"HAS_GRAD_SQRT": True, "HAS_GRAD_INV": True, "BLOCK": config["BLOCK"], "PRECISION": precision}
        kernel_signature = dict(signature)
        if config["kernel"] in ("streamed", "tensor_cores_streamed"):
            kernel_signature["scratch_ptr"] = f"*{element}"
            constexprs["CHUNK"] = config["CHUNK"]
            shape = f"BLOCK={config['BLOCK']},CHUNK={config['CHUNK']}"
            if "SYMMETRIC_PANELS" in config:
                constexprs["SYMMETRIC_PANELS"] = config["SYMMETRIC_PANELS"]
                shape += ",column_panels" if config["SYMMETRIC_PANELS"] else ""
        elif config["kernel"] == "tensor_cores":
            shape = f"BLOCK={config['BLOCK']}"
        else:
            constexprs["MATRICES"] = config["MATRICES"]
            shape = f"BLOCK={config['BLOCK']},MATRICES={config['MATRICES']}"
        kernel_signature.update({"batch": "i32", "n": "i32"})
        kernel_signature.update({name: "constexpr" for name in constexprs})
        spec = {
            "name": f"lyapunov_backward_{_SPEC_LABELS.get(config['kernel'], config['kernel'])}"
                    f"[{shape},warps={config['num_warps']},{precision}]",
            "fn": _kernel(config["kernel"]),
            "signature": kernel_signature,
            "constexprs": constexprs,
            "num_warps": config["num_warps"],
            "num_stages": config["num_stages"],
        }
        if config["kernel"] == "streamed":
            spec["options"] = STREAMED_BACKWARD_LAUNCH_OPTIONS
        if config["kernel"].startswith("tensor_cores"):  # compiled for the archs it is offered on
            spec["archs"] = tensor_core_archs(TENSOR_CORE_BACKWARD, n, dtype_name, precision)
            if "SYMMETRIC_PANELS" in config:
                spec["archs"] = tuple(a for a in spec["archs"] if a in SYMMETRIC_PANEL_ARCHS[config["SYMMETRIC_PANELS"]])
        specs.append(spec)
    return specs
