"""A performance model of the kernels from their compiled SASS (no GPU): docs/perf-model.md.

Per compiled kernel (a compile-report row with its SASS loop tree, `sass_summary`):

- one pass of the hot loop, every nested loop counted by its trip count, divided by the
  products that pass computes, is the instruction mix *per matrix product* (per program);
- a program runs the hot loop `steps` times (fused: the iteration's steps; tiled: the hot loop
  is one product's K loop, ceil(n / BLOCK_K) times, and every product loop likewise), plus the
  instructions outside it once;
- its cycles on one SM are those of the busiest resource (`pipe_cycles`): instruction issue
  (4 schedulers), FP32 / FP64 lanes, shared-memory bandwidth, tensor-core FMAs;
- a launch of P programs with k programs resident per SM (`occupancy`) takes
  full waves x k x program cycles + the last partial wave, over the clock, plus one launch
  latency. Latency hiding is not modeled: this is a throughput bound, calibrated on a GPU.

Every time it prints is modeled; the counts (instructions, registers, occupancy) are not.
"""

from __future__ import annotations

import collections
import math

from . import sass
from .hardware import Gpu
from .occupancy import programs_per_sm

# Matrix products one pass of a fused kernel's step loop computes (the kernels' algorithms:
# coupled Newton–Schulz Z Y, Y T, T Z; Lyapunov sign step B^2, B^2 C, B C, (B C) B, B B^2;
# one power of Z per Taylor / Padé step).
FUSED_PRODUCTS_PER_STEP = {"roots_forward[ns": 3, "roots_forward[mtp": 1, "roots_forward[mpa": 1,
                           "lyapunov_backward": 5}


# Fused kernels whose K-chunk loops run to n rounded up to CHUNK rather than to BLOCK.
K_BOUNDED_PREFIXES = ("lyapunov_backward_tc_streamed", "roots_forward[ns,tensor_cores_streamed")


def sass_summary(sass_text: str) -> dict:
    """The loop tree of a kernel's SASS with each loop's own instruction mix (JSON-able)."""
    instructions = sass.parse(sass_text)
    roots = sass.find_loops(instructions)

    def describe(loop):
        return {"start": loop.start, "end": loop.end, "own": dict(sass.mix(sass.instructions_in(instructions, loop))),
                "children": [describe(child) for child in loop.children]}

    outside = sass.outside_loops(instructions, roots)
    # The outside instructions by where they lie: before the first top-level loop, between two,
    # after the last (a chained kernel's phases, `program_mix`).
    bounds = [-1] + [loop.end for loop in roots]
    gaps = [dict(sass.mix([ins for ins in outside if low < ins.address and
                           (i == len(roots) or ins.address < roots[i].start)]))
            for i, low in enumerate(bounds)]
    return {"loops": [describe(loop) for loop in roots], "outside": dict(sass.mix(outside)), "gaps": gaps,
            "total": dict(sass.mix(instructions))}


def _weighted(loop: dict, inner_trips: int) -> collections.Counter:
    total = collections.Counter(loop["own"])
    for child in loop["children"]:
        for key, count in _weighted(child, inner_trips).items():
            total[key] += count * inner_trips
    return total


def _size(loop: dict) -> int:
    return loop["own"].get("instructions", 0) + sum(_size(child) for child in loop["children"])


def is_tiled(row: dict) -> bool:
    return row["kernel"].startswith("tiled.")


def _products_per_step(row: dict) -> int:
    return next((count for prefix, count in FUSED_PRODUCTS_PER_STEP.items() if row["kernel"].startswith(prefix)), 1)


def loop_shares(row: dict, n: int, loops: int, phase: int | None = None) -> list[float]:
    """The mean share of a tiled launch's programs that run each of its `loops` top-level loops
    (SASS order), for the throughput bound: `expected_loop_shares`, or 1 for every loop where
    the SASS does not have the loops those imply (or the kernel skips none). phase: of a chained
    kernel (`is_chained`), 1 or 2: the programs of that phase only."""
    shares = expected_loop_shares(row, n, phase)
    return shares if shares is not None and len(shares) == loops else [1.0] * loops


def is_chained(row: dict) -> bool:
    """A chained step (`kernels/chained.py`): two phases of programs in one launch."""
    return row["kernel"].startswith(("tiled.newton_schulz_chained[", "tiled.lyapunov_chained["))


