"""The gate's verdicts, as pure functions of a baseline and a current measurement.

Time ratios fail when they grow by more than the tolerance; exact counts fail when they grow
at all. Shrinking counts, and keys on one side only, pass with a note asking for a new
baseline (the gate must not hide that the baseline no longer describes the code).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Finding:
    key: str  # what was measured, e.g. "zca-b64/inv_sqrtm/forward/scaled_ns"
    figure: str  # which number, e.g. "time ratio" or "matmuls_forward_backward"
    baseline: float | None
    current: float | None
    failed: bool
    message: str


def compare_ratios(baseline: dict[str, float], current: dict[str, float], tolerance: float,
                   anchor: str = "the anchor") -> list[Finding]:
    """A time ratio fails when current > baseline * (1 + tolerance)."""
    findings = []
    for key in sorted(set(baseline) | set(current)):
        old, new = baseline.get(key), current.get(key)
        if old is None:
            findings.append(Finding(key, "time ratio", None, new, False,
                                    f"new {key}: time / {anchor} = {new:.3f}, not in the baseline (re-record it)"))
            continue
        if new is None:
            continue  # not measured in this run (a --cases filter): nothing to say
        change = new / old - 1.0
        failed = change > tolerance
        verdict = "FAIL" if failed else "ok"
        findings.append(Finding(key, "time ratio", old, new, failed,
                                f"{verdict:<4} {key}: time / {anchor} {new:.3f} vs baseline {old:.3f} "
                                f"({change:+.0%}, tolerance +{tolerance:.0%})"))
    return findings


def compare_counts(baseline: dict, current: dict, what: str) -> list[Finding]:
    """Exact comparison of integer counts; values are ints or dicts of named ints."""
    findings = []
    for key in sorted(set(baseline) | set(current)):
        if key not in baseline:
            findings.append(Finding(key, what, None, None, False,
                                    f"new {what} {key}: not in the baseline (re-record it)"))
            continue
        if key not in current:
            continue
        old, new = baseline[key], current[key]
        old_items = old.items() if isinstance(old, dict) else [(what, old)]
        new_map = new if isinstance(new, dict) else {what: new}
        for figure, old_value in old_items:
            new_value = new_map.get(figure)
            if new_value is None or new_value == old_value:
                continue
            failed = new_value > old_value
            verdict = "FAIL" if failed else "note"
            tail = "" if failed else " (fewer: re-record the baseline to lock it in)"
            findings.append(Finding(key, figure, old_value, new_value, failed,
                                    f"{verdict:<4} {key}: {figure} {new_value} vs baseline {old_value}{tail}"))
    return findings


def failures(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.failed]
