"""Every kernel present compiles for sm_80 and sm_90 without spills and within shared memory.

No GPU needed: `triton.compile` targets the arch, and the registers and spills are read from
the log of the ptxas run Triton makes for its own cubin. Fused kernels: sizes 16, 20 and 33
cover BLOCK 16, 32 and 64 (the largest size they promise to fit), with every tuning candidate.
Tiled kernels: n = 130 reaches every entry of their autotune space (no entry is wider than 64,
none is pruned for n > 64) and n = 4096 the largest partial-norm reduction of their first step. Results are cached per
process (each distinct kernel compiles once per arch), compiles run on every CPU. One test per
kernel module, so a misfit names its module.
"""

import pytest

from tritonsqrt.kernels import compile_report, tiled, tiled_space

FUSED = ("fused_roots", "fused_lyapunov")
FUSED_SIZES = (16, 20, 33)
TILED_SIZES = (130, 4096)


@pytest.fixture(scope="module", params=["sm_80", "sm_90"])
def rows(request):
    fused = compile_report.report(request.param, FUSED_SIZES, ("float32",), modules=FUSED)
    large = compile_report.report(request.param, TILED_SIZES, ("float32", "float64"), modules=("tiled",))
    return fused + large


def describe(row) -> str:
    return (f"{row['arch']} n={row['n']} {row['dtype']} {row['kernel']} warps={row['num_warps']}: "
            f"regs={row['registers']} spills={row['spill_stores']}/{row['spill_loads']} "
            f"smem={row['shared_bytes']} error={row['error']}")


def test_every_present_module_is_reported(rows):
    assert {row["module"] for row in rows} == set(FUSED) | {"tiled"}


def test_everything_compiles(rows):
    failed = [describe(row) for row in rows if row["error"]]
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("module", FUSED + ("tiled",))
def test_no_spills_and_shared_memory_within_the_arch(rows, module):
    mine = [row for row in rows if row["module"] == module]
    assert mine
    misfits = [describe(row) for row in mine if not row["fits"]]
    assert not misfits, "\n".join(misfits)


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_tiled_report_covers_the_whole_autotune_space(rows, dtype_name):
    """Every (kernel, config, precision) a launch can pick on sm_80 or sm_90 is in the report."""
    arch = rows[0]["arch"]
    shared = compile_report.ARCHES[arch].max_shared_bytes
    reported = {row["kernel"] for row in rows if row["module"] == "tiled" and row["dtype"] == dtype_name}
    precisions = tiled.PRECISIONS if dtype_name == "float32" else ("ieee",)
    for kernel_name in tiled_space.GPU_SPACE[dtype_name]:
        for precision in precisions:
            for n in TILED_SIZES:
                for config in tiled_space.candidate_configs(kernel_name, n, dtype_name, precision, shared_memory=shared):
                    label = (f"BLOCK={config['BLOCK']},BLOCK_K={config['BLOCK_K']},GROUP={config['GROUP']},"
                             f"warps={config['num_warps']},stages={config['num_stages']},{precision}]")
                    assert any(name.startswith(f"tiled.{kernel_name}[") and name.endswith(label)
                               for name in reported), (kernel_name, label)


def test_ptxas_log_is_read_from_tritons_own_run():
    log = ("ptxas info    : Used 40 registers, used 1 barriers, 380 bytes cmem[0]\n"
           "ptxas info    : 8 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n"
           "ptxas info    : Function properties for helper\n"
           "ptxas info    : 0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n")
    assert compile_report._read_ptxas_log(log) == {"registers": 40, "spill_stores": 8, "spill_loads": 4,
                                                   "stack_bytes": 8}
    with pytest.raises(RuntimeError, match="ptxas"):
        compile_report._read_ptxas_log("nothing here")


def test_table_and_command(tmp_path, capsys):
    from tritonsqrt import cli

    out = tmp_path / "report.json"
    code = cli.main(["compile-report", "--arch", "sm_90", "--n", "16", "--dtype", "float32", "--json", str(out),
                     "--module", "fused_lyapunov", "--jobs", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "lyapunov_backward" in printed and "regs" in printed
    assert out.exists()
    assert cli.main(["compile-report", "--jobs", "0"]) == 2
