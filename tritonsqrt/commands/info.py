"""`tritonsqrt info`: versions, device, and what each op would run here."""

from __future__ import annotations

import platform

import torch

from .. import __version__
from ..paths.routing import triton_available
from ..plan import auto_method
from . import args as arg_types


def add_arguments(parser) -> None:
    parser.add_argument("--device", type=arg_types.device, default=None,
                        help="device to describe (default: cuda if present, else cpu)")
    parser.add_argument("--n", type=arg_types.positive_int, nargs="*", default=[16, 64, 256, 1024], help="matrix sizes to describe")
    parser.add_argument("--dtype", default="float32", choices=["float16", "bfloat16", "float32", "float64"])


def _device_name(device: torch.device) -> str:
    if device.type != "cuda":
        return platform.processor() or device.type
    return torch.cuda.get_device_name(device)  # --device accepts cuda only with a GPU present


def main(args) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype)
    triton_version = "not installed"
    if triton_available():
        import triton

        triton_version = triton.__version__
    print(f"tritonsqrt {__version__}  torch {torch.__version__}  triton {triton_version}  python {platform.python_version()}")
    print(f"device: {device} ({_device_name(device)})  dtype: {args.dtype}")
    reasons: dict[str, list[int]] = {}  # each reason once, with the sizes it applies to
    for n in args.n:
        plan = auto_method(device, n, dtype)
        for op in ("sqrtm", "inv_sqrtm"):
            print(f"  n={n:<5} {op:<10} auto -> {plan.describe()}{plan.where}")
        if plan.reason:
            reasons.setdefault(plan.reason, []).append(n)
    for why, sizes in reasons.items():
        print(f"torch path for n = {', '.join(map(str, sizes))}: {why}")
    return 0
