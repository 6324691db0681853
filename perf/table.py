"""The stdout table of a benchmark run: one block per (case, op, mode), fastest first."""

from __future__ import annotations

import itertools

_MODE = {"forward": "fwd", "forward+backward": "fwd+bwd"}
_DTYPE = {"float32": "f32", "bfloat16": "bf16", "float16": "f16", "float64": "f64"}


def _ms(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _err(value) -> str:
    return "-" if value is None else f"{value:.1e}"


def format_rows(rows: list[dict], floor_label: str = "x floor") -> str:
    """Aligned text table; rows of one (case, op, mode) together, sorted by median time."""
    header = ["case", "B", "n", "dtype", "op", "mode", "provider", "backend", "median ms", "p20-p80 ms",
              "graph ms", "fwd err", "grad err", floor_label, "note"]
    lines = [header]
    key = lambda r: (r["case"], r["op"], r["mode"])  # noqa: E731
    order = {}
    for row in rows:  # keep the run's case order, sort within a block
        order.setdefault(key(row), len(order))
    for _, block in itertools.groupby(sorted(rows, key=lambda r: order[key(r)]), key=key):
        block = sorted(block, key=lambda r: r.get("median_ms") or float("inf"))
        for row in block:
            spread = "-" if row.get("p20_ms") is None else f"{_ms(row['p20_ms'])}-{_ms(row['p80_ms'])}"
            ratio = row.get("floor_ratio")
            lines.append([row["case"], str(row["batch"]), str(row["n"]), _DTYPE.get(row["dtype"], row["dtype"]),
                          row["op"], _MODE.get(row["mode"], row["mode"]), row["provider"], row.get("backend") or "-",
                          _ms(row.get("median_ms")), spread, _ms(row.get("graph_median_ms")),
                          _err(row.get("fwd_error")), _err(row.get("grad_error")),
                          "-" if ratio is None else f"{ratio:.3g}", row.get("note") or ""])
        lines.append(None)
    widths = [max(len(line[i]) for line in lines if line) for i in range(len(header))]
    text = []
    for line in lines:
        if line is None:
            text.append("")
            continue
        cells = [cell.ljust(width) if i < 8 or i == len(header) - 1 else cell.rjust(width)
                 for i, (cell, width) in enumerate(zip(line, widths))]
        text.append("  ".join(cells).rstrip())
    return "\n".join(text).rstrip() + "\n"


def format_markdown(rows: list[dict]) -> str:
    """Markdown, providers down and (case, op, mode) across: "median ms (error)" per cell,
    the error being the gradient's for forward+backward and the root's for forward."""
    timed = [r for r in rows if r.get("median_ms") is not None]
    blocks, providers = [], []
    for row in timed:
        block = (row["case"], row["op"], row["mode"])
        if block not in blocks:
            blocks.append(block)
        if row["provider"] not in providers:
            providers.append(row["provider"])
    cell = {(r["case"], r["op"], r["mode"], r["provider"]): r for r in timed}
    shapes = {(r["case"], r["op"], r["mode"]): f"B={r['batch']} n={r['n']} {_DTYPE.get(r['dtype'], r['dtype'])}"
              for r in timed}
    header = ["provider"] + [f"{case} {op} {_MODE[mode]} ({shapes[(case, op, mode)]})" for case, op, mode in blocks]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for provider in providers:
        cells = [provider]
        for case, op, mode in blocks:
            row = cell.get((case, op, mode, provider))
            if row is None:
                cells.append("-")
                continue
            error = row.get("grad_error") if mode == "forward+backward" else row.get("fwd_error")
            cells.append(f"{_ms(row['median_ms'])} ({_err(error)})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
