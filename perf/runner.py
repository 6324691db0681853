"""Time every (case, op, provider, mode) on the same inputs and attach its accuracy and floor.

One row per timing, as a plain dict (it goes straight into the results JSON). Speed is never
recorded without error: each row carries the forward error of that implementation on that
input against float64 eigh, and the gradient error for forward+backward rows.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import time
import zlib

import torch

from tritonsqrt import testing

from .cases import ROOT_OPS, Case, root_order
from .floor import Rates, floor_ms
from tritonsqrt.commands.progress import Progress
from .providers import Provider
from .timing import Timing, samples_disagree, time_cuda_graph, time_on


def case_inputs(case: Case, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, G): SPD test matrices of the case's condition number and a symmetric upstream gradient."""
    seed = zlib.crc32(case.name.encode())
    a = testing.spd_with_condition(case.batch, case.n, case.kappa, seed=seed, dtype=case.torch_dtype, device=device)
    g = testing.random_symmetric(case.batch, case.n, seed=seed + 1, dtype=case.torch_dtype, device=device)
    return a, g


def exact_answers(a: torch.Tensor, g: torch.Tensor, with_grad: bool, ops=()) -> dict:
    """float64 eigh roots (and Loewner gradients) of the rounded input, computed once per case;
    A^(-1/p) too for the inv_root<p> names among `ops`."""
    exact_sqrt, exact_inv = testing.exact_roots(a)
    answers = {"sqrtm": exact_sqrt, "inv_sqrtm": exact_inv}
    for op in set(ops) & set(ROOT_OPS):
        answers[op] = testing.exact_power(a, -1.0 / root_order(op)[0])
    if with_grad:
        answers["grad_sqrtm"], answers["grad_inv_sqrtm"] = testing.exact_gradients(a, g)
    return answers


def errors(fn, a: torch.Tensor, g: torch.Tensor, op: str, exact: dict) -> tuple[float, float | None]:
    """Worst relative Frobenius error over the batch: (forward, gradient or None)."""
    with_grad = f"grad_{op}" in exact
    a_in = a.detach().clone().requires_grad_(with_grad)
    out = fn(a_in)
    fwd = float(testing.relative_error(out.detach(), exact[op]).max())
    if not with_grad:
        return fwd, None
    (grad,) = torch.autograd.grad(out, a_in, g.to(out.dtype))
    return fwd, float(testing.relative_error(grad.detach(), exact[f"grad_{op}"]).max())


def timed_call(fn, a: torch.Tensor, g: torch.Tensor, mode: str):
    """The call a timer repeats: fn(A), or fn(A) and its gradient for G (a fresh graph each time)."""
    if mode == "forward":
        return lambda: fn(a)
    a_req = a.detach().clone().requires_grad_(True)
    return lambda: torch.autograd.grad(fn(a_req), a_req, g)


def measure(call, device: torch.device, budget_s: float, first: Timing | None = None,
            suspicion: str | None = None) -> tuple[Timing, str]:
    """A timing and a note. When its samples disagree (or `suspicion` says why the caller doubts
    the `first` timing it already has), it is timed once more and the faster median kept (load
    on a shared machine only adds time); the note says so, and when the kept one disagrees too."""
    first = first or time_on(device, call, budget_s)
    why = suspicion or samples_disagree(first)
    if why is None:
        return first, ""
    again = time_on(device, call, budget_s)
    kept = min(first, again, key=lambda t: t.median_ms)
    note = f"re-measured ({why}): {first.median_ms:.3g}, {again.median_ms:.3g} ms"
    still = samples_disagree(kept)
    return kept, note + (f"; still unstable ({still})" if still else "")


def _recheck_forward(rows: list[dict], fn, a, g, device, settings) -> None:
    """A forward cannot cost more than the same forward plus its backward: when it does, one
    of the two was disturbed, so both are measured again."""
    by_mode = {row["mode"]: row for row in rows if row.get("median_ms") is not None}
    fwd, both = by_mode.get("forward"), by_mode.get("forward+backward")
    if not (fwd and both) or fwd["median_ms"] <= 1.2 * both["median_ms"]:
        return
    why = "fwd slower than fwd+bwd"
    for row in (fwd, both):
        first = Timing(*(row[key] for key in ("median_ms", "p20_ms", "p80_ms", "samples", "min_ms", "max_ms")))
        timing, note = measure(timed_call(fn, a, g, row["mode"]), device, settings.budget_s, first, why)
        row.update(_timing_fields(timing), remeasured=True)
        row["note"] = (row["note"] + "; " if row["note"] else "") + note


def _timing_fields(timing: Timing) -> dict:
    return {"median_ms": timing.median_ms, "p20_ms": timing.p20_ms, "p80_ms": timing.p80_ms,
            "samples": timing.samples, "min_ms": timing.min_ms, "max_ms": timing.max_ms}


def _failure(error: Exception) -> str:
    return f"failed: {type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''}"


