"""The performance model's counting (docs/perf-model.md): SASS of tiny kernels whose instruction
counts are known by construction, the occupancy rule on a table of cases, and the model's
arithmetic on hand-made mixes.

The tiny kernels compile in a child process (this file run as a script, without the
interpreter: its kernels cannot be compiled), once per session.
"""

import json
import os
import subprocess
import sys

import pytest
import triton
import triton.language as tl

# ---------------------------------------------------------------------------------------
# Tiny kernels (compiled for sm_80 / sm_90 in the child)

FMA_BLOCK, FMA_WARPS = 2048, 4  # 16 elements a thread, 2 FMAs each per iteration: 32 FFMA
DOT_BLOCK, DOT_WARPS = 64, 4  # one 64x64x64 tl.dot per iteration


@triton.jit
def fma_loop_kernel(x_ptr, out_ptr, steps, BLOCK: tl.constexpr):
    offsets = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offsets)
    acc = tl.zeros([BLOCK], tl.float32)
    for _ in range(steps):
        acc = acc * x + x
        acc = acc * x + 1.0
    tl.store(out_ptr + offsets, acc)


@triton.jit
def dot_loop_kernel(a_ptr, out_ptr, steps, BLOCK: tl.constexpr, PRECISION: tl.constexpr):
    rows = tl.arange(0, BLOCK)
    a = tl.load(a_ptr + rows[:, None] * BLOCK + rows[None, :])
    acc = tl.zeros([BLOCK, BLOCK], tl.float32)
    for _ in range(steps):
        acc = tl.dot(a, a, acc, input_precision=PRECISION)
        a = acc
    tl.store(out_ptr + rows[:, None] * BLOCK + rows[None, :], acc)


