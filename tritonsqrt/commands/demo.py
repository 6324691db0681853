"""`tritonsqrt demo`: whiten a batch of feature groups, then compare the methods on that input.

The main job of the library in one screen: covariance matrices of feature groups (as in
decorrelated batch norm), their inverse square roots by the default method, the whitened
features' covariance, and a table of the alternatives (the default here, the GPU default,
eigh with autograd, the seed paper's MPA-Lya) with the error of the root, the error of the
gradient and the time of a forward+backward, each against eigh with autograd.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from .. import api
from ..perf import competitors
from ..perf.timing import synchronized_times
from ..plan import METHODS, auto_method, resolve
from ..numerics.reference import symmetrize
from ..testing import exact_gradients, exact_roots, random_orthogonal, random_symmetric, relative_error
from . import args as arg_types

BASELINE = "eigh+autograd"


def add_arguments(parser) -> None:
    parser.add_argument("--device", type=arg_types.device, default=None, help="default: cuda if present, else cpu")
    parser.add_argument("--groups", type=arg_types.positive_int, default=64, help="batch of covariance matrices")
    parser.add_argument("--n", type=arg_types.positive_int, default=64, help="channels per group")
    parser.add_argument("--samples", type=arg_types.positive_int, default=512, help="feature vectors per group")
    parser.add_argument("--method", default="auto", choices=METHODS,
                        help="method of the whitening shown first (the table has the others)")
    parser.add_argument("--repeats", type=arg_types.positive_int, default=5, help="timed calls per method (best is shown)")
    parser.add_argument("--threads", type=arg_types.positive_int, default=1,
                        help="CPU threads for torch (default 1: steadier timings on a shared machine)")


@dataclasses.dataclass(frozen=True)
class Row:
    label: str
    fn: Callable[[torch.Tensor], torch.Tensor]  # A -> A^{-1/2}, differentiable


def ratio_words(seconds: float, baseline_seconds: float) -> str:
    """'2.1x slower' / '3.0x faster' / 'same' than the baseline, spelled out."""
    ratio = seconds / baseline_seconds
    if 0.95 <= ratio <= 1.05:
        return "about the same"
    return f"{ratio:.1f}x slower" if ratio > 1 else f"{1 / ratio:.1f}x faster"


def _rows(device: torch.device, n: int, dtype: torch.dtype, extra_method: str) -> tuple[list[Row], list[str]]:
    """The compared implementations, and notes on what a GPU would run instead."""
    here = auto_method(device, n, dtype)
    gpu = auto_method("cuda", n, dtype)
    rows = [Row(f"auto ({here.method}, {here.backend})", lambda a: api.inv_sqrtm(a))]
    notes = []
    if device.type != "cuda":
        # The headline method of a GPU, on the torch path: the same steps the kernels run.
        rows.append(Row(f"{gpu.method} (GPU default; torch path here)",
                        lambda a: api.inv_sqrtm(a, method=gpu.method, backend="torch")))
        notes.append(f"on a CUDA GPU, auto runs {gpu.describe()}{gpu.where}; no GPU here, so the "
                     f"{gpu.method} row ran the same steps on the torch path")
    if extra_method not in ("auto", gpu.method):
        rows.append(Row(f"{extra_method}", lambda a: api.inv_sqrtm(a, method=extra_method)))
    rows.append(Row(BASELINE, lambda a: competitors.eigh_autograd(a, inverse=True)))
    rows.append(Row("MPA-Lya (official code, Song et al. 2022)", lambda a: competitors.official_lya(a, "mpa", True)))
    return rows, notes


def compare(a: torch.Tensor, grad: torch.Tensor, rows: list[Row], repeats: int,
            exact_root: torch.Tensor | None = None) -> list[dict]:
    """Per row: worst relative error of the root and of the gradient of <grad, A^-1/2> over the
    batch against float64 eigh, and the best of `repeats` forward+backward wall-clock times."""
    exact_root = exact_roots(a)[1] if exact_root is None else exact_root
    exact_grad = exact_gradients(a, grad)[1]
    results = []
    for row in rows:
        a_in = a.detach().clone().requires_grad_(True)

        def call():
            return torch.autograd.grad(row.fn(a_in), a_in, grad)[0]

        root = row.fn(a_in)
        (grad_a,) = torch.autograd.grad(root, a_in, grad)
        seconds = min(synchronized_times(call, a.device, repeats))
        results.append({"label": row.label, "root_error": float(relative_error(root.detach(), exact_root).max()),
                        "grad_error": float(relative_error(grad_a, exact_grad).max()), "seconds": seconds})
    return results


def format_table(results: list[dict]) -> str:
    base = next(r["seconds"] for r in results if r["label"] == BASELINE)
    header = ["method", "root error", "gradient error", "fwd+bwd ms", f"time vs {BASELINE}"]
    lines = [header] + [[r["label"], f"{r['root_error']:.1e}", f"{r['grad_error']:.1e}", f"{r['seconds'] * 1e3:.1f}",
                         "baseline" if r["label"] == BASELINE else ratio_words(r["seconds"], base)] for r in results]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
                     for line in lines)


def main(args) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    threads = torch.get_num_threads()
    if device.type == "cpu":
        # Two intra-op threads on cores other jobs use stall small calls 10x and more
        # (docs/perf.md); one thread keeps the table's ratios meaningful.
        torch.set_num_threads(args.threads)
    try:
        return _run(args, device)
    finally:
        torch.set_num_threads(threads)  # called in-process (tests), leave the process as it was


def _run(args, device: torch.device) -> int:
    gen = torch.Generator().manual_seed(0)
    # Correlated features: a random rotation of independent channels with scales from 1 to 0.1.
    mixing = (random_orthogonal(args.groups, args.n, gen) * torch.logspace(0, -1, args.n, dtype=torch.float64)).float()
    x = (mixing @ torch.randn(args.groups, args.n, args.samples, generator=gen)).to(device)
    x = x - x.mean(dim=-1, keepdim=True)
    cov = x @ x.mT / args.samples
    plan = resolve(cov, args.method, "auto")
    print(f"device {device}; {args.groups} covariance matrices of size {args.n} from {args.samples} samples each")
    print(f"whitening with method {args.method}: {plan.describe()}")

    cov_in = cov.clone().requires_grad_(True)
    whitening = api.inv_sqrtm(cov_in, method=args.method, eps=1e-5)
    white = whitening @ x
    white_cov = white @ white.mT / args.samples
    eye = torch.eye(args.n, device=device)
    a = symmetrize(cov) + 1e-5 * eye  # what inv_sqrtm(cov, eps=1e-5) takes the root of
    exact = exact_roots(a)[1]  # float64 eigh of the same float32 input
    print(f"relative error of A^-1/2 against float64 eigh: {relative_error(whitening.detach(), exact).max():.2e}")
    print(f"whitened covariance, max |C - I|: {(white_cov - eye).abs().max():.2e} (eps = 1e-5 shifts it slightly)")
    white.square().mean().backward()
    print(f"gradient finite: {bool(torch.isfinite(cov_in.grad).all())}, norm {cov_in.grad.norm():.3e}")

    upstream = random_symmetric(args.groups, args.n, seed=1, device=device)
    rows, notes = _rows(device, args.n, cov.dtype, args.method)
    print()
    print(f"inv_sqrtm of the same {args.groups} matrices (+ 1e-5 I), forward and backward for a random symmetric\n"
          "upstream gradient; errors: worst relative Frobenius error over the batch against float64 eigh")
    print(format_table(compare(a, upstream, rows, args.repeats, exact)))
    for note in notes:
        print(note)
    print(f"times: best of {args.repeats} wall-clock calls on {device}"
          + (" (CUDA synchronised around each)" if device.type == "cuda" else f", torch threads: {args.threads}"))
    return 0
