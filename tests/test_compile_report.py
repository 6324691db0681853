"""Every kernel present compiles for sm_80 and sm_90 without spills and within shared memory;
the command covers what the library launches, prints a compact table and fails on a misfit.

No GPU needed: `triton.compile` targets the arch, and the registers and spills are read from
the log of the ptxas run Triton makes for its own cubin. Fused kernels: sizes 16, 20 and 33
cover BLOCK 16, 32 and 64 (the largest size they promise to fit), with every tuning candidate.
Tiled kernels: n = 130 reaches every entry of their autotune space (no entry is wider than 64,
none is pruned for n > 64) and n = 4096 the largest partial-norm reduction of their first step,
the entries offered only where n is a multiple of 16 (`spaces.ALIGNED_FIRST`), and the code a
launch compiles for such an n (specialized as a multiple of 16: other registers, other spills).

Cost: the compiles run once per session, both archs in one child process per kernel family
(the fixtures below are session-scoped and shared by every test), on every CPU; each distinct
kernel compiles once per arch and alignment of n (so twice: n = 130 and 4096). The tests that need
them are marked `slow_compile` (deselect with -m "not slow_compile"). In a session with other
tests, conftest.py starts these compiles in the background as collection ends, one a CPU at low
priority, and runs the tests that need them last: the interpreter tests keep one core busy. The
split last Newton–Schulz step is listed only where n is a multiple of 16, so n = 4096 compiles it.
"""

import os
import threading

import pytest

from tritonsqrt.kernels import compile_report, spaces as tiled_space, tiled

FUSED = ("fused_roots", "fused_lyapunov")
FUSED_SIZES = (16, 20, 33)
TILED_SIZES = (130, 4096)
ARCHS = ("sm_80", "sm_90")


def _compile_all(jobs=None) -> list:
    # Without line tables (ptxas -lineinfo, the PTX's .loc lines): about 15% less compile time,
    # the same registers, spills and shared memory (compared on 12 chained-kernel configs, sm_80
    # and sm_90); the compile child and its workers inherit it. `tritonsqrt compile-report` keeps them.
    os.environ["TRITON_DISABLE_LINE_INFO"] = "1"
    both = ",".join(ARCHS)
    fused = compile_report.report(both, FUSED_SIZES, ("float32",), modules=FUSED, jobs=jobs)
    large = compile_report.report(both, TILED_SIZES, ("float32", "float64"), modules=("tiled",), jobs=jobs)
    return fused + large


_BACKGROUND: dict = {}  # "thread", then "rows" or "error", once conftest has started the compiles


def start_compiles_in_background(jobs: int | None) -> None:
    """Compile from the end of collection on, in a thread that waits on the child process, so
    the interpreter tests run beside it; conftest runs these tests last. The thread lowers its
    own priority (Linux: per thread, inherited by the child it starts), so the compiles take the
    cores the interpreter tests leave idle and all of them once those are done."""
    def run():
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):  # no per-thread priority here: the compiles just share the cores
            pass
        try:
            _BACKGROUND["rows"] = _compile_all(jobs)
        except BaseException as error:  # re-raised in the fixture, where a test can report it
            _BACKGROUND["error"] = error

    _BACKGROUND["thread"] = threading.Thread(target=run, name="compile-checks", daemon=True)
    _BACKGROUND["thread"].start()


@pytest.fixture(scope="session")
def all_rows():
    if "thread" not in _BACKGROUND:  # this file run on its own terms (no conftest start)
        return _compile_all()
    _BACKGROUND["thread"].join()
    if "error" in _BACKGROUND:
        raise _BACKGROUND["error"]
    return _BACKGROUND["rows"]


@pytest.fixture(params=ARCHS)
def rows(all_rows, request):
    return [row for row in all_rows if row["arch"] == request.param]


def describe(row) -> str:
    return (f"{row['arch']} n={row['n']} {row['dtype']} {row['kernel']} warps={row['num_warps']}: "
            f"regs={row['registers']} spills={row['spill_stores']}/{row['spill_loads']} "
            f"smem={row['shared_bytes']} error={row['error']}")


@pytest.mark.slow_compile
def test_every_present_module_is_reported(rows):
    assert {row["module"] for row in rows} == set(FUSED) | {"tiled"}


