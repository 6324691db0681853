"""The product orders of the Newton–Schulz steps simulated in float32 torch, against float64 eigh:
the torch reference, the tiled steps (M = Z Y, tiles averaged with their mirror), the strip steps
(`kernels/strips.py`: Y (Z Y) and Z (Y Z), not re-symmetrised) and strips mirroring one triangle;
then the Lyapunov sign iteration of the backward, the reference against the strip steps' order.

    python -m tritonsqrt.perf.strip_orders

Figures quoted in docs/large-and-tuning.md ("Strip steps"); each line: sqrtm and inv_sqrtm errors.
"""

from __future__ import annotations

import torch

from tritonsqrt.numerics import coefficients, reference
from tritonsqrt.testing import exact_roots, random_orthogonal, relative_error, spectrum


def _matrices(batch: int, n: int, kappa: float) -> tuple[torch.Tensor, torch.Generator]:
    """float64 SPD matrices with log-spaced eigenvalues 1 .. 1/kappa, and the generator (seed 1)."""
    generator = torch.Generator().manual_seed(1)
    q = random_orthogonal(batch, n, generator).double()
    return (q * spectrum("logspaced", n, kappa).double()) @ q.mT, generator


def _upper_mirrored(x: torch.Tensor) -> torch.Tensor:
    return torch.triu(x) + torch.triu(x, 1).mT


def strip_steps(a_hat: torch.Tensor, steps, mirror) -> tuple[torch.Tensor, torch.Tensor]:
    eye = reference.identity_like(a_hat)
    (a, b), rest = steps[0], steps[1:]
    t = a * eye + b * a_hat
    y, z = mirror(a_hat @ t), mirror(t)
    for a, b in rest:
        y, z = mirror(a * y + b * (y @ (z @ y))), mirror(a * z + b * (z @ (y @ z)))
    return reference.symmetrize(y), reference.symmetrize(z)


def tiled_steps(a_hat: torch.Tensor, steps) -> tuple[torch.Tensor, torch.Tensor]:
    eye = reference.identity_like(a_hat)
    (a, b), rest = steps[0], steps[1:]
    t = a * eye + b * a_hat
    y, z = reference.symmetrize(a_hat @ t), t
    for a, b in rest:
        m = z @ y
        y, z = reference.symmetrize(a * y + b * (y @ m)), reference.symmetrize(a * z + b * (m @ z))
    return y, z


def lyapunov_strips(s_mat, rhs, scale, steps) -> torch.Tensor:
    """`reference.lyapunov_sign` in the strip steps' order, not re-symmetrised."""
    b_mat, c_mat = s_mat / scale, rhs / scale
    for a, b in steps:
        square, commutator = b_mat @ b_mat, b_mat @ c_mat - c_mat @ b_mat
        c_mat, b_mat = a * c_mat + b * (b_mat @ commutator + c_mat @ square), a * b_mat + b * (b_mat @ square)
    return reference.symmetrize(0.5 * c_mat)


def lyapunov_main() -> None:
    for n in (65, 130):
        for kappa in (1e2, 1e4, 1e6):
            a, generator = _matrices(2, n, kappa)
            sqrt_a, _ = exact_roots(a)
            rhs = reference.symmetrize(torch.randn(2, n, n, generator=generator, dtype=torch.float64))
            scale = torch.linalg.matrix_norm(a).reshape(-1, 1, 1).sqrt()
            steps = coefficients.scaled_ns_schedule(0.5 / kappa**0.5)
            # S X + X S = rhs in float64: the same iteration to convergence
            exact = reference.symmetrize(reference.lyapunov_sign(
                sqrt_a, rhs, scale, coefficients.scaled_ns_schedule(0.5 / kappa**0.5, "float64") + ((1.5, -0.5),) * 10))
            s32, rhs32, scale32 = sqrt_a.float(), rhs.float(), scale.float()
            ours = lyapunov_strips(s32, rhs32, scale32, steps)
            theirs = reference.symmetrize(reference.lyapunov_sign(s32, rhs32, scale32, steps))
            print(f"Lyapunov n={n} kappa={kappa:.0e}: reference {relative_error(theirs.double(), exact).max():.2e} | "
                  f"strip steps {relative_error(ours.double(), exact).max():.2e}")


def main() -> None:
    steps = coefficients.scaled_ns_schedule(1e-6)
    for n in (65, 130):
        for kappa in (1e2, 1e4, 1e6):
            a, _ = _matrices(4, n, kappa)
            exact_sqrt, exact_inv = exact_roots(a)
            a_hat, norm = reference.frobenius_normalize(a.float())
            results = {"torch path": reference.coupled_newton_schulz(a_hat, steps),
                       "tiled steps": tiled_steps(a_hat, steps),
                       "strip steps": strip_steps(a_hat, steps, lambda x: x),
                       "strips, one triangle": strip_steps(a_hat, steps, _upper_mirrored)}
            cells = []
            for name, (y, z) in results.items():
                sqrt_error = relative_error(reference.unscale(y, norm, False).double(), exact_sqrt).max()
                inv_error = relative_error(reference.unscale(z, norm, True).double(), exact_inv).max()
                cells.append(f"{name} {sqrt_error:.2e} {inv_error:.2e}")
            print(f"n={n} kappa={kappa:.0e}: " + " | ".join(cells))
    lyapunov_main()


if __name__ == "__main__":
    main()
