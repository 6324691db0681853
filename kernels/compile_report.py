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

Each row also carries the loop tree and instruction mix of the kernel's SASS (`perf_model`,
`sass`), from which `--model` computes occupancy and modeled times (docs/perf-model.md).
By default only what the library launches is compiled (`launched`); `--all` adds the rest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from . import perf_model, sass
from .launch import LAUNCH_OPTIONS
from .report_table import compact_table

from tritonsqrt.constants import interpreter_on

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
    """The kernel modules, each with its `compile_specs(n, dtype_name)`."""
    return [importlib.import_module(name) for name in KERNEL_MODULES]


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


def _key(module_name: str, spec: dict, n: int, dtype_name: str, arch: Arch) -> tuple:
    # Sizes sharing a BLOCK (33 and 64) share the compiled kernel: key on what is compiled,
    # which includes whether `n` is specialized as a multiple of 16 (`_aligned_pointers`).
    return (module_name, spec["name"], dtype_name, spec["num_warps"], spec["num_stages"], arch.capability,
            repr(sorted(spec["constexprs"].items())), repr(sorted(spec["signature"].items())),
            repr(sorted(_launch_options(spec).items())), _n_aligned(spec, n))


def _n_aligned(spec: dict, n: int | None) -> bool:
    """Whether the launcher specializes the kernel's `n` as a multiple of 16 (`_aligned_pointers`)."""
    return n is not None and n % 16 == 0 and spec["signature"].get("n") == "i32"


def compile_spec(module_name: str, spec: dict, n: int, dtype_name: str, arch: Arch, dump_dir: str | None = None,
                 with_sass: bool = False) -> dict:
    """One report row: compile the spec for the arch and read its resources (cached).

    with_sass: add the loop tree and instruction mix of its SASS (`perf_model.sass_summary`);
    dump_dir: also write the SASS there, one file per kernel and config. Both read the cubin
    kept in the cache, so asking later costs no second compile.
    """
    key = _key(module_name, spec, n, dtype_name, arch)
    if key not in _RESULTS:
        _RESULTS[key] = _compile(module_name, spec, n, dtype_name, arch)
    row = _RESULTS[key]
    if (with_sass or dump_dir) and row.get("cubin") and row.get("sass_text") is None:
        try:
            row["sass_text"] = sass.disassemble(row["cubin"])
            row["sass"] = perf_model.sass_summary(row["sass_text"])
        except (OSError, RuntimeError) as error:  # no cuobjdump: resources still reported
            row["sass_error"] = str(error)
    if dump_dir and row.get("sass_text"):
        _dump_sass(dump_dir, row)
    return _public(dict(row, n=n))


def _aligned_pointers(spec: dict, n: int | None = None) -> dict:
    """Every pointer argument 16-byte aligned, as Triton's launcher specializes a kernel for a
    tensor whose data_ptr() is (every tensor torch allocates is): without it the compiled code
    assumes nothing and moves 4 bytes an instruction, which no launch on a GPU runs. Likewise the
    matrix size `n` where it is a multiple of 16: the launcher specializes an integer argument
    divisible by 16 as such, and the tiled kernels' row stride is n."""
    names = spec["fn"].arg_names
    attrs = {(names.index(name),): [["tt.divisibility", 16]]
             for name, kind in spec["signature"].items() if kind.startswith("*")}
    if _n_aligned(spec, n):
        attrs[(names.index("n"),)] = [["tt.divisibility", 16]]
    return attrs


def _compile(module_name: str, spec: dict, n: int, dtype_name: str, arch: Arch) -> dict:
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    row = {"arch": arch.name, "module": module_name.rsplit(".", 1)[-1], "kernel": spec["name"], "n": n,
           "dtype": dtype_name, "num_warps": spec["num_warps"], "num_stages": spec["num_stages"],
           "precision": spec["constexprs"].get("PRECISION", "-"), "constexprs": dict(spec["constexprs"]), "sass": None}
    started = time.perf_counter()
    try:
        compiled, usage = _compile_with_ptxas_log(
            ASTSource(spec["fn"], spec["signature"], spec["constexprs"], attrs=_aligned_pointers(spec, n)),
            target=GPUTarget("cuda", arch.capability, 32),
            options={"num_warps": spec["num_warps"], "num_stages": spec["num_stages"], **_launch_options(spec)},
        )
        row.update(usage)
        row["shared_bytes"] = int(compiled.metadata.shared)
        row["error"] = None
        row["cubin"] = compiled.asm["cubin"]
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
    return row


