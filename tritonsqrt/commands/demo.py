"""`tritonsqrt demo`: whiten a batch of feature groups, forward and backward, and time it.

The main job of the library in one screen: covariance matrices of feature groups (as in
decorrelated batch norm), their inverse square roots by the default method, the whitened
features' covariance, the gradient, and the time against eigh with autograd.
"""

from __future__ import annotations

import torch

from .. import api, reference
from ..perf.timing import synchronized_times
from ..reference import symmetrize
from ..plan import resolve
from ..testing import exact_roots, random_orthogonal, relative_error


def add_arguments(parser) -> None:
    parser.add_argument("--device", default=None, help="default: cuda if present, else cpu")
    parser.add_argument("--groups", type=int, default=64, help="batch of covariance matrices")
    parser.add_argument("--n", type=int, default=64, help="channels per group")
    parser.add_argument("--samples", type=int, default=512, help="feature vectors per group")
    parser.add_argument("--method", default="auto")


def _time(fn, device, repeats=5) -> float:
    return min(synchronized_times(fn, device, repeats))


def main(args) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    gen = torch.Generator().manual_seed(0)
    # Correlated features: a random rotation of independent channels with scales from 1 to 0.1.
    mixing = (random_orthogonal(args.groups, args.n, gen) * torch.logspace(0, -1, args.n, dtype=torch.float64)).float()
    x = (mixing @ torch.randn(args.groups, args.n, args.samples, generator=gen)).to(device)
    x = x - x.mean(dim=-1, keepdim=True)
    cov = x @ x.mT / args.samples
    plan = resolve(cov, args.method, "auto")
    print(f"device {device}; {args.groups} covariance matrices of size {args.n}; method {args.method}: {plan.describe()}")

    cov_in = cov.clone().requires_grad_(True)
    whitening = api.inv_sqrtm(cov_in, method=args.method, eps=1e-5)
    white = whitening @ x
    white_cov = white @ white.mT / args.samples
    eye = torch.eye(args.n, device=device)
    exact = exact_roots(symmetrize(cov) + 1e-5 * eye)[1]  # float64 eigh of the same float32 input
    print(f"relative error of A^-1/2 against float64 eigh: {relative_error(whitening.detach(), exact).max():.2e}")
    print(f"whitened covariance, max |C - I|: {(white_cov - eye).abs().max():.2e} (eps = 1e-5 shifts it slightly)")
    white.square().mean().backward()
    print(f"gradient finite: {bool(torch.isfinite(cov_in.grad).all())}, norm {cov_in.grad.norm():.3e}")

    def ours():
        c = cov.clone().requires_grad_(True)
        api.inv_sqrtm(c, method=args.method, eps=1e-5).sum().backward()

    def eigh_autograd():
        c = cov.clone().requires_grad_(True)
        reference.eigh_autograd(c + 1e-5 * eye, inverse=True).sum().backward()

    t_ours, t_eigh = _time(ours, device), _time(eigh_autograd, device)
    print(f"forward+backward: tritonsqrt {t_ours * 1e3:.2f} ms, eigh+autograd {t_eigh * 1e3:.2f} ms "
          f"(ratio {t_eigh / t_ours:.2f}x, best of 5 wall-clock on {device})")
    return 0