def expected_loop_shares(row: dict, n: int, phase: int | None = None) -> list[float] | None:
    """Per top-level product loop of the source, in order, the share of programs that run it;
    None for a kernel that skips no loop.

    - A mirror tile's loop (`tile_blocks.mirror_product_tile`, after its tile's own loop: the
      Newton–Schulz `symmetric_part_tile`, the commutator): diagonal tiles skip it (their mirror
      is their own transpose), T of the T (T + 1) / 2 upper tiles of a T x T tiling.
    - The Lyapunov products split over two programs (`step_tiles`, split roles): only the
      commutator's half of them runs the mirror loop.
    - The Lyapunov update split: the B' programs run one of its two loops.
    - A `SPLIT_PROGRAMS = 2` Newton–Schulz or Lyapunov update off its split path (the first
      step, or one result): program 1 of every tile returns at once.
    - A chained kernel (`is_chained`): in the source, the phase-1 programs' wait (a spin loop,
      `chained.py`: the step before), their loops (M = Z Y; the Lyapunov products), the phase-2
      programs' wait, their loops (the update); the programs of one phase run none of the
      other's, so `phase` (1 or 2) gives the other phase's loops a share of 0. The waits get 0
      in both: their trips are the time the producers take, which the phases' waves count.
    """
    constexprs, name = row["constexprs"], row["kernel"]
    if not is_tiled(row) or "BLOCK" not in constexprs:
        return None
    tiles = math.ceil(n / constexprs["BLOCK"])
    off_diagonal = (tiles - 1) / (tiles + 1)
    split = constexprs.get("SPLIT_PROGRAMS", 1) == 2
    if name.startswith("tiled.newton_schulz_step["):
        return _newton_schulz_update_shares(constexprs, split, off_diagonal)
    if is_chained(row):
        if phase not in (1, 2):
            raise ValueError(f"phase: a chained kernel's shares are per phase, 1 or 2, got {phase!r}")
        first, second = _chained_shares(constexprs, split, off_diagonal, name)
        # a wait loop before each phase's loops, charged nothing
        return [0.0] + first + [0.0] * (1 + len(second)) if phase == 1 else [0.0] * (len(first) + 2) + second
    return None


def _newton_schulz_update_shares(constexprs: dict, split: bool, off_diagonal: float) -> list[float]:
    first = constexprs.get("FIRST", False)
    results = constexprs["UPDATE_Y"] + constexprs["UPDATE_Z"]
    split_path = split and results == 2 and not first
    if first:  # W W: one loop, mirrored on store
        return [1.0]
    shares = [1.0, off_diagonal] * (1 if split_path else results)
    return [share / 2 for share in shares] if split and not split_path else shares


def _chained_shares(constexprs: dict, split: bool, off_diagonal: float, name: str) -> tuple[list, list]:
    """(phase-1 loops' shares, phase-2 loops' shares) of a chained kernel, each among its phase's programs."""
    if name.startswith("tiled.newton_schulz_chained["):
        return [1.0], _newton_schulz_update_shares(constexprs, split, off_diagonal)  # M = Z Y, then the update
    products = [1.0, off_diagonal / 2] if split else [1.0, off_diagonal, 1.0]
    if split and constexprs["UPDATE_B"] and not constexprs["LAST"]:
        return products, [1.0, 0.5]  # B D or B B^2, then C B^2 (the C' programs only)
    return products, [0.5 if split else 1.0] * (2 + constexprs["UPDATE_B"])


