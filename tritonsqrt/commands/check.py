"""`tritonsqrt check`: the accuracy table, measured here, method by method."""

from __future__ import annotations

import sys

import torch

from ..constants import METHODS, PRECISIONS
from ..testing.accuracy import TARGETS, accuracy_table
from ..roots import square_root_count
from . import args as arg_types


# Every method of the ops, and "official": the seed paper's MPA-Lya re-implemented.
CHECK_METHODS = METHODS + ("official",)


def add_arguments(parser) -> None:
    parser.add_argument("--device", type=arg_types.device, default=None, help="default: cuda if present, else cpu")
    parser.add_argument("--n", type=arg_types.positive_int, nargs="+", default=[2, 33, 64],
                        help="matrix sizes (worst case shown)")
    parser.add_argument("--batch", type=arg_types.positive_int, default=4)
    parser.add_argument("--methods", type=arg_types.names_from(CHECK_METHODS),
                        default=",".join(CHECK_METHODS))
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--p", type=int, default=2,
                        help="root order: 2 (sqrtm, inv_sqrtm) or 4, 8, ... (tritonsqrt.root, inv_root)")
    parser.add_argument("--precision", default="ieee", choices=PRECISIONS,
                        help="tl.dot input precision of the iterative methods; emulated on the torch path "
                             "(tritonsqrt.numerics.emulation), real tensor cores on the kernels")


def main(args) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype)
    methods = args.methods.split(",")
    if args.p != 2:  # the official code has square roots only; the targets are those of p = 2
        try:
            square_root_count("tritonsqrt check", args.p)
        except ValueError as error:
            print(str(error).replace(" p ", " --p "), file=sys.stderr)
            return 2
        methods = [m for m in methods if m != "official"]
    if args.precision != "ieee":  # the official code is plain torch: it has no precision setting
        methods = [m for m in methods if m != "official"]
    print(f"relative Frobenius error against float64 eigh, worst over n in {args.n}, batch {args.batch}, "
          f"{args.dtype} input, device {device}" + _precision_note(args.precision, device))
    names = ("sqrtm", "inv_sqrtm", "d sqrtm", "d inv") if args.p == 2 else (
        f"root{args.p}", f"inv_root{args.p}", f"d root{args.p}", f"d inv{args.p}")
    print(f"{'method':<10} {'kappa':>6} " + " ".join(f"{name:>9}" for name in names) + "  target met")
    failed = False
    for row in accuracy_table(methods, args.n, args.batch, dtype, device, p=args.p, precision=args.precision,
                              progress=_progress(len(methods))):
        target = TARGETS[dtype].get(row["kappa"]) if args.p == 2 else None
        errs = (row["sqrtm"], row["inv_sqrtm"], row["grad_sqrtm"], row["grad_inv_sqrtm"])
        met = "" if target is None else ("yes" if all(e <= t for e, t in zip(errs, target)) else "NO")
        if row["method"] == "auto" and met == "NO":
            failed = True
        print(f"{row['method']:<10} {row['kappa']:>6.0e} " + " ".join(f"{e:>9.1e}" for e in errs) + f"  {met}")
    return 1 if failed else 0


def _precision_note(precision: str, device: torch.device) -> str:
    if precision == "ieee":
        return ""
    how = "tensor cores on the kernels' path" if device.type == "cuda" else "emulated on the CPU (tritonsqrt.numerics.emulation)"
    return (f", products at {precision} ({how}; eigh and auto-on-CPU have no products to round, "
            "so their rows are full precision)")


def _progress(method_count: int):
    """Progress on stderr, one line per measured row, so a slow table is not silent."""
    seen = []

    def report(method: str, kappa: float) -> None:
        if method not in seen:
            seen.append(method)
        print(f"check: {method} ({len(seen)}/{method_count}), kappa {kappa:.0e}", file=sys.stderr, flush=True)

    return report