def _count_in_child() -> dict:
    """Compile the tiny kernels and return their loop mixes (run without TRITON_INTERPRET)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from tritonsqrt.kernels import perf_model, sass

    def summary(fn, signature, constexprs, cc):
        compiled = triton.compile(ASTSource(fn, signature, constexprs), target=GPUTarget("cuda", cc, 32),
                                  options={"num_warps": DOT_WARPS, "enable_fp_fusion": True})
        return perf_model.sass_summary(sass.disassemble(compiled.asm["cubin"]))

    out = {"fma": summary(fma_loop_kernel, {"x_ptr": "*fp32", "out_ptr": "*fp32", "steps": "i32", "BLOCK": "constexpr"},
                          {"BLOCK": FMA_BLOCK}, 90)}
    dot_signature = {"a_ptr": "*fp32", "out_ptr": "*fp32", "steps": "i32", "BLOCK": "constexpr",
                     "PRECISION": "constexpr"}
    for cc in (80, 90):
        for precision in ("ieee", "tf32", "tf32x3"):
            if cc == 80 and precision == "ieee":  # the FFMA count does not depend on the arch
                continue
            out[f"dot-{cc}-{precision}"] = summary(dot_loop_kernel, dot_signature,
                                                   {"BLOCK": DOT_BLOCK, "PRECISION": precision}, cc)
    out["tiled"] = _tiled_loops()
    return out


# Tiled kernels with loops that some programs skip (`perf_model.expected_loop_shares`), one
# config each: the compiled SASS must have the loops the source implies, or the shares are lost.
_FIRST = "tiled.newton_schulz_step[FIRST=1,UPDATE_Y=1,UPDATE_Z=1,UNSCALE=1,STORE_Y=1,SAVE_Y=1,STORE_Z=1,SAVE_Z=1," \
    "TRACE_NORM=0,"
_CHAINED = "tiled.newton_schulz_chained[UPDATE_Y=1,UPDATE_Z=1,UNSCALE={0},STORE_Y={0},SAVE_Y={0},STORE_Z={0}," \
    "SAVE_Z={0},"
# Chained kernels: a wait (spin loop), phase 1's loops, a wait, phase 2's.
SKIPPING_KERNELS = (_CHAINED.format(0) + "SPLIT_PROGRAMS=2,",  # a later step, split: wait, M's loop, wait, 2
                    _CHAINED.format(0) + "BLOCK=",  # unsplit: wait, 1, wait, 4
                    _CHAINED.format(1) + "SPLIT_PROGRAMS=2,",  # the last step, split: wait, 1, wait, 2
                    _CHAINED.format(1) + "BLOCK=",  # unsplit: wait, 1, wait, 4
                    _FIRST,  # the first: 1
                    "tiled.lyapunov_chained[UPDATE_B=1,LAST=0,SPLIT_PROGRAMS=2,",  # wait, products 2, wait, update 2
                    "tiled.lyapunov_chained[UPDATE_B=1,LAST=0,BLOCK=")  # unsplit: wait, 3, wait, 3


def _tiled_loops() -> dict:
    """Top-level loops of the first sm_90 config of each SKIPPING_KERNELS entry at n = 128 (a
    multiple of 16: the split last step is compiled only there)."""
    from tritonsqrt.kernels import compile_report, tiled

    found = {}
    for spec in tiled.compile_specs(128, "float32"):
        prefix = next((p for p in SKIPPING_KERNELS if spec["name"].startswith(p)), None)
        if prefix is None or prefix in found:
            continue
        row = compile_report.compile_spec("tritonsqrt.kernels.tiled", spec, 128, "float32",
                                          compile_report.ARCHES["sm_90"], with_sass=True)
        found[prefix] = {"kernel": row["kernel"], "constexprs": row["constexprs"], "loops": len(row["sass"]["loops"])}
    return found


@pytest.fixture(scope="session")
def counted():
    env = dict(os.environ, TRITON_INTERPRET="0", TRITON_DEFAULT_FP_FUSION="1")
    child = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stderr[-3000:]
    return json.loads(child.stdout.strip().splitlines()[-1])


def _hot(summary: dict) -> dict:
    """The top-level loop with the most instructions (the rule of `perf_model.program_mix`)."""
    from tritonsqrt.kernels import perf_model

    return max(summary["loops"], key=perf_model._size)


# ---------------------------------------------------------------------------------------
# Counting: exact, by construction


@pytest.mark.slow_compile
def test_fma_loop_counts_exactly(counted):
    summary = counted["fma"]
    assert len(summary["loops"]) == 1, summary["loops"]  # the body is too large for ptxas to unroll
    hot = _hot(summary)
    assert hot["own"]["FFMA"] == 2 * FMA_BLOCK // (32 * FMA_WARPS) == 32
    assert hot["children"] == []


@pytest.mark.slow_compile
@pytest.mark.parametrize("cc, precision, column, per_iteration", [
    (90, "ieee", "FFMA", DOT_BLOCK ** 3 // (32 * DOT_WARPS)),  # 2048 scalar FMAs a thread
    (80, "tf32", "HMMA.16x8x8", DOT_BLOCK ** 3 // (16 * 8 * 8) // DOT_WARPS),  # 64 a warp
    (80, "tf32x3", "HMMA.16x8x8", 3 * DOT_BLOCK ** 3 // (16 * 8 * 8) // DOT_WARPS),
    (90, "tf32", "HGMMA.64x64x8", DOT_BLOCK ** 3 // (64 * 64 * 8)),  # 8 a warpgroup (each warp issues them)
    (90, "tf32x3", "HGMMA.64x64x8", 3 * DOT_BLOCK ** 3 // (64 * 64 * 8)),
])
def test_one_dot_per_iteration_counts_exactly(counted, cc, precision, column, per_iteration):
    from tritonsqrt.kernels import perf_model

    hot = _hot(counted[f"dot-{cc}-{precision}"])
    assert hot["own"].get(column, 0) == per_iteration, hot["own"]
    mma = {key: count for key, count in hot["own"].items() if key.startswith(("HMMA", "HGMMA"))}
    if precision == "ieee":
        assert mma == {}
    else:
        assert hot["own"].get("FFMA", 0) == 0
        # the multiply-adds of all warps are the product's, DOT_BLOCK^3 per pass (x 3 for tf32x3)
        fmas = sum(count * perf_model.mma_fmas(key) for key, count in mma.items()) * DOT_WARPS
        assert fmas == (3 if precision == "tf32x3" else 1) * DOT_BLOCK ** 3


# ---------------------------------------------------------------------------------------
# The SASS reader on a hand-written listing


LISTING = """
        /*0000*/                   LDC R1, c[0x0][0x28] ;
        /*0010*/                   LDS.128 R4, [R2] ;
        /*0020*/                   FFMA R5, R2, R5, R2 ;
        /*0030*/                   LDSM.16.M88.4 R8, [R3] ;
        /*0040*/                   HGMMA.64x32x8.F32.TF32 R24, gdesc[UR4], R24 ;
        /*0050*/               @P1 BRA 0x20 ;
        /*0060*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;
        /*0070*/              @!P0 BRA 0x10 ;
        /*0080*/                   STS.64 [R1], R2 ;
        /*0090*/                   EXIT ;
        /*00a0*/                   BRA 0xa0 ;
