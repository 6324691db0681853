"""`tritonsqrt perfcheck`: the performance-regression gate against perf/baselines/.

Two parts (docs/perf.md, "The gate"):
- timing, per device kind: for every gate case, op, mode and gated method, tritonsqrt's time
  divided by the iSQRT-COV Newton–Schulz reference (`isqrt-cov:ns5`) timed in the same run;
  fails when a ratio grows by more than the baseline's tolerance on the first measurement
  and on each confirmation re-measurement;
- costs, on any machine, exactly: matrix products and linalg calls of the torch path, bytes
  saved for backward, and kernel launches per call where they can be counted.

`--update` records new baselines from this run instead of comparing.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from tritonsqrt.tuning import cache as tuning
from tritonsqrt.commands import args as arg_types

from . import cases as cases_mod
from . import costs as costs_mod
from . import records
from .compare import compare_counts, compare_ratios, failures
from .providers import ANCHOR, BY_NAME
from .runner import case_inputs, timed_call
from .timing import best_ratio, interleaved_times, time_cuda

GATED_METHODS = ("auto", "scaled_ns")
GPU_TOLERANCE = 0.10
# The CPU tolerance is twice the worst one-sided deviation of a single run from the median
# of the recording runs, rounded up to 5%, within these bounds (docs/perf.md). The floor is
# for CI: its CPUs are not the recording machine's, and the balance of BLAS and LAPACK speed
# (our products against eigh and the anchor's) moves between CPU models.
CPU_TOLERANCE_BOUNDS = (0.35, 0.60)
NOISE_HEADROOM = 2.0


def add_arguments(parser) -> None:
    parser.add_argument("--device", type=arg_types.device, default=None, help="default: cuda if present, else cpu")
    parser.add_argument("--cases", nargs="+", metavar="NAME", help=f"default: {', '.join(cases_mod.GATE)}")
    parser.add_argument("--only", choices=("timing", "costs"), default=None, help="run one part of the gate")
    parser.add_argument("--update", "--record", action="store_true", dest="update",
                        help="write new baselines from this run instead of comparing")
    parser.add_argument("--noise-runs", type=arg_types.positive_int, default=1,
                        help="repeat the timing part and report the run-to-run spread (use 5 with --update)")
    parser.add_argument("--tolerance", type=arg_types.non_negative_float, default=None,
                        help="allowed growth of a time ratio (default: the baseline's; when recording: "
                             f"{GPU_TOLERANCE * 100:.0f}%% on a GPU, from the measured noise on CPU)")
    parser.add_argument("--confirm", type=arg_types.non_negative_int, default=2,
                        help="re-measure a ratio over the tolerance up to this many times; it fails only if every "
                             "measurement is over")
    parser.add_argument("--rounds", type=arg_types.positive_int, default=11,
                        help="interleaved timing rounds per ratio on CPU")
    parser.add_argument("--threads", type=arg_types.positive_int, default=1,
                        help="CPU threads for torch (default 1: see docs/perf.md)")
    parser.add_argument("--baseline", default=None,
                        help="timing baseline file (default: perf/baselines/<device kind>.json)")
    parser.add_argument("--costs-baseline", default=None,
                        help="costs baseline file (default: perf/baselines/costs.json)")
    parser.add_argument("--json", type=arg_types.writable_file, default=None,
                        help="also write this run's measurements and verdicts here")


def _key(case, op, mode, method) -> str:
    return f"{case.name}/{op}/{mode}/{method}"


def measure_ratios(cases, device: torch.device, rounds: int, only: set | None = None) -> dict[str, float]:
    """key -> time of tritonsqrt:<method> / time of the anchor, same inputs, same run.

    `only`: the (case name, op, mode) triples to measure (default: all of the cases').
    """
    ratios = {}
    for case in cases:
        if only is not None and not any(name == case.name for name, _, _ in only):
            continue
        a, g = case_inputs(case, device)
        for op in case.ops:
            for mode in case.modes:
                if only is not None and (case.name, op, mode) not in only:
                    continue
                names = (ANCHOR, *(f"tritonsqrt:{m}" for m in GATED_METHODS))
                fns = {name: timed_call(BY_NAME[name].make(op), a, g, mode) for name in names}
                if device.type == "cuda":
                    anchor_ms = time_cuda(fns[ANCHOR]).median_ms
                    found = {name: time_cuda(fn).median_ms / anchor_ms for name, fn in fns.items() if name != ANCHOR}
                else:
                    times = interleaved_times(fns, ANCHOR, device, rounds=rounds)
                    found = {name: best_ratio(times[name], times[ANCHOR]) for name in fns if name != ANCHOR}
                for name, ratio in found.items():
                    ratios[_key(case, op, mode, name.split(":", 1)[1])] = ratio
    return ratios


def summarise_runs(runs: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float], float]:
    """(median ratio per key, worst one-sided deviation of a run from it per key, worst overall)."""
    medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    deviation = {key: max(run[key] / medians[key] - 1.0 for run in runs) for key in medians}
    return medians, deviation, max(deviation.values(), default=0.0)


def cpu_tolerance(worst_deviation: float) -> float:
    low, high = CPU_TOLERANCE_BOUNDS
    return min(high, max(low, math.ceil(NOISE_HEADROOM * worst_deviation * 20 - 1e-9) / 20))


def _timing_part(args, device, cases, findings, out) -> bool:
    """Measure, then compare or record. False when there is nothing to compare against."""
    default_path = records.BASELINE_DIR / f"{records.device_kind(device)}.json"
    baseline_path = Path(args.baseline) if args.baseline else default_path
    runs = []
    for index in range(max(1, args.noise_runs)):
        runs.append(measure_ratios(cases, device, args.rounds))
        print(f"timing run {index + 1}/{max(1, args.noise_runs)} done", file=sys.stderr)
    current, deviation, worst = summarise_runs(runs)
    shapes = {case.name: [case.batch, case.n] for case in cases}
    out["timing"] = {"ratios": current, "runs": runs, "worst_deviation": worst, "cases": shapes}
    if len(runs) > 1:
        print(f"run-to-run noise over {len(runs)} runs: worst one-sided deviation from the median {worst:.1%}")
        for key in sorted(deviation, key=deviation.get, reverse=True)[:3]:
            print(f"  {key}: +{deviation[key]:.1%}")
    if args.update:
        _record_timing(args, device, baseline_path, current, deviation, worst, len(runs), shapes)
        return True
    if not baseline_path.is_file():
        print(f"FAIL no timing baseline for device kind {records.device_kind(device)!r} at {baseline_path}; "
              f"record one with `tritonsqrt perfcheck --update --noise-runs 5`")
        return False
    findings += _compare_timing(args, device, cases, records.read_json(baseline_path), current, shapes, out)
    return True


def _record_timing(args, device, path, ratios, deviation, worst, runs, shapes) -> None:
    if args.tolerance is not None:
        tolerance, rule = args.tolerance, "given on the command line"
    elif device.type == "cuda":
        tolerance, rule = GPU_TOLERANCE, "GPU default"
    else:
        tolerance = cpu_tolerance(worst)
        rule = (f"{NOISE_HEADROOM:g} x worst one-sided deviation {worst:.1%} over {runs} runs, rounded up "
                f"to 5%, within {CPU_TOLERANCE_BOUNDS[0]:.0%}..{CPU_TOLERANCE_BOUNDS[1]:.0%}")
    payload = {**records.environment(device), "kind": "perf-baseline", "anchor": ANCHOR,
               "threads": torch.get_num_threads() if device.type == "cpu" else None, "rounds": args.rounds,
               "tolerance": tolerance, "tolerance_rule": rule,
               "noise": {"runs": runs, "worst_deviation": worst, "per_key": deviation},
               "cases": shapes, "ratios": ratios}
    records.write_json(path, payload)
    print(f"recorded timing baseline {path} (tolerance +{tolerance:.0%}: {rule})")


def _compare_timing(args, device, cases, baseline, current, shapes, out) -> list:
    tolerance = args.tolerance if args.tolerance is not None else baseline["tolerance"]
    base_shapes = baseline.get("cases", {})

    def comparable(key):  # a case recorded at another shape (changed case list, --full-size) is not
        case = key.split("/")[0]
        return case not in shapes or base_shapes.get(case) in (None, shapes[case])

    old = {key: value for key, value in baseline["ratios"].items() if comparable(key)}
    if len(old) < len(baseline["ratios"]):
        print(f"note: {len(baseline['ratios']) - len(old)} baseline ratios are of other shapes; not compared")
    if device.type == "cpu" and baseline.get("threads") not in (None, torch.get_num_threads()):
        print(f"note: baseline timed with {baseline['threads']} threads, this run with {torch.get_num_threads()}")
    print(f"timing baseline of {baseline.get('created', '?')} (commit {baseline.get('commit')}, "
          f"tolerance +{tolerance:.0%})")
    current = {key: value for key, value in current.items() if comparable(key)}
    for attempt in range(args.confirm):
        suspects = failures(compare_ratios(old, current, tolerance))
        if not suspects:
            break
        # Noise on a shared machine is one-off, a regression is not: a ratio fails only if it
        # is over the tolerance on every attempt (the lowest of its measurements is compared).
        print(f"re-measuring {len(suspects)} ratios over the tolerance (confirmation {attempt + 1}/{args.confirm})")
        again = measure_ratios(cases, device, args.rounds, only={tuple(f.key.split("/")[:3]) for f in suspects})
        for finding in suspects:
            current[finding.key] = min(current[finding.key], again[finding.key])
    out["timing"]["compared"] = current
    return compare_ratios(old, current, tolerance, ANCHOR)


def _costs_part(args, device, findings, out) -> bool:
    path = Path(args.costs_baseline) if args.costs_baseline else records.BASELINE_DIR / "costs.json"
    current = costs_mod.all_torch_path_costs(list(cases_mod.CASES))
    why_not = costs_mod.launch_counting_unavailable(device)
    launches = {} if why_not else costs_mod.launch_counts(device)
    if why_not:
        print(f"note: kernel launches not counted: {why_not}")
    out["costs"] = {"torch_path": current, "launches": launches, "launches_note": why_not}
    if args.update:
        payload = {**records.environment(device), "kind": "perf-costs", "costs": current, "launches": launches,
                   "launches_note": why_not}
        records.write_json(path, payload)
        print(f"recorded costs baseline {path} ({len(current)} torch-path entries, {len(launches)} launch counts)")
        if why_not:
            print("note: the costs baseline has no launch counts; re-record it once the kernels and "
                  "count_launches exist (with TRITON_INTERPRET=1)")
        return True
    if not path.is_file():
        print(f"FAIL no costs baseline at {path}; record one with `TRITON_INTERPRET=1 tritonsqrt perfcheck --update`")
        return False
    baseline = records.read_json(path)
    print(f"costs baseline {path} ({baseline.get('created', '?')}, commit {baseline.get('commit')})")
    findings += compare_counts(baseline["costs"], current, "torch path")
    if launches and not baseline.get("launches"):
        print("note: launch counts measured but not in the baseline: re-record it "
              "(`TRITON_INTERPRET=1 tritonsqrt perfcheck --update --noise-runs 5`)")
    elif launches:
        findings += compare_counts(baseline["launches"], launches, "launches")
    return True


@contextlib.contextmanager
def private_caches():
    """Run with an empty tuning cache and Triton cache in a temporary folder, removed afterwards:
    the gate's figures must not depend on what the user's caches hold, and it must leave no file
    in them (~/.cache/tritonsqrt, ~/.triton)."""
    names = ("TRITONSQRT_CACHE_DIR", "TRITON_CACHE_DIR")
    saved = {name: os.environ.get(name) for name in names}
    with tempfile.TemporaryDirectory(prefix="tritonsqrt-perfcheck-") as folder:
        os.environ["TRITONSQRT_CACHE_DIR"] = os.path.join(folder, "tuning")
        os.environ["TRITON_CACHE_DIR"] = os.path.join(folder, "triton")
        tuning.clear_memory()
        try:
            yield folder
        finally:
            tuning.clear_memory()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def main(args) -> int:
    # Baselines are read unless --update: an unreadable or foreign one is a usage error (a missing
    # one fails the gate with instructions to record it).
    for option, path, keys in (("--baseline", args.baseline, ("ratios",)),
                               ("--costs-baseline", args.costs_baseline, ("costs",))):
        if path and not args.update and os.path.exists(path):
            try:
                arg_types.json_file(*keys)(path)
            except argparse.ArgumentTypeError as error:
                print(f"tritonsqrt perfcheck: error: argument {option}: {error}", file=sys.stderr)
                return 2
    with private_caches():
        return _main(args)


def _main(args) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    try:
        chosen = cases_mod.for_device(cases_mod.select(args.cases, cases_mod.GATE), device)
    except ValueError as error:
        print(f"tritonsqrt perfcheck: {error}", file=sys.stderr)
        return 2
    meta = records.environment(device)
    print(f"tritonsqrt perfcheck on {meta['device']['name']} (kind {meta['device']['kind']}, "
          f"{torch.get_num_threads()} threads); commit {meta['commit']}")
    note = cases_mod.scaled_note(chosen)
    if note:
        print(note)
    findings, out, complete = [], {**meta, "kind": "perfcheck"}, True
    if args.only in (None, "timing"):
        complete &= _timing_part(args, device, chosen, findings, out)
    if args.only in (None, "costs"):
        complete &= _costs_part(args, device, findings, out)
    for finding in findings:
        print(finding.message)
    failed = failures(findings)
    out["findings"] = [vars(f) for f in findings]
    if args.json:
        records.write_json(Path(args.json), out)
    if args.update:
        return 0
    if failed or not complete:
        names = sorted({f.key for f in failed})
        listed = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
        print(f"perfcheck FAILED: {len(failed)} regressions" + (f" in {listed}" if names else ""))
        return 1
    print(f"perfcheck passed ({sum(1 for f in findings if f.figure == 'time ratio')} time ratios, "
          f"{'costs compared exactly' if args.only != 'timing' else 'costs not run'})")
    return 0
