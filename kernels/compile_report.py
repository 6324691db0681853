"""`tritonsqrt compile-report`: compile every kernel for a GPU arch on a machine without one.

Each kernel module (`fused_roots`, `fused_lyapunov`, `tiled`; whichever exist) lists what its
launcher can run at a size with `compile_specs(n, dtype_name)`. Every spec is compiled with
`triton.compile(ASTSource(...), target=GPUTarget("cuda", cc, 32))`, and the registers, spills
and stack are read from the log of the ptxas run Triton itself makes for the cubin (its
`dump_ptxas_log` knob, with a fresh compile forced): the same ptxas, the same flags
(`-lineinfo`, `--regAllocOptLevel=2` on 3.9, ...), so the same code a GPU would load. The
metadata gives the shared memory. A spec fits when it spills nothing, uses at most 255
registers a thread and stays within the arch's shared memory. Works the same on Triton 3.6
and 3.9 (no GPU, no driver needed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from .launch_options import LAUNCH_OPTIONS

KERNEL_MODULES = ("tritonsqrt.kernels.fused_roots", "tritonsqrt.kernels.fused_lyapunov", "tritonsqrt.kernels.tiled")
DEFAULT_SIZES = (16, 32, 64, 128)
DTYPES = ("float32", "float64")
MAX_REGISTERS = 255


@dataclasses.dataclass(frozen=True)
class Arch:
    name: str
    capability: int
    max_shared_bytes: int  # dynamic shared memory a block may opt into


# CUDA programming guide, compute capabilities table: 163 KiB (8.0), 227 KiB (9.0).
ARCHES = {
    "sm_80": Arch("sm_80", 80, 163 * 1024),
    "sm_90": Arch("sm_90", 90, 227 * 1024),
}

_PTXAS_REGISTERS = re.compile(r"Used (\d+) registers")
_PTXAS_SPILLS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")


def kernel_modules() -> list:
    """The kernel modules present in this build that list their specs.

    A module absent, or present without `compile_specs` yet, is skipped (`main` says which);
    one that fails to import raises.
    """
    found = []
    for name in KERNEL_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
        if hasattr(module, "compile_specs"):
            found.append(module)
    return found


def modules_without_specs() -> list[str]:
    return [name for name in KERNEL_MODULES
            if importlib.util.find_spec(name) is not None and name not in {m.__name__ for m in kernel_modules()}]


def _read_ptxas_log(log: str) -> dict:
    registers = _PTXAS_REGISTERS.findall(log)
    spills = _PTXAS_SPILLS.findall(log)
    if not registers or not spills:
        raise RuntimeError(f"could not read the ptxas -v log:\n{log}")
    # One entry function per kernel; any noinline function adds its own lines: take the worst.
    stack, spill_stores, spill_loads = (max(int(row[i]) for row in spills) for i in range(3))
    return {"registers": max(int(r) for r in registers), "spill_stores": spill_stores, "spill_loads": spill_loads,
            "stack_bytes": stack}


def _compile_with_ptxas_log(source, target, options) -> tuple:
    """`triton.compile` with Triton's own ptxas log captured: (compiled kernel, usage dict).

    Triton prints the log when `knobs.nvidia.dump_ptxas_log` is set, and runs ptxas only on a
    cache miss, so a fresh compile is forced.
    """
    import triton
    from triton import knobs

    printed = io.StringIO()
    with knobs.nvidia.scope(), knobs.compilation.scope(), contextlib.redirect_stdout(printed):
        knobs.nvidia.dump_ptxas_log = True
        knobs.compilation.always_compile = True
        compiled = triton.compile(source, target=target, options=options)
    return compiled, _read_ptxas_log(printed.getvalue())


_RESULTS: dict = {}  # what was compiled -> row: one compile per kernel and arch per process


def _launch_options(spec: dict) -> dict:
    """The compile options the launcher passes with this spec (its own, else the common ones)."""
    return spec.get("options", LAUNCH_OPTIONS)


def _key(module_name: str, spec: dict, dtype_name: str, arch: Arch) -> tuple:
    # Sizes sharing a BLOCK (33 and 64) share the compiled kernel: key on what is compiled.
    return (module_name, spec["name"], dtype_name, spec["num_warps"], spec["num_stages"], arch.capability,
            repr(sorted(spec["constexprs"].items())), repr(sorted(spec["signature"].items())),
            repr(sorted(_launch_options(spec).items())))


def compile_spec(module_name: str, spec: dict, n: int, dtype_name: str, arch: Arch) -> dict:
    """One report row: compile the spec for the arch and read its resources (cached)."""
    key = _key(module_name, spec, dtype_name, arch)
    if key in _RESULTS:
        return dict(_RESULTS[key], n=n)
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    row = {"arch": arch.name, "module": module_name.rsplit(".", 1)[-1], "kernel": spec["name"], "n": n,
           "dtype": dtype_name, "num_warps": spec["num_warps"], "num_stages": spec["num_stages"]}
    started = time.perf_counter()
    try:
        compiled, usage = _compile_with_ptxas_log(
            ASTSource(spec["fn"], spec["signature"], spec["constexprs"]),
            target=GPUTarget("cuda", arch.capability, 32),
            options={"num_warps": spec["num_warps"], "num_stages": spec["num_stages"], **_launch_options(spec)},
        )
        row.update(usage)
        row["shared_bytes"] = int(compiled.metadata.shared)
        row["error"] = None
    except Exception as error:  # a report, not a crash: the row says what failed
        root = error
        while root.__cause__ is not None:  # Triton wraps the real complaint in CompilationErrors
            root = root.__cause__
        lines = [line for line in str(root).strip().splitlines() if line.strip(" ^")]
        row.update(registers=None, spill_stores=None, spill_loads=None, stack_bytes=None, shared_bytes=None,
                   error=f"{type(root).__name__}: {lines[-1] if lines else ''}")
    row["compile_s"] = round(time.perf_counter() - started, 2)
    row["fits"] = row["error"] is None and row["spill_stores"] == 0 and row["spill_loads"] == 0 and \
        row["registers"] <= MAX_REGISTERS and row["shared_bytes"] <= arch.max_shared_bytes
    _RESULTS[key] = row
    return row


def _compile_listed(module_name: str, n: int, dtype_name: str, index: int, arch_name: str) -> dict:
    """A worker's job: spec number `index` of the module's list (kernels do not pickle)."""
    spec = importlib.import_module(module_name).compile_specs(n, dtype_name)[index]
    return compile_spec(module_name, spec, n, dtype_name, ARCHES[arch_name])


def default_jobs() -> int:
    """Worker processes for the compiles: the CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def report(arch: str, sizes=DEFAULT_SIZES, dtypes=DTYPES, modules=None, jobs: int | None = None) -> list[dict]:
    """Compile every spec of every present kernel module at each size and dtype for `arch`.

    modules: short names ("fused_lyapunov") to restrict the report to; None for all.
    jobs: compiles run at once, in worker processes (None: one per CPU; 1: in this process).

    Under TRITON_INTERPRET=1 (the test session) the kernels are interpreter objects that
    cannot be compiled, so the report runs in a child process without it.
    """
    if arch not in ARCHES:
        raise ValueError(f"arch: expected one of {', '.join(ARCHES)}, got {arch!r}")
    jobs = default_jobs() if jobs is None else jobs
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        rows = _report_in_child(arch, tuple(sizes), tuple(dtypes), tuple(modules) if modules else None, jobs)
        return [row for row in rows if modules is None or row["module"] in modules]
    listed = []  # (module name, n, dtype, index in its list, spec), in report order
    for module in kernel_modules():
        if modules is not None and module.__name__.rsplit(".", 1)[-1] not in modules:
            continue
        for n in sizes:
            for dtype_name in dtypes:
                for index, spec in enumerate(module.compile_specs(n, dtype_name)):
                    listed.append((module.__name__, n, dtype_name, index, spec))
    target = ARCHES[arch]
    if jobs > 1:
        _compile_in_workers(listed, target, jobs)
    return [compile_spec(name, spec, n, dtype_name, target) for name, n, dtype_name, _, spec in listed]


