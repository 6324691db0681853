"""Every kernel present compiles for sm_80 and sm_90 without spills and within shared memory.

No GPU needed: `triton.compile` targets the arch and ptxas (shipped with Triton) reports the
registers. Sizes 16 and 33 cover BLOCK 16 and 64 (the largest size the fused kernels promise
to fit); results are cached per process, so each kernel compiles once per arch. One test per
kernel module, so a misfit names its module.
"""

import pytest

from tritonsqrt.kernels import compile_report

SIZES = (16, 33)
# The fused kernels promise to fit up to n = 64 (issue 3). The tiled kernels' autotune space
# is reported by `tritonsqrt compile-report` but not yet asserted spill-free here: some of its
# configurations spill on sm_90 (docs/large-and-tuning.md).
FUSED = ("fused_roots", "fused_lyapunov")


@pytest.fixture(scope="module", params=["sm_80", "sm_90"])
def rows(request):
    return compile_report.report(request.param, SIZES, ("float32",), modules=FUSED)


def describe(row) -> str:
    return (f"{row['arch']} n={row['n']} {row['dtype']} {row['kernel']} warps={row['num_warps']}: "
            f"regs={row['registers']} spills={row['spill_stores']}/{row['spill_loads']} "
            f"smem={row['shared_bytes']} error={row['error']}")


def test_every_present_module_is_reported(rows):
    reported = {row["module"] for row in rows}
    assert reported == set(FUSED)


def test_everything_compiles(rows):
    failed = [describe(row) for row in rows if row["error"]]
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("module", FUSED)
def test_no_spills_and_shared_memory_within_the_arch(rows, module):
    mine = [row for row in rows if row["module"] == module]
    assert mine
    misfits = [describe(row) for row in mine if not row["fits"]]
    assert not misfits, "\n".join(misfits)


def test_table_and_command(tmp_path, capsys):
    from tritonsqrt import cli

    out = tmp_path / "report.json"
    code = cli.main(["compile-report", "--arch", "sm_90", "--n", "16", "--dtype", "float32", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "lyapunov_backward" in printed and "regs" in printed
    assert out.exists()
