"""`tritonsqrt bench`: time tritonsqrt against every alternative, with accuracy and floor.

Prints a table, writes one JSON file per run to perf/results/ (or --out), and with --plot
the figures. On CPU the large cases run scaled down and the output says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from . import cases as cases_mod
from . import providers as providers_mod
from . import modeled, records
from tritonsqrt.commands import args as arg_types
from .floor import measure_rates
from tritonsqrt.commands.progress import Progress
from .runner import Settings, count_items, run, schedule
from .table import format_markdown, format_rows

# --quick: our default here and on a GPU, and the three competitors a reader compares with
# (the gate's anchor among them); the other methods have their rows in a full run.
QUICK_PROVIDERS = ("tritonsqrt:auto", "tritonsqrt:scaled_ns", "eigh-autograd", "official:mpa-lya", "isqrt-cov:ns5")
QUICK_TIME_LIMIT_S = 60.0


def _split(values):
    """Accept both `--cases a b` and `--cases a,b`."""
    if not values:
        return None
    return [part for value in values for part in value.split(",") if part]


def add_arguments(parser) -> None:
    parser.add_argument("--device", type=arg_types.device, default=None, help="default: cuda if present, else cpu")
    parser.add_argument("--quick", action="store_true",
                        help=f"cases {', '.join(cases_mod.QUICK)}; providers {', '.join(QUICK_PROVIDERS)}; "
                             f"short timings; 1 CPU thread and --time-limit {QUICK_TIME_LIMIT_S:.0f} unless given "
                             "(37 s measured on 2 shared CPU cores)")
    parser.add_argument("--cases", nargs="+", metavar="NAME", help="case names or wildcards (see --list)")
    parser.add_argument("--providers", nargs="+", metavar="NAME",
                        help="provider names or wildcards, e.g. 'tritonsqrt:*'")
    parser.add_argument("--ops", nargs="+", choices=cases_mod.OPS + cases_mod.ROOT_OPS)
    parser.add_argument("--modes", nargs="+", choices=cases_mod.MODES)
    parser.add_argument("--compile-cases", nargs="+", metavar="NAME",
                        help="cases the torch.compile providers run on (default: all; compiling takes a while)")
    parser.add_argument("--full-size", action="store_true", help="run the GPU shapes on CPU too (slow)")
    parser.add_argument("--budget", type=arg_types.positive_float, default=None,
                        help="CPU seconds of samples per timing (default 0.4, quick 0.15)")
    parser.add_argument("--time-limit", type=arg_types.positive_float, default=None,
                        help="skip the remaining timings after this many seconds")
    parser.add_argument("--threads", type=arg_types.positive_int, default=None,
                        help="CPU threads for torch (default: torch's; --quick: 1)")
    parser.add_argument("--no-graphs", action="store_true", help="skip the CUDA-graph variant on a GPU")
    parser.add_argument("--out", default=None, help="results folder (default: perf/results of this checkout)")
    parser.add_argument("--plot", action="store_true", help="also write PNG figures (needs matplotlib)")
    parser.add_argument("--plot-dir", default=None, help="folder for the figures (default: the results folder)")
    parser.add_argument("--plot-from", type=arg_types.json_file("rows", "device", "cases", "created"), metavar="JSON",
                        help="only draw the figures of a stored run")
    parser.add_argument("--plot-case", default=None, help="case of the error-against-time figure (default: the first)")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument("--list", action="store_true", help="list cases and providers and exit")
    parser.add_argument("--model", metavar="JSON", default=None,
                        help="modeled times from `tritonsqrt compile-report --model --json JSON`: on a GPU the "
                             "model knows, rows of the kernels carry the modeled figure and its error")


def _list() -> int:
    print("cases (GPU shape; CPU shape where scaled):")
    for case in cases_mod.CASES:
        cpu = f"  [CPU: B={case.cpu_shape[0]} n={case.cpu_shape[1]}]" if case.cpu_shape else ""
        print(f"  {case.name:<16} B={case.batch:<5} n={case.n:<5} {case.dtype:<9} kappa={case.kappa:g} "
              f"{'/'.join(case.ops)} {'/'.join(case.modes)}  {case.user}{cpu}")
    print("providers:")
    for provider in providers_mod.PROVIDERS:
        print(f"  {provider.name:<22} {provider.kind}")
    return 0


def _figures(payload: dict, folder: Path, plot_case: str | None) -> None:
    """Write the two figures of a run's payload (a fresh one, or one read back with --plot-from)."""
    try:
        from . import plots
    except ImportError as error:  # matplotlib is optional (the `bench` extra)
        print(f"no figures: {error}; the JSON has everything: `tritonsqrt bench --plot-from FILE` elsewhere")
        return
    folder.mkdir(parents=True, exist_ok=True)
    device = payload["device"]
    where = f"{device['name']} ({'GPU' if device['type'] == 'cuda' else 'CPU'}), {payload['created'][:10]}"
    if payload.get("scaled_note"):
        where += ", CPU-scaled cases"
    rows, kind = payload["rows"], device["kind"]
    plot_case = plot_case or next(iter(payload["cases"]), None)
    figures = [plots.time_vs_n(rows, folder / f"time-vs-n-{kind}.png", f"tritonsqrt bench: {where}"),
               plots.error_vs_time(rows, plot_case, folder / f"error-vs-time-{kind}-{plot_case}.png",
                                   f"error against time: {where}")]
    for figure in figures:
        if figure:
            print(f"figure: {figure}")


