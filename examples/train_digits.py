"""Train a small CNN with decorrelated batch norm and a covariance-pooling head on handwritten digits,
beside the same CNN with BatchNorm2d and global average pooling (the baseline).

The data is scikit-learn's 8x8 digits (1797 images, shipped with the package, no download):
80 % for training, 20 % held out. The network is

    conv 3x3 (1 -> 16)  -> DecorrelatedBatchNorm(16, 2 groups) -> ReLU
    conv 3x3 (16 -> 32) -> DecorrelatedBatchNorm(32, 4 groups) -> ReLU
    conv 1x1 (32 -> 16)  -> CovariancePooling (iSQRT-COV: 136 features) -> linear -> 10 classes

so every step takes inverse square roots (whitening, 2 + 4 groups) and square roots (pooling,
one 16 x 16 covariance per image), forward and backward. The baseline swaps the decorrelated
batch norms for BatchNorm2d and the covariance pooling for average pooling (16 features); both
train from the same seed on the same batches, and the loss is printed from step 0.

    python examples/train_digits.py                  # 300 steps, GPU if there is one, and the baseline
    python examples/train_digits.py --device cpu --steps 100 --method scaled_ns
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from tritonsqrt.nn import CovariancePooling, DecorrelatedBatchNorm

POOLED_CHANNELS = 16


def load_digits_split(device, seed: int = 0):
    """(train_x, train_y, test_x, test_y): images (N, 1, 8, 8) scaled to [0, 1], labels (N,)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    split = int(0.8 * len(labels))
    train, test = order[:split], order[split:]
    return images[train].to(device), labels[train].to(device), images[test].to(device), labels[test].to(device)


def build_model(method: str = "auto", baseline: bool = False) -> nn.Module:
    if baseline:  # the same CNN with BatchNorm2d and global average pooling
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, POOLED_CHANNELS, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(POOLED_CHANNELS, 10),
        )
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False),  # no bias: whitening removes the mean
        DecorrelatedBatchNorm(16, num_groups=2, method=method),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, bias=False),
        DecorrelatedBatchNorm(32, num_groups=4, method=method),
        nn.ReLU(),
        nn.Conv2d(32, POOLED_CHANNELS, 1),  # iSQRT-COV reduces channels with a 1x1 conv before pooling
        CovariancePooling(method=method),
        nn.Linear(CovariancePooling.output_features(POOLED_CHANNELS), 10),
    )


def train(steps: int = 300, device=None, method: str = "auto", batch_size: int = 64, lr: float = 3e-3,
          seed: int = 0, log_every: int = 25, log=print, baseline: bool = False) -> dict:
    """Train for `steps` mini-batches; returns losses (per step), test_accuracy and seconds.
    Logs the loss of step 0 (before any update) and the mean over each log_every steps after it."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(seed)
    train_x, train_y, test_x, test_y = load_digits_split(device, seed)
    model = build_model(method, baseline).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    batches = torch.Generator().manual_seed(seed + 1)
    losses = []
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        index = torch.randint(len(train_y), (batch_size,), generator=batches).to(device)
        loss = nn.functional.cross_entropy(model(train_x[index]), train_y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if log and (step % log_every == 0 or step == steps - 1):
            window = losses[-log_every:] if step else losses
            log(f"step {step:4d}  loss {sum(window) / len(window):.4f}  ({time.perf_counter() - start:.1f} s)")
    model.eval()  # the whitening layers now use their running statistics
    with torch.no_grad():
        accuracy = (model(test_x).argmax(dim=1) == test_y).float().mean().item()
    seconds = time.perf_counter() - start
    if log:
        log(f"test accuracy {accuracy:.4f} on {len(test_y)} images; {steps} steps in {seconds:.1f} s on {device}")
    return {"losses": losses, "test_accuracy": accuracy, "seconds": seconds}


def compare(steps: int = 300, device=None, method: str = "auto", batch_size: int = 64, lr: float = 3e-3,
            seed: int = 0, log_every: int = 25, log=print) -> dict:
    """Train the model and its baseline on the same batches; print their losses side by side."""
    runs = {name: train(steps, device, method, batch_size, lr, seed, log_every, None, baseline)
            for name, baseline in (("tritonsqrt", False), ("baseline", True))}
    log("step   DBN + iSQRT-COV   BatchNorm + avg pool")
    for step in sorted(set(range(0, steps, log_every)) | {steps - 1}):
        window = slice(max(step - log_every + 1, 1) if step else 0, step + 1)
        mean = {name: sum(run["losses"][window]) / len(run["losses"][window]) for name, run in runs.items()}
        log(f"{step:4d}   {mean['tritonsqrt']:15.4f}   {mean['baseline']:20.4f}")
    log(f"test accuracy ({batch_size}-image batches, {steps} steps): DBN + iSQRT-COV "
        f"{runs['tritonsqrt']['test_accuracy']:.4f} in {runs['tritonsqrt']['seconds']:.1f} s, "
        f"BatchNorm + avg pool {runs['baseline']['test_accuracy']:.4f} in {runs['baseline']['seconds']:.1f} s")
    return runs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--device", default=None, help="default: cuda if present, else cpu")
    parser.add_argument("--method", default="auto", help="root method for every layer (default auto)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    compare(args.steps, args.device, args.method, args.batch_size, args.lr, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
