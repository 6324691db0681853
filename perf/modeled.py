"""Modeled GPU times beside measured ones: the calibration of the performance model.

`tritonsqrt compile-report --model --json FILE` writes the modeled time of every bench case on
each GPU it knows (kernels/case_model.py, docs/perf-model.md). `tritonsqrt bench --model FILE`
on a GPU attaches to each row of the kernels' provider (`tritonsqrt:auto`, `tritonsqrt:scaled_ns`:
scaled Newton–Schulz at "ieee", what the model times) the modeled microseconds and the model's
error, modeled / measured - 1, and prints them per case. On a CPU, or a GPU the model does not
know, nothing is attached: there is no pair to compare.
"""

from __future__ import annotations

import json

MODELED_PROVIDERS = ("tritonsqrt:auto", "tritonsqrt:scaled_ns")
# Device-name fragment -> the model's GPU name (kernels/hardware.py).
GPU_NAMES = {"H200": "H200 SXM", "H100": "H100 SXM5", "A100": "A100 SXM4 80GB"}


def model_gpu(device_name: str) -> str | None:
    return next((model for fragment, model in GPU_NAMES.items() if fragment in device_name), None)


def load(path: str) -> list[dict]:
    with open(path) as handle:
        payload = json.load(handle)
    if "model_cases" not in payload:
        raise ValueError(f"--model: {path} has no model_cases; write it with tritonsqrt compile-report --model --json")
    return payload["model_cases"]


def attach(rows: list[dict], model_cases: list[dict], device_name: str, precision: str = "ieee") -> list[dict]:
    """Add modeled_us and model_error to the rows the model times; returns those rows."""
    gpu = model_gpu(device_name)
    if gpu is None:
        return []
    modeled = {(m["case"], m["op"], m["mode"]): m["modeled_us"] for m in model_cases
               if m["gpu"] == gpu and m["precision"] == precision}
    paired = []
    for row in rows:
        key = (row["case"], row["op"], row["mode"])
        if row.get("provider") not in MODELED_PROVIDERS or key not in modeled or row.get("median_ms") is None:
            continue
        row["modeled_us"] = modeled[key]
        row["model_error"] = round(modeled[key] / (row["median_ms"] * 1e3) - 1, 3)
        paired.append(row)
    return paired


def format_pairs(paired: list[dict], gpu_name: str) -> str:
    lines = [f"modeled (compile-report --model, {gpu_name}) beside measured; error = modeled / measured - 1:",
             f"{'case':<18} {'op':<10} {'mode':<17} {'provider':<22} {'measured us':>12} {'modeled us':>11} "
             f"{'error':>7}"]
    for row in paired:
        lines.append(f"{row['case']:<18} {row['op']:<10} {row['mode']:<17} {row['provider']:<22} "
                     f"{row['median_ms'] * 1e3:>12.1f} {row['modeled_us']:>11.1f} {row['model_error']:>+7.0%}")
    return "\n".join(lines)
