"""`tritonsqrt check`: the accuracy table, measured here, method by method."""

from __future__ import annotations

import sys

import torch

from ..constants import METHODS, PRECISIONS, TF32X3_MIN_N
from ..testing import SPECTRA
from ..testing.accuracy import COLUMNS, TARGETS, accuracy_table
from ..roots import square_root_count
from . import args as arg_types


# Every method of the ops, and "official": the seed paper's MPA-Lya re-implemented.
CHECK_METHODS = METHODS + ("official",)


def add_arguments(parser) -> None:
    parser.add_argument("--device", type=arg_types.device, default=None, help="default: cuda if present, else cpu")
    parser.add_argument("--n", type=arg_types.positive_int, nargs="+", default=[2, 33, 64],
                        help="matrix sizes (worst case shown)")
    parser.add_argument("--batch", type=arg_types.positive_int, default=4)
    parser.add_argument("--seeds", type=arg_types.positive_int, default=1,
                        help="independent draws of Q, the scale and G per size and spectrum (worst case shown)")
    parser.add_argument("--spectra", type=arg_types.names_from(SPECTRA), default="logspaced",
                        help="comma-separated eigenvalue shapes, each with the end points 1 and 1/kappa: "
                             "logspaced (1 to 1/kappa), clusters (half at each end), outlier (all at 1 but "
                             "one), one_large (one at 1, the rest at 1/kappa)")
    parser.add_argument("--kappas", type=arg_types.positive_float, nargs="+", default=None,
                        help="condition numbers (default: those of the targets, 1e2 1e4 1e6 for float32)")
    parser.add_argument("--margin", type=arg_types.positive_float, default=1.0,
                        help="'target met' only where error x margin <= target (1.5: a 1.5x margin)")
    parser.add_argument("--where", action="store_true",
                        help="under each row, the (n, spectrum, draw) of each column's worst error")
    parser.add_argument("--methods", type=arg_types.names_from(CHECK_METHODS),
                        default=",".join(CHECK_METHODS))
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--p", type=int, default=2,
                        help="root order: 2 (sqrtm, inv_sqrtm) or 4, 8, ... (tritonsqrt.root, inv_root)")
    parser.add_argument("--precision", default=None, choices=PRECISIONS,
                        help="tl.dot input precision of the iterative methods; emulated on the torch path "
                             "(tritonsqrt.numerics.emulation), real tensor cores on the kernels. Default: the "
                             "library's (ieee on CPU; on CUDA tritonsqrt.constants.default_precision)")


def main(args) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype)
    methods = args.methods.split(",")
    spectra = args.spectra.split(",")
    if args.p != 2:  # the official code has square roots only; the targets are those of p = 2
        try:
            square_root_count("tritonsqrt check", args.p)
        except ValueError as error:
            print(str(error).replace(" p ", " --p "), file=sys.stderr)
            return 2
        methods = [m for m in methods if m != "official"]
    if args.precision not in (None, "ieee"):  # the official code is plain torch: it has no precision setting
        methods = [m for m in methods if m != "official"]
    print(f"relative Frobenius error against float64 eigh, worst over n in {args.n}, batch {args.batch}, "
          f"{args.dtype} input, device {device}" + _suite_note(args.seeds, spectra, args.margin)
          + _precision_note(args.precision, device))
    names = ("sqrtm", "inv_sqrtm", "d sqrtm", "d inv") if args.p == 2 else (
        f"root{args.p}", f"inv_root{args.p}", f"d root{args.p}", f"d inv{args.p}")
    print(f"{'method':<10} {'kappa':>6} " + " ".join(f"{name:>9}" for name in names) + "  target met")
    failed = False
    rows = accuracy_table(methods, args.n, args.batch, dtype, device, kappas=args.kappas, p=args.p,
                          precision=args.precision, progress=_progress(len(methods)), seeds=args.seeds,
                          spectra=spectra)
    for row in rows:
        target = TARGETS[dtype].get(row["kappa"]) if args.p == 2 else None
        errs = tuple(row[column] for column in COLUMNS)
        met = "" if target is None else ("yes" if meets(errs, target, args.margin) else "NO")
        if row["method"] == "auto" and met == "NO":
            failed = True
        print(f"{row['method']:<10} {row['kappa']:>6.0e} " + " ".join(f"{e:>9.1e}" for e in errs) + f"  {met}")
        if args.where:
            print(f"{'':<17} worst at (n, spectrum, draw): "
                  + "; ".join(f"{name} {_place(row['worst_at'][column])}" for name, column in zip(names, COLUMNS)))
    return 1 if failed else 0


def meets(errors, targets, margin: float = 1.0) -> bool:
    """Every error at least `margin` times below its target (NaN never meets one)."""
    return all(e * margin <= t for e, t in zip(errors, targets))


def _place(where) -> str:
    n, spectrum_name, draw = where
    return f"{n} {spectrum_name} {draw}"


def _suite_note(seeds: int, spectra, margin: float) -> str:
    """The parts of the suite that differ from the original table (nothing for the defaults)."""
    parts = ([f"{seeds} draws"] if seeds > 1 else []) + (
        [f"spectra {','.join(spectra)}"] if list(spectra) != ["logspaced"] else []) + (
        [f"target met with a {margin:g}x margin"] if margin != 1.0 else [])
    return "".join(", " + part for part in parts)


def _precision_note(precision: str | None, device: torch.device) -> str:
    if precision is None and device.type == "cuda":
        return (f", products at the library's default (ieee below n = {TF32X3_MIN_N}, tf32x3 from it on "
                "the kernels: tritonsqrt.constants.default_precision)")
    if precision in (None, "ieee"):
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
