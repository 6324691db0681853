"""`tritonsqrt compile-report --model`: compile what the bench cases launch, count the SASS, and
print the kernels' mix and occupancy and each case's modeled time (docs/perf-model.md)."""

from __future__ import annotations

import dataclasses

from . import case_model, compile_report, perf_model, report_table
from .hardware import gpus_for

from tritonsqrt.constants import PRECISIONS
# Shown in the kernel table without --verbose: the fused kernels at 64, the tiled ones at 1024.
SHOWN_SIZES = (64, 1024)


def model_rows(arch: str, jobs: int, dump_dir: str | None = None, progress: bool = True) -> list[dict]:
    """Compiled rows (with their per-GPU `model`) of every kernel the bench cases launch on `arch`."""
    from tritonsqrt.perf.cases import CASES

    listed = []
    for n in sorted({case.n for case in CASES}):
        for precision in PRECISIONS:
            for module_name, index, spec in case_model.needed_specs(n, precision):
                listed.append((module_name, n, "float32", index, spec))
    rows = compile_report.compile_listed(listed, compile_report.ARCHES[arch], jobs, progress, dump_dir,
                                         with_sass=True)
    for row in rows:
        if row["sass"] and not row["error"]:
            steps = 1 if perf_model.is_tiled(row) else case_model.steps_for(row)
            row["model"] = [perf_model.kernel_model(row, gpu, row["n"], steps) for gpu in gpus_for(arch)]
    return rows


def run_model(archs: list[str], jobs: int, dump_dir: str | None, verbose: bool) -> tuple[list[dict], dict]:
    """Print the model for each arch; returns (rows, extra JSON: cases and GPU figures)."""
    rows, cases, gpus = [], [], []
    for arch in archs:
        arch_rows = model_rows(arch, jobs, dump_dir)
        arch_gpus = gpus_for(arch)
        arch_cases = case_model.bench_rows(arch_rows, arch_gpus, PRECISIONS)
        shown = arch_rows if verbose else [row for row in arch_rows if row["n"] in SHOWN_SIZES]
        print(f"\n{arch}: kernels the bench cases launch, counted from the SASS (per product: instructions per "
              f"warp of one matrix product per program; programs/SM: CUDA occupancy rule; issue cycles: counted "
              f"instructions x warps / 4 schedulers; 'modeled cyc' is modeled)")
        print(report_table.model_kernel_table(shown))
        print(f"\n{arch}: modeled time of each bench case (all figures modeled, method auto = scaled_ns on the "
              f"GPU; floor: published rates of the precision, perf/floor.py)")
        print(report_table.model_case_table(arch_cases, list(PRECISIONS)))
        rows += arch_rows
        cases += arch_cases
        gpus += [dataclasses.asdict(gpu) for gpu in arch_gpus]
    return rows, {"model_cases": cases, "gpus": gpus, "note": "every time and cycle figure is modeled"}