@pytest.mark.slow_compile
def test_everything_compiles(rows):
    failed = [describe(row) for row in rows if row["error"]]
    assert not failed, "\n".join(failed)


@pytest.mark.slow_compile
@pytest.mark.parametrize("module", FUSED + ("tiled",))
def test_no_spills_and_shared_memory_within_the_arch(rows, module):
    mine = [row for row in rows if row["module"] == module]
    assert mine
    misfits = [describe(row) for row in mine if not row["fits"]]
    assert not misfits, "\n".join(misfits)


@pytest.mark.slow_compile
@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_tiled_report_covers_the_whole_autotune_space(rows, dtype_name):
    """Every (kernel, config, precision) a launch can pick on sm_80 or sm_90 is in the report."""
    arch = rows[0]["arch"]
    shared = compile_report.ARCHES[arch].max_shared_bytes
    reported = {row["kernel"] for row in rows if row["module"] == "tiled" and row["dtype"] == dtype_name}
    precisions = tiled.PRECISIONS if dtype_name == "float32" else ("ieee",)
    for space in tiled_space.GPU_SPACE[dtype_name]:  # "newton_schulz_step_ends": the first step's (and the last's)
        kernel_name = space.removesuffix("_ends")
        for precision in precisions:
            for n in TILED_SIZES:
                for config in tiled_space.candidate_configs(space, n, dtype_name, precision, shared_memory=shared,
                                                            tma=arch == "sm_90"):
                    split = "SPLIT_PROGRAMS=2," if config["SPLIT_PROGRAMS"] == 2 else ""
                    split += "TMA=1," if config.get("TMA") else ""
                    label = (f"{split}BLOCK={config['BLOCK']},BLOCK_K={config['BLOCK_K']},GROUP={config['GROUP']},"
                             f"warps={config['num_warps']},stages={config['num_stages']},{precision}]")
                    assert any(name.startswith(f"tiled.{kernel_name}[") and name.endswith(label)
                               for name in reported), (space, label)


@pytest.mark.slow_compile
def test_compact_table_has_one_line_per_kernel_family(all_rows):
    from tritonsqrt.kernels.report_table import compact_table

    text = compact_table(all_rows)
    lines = text.splitlines()
    assert len(lines) < len(all_rows) / 2  # many configs a line
    assert max(len(line) for line in lines) <= 120
    assert any("tiled.product" in line and "float64" in line for line in lines)
    assert any("roots_forward[mpa]" in line and "sm_80" in line for line in lines)


def test_ptxas_log_is_read_from_tritons_own_run():
    log = ("ptxas info    : Used 40 registers, used 1 barriers, 380 bytes cmem[0]\n"
           "ptxas info    : 8 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n"
           "ptxas info    : Function properties for helper\n"
           "ptxas info    : 0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n")
    assert compile_report._read_ptxas_log(log) == {"registers": 40, "spill_stores": 8, "spill_loads": 4,
                                                   "stack_bytes": 8}
    with pytest.raises(RuntimeError, match="ptxas"):
        compile_report._read_ptxas_log("nothing here")


def test_only_what_the_library_launches_by_default():
    assert compile_report.launched("fused_lyapunov", 64) and compile_report.launched("tiled", 65)
    assert not compile_report.launched("fused_lyapunov", 128)  # compiles, never launched: n = 128 is tiled
    assert not compile_report.launched("tiled", 64)


def _row(**changes):
    row = {"arch": "sm_90", "module": "fused_lyapunov", "kernel": "lyapunov_backward_streamed[BLOCK=64,ieee]",
           "n": 64, "dtype": "float32", "num_warps": 8, "num_stages": 1, "precision": "ieee", "registers": 255,
           "spill_stores": 0, "spill_loads": 0, "stack_bytes": 0, "shared_bytes": 16384, "error": None,
           "compile_s": 1.0, "fits": True}
    return dict(row, **changes)


