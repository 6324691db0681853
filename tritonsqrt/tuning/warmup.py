"""`tritonsqrt warmup`: compile and tune every kernel a model will hit, before it runs.

For each size, dtype, op and method it runs the op once with backend="triton" (forward, and
backward with --backward), which makes the launchers select their configs through
`tritonsqrt.tuning.cache`: a size bucket met for the first time is timed and written to the cache,
a known one is read back. The closing table lists every tuned kernel with its config, the
time of one launch and where the config came from; a second run finds everything in the
cache and takes seconds. Run it before CUDA-graph capture or a production start (nothing is
benchmarked during a capture). `--export FILE` writes the configs in the package-data format
(`kernels/configs/<gpu>.json`).
"""

from __future__ import annotations

import sys
import time

import torch

from ..paths import routing
from . import cache as tuning
from ..commands import args as arg_types
from ..commands.progress import Progress
from ..constants import KERNEL_METHODS
from ..plan import Plan, auto_method, compute_dtype_for

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}
OPS = ("sqrtm", "inv_sqrtm", "sqrtm_and_inv_sqrtm")
WARMUP_METHODS = ("auto",) + KERNEL_METHODS  # what a Triton kernel runs
GPU_SIZES = "16,32,64,128,256,512,1024"
# Under the interpreter every program runs in Python: one tile per matrix keeps a run to a minute.
INTERPRETER_SIZES = "20"


def add_arguments(parser) -> None:
    parser.add_argument("--sizes", type=arg_types.positive_ints_text, default=None,
                        help=f"matrix sizes n, comma-separated (default {GPU_SIZES}; {INTERPRETER_SIZES} "
                             "under TRITON_INTERPRET=1)")
    parser.add_argument("--dtypes", type=arg_types.names_from(DTYPES), default="float32",
                        help=f"input dtypes, comma-separated ({', '.join(DTYPES)})")
    parser.add_argument("--ops", type=arg_types.names_from(OPS), default="sqrtm,inv_sqrtm",
                        help=f"ops, comma-separated ({', '.join(OPS)})")
    parser.add_argument("--methods", type=arg_types.names_from(WARMUP_METHODS), default="auto",
                        help="methods, comma-separated (default auto: what method='auto' picks on a GPU)")
    parser.add_argument("--backward", action="store_true", help="also run and tune the backward")
    parser.add_argument("--batch", type=arg_types.positive_int, default=8, help="matrices per call (default 8)")
    parser.add_argument("--export", type=arg_types.writable_file, default=None, metavar="FILE",
                        help="write the configs used to FILE in the package-data format")


def _device() -> torch.device | None:
    if torch.cuda.is_available() and not routing.interpreter_on():
        return torch.device("cuda")
    if routing.interpreter_on():
        return torch.device("cpu")
    return None


def _split(text: str, allowed=None, what: str = "value") -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(f"warmup: {what}: expected a comma-separated list, got {text!r}")
    if allowed is not None:
        for item in items:
            if item not in allowed:
                raise ValueError(f"warmup: {what}: expected items of {', '.join(allowed)}, got {item!r}")
    return items


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(item) for item in _split(text, what="--sizes")]
    except ValueError as error:
        raise ValueError(f"warmup: --sizes: expected comma-separated positive ints, got {text!r}") from error
    if min(sizes) < 1:
        raise ValueError(f"warmup: --sizes: expected positive ints, got {text!r}")
    return sizes