def main(args) -> int:
    if args.list:
        return _list()
    if args.plot_from:
        payload = records.read_json(Path(args.plot_from))
        _figures(payload, Path(args.plot_dir or Path(args.plot_from).parent), args.plot_case)
        return 0
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # --quick on CPU: one thread. With two intra-op threads on cores other jobs were using,
    # 46 of 110 timings disagreed (one 53x); with one, 2 of 50 (docs/perf.md).
    threads = args.threads or (1 if args.quick else None)
    if threads and device.type == "cpu":
        torch.set_num_threads(threads)
    try:
        chosen = cases_mod.select(_split(args.cases), cases_mod.QUICK if args.quick else None)
        quick_providers = list(QUICK_PROVIDERS) if args.quick and not args.providers else None
        providers = providers_mod.select(_split(args.providers) or quick_providers, include_compiled=not args.quick)
    except ValueError as error:
        print(f"tritonsqrt bench: {error}", file=sys.stderr)
        return 2
    chosen = cases_mod.for_device(chosen, device, full_size=args.full_size)
    budget = args.budget if args.budget is not None else (0.15 if args.quick else 0.4)
    meta = records.environment(device)
    print(f"tritonsqrt bench on {meta['device']['name']} ({device.type}); torch {meta['versions']['torch']}, "
          f"triton {meta['versions']['triton']}, commit {meta['commit']}")
    note = cases_mod.scaled_note(chosen)
    if note:
        print(note)
    time_limit = args.time_limit
    if args.quick and not args.providers:
        print(f"--quick: providers {', '.join(QUICK_PROVIDERS)} (--providers for others)")
    if args.quick and time_limit is None:
        time_limit = QUICK_TIME_LIMIT_S
    rates = measure_rates(device)
    print(rates.label)

    settings = Settings(rates=rates, ops=tuple(args.ops) if args.ops else None,
                        modes=tuple(args.modes) if args.modes else None, budget_s=budget, graphs=not args.no_graphs,
                        time_limit_s=time_limit, compile_cases=tuple(_split(args.compile_cases) or ()) or None)
    plan = schedule(chosen, providers, settings)
    progress = Progress(count_items(plan, settings))
    rows, notes = run(plan, device, settings, progress)
    progress.close()

    floor_label = "x floor" if device.type == "cuda" else "x CPU floor"
    print()
    print(format_rows(rows, floor_label))
    if args.markdown:
        print(format_markdown(rows))
    for line in notes:
        print(line)
    if args.model and device.type == "cuda":  # perf/modeled.py: measured beside modeled
        paired = modeled.attach(rows, modeled.load(args.model), meta["device"]["name"])
        if paired:
            print(modeled.format_pairs(paired, meta["device"]["name"]))
    remeasured = [r for r in rows if r.get("remeasured")]
    if remeasured:
        unstable = sum("still unstable" in r["note"] for r in remeasured)
        print(f"{len(remeasured)} timings re-measured because their samples disagreed or a forward took longer "
              f"than its forward+backward (note column); {unstable} still unstable: read those with care")
    print("errors: worst relative Frobenius error over the batch against float64 eigh of the same input; "
          f"{'GPU medians by triton.testing.do_bench' if device.type == 'cuda' else 'CPU wall-clock medians'}")

    payload = {**meta, "kind": "bench", "quick": args.quick, "scaled_note": note,
               "rates": vars(rates), "notes": notes,
               "cases": {c.name: {"batch": c.batch, "n": c.n, "dtype": c.dtype, "kappa": c.kappa, "user": c.user,
                                  "scaled_from": c.scaled_from} for c in chosen},
               "rows": rows}
    out_dir = records.results_dir(args.out)
    path = records.write_json(out_dir / records.timestamped_name("bench", device), payload)
    print(f"results: {path}")

    if args.plot:
        _figures(payload, Path(args.plot_dir or out_dir), args.plot_case)
    failed = [r for r in rows if r.get("median_ms") is None and "time limit" not in (r.get("note") or "")]
    if failed:
        print(f"{len(failed)} timings failed (see the note column)")
    return 0