"""


def test_sass_loops_and_columns():
    from tritonsqrt.kernels import sass

    instructions = sass.parse(LISTING)
    assert len(instructions) == 11
    (outer,) = sass.find_loops(instructions)  # BRA-to-self after EXIT is no loop
    assert (outer.start, outer.end) == (0x10, 0x70)
    (inner,) = outer.children
    assert (inner.start, inner.end) == (0x20, 0x50)
    own = sass.mix(sass.instructions_in(instructions, outer))
    assert own["LDS"] == 1 and own["BAR"] == 1 and own["other"] == 1 and own["instructions"] == 3
    weighted = sass.weighted_mix(instructions, outer, inner_trips=4)
    assert weighted["FFMA"] == 4 and weighted["HGMMA.64x32x8"] == 4 and weighted["LDS"] == 1 + 4
    assert sass.shared_bytes("LDS.128") == 512 and sass.shared_bytes("LDSM.16.M88.4") == 512
    assert sass.shared_bytes("STS.64") == 256 and sass.shared_bytes("LDS") == 128 and sass.shared_bytes("FFMA") == 0
    assert sass.category("HMMA.1688.F32.TF32") == "HMMA.16x8x8"
    assert sass.category("HFMA2.MMA") == "other"  # a move on the MMA pipe, not a tensor-core product


# A TMA K loop: its wait on the mbarrier retried out of line, after the exit (a detour that
# returns to just after where it left), then a loop whose body ptxas moved out of line.
DETOUR_LISTING = """
        /*0000*/                   LDC R1, c[0x0][0x28] ;
        /*0010*/                   SYNCS.PHASECHK.TRANS64.TRYWAIT P1, [UR4], R3 ;
        /*0020*/              @!P1 BRA 0xa0 ;
        /*0030*/                   HGMMA.64x32x8.F32.TF32 R24, gdesc[UR4], R24 ;
        /*0040*/               @P2 BRA 0x10 ;
        /*0050*/               @P3 BRA 0xd0 ;
        /*0060*/                   STS.64 [R1], R2 ;
        /*0070*/                   EXIT ;
        /*0080*/                   BRA 0x80 ;
        /*0090*/                   NOP ;
        /*00a0*/                   SYNCS.PHASECHK.TRANS64.TRYWAIT P1, [UR4], R3 ;
        /*00b0*/              @!P1 BRA 0xa0 ;
        /*00c0*/                   BRA 0x30 ;
        /*00d0*/                   FFMA R5, R2, R5, R2 ;
        /*00e0*/                   BRA 0x50 ;
