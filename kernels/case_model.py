"""Modeled GPU time of each bench case (perf/cases.py): the launches `method="auto"` (scaled
Newton–Schulz) makes, each timed by `perf_model.launch_us` from its compiled kernel.

The launch sequence is the one of the library's launchers:
- n <= 64 (fused): forward one `roots_forward[ns]` launch over ceil(B / MATRICES) programs,
  running the plan's forward steps; backward one `lyapunov_backward` launch, B programs, the
  backward steps. Among the tuning candidates the model takes its own fastest (what the tuner
  should find, if the model is right).
- n > 64 (tiled, `tritonsqrt/paths/tiled_path.py`): forward `prepare_forward`, the first
  Newton–Schulz step, the steps between in one chained launch (`kernels/chained.py`: per step
  M = Z Y, then the update), the last in another; backward `prepare_backward`, for the inverse
  root two products, then every Lyapunov step but the last in one chained launch (per step
  B^2 and B C - C B, then C' and B'), the last in another; product kernels over
  cdiv(n, BLOCK)^2 x B programs, those with a symmetric result over the tiles on and above the
  diagonal (the rest return at once); a chained launch as each step's two phases' waves one
  after the other, step after step, with one launch latency (`perf_model.chained_launch_us`).
  The config is the first of the autotune space (a cold tuning cache), not tuned.

Floor (perf/floor.py) with the GPU's published rates: bytes over memory
bandwidth or FLOPs over the product rate of the precision, plus one launch latency a kernel.
"""

from __future__ import annotations

import math
import re

import torch

from . import perf_model
from .hardware import Gpu

FUSED_LIMIT = 64  # tritonsqrt.paths.routing.max_kernel_n()
ELEMENTWISE_BLOCK = 32  # kernels/tiled.py
UPPER_TILES = -2  # `_launch_plan`'s programs of a tiled kernel with a symmetric result
CHAINED = -5  # a chained step: its phase-1 programs, then its phase-2 ones (`_chained_programs`)


def _plan(n: int):
    from tritonsqrt.plan import Plan

    return Plan(method="scaled_ns", compute_dtype=torch.float32, n=n)


def needed_specs(n: int, precision: str) -> list[tuple[str, int, dict]]:
    """(module name, index in its compile_specs list, spec) of every kernel the model of a
    size-n case may launch (float32 compute)."""
    from . import fused_lyapunov, fused_roots, tiled

    if n <= FUSED_LIMIT:
        forward = [(i, s) for i, s in enumerate(fused_roots.compile_specs(n, "float32"))
                   if s["name"].startswith("roots_forward[ns,") and s["constexprs"]["PRECISION"] == precision]
        backward = [(i, s) for i, s in enumerate(fused_lyapunov.compile_specs(n, "float32"))
                    if s["constexprs"]["PRECISION"] == precision]
        return [("tritonsqrt.kernels.fused_roots", i, s) for i, s in forward] + \
               [("tritonsqrt.kernels.fused_lyapunov", i, s) for i, s in backward]
    from .spaces import TMA_FIRST

    chosen, seen = [], set()
    prefixes = {prefix for prefix, _, _ in _launch_plan(n, 1, "inv_sqrtm", backward=True)}
    for index, spec in enumerate(tiled.compile_specs(n, "float32")):
        # kernel and flags: the first config of each (a split config is a config, not a variant);
        # a TMA config (sm_90 only) as well where it is sm_90's first (`spaces.TMA_FIRST`), so that
        # `case_time` times on H100 what a cold cache launches there.
        variant = re.sub(r"SPLIT_PROGRAMS=\d+,", "", spec["name"].split("BLOCK=")[0])
        tma_first = (precision, spec["name"][len("tiled."):].split("[")[0]) in TMA_FIRST
        if spec["constexprs"].get("PRECISION", precision) != precision or variant in seen or \
                not any(spec["name"].startswith(prefix) for prefix in prefixes) or \
                (spec["constexprs"].get("TMA") and not tma_first):
            continue
        seen.add(variant)
        chosen.append(("tritonsqrt.kernels.tiled", index, spec))
    return chosen


