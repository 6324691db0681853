"""Fréchet distances (FID's formula) between the classes of scikit-learn's 8x8 digits.

Features are the 64 pixels (in [0, 16]); each class gives a mean and a covariance (divisor N - 1,
as pytorch-fid), of rank 48 to 54: many border pixels are always 0 within a class. All 10 x 10 pairs go to
`tritonsqrt.functional.frechet_distance` as one batch; its default (eigh in float64, on every
device) is exact on such rank-deficient covariances. Printed: the matrix, the nearest class of
each, FID(x, x), and the distance between two random halves of one class (sampling noise).

    python examples/fid_digits.py
"""

from __future__ import annotations

import torch

from tritonsqrt.functional import bures_wasserstein_distance, frechet_distance


def gaussian(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return features.mean(0), torch.cov(features.T)  # torch.cov: divisor N - 1


def main() -> int:
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = torch.tensor(digits.data, dtype=torch.float64)
    labels = torch.tensor(digits.target)
    means, covs = zip(*(gaussian(pixels[labels == digit]) for digit in range(10)))
    means, covs = torch.stack(means), torch.stack(covs)  # (10, 64), (10, 64, 64)
    print(f"covariance ranks: {torch.linalg.matrix_rank(covs).tolist()} (of 64)")

    # Every pair in one batched call: (10, 1, ...) against (1, 10, ...) broadcasts to (10, 10).
    fid = frechet_distance(means[:, None], covs[:, None], means[None], covs[None])
    print("FID between classes (rows, columns: digit 0..9)")
    for digit, row in enumerate(fid):
        print(f"{digit}: " + " ".join(f"{value:6.1f}" for value in row.tolist()))
    nearest = (fid + torch.diag(torch.full((10,), float("inf"), dtype=fid.dtype))).argmin(1)
    print("nearest class: " + ", ".join(f"{d}->{int(n)}" for d, n in enumerate(nearest)))
    print(f"largest |FID(x, x)|: {fid.diagonal().abs().max().item():.1e}")

    threes = pixels[labels == 3][torch.randperm(int((labels == 3).sum()), generator=torch.Generator().manual_seed(0))]
    half = len(threes) // 2
    (m1, s1), (m2, s2) = gaussian(threes[:half]), gaussian(threes[half:])
    print(f"two random halves of the 3s: FID {frechet_distance(m1, s1, m2, s2).item():.1f}, "
          f"Bures-Wasserstein {bures_wasserstein_distance(s1, s2).item():.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