def main(args) -> int:
    device = _device()
    if device is None:
        print("tritonsqrt warmup: no CUDA GPU here (torch.cuda.is_available() is False) and TRITON_INTERPRET "
              "is not set, so there is no Triton kernel to compile or tune. Run it on the machine with the GPU, "
              "or set TRITON_INTERPRET=1 to run the whole mechanism on CPU at tiny sizes.", file=sys.stderr)
        return 2
    if not routing.triton_available():
        print(f"tritonsqrt warmup: {routing.triton_import_problem()}; nothing to compile.", file=sys.stderr)
        return 2
    if args.batch < 1:
        print(f"tritonsqrt warmup: --batch: expected a positive int, got {args.batch}", file=sys.stderr)
        return 2
    try:
        sizes = _sizes(args.sizes or (INTERPRETER_SIZES if device.type == "cpu" else GPU_SIZES))
        dtypes = _split(args.dtypes, DTYPES, "--dtypes")
        ops = _split(args.ops, OPS, "--ops")
        methods = _split(args.methods, WARMUP_METHODS, "--methods")
    except ValueError as error:
        print(f"tritonsqrt {error}", file=sys.stderr)
        return 2

    gpu = tuning.device_name(device)
    print(f"warmup on {gpu} (Triton {tuning.triton_version()}), cache {tuning.cache_path(gpu)}")
    cases = [(n, dtype, op, method) for n in sizes for dtype in dtypes for op in ops for method in methods]
    started = time.perf_counter()
    rows, other_kernels, paths = [], {}, set()
    progress = Progress(len(cases), stream=sys.stdout)
    with tuning.recording() as events:
        for n, dtype, op, method in cases:
            first_event = len(events)
            path, launched = _run_case(n, DTYPES[dtype], op, method, args.backward, args.batch, device)
            paths.add(path)
            # Launched kernels with no tuning event: "_power_step_kernel" is tuned as "tiled.power_step".
            tuned = {event.kernel.rsplit(".", 1)[-1] + "_kernel" for event in events[first_event:]}
            fixed = sorted({name.strip("_") for name in launched} - tuned)
            if fixed:
                other_kernels.setdefault(n, set()).update(fixed)
            rows.extend((n, event) for event in events[first_event:])
            progress.step(f"n={n} {dtype} {op} {method}{' +backward' if args.backward else ''}")
        progress.close()
    elapsed = time.perf_counter() - started
    _print_table(rows)
    for n, names in sorted(other_kernels.items()):
        print(f"n={n}: also compiled, fixed settings: {', '.join(sorted(names))}")
    _print_summary(rows, elapsed, paths)
    if args.export:
        entries = {tuning.entry_id(e.kernel, e.entry["source_hash"], e.key): e.entry for _, e in rows if e.entry}
        try:
            tuning.write_entries(args.export, entries, gpu, merge=False)
        except OSError as error:
            print(f"tritonsqrt warmup: --export: cannot write {args.export!r}: {error.strerror or error}",
                  file=sys.stderr)
            return 2
        print(f"exported {len(entries)} configs to {args.export}")
    return 0


def _run_case(n: int, dtype: torch.dtype, op: str, method: str, backward: bool, batch: int, device):
    """Run one op forward (and backward); returns (the plan's path, names of the Triton kernels launched)."""
    from .. import api
    from ..testing.instrument import count_launches
    from ..testing import random_symmetric, spd_with_condition

    if method == "auto":
        method = auto_method("cuda", n, dtype).method
    a = spd_with_condition(batch, n, 100.0, seed=n, dtype=dtype, device=device)
    grad = random_symmetric(batch, n, seed=n + 1, dtype=dtype, device=device)
    with count_launches() as launches:
        x = a.clone().requires_grad_(backward)
        out = getattr(api, op)(x, method=method, backend="triton")
        if backward:
            outs = out if isinstance(out, tuple) else (out,)
            torch.autograd.backward(outs, [grad] * len(outs))
        if device.type == "cuda":
            torch.cuda.synchronize()
    plan = Plan(method=method, compute_dtype=compute_dtype_for(dtype), n=n, backend="triton")
    return f"{plan.path} path", launches.names


def _print_table(rows) -> None:
    """One row per kernel and key: the first selection in this run tells where the config came from."""
    seen, table = set(), []
    for n, event in rows:
        ident = (event.kernel, tuple(sorted(event.key.items())), n)
        if ident in seen:
            continue
        seen.add(ident)
        config = " ".join(f"{k}={v}" for k, v in sorted(event.config.items()))
        time_text = f"{event.time_ms:.4f}" if event.time_ms is not None else "-"
        table.append((event.kernel, str(n), str(event.key.get("batch", "-")), event.key.get("dtype", ""),
                      event.key.get("precision", ""), event.key.get("variant", "") or "-", config, time_text,
                      event.source))
    header = ("kernel", "n", "batch", "dtype", "precision", "variant", "config", "ms", "source")
    if not table:
        print("no tuned kernel was launched")
        return
    widths = [max(len(row[i]) for row in table + [header]) for i in range(len(header))]
    for row in [header] + table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _print_summary(rows, elapsed: float, paths: set) -> None:
    firsts = {}
    for _, event in rows:
        firsts.setdefault((event.kernel, tuple(sorted(event.key.items()))), event.source)
    sources = list(firsts.values())
    counts = {source: sources.count(source)
              for source in ("tuned", "cache", "package", "memory", "default", "single")}
    hits = counts["cache"] + counts["package"] + counts["memory"]
    print(f"{len(firsts)} kernel configs: {counts['tuned']} tuned, {hits} cache hits "
          f"({counts['cache']} cache, {counts['package']} package, {counts['memory']} memory), "
          f"{counts['default']} default (tuning off), {counts['single']} with a single candidate; "
          f"{elapsed:.1f} s; via {', '.join(sorted(paths))}")
