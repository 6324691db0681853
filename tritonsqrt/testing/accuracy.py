"""The accuracy table: targets of the default method and the measurement behind `check`."""

from __future__ import annotations

import torch

from .. import api, roots
from ..perf import competitors
from . import measure, random_symmetric, spd_with_condition

# kappa -> (sqrtm, inv_sqrtm, sqrtm gradient, inv_sqrtm gradient): what method="auto" must reach
# (worst case, relative Frobenius error against float64 eigh). float64: 1e-10 up to 1e4. Set on the
# log-spaced spectrum; clustered spectra miss the float32 ones (README "Accuracy", the wide check).
TARGETS = {
    torch.float32: {1e2: (5e-6, 1e-5, 1e-5, 3e-5), 1e4: (2e-5, 3e-4, 2e-4, 1e-3), 1e6: (2e-4, 3e-2, 2e-2, 5e-2)},
    torch.float64: {1e2: (1e-10,) * 4, 1e4: (1e-10,) * 4},
}


def op_for(method: str, inverse: bool, p: int = 2, precision: str | None = None):
    """The function of A that `method` computes ("official" is the seed paper's code);
    A^(1/p) or A^(-1/p), by `tritonsqrt.root` / `inv_root` for p other than 2. `precision`,
    if given, is passed on (the torch path emulates it: `tritonsqrt.numerics.emulation`); None
    leaves the library's default (`tritonsqrt.constants.default_precision`)."""
    extra = {} if precision is None else {"precision": precision}
    if method == "official":
        if p != 2:
            raise ValueError(f"method 'official' computes square roots only, not p = {p}")
        return lambda a: competitors.official_lya(a, "mpa", inverse)
    if p != 2:
        fn = roots.inv_root if inverse else roots.root
        return lambda a: fn(a, p, method=method, **extra)
    fn = api.inv_sqrtm if inverse else api.sqrtm
    return lambda a: fn(a, method=method, **extra)


COLUMNS = ("sqrtm", "inv_sqrtm", "grad_sqrtm", "grad_inv_sqrtm")


def draw_inputs(n: int, kappa: float, batch: int, seed_index: int, spectrum_name: str, dtype, device):
    """(A, G) of one draw. Draw 0 of the log-spaced spectrum is the matrix `check` has always
    used (seed n, G of seed 1); draw s takes seeds n + 1000 s and 1 + 1000 s."""
    a = spd_with_condition(batch, n, kappa, seed=n + 1000 * seed_index, dtype=dtype, device=device,
                           spectrum_name=spectrum_name)
    g = random_symmetric(batch, n, seed=1 + 1000 * seed_index, dtype=dtype, device=device)
    return a, g


def accuracy_table(methods, sizes, batch, dtype, device, kappas=None, p: int = 2, precision: str | None = None,
                   progress=None, seeds: int = 1, spectra=("logspaced",)):
    """Rows of worst errors per (method, kappa) over the sizes, `seeds` independent draws and the
    spectrum shapes (`tritonsqrt.testing.SPECTRA`); for p != 2 the four columns are those of
    A^(1/p), A^(-1/p) and their gradients, under the same keys. Each row also has "worst_at":
    per column, the (n, spectrum, draw) of its worst error. progress(method, kappa), if given,
    is called before each row is measured."""
    kappas = kappas or list(TARGETS[dtype])
    for method in methods:
        for kappa in kappas:
            if progress is not None:
                progress(method, kappa)
            worst, worst_at = [None] * 4, [None] * 4
            for spectrum_name in spectra:
                for n in sizes:
                    for seed_index in range(seeds):
                        a, g = draw_inputs(n, kappa, batch, seed_index, spectrum_name, dtype, device)
                        for slot, error in enumerate(_errors(method, a, g, p, precision)):
                            if _is_worse(error, worst[slot]):
                                worst[slot], worst_at[slot] = error, (n, spectrum_name, seed_index)
            yield {"method": method, "kappa": kappa, **dict(zip(COLUMNS, worst)),
                   "worst_at": dict(zip(COLUMNS, worst_at))}


def _is_worse(error: float, current: float | None) -> bool:
    """NaN is worse than any number (a NaN result is a failure, not a missing value)."""
    if current is None:
        return True
    if current != current:
        return False
    return error != error or error > current


def _errors(method, a, g, p, precision) -> tuple[float, float, float, float]:
    """(forward, inverse, forward gradient, inverse gradient) worst errors over the batch."""
    fwd, bwd = measure(op_for(method, False, p, precision), a, g, False, p)
    inv_fwd, inv_bwd = measure(op_for(method, True, p, precision), a, g, True, p)
    return fwd, inv_fwd, bwd, inv_bwd
