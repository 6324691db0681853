"""Small device-resident coefficient tables shared by the kernel launchers."""

from __future__ import annotations

import torch

_TABLES: dict = {}


def coefficient_table(rows, dtype: torch.dtype, device) -> torch.Tensor:
    """A (k, 2) table of (a, b) rows on `device`, copied from the host once and cached.

    Later calls copy nothing, so CUDA-graph capture works after one warm-up call (a host to
    device copy is not allowed while a stream is being captured).
    """
    key = (tuple((float(x), float(y)) for x, y in rows), dtype, torch.device(device))
    table = _TABLES.get(key)
    if table is None:
        table = torch.tensor(key[0], dtype=dtype).reshape(-1, 2).to(device)
        _TABLES[key] = table
    return table
