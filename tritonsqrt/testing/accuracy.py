"""The accuracy table: targets of the default method and the measurement behind `check`."""

from __future__ import annotations

import torch

from .. import api, roots
from ..perf import competitors
from . import measure, random_symmetric, spd_with_condition

# kappa -> (sqrtm, inv_sqrtm, sqrtm gradient, inv_sqrtm gradient): what method="auto" must reach
# (worst case, relative Frobenius error against float64 eigh). float64: 1e-10 up to 1e4.
TARGETS = {
    torch.float32: {1e2: (5e-6, 1e-5, 1e-5, 3e-5), 1e4: (2e-5, 3e-4, 2e-4, 1e-3), 1e6: (2e-4, 3e-2, 2e-2, 5e-2)},
    torch.float64: {1e2: (1e-10,) * 4, 1e4: (1e-10,) * 4},
}


def op_for(method: str, inverse: bool, p: int = 2, precision: str = "ieee"):
    """The function of A that `method` computes ("official" is the seed paper's code);
    A^(1/p) or A^(-1/p), by `tritonsqrt.root` / `inv_root` for p other than 2. `precision`
    other than "ieee" is passed on (the torch path emulates it: `tritonsqrt.numerics.emulation`)."""
    extra = {} if precision == "ieee" else {"precision": precision}
    if method == "official":
        if p != 2:
            raise ValueError(f"method 'official' computes square roots only, not p = {p}")
        return lambda a: competitors.official_lya(a, "mpa", inverse)
    if p != 2:
        fn = roots.inv_root if inverse else roots.root
        return lambda a: fn(a, p, method=method, **extra)
    fn = api.inv_sqrtm if inverse else api.sqrtm
    return lambda a: fn(a, method=method, **extra)


def accuracy_table(methods, sizes, batch, dtype, device, kappas=None, p: int = 2, precision: str = "ieee",
                   progress=None):
    """Rows of worst errors per (method, kappa); for p != 2 the four columns are those of
    A^(1/p), A^(-1/p) and their gradients, under the same keys. progress(method, kappa), if
    given, is called before each row is measured."""
    kappas = kappas or list(TARGETS[dtype])
    for method in methods:
        for kappa in kappas:
            worst = [0.0] * 4
            if progress is not None:
                progress(method, kappa)
            for n in sizes:
                a = spd_with_condition(batch, n, kappa, seed=n, dtype=dtype, device=device)
                g = random_symmetric(batch, n, dtype=dtype, device=device)
                for slot, inverse in ((0, False), (1, True)):
                    fwd, bwd = measure(op_for(method, inverse, p, precision), a, g, inverse, p)
                    worst[slot] = max(worst[slot], fwd)
                    worst[slot + 2] = max(worst[slot + 2], bwd)
            yield {"method": method, "kappa": kappa, "sqrtm": worst[0], "inv_sqrtm": worst[1],
                   "grad_sqrtm": worst[2], "grad_inv_sqrtm": worst[3]}
