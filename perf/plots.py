"""PNG figures of a benchmark run (matplotlib is imported only here, and only when asked).

- time per matrix against n, one line per implementation, one panel per (op, mode);
- error against time for one case, one point per implementation, so that a fast but
  inaccurate method is seen as such.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib  # only this module needs it; bench imports this module only for --plot

_MODES = ("forward", "forward+backward")


def _pyplot():
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _style(provider: str, providers: list[str]) -> dict:
    """One colour per provider in every figure; circles for tritonsqrt, squares for the
    competitors, triangles for torch.compile."""
    import matplotlib.cm

    colours = matplotlib.colormaps["tab20"] if hasattr(matplotlib, "colormaps") else matplotlib.cm.get_cmap("tab20")
    marker = "o" if provider.startswith("tritonsqrt:") else ("^" if provider.startswith("compiled:") else "s")
    return {"color": colours(providers.index(provider) % 20), "marker": marker}


def _plain_ticks(ax) -> None:
    """x tick labels as plain numbers (32, 64, 0.5), not powers of ten."""
    from matplotlib.ticker import FormatStrFormatter

    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))


def _timed(rows):
    return [r for r in rows if r.get("median_ms") is not None]


def time_vs_n(rows: list[dict], path: Path, title: str) -> Path | None:
    """log-log time per matrix (call time / batch) against n; float32 cases only.

    Where several cases share an n (ZCA with B = 1 and B = 64), the one with the largest
    batch stands for that n: per-matrix time is a throughput figure.
    """
    largest = {}
    for row in _timed(rows):
        if row["dtype"] != "float32":
            continue
        key = (row["provider"], row["op"], row["mode"], row["n"])
        if key not in largest or row["batch"] > largest[key]["batch"]:
            largest[key] = row
    rows = list(largest.values())
    panels = sorted({(r["op"], r["mode"]) for r in rows}, key=lambda p: (p[0], _MODES.index(p[1])))
    if not panels:
        return None
    plt = _pyplot()
    columns = min(2, len(panels))
    lines = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(lines, columns, figsize=(6.0 * columns, 4.4 * lines), squeeze=False)
    providers = sorted({r["provider"] for r in rows})
    for ax, (op, mode) in zip(axes.flat, panels):
        for provider in providers:
            points = sorted((r["n"], r["median_ms"] / r["batch"]) for r in rows
                            if r["provider"] == provider and r["op"] == op and r["mode"] == mode)
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], label=provider, **_style(provider, providers))
        ax.set_xscale("log", base=2)
        _plain_ticks(ax)
        ax.set_yscale("log")
        ax.set_xlabel("n (largest batch at each n)")
        ax.set_ylabel("median ms per matrix (call / batch)")
        ax.set_title(f"{op}, {mode}")
        ax.grid(True, which="both", alpha=0.3)
    spare = list(axes.flat)[len(panels):]
    for ax in spare:
        ax.axis("off")
    # One legend for every provider of every panel (a panel shows only the providers of its op).
    entries = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    labels = sorted(entries)
    if spare:
        spare[0].legend([entries[label] for label in labels], labels, fontsize=8, loc="center")
    else:
        axes.flat[0].legend([entries[label] for label in labels], labels, fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def error_vs_time(rows: list[dict], case: str, path: Path, title: str) -> Path | None:
    """One panel per (op, mode) of `case`: worst relative error (gradient for fwd+bwd) against time."""
    rows = [r for r in _timed(rows) if r["case"] == case]
    panels = sorted({(r["op"], r["mode"]) for r in rows}, key=lambda p: (p[0], _MODES.index(p[1])))
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), squeeze=False)
    providers = sorted({r["provider"] for r in rows})
    for ax, (op, mode) in zip(axes[0], panels):
        which = "grad_error" if mode == "forward+backward" else "fwd_error"
        for row in rows:
            if row["op"] == op and row["mode"] == mode and row.get(which) is not None:
                style = _style(row["provider"], providers)
                ax.scatter(row["median_ms"], max(row[which], 1e-17), s=36, label=row["provider"],
                           color=style["color"], marker=style["marker"])
        ax.set_xscale("log")
        _plain_ticks(ax)
        ax.legend(fontsize=7)
        ax.set_yscale("log")
        ax.set_xlabel("median ms per call")
        ax.set_ylabel("worst relative error vs float64 eigh" + (" (gradient)" if which == "grad_error" else ""))
        ax.set_title(f"{case}: {op}, {mode}")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