"""


def test_a_detour_is_no_loop_and_an_out_of_line_body_is():
    from tritonsqrt.kernels import sass

    instructions = sass.parse(DETOUR_LISTING)
    # from the padding after the exit to the jump back; entered from 0x20, before the 0x30 it returns to
    assert sass.detours(instructions) == [(0x90, 0xc0)]
    loops = sass.find_loops(instructions)
    # the K loop; the out-of-line body [0xd0, 0xe0] returns to 0x50, the branch that enters it:
    # a loop, spanning what lies between (the loop head's range, as ptxas laid it out)
    assert [(loop.start, loop.end) for loop in loops] == [(0x10, 0x40), (0x50, 0xe0)]
    assert not loops[0].children and instructions[2].guarded and not instructions[3].guarded


# ---------------------------------------------------------------------------------------
# Occupancy: the CUDA occupancy calculator's rule, worked by hand

# (gpu, registers, warps, shared bytes) -> (programs per SM, limit). Worked: registers x 32
# rounded up to 256 per warp; 16384 registers per sub-partition (4 a SM); warps per program
# rounded up to 4 for the per-block check; shared + 1 KB rounded up to 128 bytes.
OCCUPANCY_CASES = [
    ("h100", 32, 4, 0, 16, "warps"),  # 1024 a warp -> 16 a partition -> 64 warps; 64 // 4 = 16
    ("h100", 82, 16, 16384, 1, "registers"),  # 2816 a warp -> 5 a partition -> 20 warps // 16 = 1
    ("h100", 206, 8, 16384, 1, "registers"),  # 6656 -> 2 -> 8 warps // 8 = 1
    ("h100", 64, 16, 16384, 2, "registers"),  # 2048 -> 8 -> 32 // 16 = 2
    ("h100", 168, 4, 0, 3, "registers"),  # 5376 -> 3 -> 12 // 4 = 3
    ("h100", 255, 16, 0, 0, "registers"),  # 8192 x 16 = 131072 > 65536: cannot launch
    ("h100", 16, 1, 0, 32, "blocks"),  # 64 warps would fit; 32 blocks at most
    ("h100", 32, 4, 100 * 1024, 2, "shared"),  # 103424 a block; 233472 // 103424 = 2
    ("a100", 32, 4, 100 * 1024, 1, "shared"),  # 167936 // 103424 = 1
    ("a100", 32, 4, 16384, 9, "shared"),  # 17408 a block; 167936 // 17408 = 9
    ("h100", 32, 4, 228 * 1024, 0, "shared"),  # over the 227 KB a block may opt into
    ("a100", 128, 8, 32768, 2, "registers"),  # 4096 -> 4 -> 16 warps // 8 = 2; shared: 167936 // 33792 = 4
]


@pytest.mark.parametrize("gpu, registers, warps, shared, expected, limit", OCCUPANCY_CASES)
def test_occupancy_rule(gpu, registers, warps, shared, expected, limit):
    from tritonsqrt.kernels.hardware import GPUS
    from tritonsqrt.kernels.occupancy import programs_per_sm

    assert programs_per_sm(GPUS[gpu], registers, warps, shared) == (expected, limit)


# ---------------------------------------------------------------------------------------
# The model's arithmetic


def _row(kernel, loops, outside, constexprs, warps=8, registers=128, shared=16384):
    return {"kernel": kernel, "sass": {"loops": loops, "outside": outside}, "constexprs": constexprs,
            "num_warps": warps, "registers": registers, "shared_bytes": shared, "dtype": "float32"}


def test_program_mix_and_cycles():
    from tritonsqrt.kernels import perf_model
    from tritonsqrt.kernels.hardware import GPUS

    chunk = {"start": 0x100, "end": 0x200, "own": {"FFMA": 100, "LDS": 10, "instructions": 120}, "children": []}
    step = {"start": 0x80, "end": 0x400, "own": {"BAR": 2, "instructions": 12}, "children": [chunk, dict(chunk)]}
    # a lyapunov backward step loop with two 4-chunk product loops (the table says 5 products a
    # step; this pass holds 2 x 4 x 120 + 12 instructions)
    row = _row("lyapunov_backward_streamed[...]", [step], {"instructions": 50}, {"BLOCK": 64, "CHUNK": 16})
    total, per_product = perf_model.program_mix(row, n=64, steps=10)
    assert total["instructions"] == 50 + 10 * (12 + 2 * 4 * 120)
    assert per_product["FFMA"] == 2 * 4 * 100 / 5
    gpu = GPUS["h100"]
    cycles = perf_model.pipe_cycles({"instructions": 100, "FFMA": 80, "shared bytes": 512 * 10}, 8, gpu)
    assert cycles["issue"] == 100 * 8 / 4 and cycles["fp32"] == 80 * 8 * 32 / 128
    assert cycles["shared"] == 5120 * 8 / 128 and cycles["bound"] == 320 and cycles["limited by"] == "shared"
    # tiled: every loop is a K loop, ceil(n / BLOCK_K) trips
    k_loop = {"start": 0x10, "end": 0x90, "own": {"instructions": 20}, "children": []}
    tiled_row = _row("tiled.product[...]", [k_loop], {"instructions": 30}, {"BLOCK": 64, "BLOCK_K": 32})
    assert perf_model.program_mix(tiled_row, n=100, steps=1)[0]["instructions"] == 30 + 4 * 20


@pytest.mark.slow_compile
@pytest.mark.parametrize("prefix", SKIPPING_KERNELS)
def test_skipped_loops_are_where_the_source_puts_them(counted, prefix):
    from tritonsqrt.kernels import perf_model

    compiled = counted["tiled"][prefix]
    for phase in (1, 2) if perf_model.is_chained(compiled) else (None,):
        expected = perf_model.expected_loop_shares(compiled, 128, phase)
        assert len(expected) == compiled["loops"], compiled["kernel"]
        assert perf_model.loop_shares(compiled, 128, compiled["loops"], phase) == expected


def test_loop_shares():
    from tritonsqrt.kernels import perf_model

    def shares(kernel, n=256, loops=None, phase=None, **constexprs):
        row = {"kernel": kernel, "constexprs": dict({"BLOCK": 64}, **constexprs)}
        expected = perf_model.expected_loop_shares(row, n, phase)
        return perf_model.loop_shares(row, n, len(expected) if loops is None and expected else loops or 1, phase)

    ns, lyapunov = "tiled.newton_schulz_chained[...]", "tiled.lyapunov_chained[...]"
    flags = dict(UPDATE_Y=1, UPDATE_Z=1, UNSCALE=0)
    # n = 256 in 64-wide tiles: 4 of the 10 upper tiles are diagonal and skip the mirror loop;
    # phase 1 (M = Z Y) runs its one loop, phase 2 the update's
    # (phase 1's wait, M's loop, phase 2's wait, the update's loops; the waits are not charged)
    assert shares(ns, phase=1, SPLIT_PROGRAMS=2, **flags) == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert shares(ns, phase=2, SPLIT_PROGRAMS=2, **flags) == [0.0, 0.0, 0.0, 1.0, 0.6]
    assert shares(ns, phase=2, **dict(flags, UNSCALE=1)) == [0.0, 0.0, 0.0, 1.0, 0.6, 1.0, 0.6]
    assert shares(ns, phase=2, SPLIT_PROGRAMS=2, **dict(flags, UNSCALE=1)) == [0.0, 0.0, 0.0, 1.0, 0.6]
    # a split launch off its split path: program 1 of every tile returns
    assert shares(ns, phase=2, SPLIT_PROGRAMS=2, **dict(flags, UNSCALE=1, UPDATE_Y=0)) == \
        [0.0, 0.0, 0.0, 0.5, 0.3]
    assert shares("tiled.newton_schulz_step[...]", FIRST=1, **flags) == [1.0]
    assert shares(lyapunov, phase=1, SPLIT_PROGRAMS=2, UPDATE_B=1, LAST=0) == [0.0, 1.0, 0.3, 0.0, 0.0, 0.0]
    assert shares(lyapunov, phase=1, UPDATE_B=1, LAST=0) == [0.0, 1.0, 0.6, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert shares(lyapunov, phase=1, n=64, UPDATE_B=1, LAST=0)[1:4] == [1.0, 0.0, 1.0]  # one tile: its own mirror
    # the split Lyapunov update: the B' programs run one loop of two; off its split path half idle
    assert shares(lyapunov, phase=2, SPLIT_PROGRAMS=2, UPDATE_B=1, LAST=0) == [0.0, 0.0, 0.0, 0.0, 1.0, 0.5]
    assert shares(lyapunov, phase=2, SPLIT_PROGRAMS=2, UPDATE_B=0, LAST=1) == [0.0, 0.0, 0.0, 0.0, 0.5, 0.5]
    # SASS with other loops than the source implies, or a kernel that skips none: all 1
    assert shares(lyapunov, loops=5, phase=1, UPDATE_B=1, LAST=0) == [1.0] * 5  # 8 expected
    assert shares("tiled.product[...]", loops=2) == [1.0] * 2
    with pytest.raises(ValueError, match="phase"):  # a chained kernel's shares are per phase
        perf_model.expected_loop_shares({"kernel": lyapunov, "constexprs": dict(BLOCK=64, UPDATE_B=1, LAST=0)}, 256)
    # the program mix charges each loop by its share: two 20-instruction K loops, 4 trips
    k_loop = {"start": 0x10, "end": 0x90, "own": {"instructions": 20}, "children": []}
    row = _row("tiled.newton_schulz_step[...]", [k_loop, dict(k_loop, start=0xa0, end=0x120)], {"instructions": 30},
               {"BLOCK": 64, "BLOCK_K": 64, "SPLIT_PROGRAMS": 2, "FIRST": 0, "UPDATE_Y": 1, "UPDATE_Z": 1})
    assert perf_model.program_mix(row, n=256, steps=1)[0]["instructions"] == pytest.approx(30 + 4 * 20 * 1.6)


def test_launch_waves():
    from tritonsqrt.kernels import perf_model
    from tritonsqrt.kernels.hardware import GPUS

    gpu = GPUS["h100"]
    row = _row("tiled.product[...]", [], {"instructions": 1000}, {"BLOCK": 64}, warps=4, registers=255, shared=0)
    # 255 registers x 4 warps: 2 programs an SM; a program is 1000 issue cycles
    one_wave = perf_model.launch_us(row, gpu, 132, n=64, steps=1)
    assert one_wave == pytest.approx(1000 / 1980 + gpu.launch_us)
    # 264 programs fill the 2 slots of every SM once: 2 x 1000 cycles; 265 add a partial wave
    assert perf_model.launch_us(row, gpu, 264, n=64, steps=1) == pytest.approx(2000 / 1980 + gpu.launch_us)
    assert perf_model.launch_us(row, gpu, 265, n=64, steps=1) == pytest.approx(3000 / 1980 + gpu.launch_us)
    # a chained launch: its two phases' waves one after the other, one launch latency
    chained = _row("tiled.lyapunov_chained[...]", [], {"instructions": 1000}, {"BLOCK": 64, "UPDATE_B": 1, "LAST": 0},
                   warps=4, registers=255, shared=0)
    assert perf_model.chained_launch_us(chained, gpu, 264, 132, n=64) == \
        pytest.approx(2000 / 1980 + 1000 / 1980 + gpu.launch_us)


def test_bench_rows_carry_the_modeled_figure():
    from tritonsqrt.perf import modeled

    model_cases = [{"case": "zca-b64", "op": "inv_sqrtm", "mode": "forward", "precision": "ieee",
                    "gpu": "H100 SXM5", "modeled_us": 150.0},
                   {"case": "zca-b64", "op": "inv_sqrtm", "mode": "forward", "precision": "tf32",
                    "gpu": "H100 SXM5", "modeled_us": 15.0}]
    rows = [{"case": "zca-b64", "op": "inv_sqrtm", "mode": "forward", "provider": "tritonsqrt:auto",
             "median_ms": 0.2},
            {"case": "zca-b64", "op": "inv_sqrtm", "mode": "forward", "provider": "eigh-autograd", "median_ms": 2.0}]
    paired = modeled.attach(rows, model_cases, "NVIDIA H100 80GB HBM3")
    assert paired == [rows[0]] and rows[0]["modeled_us"] == 150.0 and rows[0]["model_error"] == -0.25
    assert "modeled_us" not in rows[1]
    assert modeled.attach(rows, model_cases, "AMD EPYC 7B13") == []  # no model for it: nothing attached
    assert "-25%" in modeled.format_pairs(paired, "NVIDIA H100 80GB HBM3")


if __name__ == "__main__":
    print(json.dumps(_count_in_child()))
