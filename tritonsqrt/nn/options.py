"""Validation shared by the layers: every option is checked when the layer is built, not at its
first forward, and an unknown keyword is an error that names it."""

from __future__ import annotations

import math
import numbers

import torch

# Keywords of tritonsqrt.sqrtm / inv_sqrtm that a layer passes through (method and eps are its own).
ROOT_OPTIONS = ("backend", "degree", "iterations", "max_condition", "precision")


def check_root_options(layer: str, method: str, root_options: dict, n: int = 2) -> dict:
    """Reject unknown keywords and bad values of the root options, as the op would at its first call."""
    unknown = sorted(set(root_options) - set(ROOT_OPTIONS))
    if unknown:
        raise TypeError(f"{layer}: unexpected keyword argument {unknown[0]!r} "
                        f"(root options: {', '.join(ROOT_OPTIONS)})")
    from ..plan import BACKENDS, resolve

    backend = root_options.get("backend", "auto")
    if backend not in BACKENDS:
        raise ValueError(f"{layer}: backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    probe = torch.empty(0, n, n)
    options = {key: value for key, value in root_options.items() if key != "backend"}
    try:  # the plan's own checks; on the torch backend so that no device or kernel is needed here
        resolve(probe, method, "torch", **options)
    except ValueError as error:
        raise ValueError(f"{layer}: {error}") from None
    return dict(root_options)


def check_eps(layer: str, eps, name: str = "eps") -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"{layer}: {name} must be a finite number >= 0, got {eps!r}")
    return float(eps)


def check_momentum(layer: str, momentum) -> float | None:
    if momentum is None:
        return None
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1:
        raise ValueError(f"{layer}: momentum must be None or a number in [0, 1], got {momentum!r}")
    return float(momentum)


def check_positive_int(layer: str, value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
    return int(value)


def options_repr(options: dict) -> str:
    return "".join(f", {key}={value!r}" for key, value in options.items())