@dataclasses.dataclass(frozen=True)
class Settings:
    rates: Rates | None = None  # None: no floor column
    ops: tuple[str, ...] | None = None  # None: each case's own
    modes: tuple[str, ...] | None = None
    budget_s: float = 0.4  # CPU timer: seconds of samples per timing
    graphs: bool = True  # CUDA-graph variant of launch-bound cases
    time_limit_s: float | None = None  # skip what is left after this
    compile_cases: tuple[str, ...] | None = None  # case patterns for torch.compile providers (None: all)

    def ops_of(self, case: Case) -> list[str]:
        return [op for op in case.ops if not self.ops or op in self.ops]

    def modes_of(self, case: Case) -> list[str]:
        return [mode for mode in case.modes if not self.modes or mode in self.modes]


def schedule(cases: list[Case], providers: list[Provider], settings: Settings) -> list[tuple[Case, list[Provider]]]:
    """(case, providers) in run order: every eager provider first, then the torch.compile ones,
    whose compile time could otherwise eat a time limit before the cheap rows ran."""
    eager = [p for p in providers if p.kind != "compiled"]
    compiled = [p for p in providers if p.kind == "compiled"]
    wanted = lambda case: settings.compile_cases is None or any(  # noqa: E731
        fnmatch.fnmatchcase(case.name, pattern) for pattern in settings.compile_cases)
    plan = [(case, eager) for case in cases if eager]
    plan += [(case, compiled) for case in cases if compiled and wanted(case)]
    return [(case, chosen) for case, chosen in plan if settings.ops_of(case) and settings.modes_of(case)]


def count_items(plan: list[tuple[Case, list[Provider]]], settings: Settings) -> int:
    return sum(len(settings.modes_of(c)) * sum(p.supports(op) for op in settings.ops_of(c) for p in chosen)
               for c, chosen in plan)


def _rows_of_provider(case, op, provider, a, g, exact, device, settings, progress) -> list[dict]:
    """The rows of one provider on one (case, op): one per mode, each with timing, error, floor."""
    modes = settings.modes_of(case)
    base = {"case": case.name, "op": op, "provider": provider.name, "n": case.n, "batch": case.batch,
            "dtype": case.dtype, "kappa": case.kappa,
            "scaled_from": list(case.scaled_from) if case.scaled_from else None}
    try:
        backend, detail = provider.backend(a), provider.detail(a)
        fn = provider.make(op)
        fwd_err, grad_err = errors(fn, a, g, op, exact)
    except Exception as error:  # one broken implementation must not stop the run
        if progress:
            progress.step(f"{case.name} {op} {provider.name}: failed", len(modes))
        return [{**base, "mode": mode, "backend": None, "note": _failure(error)} for mode in modes]
    rows = []
    for mode in modes:
        row = {**base, "mode": mode, "backend": backend, "detail": detail, "fwd_error": fwd_err,
               "grad_error": grad_err if mode == "forward+backward" else None, "note": ""}
        try:
            timing, note = measure(timed_call(fn, a, g, mode), device, settings.budget_s)
            row.update(_timing_fields(timing), note=note, remeasured=bool(note))
        except Exception as error:
            row["note"] = _failure(error)
        if device.type == "cuda" and settings.graphs and case.launch_bound and provider.graph_safe(op, backend):
            try:
                graph = time_cuda_graph(timed_call(fn, a, g, mode))
                row.update(graph_median_ms=graph.median_ms, graph_p20_ms=graph.p20_ms, graph_p80_ms=graph.p80_ms)
            except Exception as error:
                torch.cuda.synchronize()
                row["note"] = (row["note"] + "; " if row["note"] else "") + "graph " + _failure(error)
        rows.append(row)
        if progress:
            progress.step(f"{case.name} {op} {mode} {provider.name}", 1)
    _recheck_forward(rows, fn, a, g, device, settings)
    for row in rows:
        if settings.rates is not None and row.get("median_ms") is not None:
            row["floor_ms"] = floor_ms(case.batch, case.n, op, row["mode"], a.element_size(), settings.rates)
            row["floor_ratio"] = row["median_ms"] / row["floor_ms"]
    return rows


def run(plan: list[tuple[Case, list[Provider]]], device: torch.device, settings: Settings,
        progress: Progress | None = None) -> tuple[list[dict], list[str]]:
    """Returns (rows, notes). Past the time limit, or on Ctrl-C / SIGINT (how `timeout` stops
    it), the rest is skipped and the rows so far are returned, so a run cut short still leaves
    its results."""
    rows, notes, skipped = [], [], 0
    started = time.perf_counter()
    try:
        for case, providers in plan:
            a, g = case_inputs(case, device)
            exact = exact_answers(a, g, with_grad="forward+backward" in settings.modes_of(case),
                                  ops=settings.ops_of(case))
            for op in settings.ops_of(case):
                for provider in (p for p in providers if p.supports(op)):  # e.g. no official inv_root4
                    if settings.time_limit_s is not None and time.perf_counter() - started > settings.time_limit_s:
                        skipped += len(settings.modes_of(case))
                        if progress:
                            progress.step(f"{case.name} {op} {provider.name}: skipped", len(settings.modes_of(case)))
                        continue
                    rows += _rows_of_provider(case, op, provider, a, g, exact, device, settings, progress)
            del a, g, exact
            if device.type == "cuda":
                torch.cuda.empty_cache()
    except KeyboardInterrupt:
        notes.append(f"interrupted after {time.perf_counter() - started:.0f} s: the rows so far are kept")
    if skipped:
        notes.append(f"time limit of {settings.time_limit_s:.0f} s reached: {skipped} timings skipped")
    return rows, notes
