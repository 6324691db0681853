"""Coefficients of every method, generated in float64 from their definitions.

Nothing here is pasted from a paper: the Taylor and Padé coefficients come from the binomial
series of sqrt(1 - z), and the scaled Newton–Schulz schedule from the closed-form minimax
odd cubic on an interval (the per-step optimal polynomials of the "Polar Express" idea,
Amsel et al. 2025, specialised to degree 3).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction


def _power_series(exponent: float, degree: int) -> tuple[float, ...]:
    """Taylor coefficients c_k of (1 - z)^exponent, k = 0..degree: c_k = binom(exponent, k) (-1)^k,
    by the ratio of consecutive terms, c_k / c_(k-1) = (k - 1 - exponent) / k."""
    coeffs = [1.0]
    for k in range(1, degree + 1):
        coeffs.append(coeffs[-1] * (k - 1 - exponent) / k)
    return tuple(coeffs)


@functools.lru_cache(maxsize=None)
def sqrt_taylor(degree: int) -> tuple[float, ...]:
    """Taylor coefficients c_k of sqrt(1 - z) = sum_k c_k z^k, k = 0..degree."""
    return _power_series(0.5, degree)


@functools.lru_cache(maxsize=None)
def inv_sqrt_taylor(degree: int) -> tuple[float, ...]:
    """Taylor coefficients of (1 - z)^(-1/2) = sum_k binom(2k, k) / 4^k z^k."""
    return _power_series(-0.5, degree)


@functools.lru_cache(maxsize=None)
def sqrt_pade(num_degree: int, den_degree: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """[num_degree / den_degree] Padé approximant of sqrt(1 - z): returns (p, q) with q[0] = 1.

    P(z) - Q(z) sqrt(1 - z) must vanish to order num_degree + den_degree; the linear
    conditions are solved in exact rational arithmetic, so [5, 5] gives the dyadic values
    of the seed paper exactly.
    """
    m, n = num_degree, den_degree
    c = [Fraction(1)]
    for k in range(1, m + n + 1):
        c.append(c[-1] * (Fraction(2 * k - 3, 2)) / k)
    coef = lambda i: c[i] if i >= 0 else Fraction(0)  # noqa: E731
    # Rows k = m+1 .. m+n: sum_{j=1..n} q_j c_{k-j} = -c_k.
    rows = [[coef(k - j) for j in range(1, n + 1)] + [-c[k]] for k in range(m + 1, m + n + 1)]
    for col in range(n):  # Gauss–Jordan with exact pivots
        pivot = next(r for r in range(col, n) if rows[r][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        rows[col] = [v / rows[col][col] for v in rows[col]]
        for r in range(n):
            if r != col and rows[r][col] != 0:
                factor = rows[r][col]
                rows[r] = [v - factor * w for v, w in zip(rows[r], rows[col])]
    q = [Fraction(1)] + [rows[j][n] for j in range(n)]
    p = [sum(q[j] * coef(k - j) for j in range(0, min(k, n) + 1)) for k in range(m + 1)]
    return tuple(float(v) for v in p), tuple(float(v) for v in q)


def minimax_odd_cubic(lower: float, upper: float) -> tuple[float, float, float, float]:
    """Best odd cubic x -> a x + b x^3 approximating 1 on [lower, upper] in the max norm.

    Equioscillation at lower, x*, upper with p(lower) = p(upper) = 1 - E and p(x*) = 1 + E.
    Returns (a, b, new_lower, new_upper), the image interval being [1 - E, 1 + E].
    """
    k = lower * lower + lower * upper + upper * upper
    x_star = math.sqrt(k / 3.0)
    beta = 2.0 / ((2.0 * k / 3.0) * x_star + k * lower - lower**3)
    a, b = beta * k, -beta
    low_value = a * lower + b * lower**3
    high_value = a * x_star + b * x_star**3
    return a, b, low_value, high_value


# Unit roundoff by dtype name; the schedule stops once the interval is this close to 1.
_UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53}

# Lower end of each designed interval, relative to its upper end (see scaled_ns_schedule).
CUSHION = 0.1


@functools.lru_cache(maxsize=None)
def scaled_ns_schedule(
    lower: float, dtype: str = "float32", cushion: float = CUSHION, max_steps: int = 60
) -> tuple[tuple[float, float], ...]:
    """Per-step (a, b) of the scaled Newton–Schulz iteration x -> x (a + b x^2).

    Takes every x in [lower, 1] to within a few units of roundoff of 1 in `dtype`. Each step
    is the minimax cubic for the interval the previous steps left, except that its lower end
    is raised to at least `cushion` times the upper end: the fully greedy cubic maps x = 1 to
    nearly 0, and rounding errors relative to the rest of the matrix then swamp that part.
    """
    if not 0.0 < lower <= 1.0:
        raise ValueError(f"scaled_ns_schedule: lower must be in (0, 1], got {lower}")
    tol = 2.0 * _UNIT_ROUNDOFF[dtype]
    # The Frobenius (upper) bound is itself rounded: design the first cubic for values a
    # little above 1.
    lo, hi = lower, 1.0 + 1e-3
    steps = []
    for _ in range(max_steps):
        if hi - lo < tol:
            break
        a, b, _, _ = minimax_odd_cubic(max(lo, cushion * hi), hi)
        cubic = lambda x: a * x + b * x**3  # noqa: E731
        x_star = math.sqrt(-a / (3.0 * b))
        images = [cubic(lo), cubic(hi)] + ([cubic(x_star)] if lo < x_star < hi else [])
        lo, hi = min(images), max(images)
        steps.append((a, b))
    return tuple(steps)
