"""`tritonsqrt info`: versions, device, and what each op would run here."""

from __future__ import annotations

import platform

import torch

from .. import __version__
from ..backends import triton_available, triton_unsupported_reason
from ..plan import resolve


def add_arguments(parser) -> None:
    parser.add_argument("--device", default=None, help="device to describe (default: cuda if present, else cpu)")
    parser.add_argument("--n", type=int, nargs="*", default=[16, 64, 256, 1024], help="matrix sizes to describe")
    parser.add_argument("--dtype", default="float32", choices=["float16", "bfloat16", "float32", "float64"])


def main(args) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype)
    triton_version = "not installed"
    if triton_available():
        import triton

        triton_version = triton.__version__
    print(f"tritonsqrt {__version__}  torch {torch.__version__}  triton {triton_version}  python {platform.python_version()}")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device: {device} ({name})  dtype: {args.dtype}")
    for n in args.n:
        probe = torch.empty(0, n, n, dtype=dtype, device=device)
        plan = resolve(probe, "auto", "auto")
        why = triton_unsupported_reason(probe, plan, forced=False)
        note = f"  (torch because {why})" if why else ""
        for op in ("sqrtm", "inv_sqrtm"):
            print(f"  n={n:<5} {op:<10} auto -> {plan.describe()}{note}")
    return 0