def _public(row: dict) -> dict:
    """The row without the cubin and SASS text (kept in the cache, never in JSON)."""
    return {key: value for key, value in row.items() if key not in ("cubin", "sass_text")}


def _dump_sass(folder: str, row: dict) -> None:
    os.makedirs(folder, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.=,-]+", "_", f"{row['arch']}-{row['dtype']}-{row['kernel']}")
    with open(os.path.join(folder, name + ".sass"), "w") as handle:
        handle.write(row["sass_text"])


def launched(module_short: str, n: int) -> bool:
    """Whether the library launches this kernel module at size n: the fused kernels up to
    `routing.max_kernel_n()` (64), the tiled ones above it (`routing.path_for`)."""
    from tritonsqrt.paths.routing import max_kernel_n

    return (n <= max_kernel_n()) == (module_short != "tiled")


def _compile_listed(module_name: str, n: int, dtype_name: str, index: int, arch_name: str) -> dict:
    """A worker's job: spec number `index` of the module's list (kernels do not pickle).

    Returns the full cached row (SASS text included), for the parent's cache."""
    spec = importlib.import_module(module_name).compile_specs(n, dtype_name)[index]
    return _compile(module_name, spec, n, dtype_name, ARCHES[arch_name])


def default_jobs() -> int:
    """Worker processes for the compiles: the CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def report(arch: str, sizes=DEFAULT_SIZES, dtypes=DTYPES, modules=None, jobs: int | None = None,
           launched_only: bool = True, progress: bool = False, dump_dir: str | None = None) -> list[dict]:
    """Compile every spec of every present kernel module at each size and dtype for `arch`.

    modules: short names ("fused_lyapunov") to restrict the report to; None for all.
    jobs: compiles run at once, in worker processes (None: one per CPU; 1: in this process).
    launched_only: skip module and size pairs the library never launches (`launched`).
    progress: one line on stderr per compile. dump_dir: write each kernel's SASS there.

    Under TRITON_INTERPRET=1 (the test session) the kernels are interpreter objects that
    cannot be compiled, so the report runs in a child process without it.
    """
    archs = arch.split(",")  # "sm_80,sm_90": both, in one child process under the interpreter
    for name in archs:
        if name not in ARCHES:
            raise ValueError(f"arch: expected one of {', '.join(ARCHES)}, got {name!r}")
    jobs = default_jobs() if jobs is None else jobs
    if interpreter_on():
        rows = _report_in_child(tuple(archs), tuple(sizes), tuple(dtypes), tuple(modules) if modules else None, jobs,
                                launched_only)
        return [row for row in rows if modules is None or row["module"] in modules]
    if len(archs) > 1:
        return [row for name in archs for row in report(name, sizes, dtypes, modules, jobs, launched_only, progress,
                                                         dump_dir)]
    listed = []  # (module name, n, dtype, index in its list, spec), in report order
    for module in kernel_modules():
        short = module.__name__.rsplit(".", 1)[-1]
        if modules is not None and short not in modules:
            continue
        for n in sizes:
            if launched_only and not launched(short, n):
                continue
            for dtype_name in dtypes:
                for index, spec in enumerate(module.compile_specs(n, dtype_name)):
                    listed.append((module.__name__, n, dtype_name, index, spec))
    return compile_listed(listed, ARCHES[arch], jobs, progress, dump_dir)


def compile_listed(listed: list, arch: Arch, jobs: int, progress: bool = False, dump_dir: str | None = None,
                   with_sass: bool = False) -> list:
    """Rows of (module name, n, dtype, index, spec) entries: each distinct spec compiled once.
    A spec with "archs" (names) is compiled for those only: the launchers use it nowhere else."""
    listed = [entry for entry in listed if arch.name in entry[4].get("archs", (arch.name,))]
    if jobs > 1:
        _compile_in_workers(listed, arch, jobs, progress)
    rows = []
    for count, (name, n, dtype_name, _, spec) in enumerate(listed, 1):
        cached = _key(name, spec, n, dtype_name, arch) in _RESULTS
        rows.append(compile_spec(name, spec, n, dtype_name, arch, dump_dir, with_sass))
        if progress and not cached:
            _say(f"{count}/{len(listed)} {arch.name} n={n} {dtype_name} {spec['name']}")
    return rows


def _say(line: str) -> None:
    print(f"compile-report: {line}", file=sys.stderr, flush=True)


def _compile_in_workers(listed: list, arch: Arch, jobs: int, progress: bool = False) -> None:
    """Fill the row cache for every distinct spec of `listed`, `jobs` compiles at a time."""
    import concurrent.futures
    import multiprocessing

    todo = {}
    for name, n, dtype_name, index, spec in listed:
        key = _key(name, spec, n, dtype_name, arch)
        if key not in _RESULTS:
            todo.setdefault(key, (name, n, dtype_name, index, arch.name))
    if len(todo) < 2:
        return
    if progress:
        _say(f"{len(todo)} distinct kernels to compile for {arch.name}, {min(jobs, len(todo))} at a time")
    # fork: the workers start with Triton and the kernel modules already imported.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with concurrent.futures.ProcessPoolExecutor(min(jobs, len(todo)), multiprocessing.get_context(method)) as pool:
        futures = {pool.submit(_compile_listed, *task): key for key, task in todo.items()}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            row = _RESULTS[futures[future]] = future.result()
            if progress:
                _say(f"{done}/{len(todo)} compiled in {row['compile_s']} s: "
                     f"n={row['n']} {row['dtype']} {row['kernel']}")


_CHILD_ROWS: dict = {}  # (arch, n, dtype) -> rows, so a test session compiles each once


def _report_in_child(archs: tuple, sizes: tuple, dtypes: tuple, modules: tuple | None, jobs: int,
                     launched_only: bool = True) -> list[dict]:
    what = (modules, launched_only)  # both are part of what a cached child answered
    missing = sorted({(n, arch) for n in sizes for d in dtypes for arch in archs
                      if (arch, n, d, what) not in _CHILD_ROWS})
    if missing:
        missing_sizes = sorted({n for n, _ in missing})
        missing_archs = sorted({arch for _, arch in missing})
        with tempfile.TemporaryDirectory() as folder:
            out = os.path.join(folder, "rows.json")
            env = dict(os.environ, TRITON_INTERPRET="0")
            command = [sys.executable, "-m", "tritonsqrt.cli", "compile-report", "--arch", ",".join(missing_archs),
                       "--n", ",".join(map(str, missing_sizes)), "--dtype", ",".join(dtypes), "--json", out,
                       "--jobs", str(jobs)]
            if modules:
                command += ["--module", ",".join(modules)]
            if not launched_only:
                command.append("--all")
            child = subprocess.run(command, env=env, capture_output=True, text=True)
            if not os.path.exists(out):
                raise RuntimeError(f"compile-report child failed ({child.returncode}):\n{child.stderr[-3000:]}")
            with open(out) as handle:
                child_rows = json.load(handle)["rows"]
        for arch in missing_archs:
            for n in missing_sizes:
                for d in dtypes:
                    _CHILD_ROWS[(arch, n, d, what)] = [row for row in child_rows
                                                       if row["arch"] == arch and row["n"] == n and row["dtype"] == d]
    return [row for arch in archs for n in sizes for d in dtypes for row in _CHILD_ROWS[(arch, n, d, what)]]


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
    from tritonsqrt.commands import args as arg_types  # bad values: one line, exit 2

    modules = tuple(name.rsplit(".", 1)[-1] for name in KERNEL_MODULES)
    parser.add_argument("--arch", type=arg_types.names_from(ARCHES), default="sm_90",
                        help=f"comma-separated target archs, of {', '.join(ARCHES)} (default sm_90)")
    parser.add_argument("--n", type=arg_types.positive_ints_text, default=",".join(str(n) for n in DEFAULT_SIZES),
                        help="comma-separated matrix sizes (default 16,32,64,128)")
    parser.add_argument("--dtype", type=arg_types.names_from(DTYPES), default=",".join(DTYPES),
                        help="comma-separated compute dtypes")
    parser.add_argument("--module", type=arg_types.names_from(modules),
                        help="comma-separated kernel modules to report (default: every one present), e.g. fused_lyapunov")
    parser.add_argument("--json", type=arg_types.writable_file, metavar="FILE",
                        help="also write the rows as JSON to FILE")
    parser.add_argument("--jobs", type=arg_types.positive_int, default=None,
                        help="compiles at once, in worker processes (default: one per CPU)")
    parser.add_argument("--all", action="store_true",
                        help="also compile what the library never launches (fused kernels above n = 64, "
                             "tiled ones at n <= 64)")
    parser.add_argument("--verbose", action="store_true", help="one line per kernel config, not per kernel")
    parser.add_argument("--model", action="store_true",
                        help="performance model from the SASS: instruction mix, occupancy and modeled time of "
                             "every bench case on the arch's GPUs (docs/perf-model.md); compiles what the bench "
                             "cases launch, ignoring --n/--dtype/--module")
    parser.add_argument("--dump-sass", metavar="DIR", help="write each compiled kernel's SASS to DIR, one file "
                        "per kernel and config")


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
    if args.jobs is not None and args.jobs < 1:
        print(f"compile-report: --jobs: expected a positive count, got {args.jobs}", file=sys.stderr)
        return 2
    if (args.model or args.dump_sass) and interpreter_on():
        print("compile-report: --model and --dump-sass compile in this process: unset TRITON_INTERPRET "
              "(the interpreter's kernels cannot be compiled)", file=sys.stderr)
        return 2
    modules = [m.__name__ for m in kernel_modules()]
    print(f"Triton {triton.__version__}; kernel modules: {', '.join(modules) or 'none'}")
    jobs = default_jobs() if args.jobs is None else args.jobs
    if args.model:
        from .model_report import run_model

        rows, extra = run_model(archs, jobs, args.dump_sass, args.verbose)
    else:
        only = [m.strip() for m in args.module.split(",")] if args.module else None
        rows = report(",".join(archs), sizes, dtypes, only, jobs, launched_only=not args.all, progress=True,
                      dump_dir=args.dump_sass)
        extra = {}
        print(format_table(rows) if args.verbose else compact_table(rows))
    misfits = [row for row in rows if not row["fits"] and not row["error"]]
    failed = [row for row in rows if row["error"]]
    launched_misfits = [row for row in misfits if launched(row["module"], row["n"])]
    print(f"\n{len(rows)} compiled, {len(rows) - len(failed) - len(misfits)} fit, {len(misfits)} spill or exceed "
          f"a limit, {len(failed)} failed to compile" + ("" if args.all or args.model else
                                                         " (only what the library launches; --all for the rest)"))
    for row in misfits if not args.verbose else []:
        print(f"  misfit: {row['arch']} n={row['n']} {row['dtype']} {row['kernel']}: regs {row['registers']}, "
              f"spill {row['spill_stores']}/{row['spill_loads']} B, smem {row['shared_bytes']} B")
    for row in failed if not args.verbose else []:  # the verbose table lists them itself
        print(f"  failed: {row['arch']} n={row['n']} {row['dtype']} {row['kernel']}: {row['error']}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"triton": triton.__version__, "rows": rows, **extra}, handle, indent=1)
    if args.dump_sass:
        print(f"SASS of each kernel and config in {args.dump_sass}")
    # A config the library launches must fit: spilling or over a limit is a failure too.
    return 1 if failed or launched_misfits else 0
