"""A minimal Shampoo-style preconditioned SGD whose Kronecker-factor roots come from
`tritonsqrt.inv_root(..., p=4)`, beside the same optimizer with a float32 `torch.linalg.eigh`
inverse root (the eigendecomposition route of Distributed Shampoo).

Shampoo (Gupta, Koren, Singer, ICML 2018) keeps, for a weight matrix W with gradient G, the
statistics L += G G^T and R += G^T G and steps along L^(-1/4) G R^(-1/4). The roots are taken
every `--refresh` steps, of all factors of one size in one batched call, as the optimizers
that stack equal-size blocks do. Biases take plain SGD steps. Both runs start from the same
weights and see the same batches, so any difference comes from the roots.

The data is scikit-learn's 8x8 digits (no download); the model an MLP 64 -> 64 -> 64 -> 10.

    python examples/shampoo.py                          # scaled_ns (the GPU method) against eigh
    python examples/shampoo.py --method auto --steps 300
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch import nn

import tritonsqrt as ts
from tritonsqrt.perf.competitors import eigh_inverse_root


def load_digits_split(seed: int = 0):
    """(train_x, train_y, test_x, test_y): flattened 8x8 images in [0, 1], 80 / 20 split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    split = int(0.8 * len(labels))
    return images[order[:split]], labels[order[:split]], images[order[split:]], labels[order[split:]]


class KroneckerShampoo(torch.optim.Optimizer):
    """SGD along L^(-1/4) G R^(-1/4) for 2-D parameters (plain SGD for the rest).

    inverse_fourth_root: a function of a batch (B, n, n) of statistics returning (A + eps I)^(-1/4);
    refresh: recompute the roots every this many steps (they are reused in between).
    """

    def __init__(self, params, inverse_fourth_root, lr: float = 0.05, eps: float = 1e-4, refresh: int = 5):
        super().__init__(params, dict(lr=lr))
        self.inverse_fourth_root, self.eps, self.refresh = inverse_fourth_root, eps, refresh
        self.steps, self.root_seconds = 0, 0.0

    def _matrices(self):
        return [p for group in self.param_groups for p in group["params"] if p.grad is not None and p.dim() == 2]

    @torch.no_grad()
    def step(self):
        for p in self._matrices():
            state = self.state[p]
            if not state:
                state["L"] = torch.zeros(p.shape[0], p.shape[0])
                state["R"] = torch.zeros(p.shape[1], p.shape[1])
            state["L"] += p.grad @ p.grad.T
            state["R"] += p.grad.T @ p.grad
        if self.steps % self.refresh == 0:
            self._refresh_roots()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.dim() == 2:
                    state = self.state[p]
                    p -= group["lr"] * state["L_root"] @ p.grad @ state["R_root"]
                else:
                    p -= group["lr"] * p.grad
        self.steps += 1

    def _refresh_roots(self):
        """All factors of one size in one batched call."""
        factors = [(p, side) for p in self._matrices() for side in ("L", "R")]
        by_size = {}
        for p, side in factors:
            by_size.setdefault(self.state[p][side].shape[0], []).append((p, side))
        started = time.perf_counter()
        for group in by_size.values():
            stats = torch.stack([self.state[p][side] for p, side in group])
            roots = self.inverse_fourth_root(stats, self.eps)
            for (p, side), root in zip(group, roots):
                self.state[p][side + "_root"] = root
        self.root_seconds += time.perf_counter() - started


def eigh_fourth_root(stats: torch.Tensor, eps: float) -> torch.Tensor:
    return eigh_inverse_root(stats + eps * torch.eye(stats.shape[-1]), 4)


def train(inverse_fourth_root, steps: int, data, seed: int = 0):
    train_x, train_y, test_x, test_y = data
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))
    optimizer = KroneckerShampoo(model.parameters(), inverse_fourth_root)
    batches = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        index = torch.randint(0, len(train_y), (64,), generator=batches)
        loss = nn.functional.cross_entropy(model(train_x[index]), train_y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        accuracy = (model(test_x).argmax(1) == test_y).float().mean().item()
    statistics = [optimizer.state[p][side] for p in optimizer._matrices() for side in "LR"]
    return losses, accuracy, optimizer.root_seconds, statistics, optimizer.eps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--method", default="scaled_ns", help="tritonsqrt method (auto, scaled_ns, eigh, ...)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny matrices: threads only add overhead on a shared machine
    data = load_digits_split()

    def ours(stats, eps):
        return ts.inv_root(stats, 4, eps=eps, method=args.method)

    results = {name: train(fn, args.steps, data) for name, fn in
               ((f"inv_root(p=4, method={args.method})", ours), ("eigh (float32)", eigh_fourth_root))}
    for name, (losses, accuracy, seconds, _, _) in results.items():
        print(f"{name:<34} loss {losses[0]:.3f} -> {sum(losses[-20:]) / 20:.3f} (mean of the last 20 steps), "
              f"test accuracy {accuracy:.1%}, {seconds:.2f} s in roots")
    # Both roots of the first run's final statistics, against float64 eigh of the same matrices.
    _, _, _, statistics, eps = next(iter(results.values()))
    worst = {"inv_root": 0.0, "eigh (float32)": 0.0}
    for stats in statistics:
        exact = eigh_inverse_root(stats.double() + eps * torch.eye(stats.shape[-1], dtype=torch.float64), 4)
        for name, root in (("inv_root", ours(stats[None], eps)[0]), ("eigh (float32)", eigh_fourth_root(stats, eps))):
            error = torch.linalg.matrix_norm(root.double() - exact) / torch.linalg.matrix_norm(exact)
            worst[name] = max(worst[name], float(error))
    kappa = max(float(torch.linalg.cond(s.double() + eps * torch.eye(s.shape[-1], dtype=torch.float64)))
                for s in statistics)
    print(f"final statistics (condition number up to {kappa:.1e}): relative error of A^(-1/4) against float64 eigh: "
          + ", ".join(f"{name} {error:.1e}" for name, error in worst.items()))
    return 0

if __name__ == "__main__":
    sys.exit(main())
