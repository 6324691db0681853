"""Text output of `tritonsqrt compile-report`: the compact table, and the model's two tables."""

from __future__ import annotations

import re

MIX_COLUMNS = ("FFMA", "FADD/FMUL", "DFMA", "LDS", "STS", "LDG", "STG", "BAR")


def _grid(cells: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    text = [" | ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip() for line in cells]
    text.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(text)


def kernel_family(name: str) -> str:
    """"roots_forward[ns]", "lyapunov_backward_streamed", "tiled.product": a kernel without its config."""
    base = name.split("[", 1)[0]
    if base == "roots_forward":
        return f"roots_forward[{name.split('[', 1)[1].split(',', 1)[0]}]"
    return base


def compact_table(rows: list[dict]) -> str:
    """One line per (arch, n, dtype, kernel family, precision): the worst of its configs
    (most registers, spill bytes stored + loaded, shared memory), and how many fit."""
    groups: dict = {}
    for row in rows:
        key = (row["arch"], row["n"], row["dtype"], kernel_family(row["kernel"]), row.get("precision", "-"))
        groups.setdefault(key, []).append(row)
    cells = [["arch", "n", "dtype", "kernel", "precision", "cfgs", "warps", "regs", "spill B", "smem KB", "fit"]]
    for (arch, n, dtype, family, precision), group in groups.items():
        ok = [row for row in group if not row["error"]]
        cells.append([arch, str(n), dtype, family, precision, str(len(group)),
                      ",".join(str(w) for w in sorted({row["num_warps"] for row in group})),
                      str(max((row["registers"] for row in ok), default="-")),
                      str(max((row["spill_stores"] + row["spill_loads"] for row in ok), default="-")),
                      str(max((round(row["shared_bytes"] / 1024) for row in ok), default="-")),
                      f"{sum(row['fits'] for row in group)}/{len(group)}"])
    return _grid(cells)


def _mma(per_product: dict) -> str:
    found = [f"{count:g} {key}" for key, count in per_product.items() if key.startswith(("HMMA.", "HGMMA."))]
    return ", ".join(found) or "0"


def model_kernel_table(rows: list[dict]) -> str:
    """Per compiled kernel and GPU: resources (counted), occupancy, mix per product (counted),
    cycles per product (issue: counted instructions / 4 schedulers; bound: modeled)."""
    cells = [["arch", "n", "kernel", "GPU", "regs", "spill B", "smem KB", "warps", "programs/SM (limit)",
              "per product: " + " ".join(MIX_COLUMNS), "MMA", "instr", "issue cyc", "modeled cyc (bound)"]]
    for row in rows:
        for model in _merge_same(row.get("model", [])):
            mix = model["per_product"]
            cells.append([row["arch"], str(row["n"]), _short(row["kernel"]), model["gpu"], str(row["registers"]),
                          str(row["spill_stores"] + row["spill_loads"]), f"{row['shared_bytes'] / 1024:.0f}",
                          str(row["num_warps"]), f"{model['programs_per_sm']} ({model['occupancy_limit']})",
                          " ".join(f"{mix.get(c, 0):g}" for c in MIX_COLUMNS), _mma(mix),
                          f"{mix.get('instructions', 0):g}", f"{model['issue_cycles_per_product'] or 0:g}",
                          f"{model['modeled_cycles_per_product'] or 0:g} ({model['product_limited_by']})"])
    return _grid(cells)


def _merge_same(models: list[dict]) -> list[dict]:
    """One entry for GPUs whose figures are all equal (H100 SXM and H200 share the GH100 chip)."""
    merged: list[dict] = []
    for model in models:
        same = next((m for m in merged if {k: v for k, v in m.items() if k != "gpu"} ==
                     {k: v for k, v in model.items() if k != "gpu"}), None)
        if same is None:
            merged.append(dict(model))
        else:
            same["gpu"] += ", " + model["gpu"]
    return merged


def _short(kernel: str) -> str:
    """Drop the flags every variant shares, keep what tells configs apart."""
    return re.sub(r"(HAS_GRAD_\w+|STORE_\w+|SAVE_\w+|UPDATE_\w+|WRITE_\w+|UNSCALE|\w+_POLY)=1,", "", kernel)


def _us(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:.1f}"


def model_case_table(case_rows: list[dict], precisions: list[str]) -> str:
    """Per bench case, op, mode and GPU: modeled time and its ratio to the modeled floor, per precision."""
    by_key: dict = {}
    for row in case_rows:
        key = (row["case"], f"B={row['batch']} n={row['n']}", row["op"], row["mode"], row["gpu"])
        by_key.setdefault(key, {})[row["precision"]] = row
    cells = [["case", "shape", "op", "mode", "GPU", "launches"] +
             [f"{p}: modeled us (x modeled floor)" for p in precisions]]
    for key, per in by_key.items():
        first = next(iter(per.values()))
        cells.append(list(key) + [str(first["launches"])] +
                     [f"{_us(per[p]['modeled_us'])} ({per[p]['ratio_to_floor']:g}x)" if p in per else "-"
                      for p in precisions])
    return _grid(cells)