def _compile_in_workers(listed: list, arch: Arch, jobs: int) -> None:
    """Fill the row cache for every distinct spec of `listed`, `jobs` compiles at a time."""
    import concurrent.futures
    import multiprocessing

    todo = {}
    for name, n, dtype_name, index, spec in listed:
        key = _key(name, spec, dtype_name, arch)
        if key not in _RESULTS:
            todo.setdefault(key, (name, n, dtype_name, index, arch.name))
    if len(todo) < 2:
        return
    # fork: the workers start with Triton and the kernel modules already imported.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with concurrent.futures.ProcessPoolExecutor(min(jobs, len(todo)), multiprocessing.get_context(method)) as pool:
        futures = {key: pool.submit(_compile_listed, *task) for key, task in todo.items()}
        for key, future in futures.items():
            _RESULTS[key] = future.result()


_CHILD_ROWS: dict = {}  # (arch, n, dtype) -> rows, so a test session compiles each once


def _report_in_child(arch: str, sizes: tuple, dtypes: tuple, modules: tuple | None, jobs: int) -> list[dict]:
    missing_sizes = sorted({n for n in sizes for d in dtypes if (arch, n, d, modules) not in _CHILD_ROWS})
    if missing_sizes:
        with tempfile.TemporaryDirectory() as folder:
            out = os.path.join(folder, "rows.json")
            env = dict(os.environ, TRITON_INTERPRET="0")
            command = [sys.executable, "-m", "tritonsqrt.cli", "compile-report", "--arch", arch,
                       "--n", ",".join(map(str, missing_sizes)), "--dtype", ",".join(dtypes), "--json", out,
                       "--jobs", str(jobs)]
            if modules:
                command += ["--module", ",".join(modules)]
            child = subprocess.run(command, env=env, capture_output=True, text=True)
            if not os.path.exists(out):
                raise RuntimeError(f"compile-report child failed ({child.returncode}):\n{child.stderr[-3000:]}")
            with open(out) as handle:
                child_rows = json.load(handle)["rows"]
        for n in missing_sizes:
            for d in dtypes:
                _CHILD_ROWS[(arch, n, d, modules)] = [row for row in child_rows if row["n"] == n and row["dtype"] == d]
    return [row for n in sizes for d in dtypes for row in _CHILD_ROWS[(arch, n, d, modules)]]