def steps_for(row: dict) -> int:
    """Passes of the hot loop of a fused kernel in the model: the plan's forward or backward steps."""
    plan = _plan(row["n"])
    return len(plan.backward_steps if row["kernel"].startswith("lyapunov") else plan.forward_steps)


def _launch_plan(n: int, batch: int, op: str, backward: bool) -> list[tuple[str, int, int]]:
    """(kernel name prefix, programs or -1 for "B / MATRICES", steps) of each launch of one call
    (steps: of a fused kernel, the iteration's; of a chained launch, the steps it runs)."""
    plan = _plan(n)
    forward_steps, backward_steps = len(plan.forward_steps), len(plan.backward_steps)
    if n <= FUSED_LIMIT:
        launches = [("roots_forward[ns,", -1, forward_steps)]
        return launches + ([("lyapunov_backward", batch, backward_steps)] if backward else [])
    # 0: a program per tile; UPPER_TILES: the kernel works on the tiles on and above the diagonal
    # only (the others return at once), so those are the programs timed.
    bands = math.ceil(n / ELEMENTWISE_BLOCK)
    # The first step is timed as compiled, with the unscale epilogue (`tiled._COMPILE_VARIANTS`).
    first = "tiled.newton_schulz_step[FIRST=1,UPDATE_Y=1,UPDATE_Z=1,UNSCALE=1"
    launches = [("tiled.prepare_forward_kernel[", bands * batch, 1), (first, UPPER_TILES, 1)]
    # the steps between the first and the last in one chained launch, the last in another
    chained = "tiled.newton_schulz_chained[UPDATE_Y=1,UPDATE_Z=1,UNSCALE={}"
    launches += [(chained.format(0), CHAINED, forward_steps - 2)] * (forward_steps > 2)
    launches += [(chained.format(1), CHAINED, 1)] * (forward_steps > 1)
    if backward:
        launches.append(("tiled.prepare_backward_kernel[", bands * bands * batch, 1))
        if op == "inv_sqrtm":
            launches += [("tiled.product[SYMMETRIC=0", 0, 1), ("tiled.product[SYMMETRIC=1", UPPER_TILES, 1)]
        # every step but the last in one chained launch, the last (C' only) in another
        launches += [("tiled.lyapunov_chained[UPDATE_B=1,LAST=0", CHAINED, backward_steps - 1)] * (backward_steps > 1)
        launches += [("tiled.lyapunov_chained[UPDATE_B=0,LAST=1", CHAINED, 1)] * (backward_steps > 0)
    return launches


def _chained_programs(row: dict, n: int, batch: int) -> tuple[int, int]:
    """(phase-1, phase-2) programs of a chained launch that do work: M = Z Y on every tile; the
    Lyapunov products and every update on the tiles on and above the diagonal (the others
    only count themselves in and return)."""
    tiles = math.ceil(n / row["constexprs"]["BLOCK"])
    split = row["constexprs"].get("SPLIT_PROGRAMS", 1)
    upper = tiles * (tiles + 1) // 2 * batch * split
    return (tiles * tiles * batch if row["kernel"].startswith("tiled.newton_schulz_chained[") else upper), upper


def _launch_us(row: dict, gpu: Gpu, programs: int, n: int, batch: int, steps: int) -> float:
    if programs == CHAINED:  # `steps` chained steps in one launch: one launch latency
        one = perf_model.chained_launch_us(row, gpu, *_chained_programs(row, n, batch), n)
        return steps * (one - gpu.launch_us) + gpu.launch_us
    return perf_model.launch_us(row, gpu, _programs(row, programs, n, batch), n, steps)


