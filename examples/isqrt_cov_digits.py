"""An iSQRT-COV head (Li et al., CVPR 2018) on handwritten digits, beside average pooling.

scikit-learn's 8x8 digits (no download), 80 % train / 20 % test. Backbone: two 3x3 convolutions
with BatchNorm and ReLU (1 -> 16 -> 32 channels). Head, as iSQRT-COV builds it:
1x1 reduction (32 -> 16, BatchNorm, ReLU), covariance of the 64 positions, trace
pre-normalisation, 5 coupled Newton–Schulz steps, sqrt(trace) post-compensation, upper triangle
(136 features), linear classifier. That is `CovariancePooling(method="ns", eps=0.0,
in_channels=32, reduced_channels=16)`; tests/test_isqrt_cov.py holds it to the paper's equations.
The baseline has the same backbone and reduction with global average pooling (16 features).

    python examples/isqrt_cov_digits.py [--steps 200] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from tritonsqrt.nn import CovariancePooling

REDUCED = 16


def load_digits_split(device, seed: int = 0):
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    train, test = order[: int(0.8 * len(labels))], order[int(0.8 * len(labels)):]
    return images[train].to(device), labels[train].to(device), images[test].to(device), labels[test].to(device)


def build(head: str) -> nn.Module:
    backbone = [nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU()]
    if head == "isqrt-cov":
        pooling = [CovariancePooling(method="ns", eps=0.0, in_channels=32, reduced_channels=REDUCED)]
        features = CovariancePooling.output_features(REDUCED)
    else:
        pooling = [nn.Conv2d(32, REDUCED, 1, bias=False), nn.BatchNorm2d(REDUCED), nn.ReLU(),
                   nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        features = REDUCED
    return nn.Sequential(*backbone, *pooling, nn.Linear(features, 10))


def train(head: str, steps: int, device, seed: int = 0) -> tuple[float, float, float, float]:
    """(first loss, last-25-steps loss, test accuracy, seconds)."""
    torch.manual_seed(seed)
    train_x, train_y, test_x, test_y = load_digits_split(device, seed)
    model = build(head).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    batches = torch.Generator().manual_seed(seed + 1)
    losses, start = [], time.perf_counter()
    for _ in range(steps):
        index = torch.randint(len(train_y), (64,), generator=batches).to(device)
        loss = nn.functional.cross_entropy(model(train_x[index]), train_y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
    return losses[0], sum(losses[-25:]) / len(losses[-25:]), accuracy, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--device", default=None, help="default: cuda if present, else cpu")
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    print(f"{'head':<22}{'loss step 0':>12}{'loss end':>10}{'test acc.':>11}{'seconds':>9}")
    for head, label in (("isqrt-cov", "iSQRT-COV (136 feat.)"), ("average", "average pool (16)")):
        first, last, accuracy, seconds = train(head, args.steps, device)
        print(f"{label:<22}{first:>12.4f}{last:>10.4f}{accuracy:>11.4f}{seconds:>9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
