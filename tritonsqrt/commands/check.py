"""`tritonsqrt check`: the accuracy table, measured here, method by method."""

from __future__ import annotations

import torch

from ..accuracy import TARGETS, accuracy_table


def add_arguments(parser) -> None:
    parser.add_argument("--device", default=None, help="default: cuda if present, else cpu")
    parser.add_argument("--n", type=int, nargs="*", default=[2, 33, 64], help="matrix sizes (worst case shown)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--methods", default="auto,scaled_ns,eigh,ns,mpa,mtp,official")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])


def main(args) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype)
    print(f"relative Frobenius error against float64 eigh, worst over n in {args.n}, batch {args.batch}, "
          f"{args.dtype} input, device {device}")
    print(f"{'method':<10} {'kappa':>6} {'sqrtm':>9} {'inv_sqrtm':>9} {'d sqrtm':>9} {'d inv':>9}  target met")
    failed = False
    for row in accuracy_table(args.methods.split(","), args.n, args.batch, dtype, device):
        target = TARGETS[dtype].get(row["kappa"])
        errs = (row["sqrtm"], row["inv_sqrtm"], row["grad_sqrtm"], row["grad_inv_sqrtm"])
        met = "" if target is None else ("yes" if all(e <= t for e, t in zip(errs, target)) else "NO")
        if row["method"] == "auto" and met == "NO":
            failed = True
        print(f"{row['method']:<10} {row['kappa']:>6.0e} " + " ".join(f"{e:>9.1e}" for e in errs) + f"  {met}")
    return 1 if failed else 0