def program_mix(row: dict, n: int, steps: int, phase: int | None = None) -> tuple[collections.Counter,
                                                                                  collections.Counter]:
    """(instructions of one program, instructions per matrix product), per warp.

    Fused: the hot loop is the step loop (run `steps` times); every other loop is a K-chunk
    loop run BLOCK / CHUNK times. Tiled: every loop is a product's K loop, run
    ceil(n / BLOCK_K) times by its share of the programs (`loop_shares`); the hot loop is the
    largest.
    """
    summary, constexprs = row["sass"], row["constexprs"]
    loops = summary["loops"]
    total = collections.Counter(summary["outside"])
    if not loops:
        return total, collections.Counter()
    hot = max(loops, key=_size)
    if is_tiled(row):
        trips = math.ceil(n / constexprs.get("BLOCK_K", constexprs.get("BLOCK", n)))  # element-wise: BLOCK
        shares = loop_shares(row, n, len(loops), phase)
        if phase is not None and shares == expected_loop_shares(row, n, phase) and \
                len(summary.get("gaps", ())) == len(loops) + 1:
            total = _phase_outside(row, summary["gaps"], phase)
        for loop, share in zip(loops, shares):
            for key, count in _weighted(loop, trips).items():
                total[key] += count * trips * share
        return total, collections.Counter({k: v * trips for k, v in _weighted(hot, trips).items()})
    chunk = constexprs.get("CHUNK", constexprs.get("BLOCK", 1))
    chunk_trips = max(1, constexprs.get("BLOCK", 1) // chunk)
    if row["kernel"].startswith(K_BOUNDED_PREFIXES):  # their K loops stop at n, not BLOCK
        chunk_trips = max(1, math.ceil(n / chunk))
    for loop in loops:
        weighted = _weighted(loop, chunk_trips)
        for key, count in weighted.items():
            total[key] += count * (steps if loop is hot else chunk_trips)
    per_pass = _weighted(hot, chunk_trips)
    products = _products_per_step(row)
    return total, collections.Counter({k: v / products for k, v in per_pass.items()})


def _phase_outside(row: dict, gaps: list[dict], phase: int) -> collections.Counter:
    """The instructions outside loops that a chained kernel's phase runs, by where they lie:
    phase 1 everything up to the phase-2 wait loop (the first phase's epilogue ends there),
    phase 2 the prologue before the first loop (the ticket, shared) and everything after its wait."""
    split = row["constexprs"].get("SPLIT_PROGRAMS", 1) == 2
    wait = 1 + len(_chained_shares(row["constexprs"], split, 0.0, row["kernel"])[0])  # the phase-2 wait loop
    chosen = gaps[:wait + 1] if phase == 1 else [gaps[0]] + gaps[wait + 1:]
    total = collections.Counter()
    for gap in chosen:
        total.update(gap)
    return total


def mma_fmas(column: str) -> int:
    """Multiply-adds one warp's instance of an MMA instruction does (HGMMA: a warpgroup's / 4)."""
    kind, shape = column.split(".", 1)
    m, n, k = (int(v) for v in shape.split("x"))
    return m * n * k // (4 if kind == "HGMMA" else 1)


def pipe_cycles(mix: dict, warps: int, gpu: Gpu, dtype_name: str = "float32", resident_programs: int = 1) -> dict:
    """SM cycles per resource for `mix` (per-warp counts) run by `warps` warps; "bound" is the max.

    Every resource is counted as the program's share of the SM's rate, so the cycles of k
    programs sharing an SM add up. Issue likewise, except that a warp is issued by one scheduler:
    while fewer warps than schedulers are resident (k x warps < 4) the idle schedulers are lost."""
    fp32 = mix.get("FFMA", 0) + mix.get("FADD/FMUL", 0)
    fp64 = mix.get("DFMA", 0) + mix.get("DADD/DMUL", 0)
    tensor_fmas = sum(count * mma_fmas(key) for key, count in mix.items()
                      if key.startswith(("HMMA.", "HGMMA.")))
    cycles = {
        "issue": mix.get("instructions", 0) * warps / min(warps * max(resident_programs, 1), gpu.schedulers),
        "fp32": fp32 * warps * 32 / gpu.fp32_lanes,
        "fp64": fp64 * warps * 32 / gpu.fp64_lanes,
        "shared": mix.get("shared bytes", 0) * warps / gpu.shared_bytes_per_clock,
        "tensor": tensor_fmas * warps / gpu.tf32_fma_per_clock,
    }
    cycles["bound"] = max(cycles.values())
    cycles["limited by"] = max(("issue", "fp32", "fp64", "shared", "tensor"), key=lambda key: cycles[key])
    return cycles


def kernel_model(row: dict, gpu: Gpu, n: int, steps: int) -> dict:
    """Occupancy, mix per product and cycles of one compiled kernel on `gpu`."""
    programs, limiter = programs_per_sm(gpu, row["registers"], row["num_warps"], row["shared_bytes"])
    total, per_product = program_mix(row, n, steps, 2 if is_chained(row) else None)  # chained: the update's program
    product_cycles = pipe_cycles(per_product, row["num_warps"], gpu, row["dtype"], programs) if per_product else None
    return {"gpu": gpu.name, "programs_per_sm": programs, "occupancy_limit": limiter,
            "per_product": {k: round(v, 2) for k, v in per_product.items()},
            "issue_cycles_per_product": round(product_cycles["issue"], 1) if product_cycles else None,
            "modeled_cycles_per_product": round(product_cycles["bound"], 1) if product_cycles else None,
            "product_limited_by": product_cycles["limited by"] if product_cycles else None,
            "modeled_program_cycles": round(pipe_cycles(total, row["num_warps"], gpu, row["dtype"], programs)["bound"], 1)}


def launch_us(row: dict, gpu: Gpu, programs: int, n: int, steps: int, phase: int | None = None) -> float:
    """Modeled microseconds of one launch of `programs` programs (waves x program time + latency);
    phase: of a chained kernel, the programs of that phase alone (`chained_launch_us`)."""
    per_sm, _ = programs_per_sm(gpu, row["registers"], row["num_warps"], row["shared_bytes"])
    if per_sm == 0:
        return math.inf
    total, _ = program_mix(row, n, steps, phase)

    def wave(resident: int) -> float:  # cycles of a wave with `resident` programs on every SM
        return resident * pipe_cycles(total, row["num_warps"], gpu, row["dtype"], resident)["bound"]

    full, rest = divmod(programs, gpu.sms * per_sm)
    last = math.ceil(rest / gpu.sms)
    wave_cycles = full * wave(per_sm) + (wave(last) if last else 0.0)
    return wave_cycles / (gpu.clock_ghz * 1e3) + gpu.launch_us


def chained_launch_us(row: dict, gpu: Gpu, producers: int, consumers: int, n: int) -> float:
    """Modeled microseconds of one chained launch (`kernels/chained.py`): its phase-1 programs'
    waves, then its phase-2 programs' waves, as if a launch boundary still separated them (no
    overlap of one matrix's phase 2 with another's phase 1 is counted, nor any wait), with one
    launch latency instead of two."""
    return launch_us(row, gpu, producers, n, 1, phase=1) + launch_us(row, gpu, consumers, n, 1, phase=2) - \
        gpu.launch_us
