"""`bench` re-measures a timing whose samples disagree, and a forward slower than its
forward+backward, and says so in the row's note (issue 15: a 100x row went unflagged)."""

import time

import torch

from tritonsqrt.perf import runner
from tritonsqrt.perf.timing import Timing, samples_disagree, summarise, time_cpu

CPU = torch.device("cpu")


def test_one_slow_call_among_fast_ones_is_flagged_by_a_real_timer():
    calls = []

    def fn():  # 1 ms a call, except one call of 40 ms in the middle of the sampling
        calls.append(None)
        time.sleep(0.04 if len(calls) == 12 else 0.001)

    timing = time_cpu(fn, budget_s=0.03, min_samples=10)
    assert timing.max_ms > 30 and timing.median_ms < 5
    assert samples_disagree(timing).startswith("max ")


def test_agreeing_samples_pass_and_a_wide_spread_is_flagged():
    assert samples_disagree(summarise([0.010, 0.011, 0.0105, 0.0102, 0.0108])) is None
    wide = summarise([0.010, 0.010, 0.020, 0.020, 0.020, 0.010])
    assert "p20-p80" in samples_disagree(wide)


def _fake_timer(monkeypatch, timings):
    queue = list(timings)
    monkeypatch.setattr(runner, "time_on", lambda device, call, budget: queue.pop(0))
    return queue


def test_disagreeing_timing_is_measured_again_and_the_faster_kept(monkeypatch):
    noisy = Timing(50.0, 10.0, 60.0, 5, 9.0, 3000.0)
    calm = Timing(10.0, 9.9, 10.1, 5, 9.8, 10.3)
    left = _fake_timer(monkeypatch, [noisy, calm])
    timing, note = runner.measure(lambda: None, CPU, 0.1)
    assert timing == calm and not left
    assert note == "re-measured (max 60.0x median): 50, 10 ms"
    _fake_timer(monkeypatch, [calm])
    assert runner.measure(lambda: None, CPU, 0.1) == (calm, "")


def test_forward_slower_than_forward_and_backward_remeasures_both(monkeypatch):
    def row(mode, median):
        return {"mode": mode, "median_ms": median, "p20_ms": median, "p80_ms": median, "samples": 5,
                "min_ms": median, "max_ms": median, "note": ""}

    rows = [row("forward", 3188.0), row("forward+backward", 33.0)]  # the row, all samples agreeing
    _fake_timer(monkeypatch, [Timing(22.0, 21.9, 22.2, 5, 21.8, 22.5), Timing(34.0, 33.5, 34.5, 5, 33.0, 35.0)])
    a = g = torch.eye(2)
    runner._recheck_forward(rows, fn=lambda x: x, a=a, g=g, device=CPU, settings=runner.Settings())
    forward, both = rows
    assert forward["median_ms"] == 22.0 and forward["remeasured"]
    assert forward["note"] == "re-measured (fwd slower than fwd+bwd): 3.19e+03, 22 ms"
    assert both["median_ms"] == 33.0 and both["remeasured"]  # the first, faster, timing kept