def _programs(row: dict, programs: int, n: int, batch: int) -> int:
    if programs == -1:
        return math.ceil(batch / row["constexprs"].get("MATRICES", 1))
    split = row["constexprs"].get("SPLIT_PROGRAMS", 1)  # tiled: programs a tile (`step_tiles`, split roles)
    if programs == 0:  # a product kernel: one program per output tile
        return math.ceil(n / row["constexprs"]["BLOCK"]) ** 2 * batch * split
    if programs == CHAINED:
        return sum(_chained_programs(row, n, batch))
    if programs == UPPER_TILES:  # a symmetric result: the tiles on and above the diagonal
        tiles = math.ceil(n / row["constexprs"]["BLOCK"])
        return tiles * (tiles + 1) // 2 * batch * split
    return programs


def case_time(rows: list[dict], gpu: Gpu, n: int, batch: int, op: str, backward: bool, precision: str) -> dict:
    """Modeled microseconds of one call, with the kernel, programs and time of each launch."""
    mine = [row for row in rows if row["arch"] == gpu.arch and row["n"] == n and row.get("sass") and not row["error"]
            and row["constexprs"].get("PRECISION", precision) == precision]
    total, launches = 0.0, []
    for prefix, programs, steps in _launch_plan(n, batch, op, backward):
        candidates = [row for row in mine if row["kernel"].startswith(prefix)
                      and (n <= FUSED_LIMIT) == (not perf_model.is_tiled(row))]
        if not candidates:
            raise LookupError(f"no compiled kernel {prefix}... at n={n}, {precision}, {gpu.arch}")
        timed = [(_launch_us(row, gpu, programs, n, batch, steps), row) for row in candidates]
        us, row = min(timed, key=lambda pair: pair[0])
        total += us
        launches.append({"kernel": row["kernel"], "programs": _programs(row, programs, n, batch), "modeled_us": us})
    return {"modeled_us": total, "launches": launches}


def floor_us(gpu: Gpu, n: int, batch: int, op: str, backward: bool, precision: str, element_bytes: int) -> float:
    from tritonsqrt.perf.floor import Rates, floor_ms

    rates = Rates(copy_gb_s=gpu.memory_gb_s, matmul_gflop_s=gpu.peak_tflops(precision) * 1e3, launch_us=gpu.launch_us,
                  device_type="cuda")
    return 1e3 * floor_ms(batch, n, op, "forward+backward" if backward else "forward", element_bytes, rates)


def _square_roots(op: str) -> tuple[int, str]:
    """(square roots in the chain, the op of each): inv_root<p> takes log2(p) roots in a row,
    modeled as that many inv_sqrtm calls (tritonsqrt.inv_root; perf/floor.py counts it so)."""
    if op in ("sqrtm", "inv_sqrtm"):
        return 1, op
    from tritonsqrt.perf.cases import root_order

    p, _ = root_order(op)
    return p.bit_length() - 1, "inv_sqrtm"


def bench_rows(rows: list[dict], gpus: list[Gpu], precisions, cases=None) -> list[dict]:
    """The modeled time of every bench case, op and mode on each GPU at each precision."""
    from tritonsqrt.perf.cases import CASES

    out = []
    for case in cases or CASES:
        element_bytes = torch.empty(0, dtype=case.torch_dtype).element_size()
        for gpu in gpus:
            for precision in precisions:
                for op in case.ops:
                    stages, root_op = _square_roots(op)
                    for mode in case.modes:
                        backward = mode == "forward+backward"
                        model = case_time(rows, gpu, case.n, case.batch, root_op, backward, precision)
                        model = {"modeled_us": stages * model["modeled_us"], "launches": model["launches"] * stages}
                        floor = floor_us(gpu, case.n, case.batch, op, backward, precision, element_bytes)
                        out.append({"case": case.name, "batch": case.batch, "n": case.n, "dtype": case.dtype, "op": op,
                                    "mode": mode, "precision": precision, "gpu": gpu.name, "arch": gpu.arch,
                                    "modeled_us": round(model["modeled_us"], 1), "modeled_floor_us": round(floor, 1),
                                    "ratio_to_floor": round(model["modeled_us"] / floor, 2),
                                    "launches": len(model["launches"]), "kernels": model["launches"]})
    return out