def test_exit_status_fails_on_a_launched_misfit(monkeypatch, capsys):
    from tritonsqrt import cli

    spilled = _row(spill_stores=28, spill_loads=28, fits=False)
    monkeypatch.setattr(compile_report, "report", lambda *args, **kwargs: [_row(), spilled])
    assert cli.main(["compile-report", "--n", "64", "--dtype", "float32"]) == 1
    out = capsys.readouterr().out
    assert "1 spill or exceed a limit" in out and "misfit: sm_90 n=64" in out
    # a misfit the library never launches (n = 128, seen with --all) does not fail the command
    never = _row(n=128, spill_stores=2520, fits=False)
    monkeypatch.setattr(compile_report, "report", lambda *args, **kwargs: [_row(), never])
    assert cli.main(["compile-report", "--n", "128", "--all"]) == 0


def test_progress_goes_to_stderr(monkeypatch, capsys):
    monkeypatch.setattr(compile_report, "_compile", lambda name, spec, n, dtype, arch: _row(kernel=spec["name"]))
    monkeypatch.setattr(compile_report, "_RESULTS", {})
    spec = {"name": "k[x]", "num_warps": 4, "num_stages": 1, "constexprs": {}, "signature": {}}
    rows = compile_report.compile_listed([("m", 16, "float32", 0, spec)], compile_report.ARCHES["sm_90"], jobs=1,
                                         progress=True)
    assert rows[0]["kernel"] == "k[x]"
    captured = capsys.readouterr()
    assert "compile-report: 1/1 sm_90 n=16 float32 k[x]" in captured.err and captured.out == ""



def test_an_aligned_size_is_compiled_apart(monkeypatch):
    """A kernel taking `n` compiles twice for n = 130 and 4096: the launcher specializes an n
    divisible by 16, and that code may spill where the other does not (it did once: a 64-wide
    Lyapunov config at n = 4096, ieee, sm_80). Other sizes sharing the alignment share the compile."""
    compiled = []
    monkeypatch.setattr(compile_report, "_compile",
                        lambda name, spec, n, dtype, arch: compiled.append(n) or _row(kernel=spec["name"], n=n))
    monkeypatch.setattr(compile_report, "_RESULTS", {})
    takes_n = {"name": "k[x]", "num_warps": 4, "num_stages": 1, "constexprs": {}, "signature": {"n": "i32"}}
    no_n = dict(takes_n, name="e[x]", signature={"count": "i32"})
    listed = [("m", n, "float32", 0, spec) for spec in (takes_n, no_n) for n in (130, 4096, 131, 2048)]
    compile_report.compile_listed(listed, compile_report.ARCHES["sm_90"], jobs=1)
    assert compiled == [130, 4096, 130]

@pytest.mark.slow_compile
def test_table_and_command(all_rows, tmp_path, capsys):
    from tritonsqrt import cli

    out = tmp_path / "report.json"
    code = cli.main(["compile-report", "--arch", "sm_90", "--n", "16", "--dtype", "float32", "--json", str(out),
                     "--module", "fused_roots,fused_lyapunov"])  # the session child's rows
    assert code == 0
    printed = capsys.readouterr().out
    assert "lyapunov_backward" in printed and "spill B" in printed
    assert out.exists()


def test_no_candidate_is_narrower_in_k_than_the_installed_triton_compiles():
    """Triton 3.6 (the GPU image) asserts K >= 16 in every `tl.dot`, 3.9 takes K = 8 for 32-bit
    operands: `spaces.MIN_BLOCK_K` must be what the installed NVIDIA backend says, and no
    candidate on any GPU may go below it (a default that does not compile fails the launch)."""
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import min_dot_size

    operand = tl.block_type(tl.float32, [64, 64])
    for capability in (80, 90):
        assert min_dot_size(GPUTarget("cuda", capability, 32))(operand, operand)[2] == tiled_space.MIN_BLOCK_K
    for dtype_name, kernels in (("float32", tiled_space.TF32X3_SPACE), ("float64", tiled_space.GPU_SPACE["float64"])):
        for kernel_name in kernels:
            for precision in tiled.PRECISIONS if dtype_name == "float32" else ("ieee",):
                for n in (130, 4096):
                    for config in tiled_space.candidate_configs(kernel_name, n, dtype_name, precision,
                                                                shared_memory=tiled_space.SM90_SHARED_MEMORY, tma=True):
                        assert config["BLOCK_K"] >= tiled_space.MIN_BLOCK_K, (kernel_name, precision, n, config)