def format_table(rows: list[dict]) -> str:
    columns = [("arch", "arch"), ("n", "n"), ("dtype", "dtype"), ("kernel", "kernel"), ("num_warps", "warps"),
               ("registers", "regs"), ("spill_stores", "spill st"), ("spill_loads", "spill ld"),
               ("shared_bytes", "smem B"), ("fits", "fits"), ("compile_s", "compile s")]
    cells = [[label for _, label in columns]]
    for row in rows:
        line = ["-" if row[key] is None else str(row[key]) for key, _ in columns]
        if row["error"]:
            line[-2] = "FAILED"
        cells.append(line)
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    text = [" | ".join(value.ljust(width) for value, width in zip(line, widths)) for line in cells]
    text.insert(1, "-+-".join("-" * width for width in widths))
    errors = [f"{row['arch']} n={row['n']} {row['dtype']} {row['kernel']}: {row['error']}" for row in rows if row["error"]]
    return "\n".join(text + ([""] + errors if errors else []))


def add_arguments(parser) -> None:
    parser.add_argument("--arch", default="sm_90",
                        help=f"comma-separated target archs, of {', '.join(ARCHES)} (default sm_90)")
    parser.add_argument("--n", default=",".join(str(n) for n in DEFAULT_SIZES),
                        help="comma-separated matrix sizes (default 16,32,64,128)")
    parser.add_argument("--dtype", default=",".join(DTYPES), help="comma-separated compute dtypes")
    parser.add_argument("--module", help="comma-separated kernel modules to report (default: every one present), "
                        "e.g. fused_lyapunov")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON to FILE")
    parser.add_argument("--jobs", type=int, default=None,
                        help="compiles at once, in worker processes (default: one per CPU)")


def main(args) -> int:
    import triton

    archs = [a.strip() for a in args.arch.split(",") if a.strip()]
    for arch in archs:
        if arch not in ARCHES:
            print(f"compile-report: --arch: expected {', '.join(ARCHES)}, got {arch!r}", file=sys.stderr)
            return 2
    try:
        sizes = [int(v) for v in args.n.split(",") if v.strip()]
    except ValueError:
        print(f"compile-report: --n: expected comma-separated integers, got {args.n!r}", file=sys.stderr)
        return 2
    dtypes = [d.strip() for d in args.dtype.split(",") if d.strip()]
    if any(d not in DTYPES for d in dtypes):
        print(f"compile-report: --dtype: expected some of {', '.join(DTYPES)}, got {args.dtype!r}", file=sys.stderr)
        return 2
    modules = [m.__name__ for m in kernel_modules()]
    print(f"Triton {triton.__version__}; kernel modules: {', '.join(modules) or 'none'}")
    for name in modules_without_specs():
        print(f"note: {name} has no compile_specs(n, dtype_name); not compiled")
    only = [m.strip() for m in args.module.split(",")] if args.module else None
    if args.jobs is not None and args.jobs < 1:
        print(f"compile-report: --jobs: expected a positive count, got {args.jobs}", file=sys.stderr)
        return 2
    rows = [row for arch in archs for row in report(arch, sizes, dtypes, only, args.jobs)]
    print(format_table(rows))
    misfits = [row for row in rows if not row["fits"] and not row["error"]]
    failed = [row for row in rows if row["error"]]
    print(f"\n{len(rows)} compiled, {len(rows) - len(failed) - len(misfits)} fit, {len(misfits)} spill or exceed "
          f"a limit, {len(failed)} failed to compile")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"triton": triton.__version__, "rows": rows}, handle, indent=1)
    return 1 if failed else 0
