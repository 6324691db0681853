"""Timers: triton.testing.do_bench on a GPU (plain and CUDA graph), a careful wall clock on CPU.

The single-function timers return a `Timing` of median, 20th and 80th percentile in
milliseconds. The CPU timer warms up (the first call of a torch path costs a second of lazy
set-up), disables the garbage collector while sampling, and times each call on its own. The
gate's CPU ratios come from `interleaved_times`, which times competitors in alternation.
"""

from __future__ import annotations

import dataclasses
import gc
import time

import torch

QUANTILES = (0.5, 0.2, 0.8, 0.0, 1.0)  # median, p20, p80, min, max

# Samples "disagree" past these: one call 3x the median, or p20-p80 wider than half the median.
# A shared machine produced a row whose every sample was 100x a rerun's (issue 15), so the
# runner also compares rows with each other (perf/runner.py).
MAX_OVER_MEDIAN = 3.0
SPREAD_OVER_MEDIAN = 0.5


@dataclasses.dataclass(frozen=True)
class Timing:
    median_ms: float
    p20_ms: float
    p80_ms: float
    samples: int = 0  # calls timed (0: decided by do_bench)
    min_ms: float | None = None
    max_ms: float | None = None


def samples_disagree(timing: Timing) -> str | None:
    """Why the samples of one timing disagree too much to trust its median, or None."""
    if timing.max_ms is not None and timing.max_ms > MAX_OVER_MEDIAN * timing.median_ms:
        return f"max {timing.max_ms / timing.median_ms:.1f}x median"
    if timing.p80_ms - timing.p20_ms > SPREAD_OVER_MEDIAN * timing.median_ms:
        return f"p20-p80 {(timing.p80_ms - timing.p20_ms) / timing.median_ms:.0%} of median"
    return None


def synchronized_times(fn, device: torch.device, repeats: int) -> list[float]:
    """Seconds of `repeats` calls of fn after one warm-up call, the device synchronised around each."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile of `values` (need not be sorted)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("quantile: no values")
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise(seconds: list[float]) -> Timing:
    ms = [s * 1e3 for s in seconds]
    return Timing(quantile(ms, 0.5), quantile(ms, 0.2), quantile(ms, 0.8), len(ms), min(ms), max(ms))


def time_cpu(fn, budget_s: float = 0.4, min_samples: int = 5, max_samples: int = 500) -> Timing:
    """Wall-clock samples of single calls until `budget_s` is spent (at least `min_samples`)."""
    warm_until = time.perf_counter() + 0.1 * budget_s
    fn()  # lazy initialisation, torch.compile, caches
    fn()
    while time.perf_counter() < warm_until:
        fn()
    samples = []
    gc_was_on = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        stop = time.perf_counter() + budget_s
        while len(samples) < max_samples and (len(samples) < min_samples or time.perf_counter() < stop):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
    finally:
        if gc_was_on:
            gc.enable()
    return summarise(samples)


def time_cuda(fn) -> Timing:
    """triton.testing.do_bench: warm-up, L2 flushed between calls, CUDA-event timed."""
    import triton.testing

    median, p20, p80, low, high = triton.testing.do_bench(fn, quantiles=list(QUANTILES))
    return Timing(float(median), float(p20), float(p80), 0, float(low), float(high))


def time_cuda_graph(fn) -> Timing:
    """The same call replayed from a CUDA graph: what a launch-bound op costs without launch overhead."""
    import triton.testing

    # Capture needs a side stream; recent Triton opens one itself, older versions demand it.
    with torch.cuda.stream(torch.cuda.Stream()):
        median, p20, p80, low, high = triton.testing.do_bench_cudagraph(fn, quantiles=list(QUANTILES))
    return Timing(float(median), float(p20), float(p80), 0, float(low), float(high))


def time_on(device: torch.device, fn, budget_s: float = 0.4) -> Timing:
    if device.type == "cuda":
        return time_cuda(fn)
    return time_cpu(fn, budget_s=budget_s)


def interleaved_times(fns: dict, anchor: str, device: torch.device, rounds: int = 11,
                      block_s: float = 0.05) -> dict[str, list[float]]:
    """Seconds per call of each function, timed in interleaved blocks: name -> one value per round.

    Each round times every function once, in blocks of calls lasting about `block_s`; the
    anchor is timed before the first round and after every round, so it has rounds + 1 values
    that bracket the others. Interleaving exposes every function to the same changes of load
    on a shared machine, which timing them one after the other does not.
    """
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    calls = {}
    for name, fn in fns.items():
        for _ in range(2):  # warm-up
            fn()
        sync()
        start = time.perf_counter()
        fn()
        sync()
        one = time.perf_counter() - start
        calls[name] = max(1, int(block_s / max(one, 1e-6)))

    def block(name):
        fn, count = fns[name], calls[name]
        sync()
        start = time.perf_counter()
        for _ in range(count):
            fn()
        sync()
        return (time.perf_counter() - start) / count

    times = {name: [] for name in fns}
    gc.collect()
    times[anchor].append(block(anchor))
    for _ in range(rounds):
        for name in fns:
            if name != anchor:
                times[name].append(block(name))
        times[anchor].append(block(anchor))
    return times


def best_ratio(times: list[float], anchor_times: list[float]) -> float:
    """Fastest time over fastest anchor time: load on a shared machine only ever adds time,
    so the minima are the least disturbed estimates of both."""
    return min(times) / min(anchor_times)


def bracketed_ratios(times: list[float], anchor_times: list[float]) -> list[float]:
    """Per round, the time over the mean of the anchor blocks just before and after it."""
    return [t / (0.5 * (before + after)) for t, before, after in zip(times, anchor_times, anchor_times[1:])]
