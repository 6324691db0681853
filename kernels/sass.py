"""The SASS of a compiled kernel: its instructions, its loops, and the instruction mix of each.

The cubin Triton builds (`compiled.asm["cubin"]`) is disassembled with the `cuobjdump` that the
Triton wheel ships (`triton/backends/nvidia/bin`); no GPU and no CUDA install are needed.

Loops are found from the control flow: a branch whose target is at or before its own address
closes a loop spanning [target, branch]. Loops nest by address range (the compiler lays a
loop body out contiguously). Except a detour (`detours`): ptxas moves the retry of a wait
(an mbarrier try-wait that a TMA load or a wgmma pipeline arms) out of line, after the
kernel's exit, and jumps back from it to just after where it left; that jump spans most of
the kernel but closes no loop, and the retry loop inside it is a wait, not work. A loop's own
mix counts the instructions in its range that are not inside a nested loop; `weighted_mix`
multiplies each nested loop by a trip count.
ptxas may unroll a loop (an FMA loop of unknown trip count becomes a 4x body plus a
remainder); the counts are of the code as compiled, unrolled or not.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import subprocess
import tempfile

# "/*0a50*/   @!P0 HGMMA.64x16x8.F32.TF32 R24, gdesc[UR4], R24 ;": address, predicate, opcode, operands
_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P[T0-9]+\s+)?([A-Z][A-Za-z0-9_.]*)([^;]*);")
_TARGET = re.compile(r"0x([0-9a-f]+)")
_HGMMA_SHAPE = re.compile(r"HGMMA\.(\d+x\d+x\d+)")
_HMMA_SHAPE = re.compile(r"HMMA\.(16)(8)(\d+)")  # HMMA.1688: m16 n8 k8; HMMA.16816: m16 n8 k16


@dataclasses.dataclass(frozen=True)
class Instruction:
    address: int
    opcode: str  # with its modifiers, e.g. "LDS.128", "HGMMA.64x16x8.F32.TF32"
    operands: str
    guarded: bool = False  # under a predicate (@P0, @!P1; @PT is always true)

    def branch_target(self) -> int | None:
        if self.opcode.split(".")[0] not in ("BRA", "JMP"):
            return None
        target = _TARGET.search(self.operands)
        return int(target.group(1), 16) if target else None

    def ends_flow(self) -> bool:
        """No fall-through past it: an unguarded jump or exit."""
        return not self.guarded and self.opcode.split(".")[0] in ("BRA", "JMP", "EXIT")


@dataclasses.dataclass
class Loop:
    start: int  # address of the first instruction of the body (the branch target)
    end: int  # address of the backward branch
    children: list = dataclasses.field(default_factory=list)

    def contains(self, other: "Loop") -> bool:
        inside = self.start <= other.start and other.end <= self.end
        return inside and (self.start, self.end) != (other.start, other.end)


def cuobjdump_path() -> str:
    import triton

    return os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")


def disassemble(cubin: bytes) -> str:
    """The SASS text of a cubin, from the cuobjdump the Triton wheel ships."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "kernel.cubin")
        with open(path, "wb") as handle:
            handle.write(cubin)
        done = subprocess.run([cuobjdump_path(), "-sass", path], capture_output=True, text=True)
    if done.returncode != 0 or "Function" not in done.stdout:
        raise RuntimeError(f"cuobjdump -sass failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


def parse(sass: str) -> list[Instruction]:
    return [Instruction(int(m.group(1), 16), m.group(3), m.group(4).strip(),
                        bool(m.group(2)) and m.group(2).strip() not in ("@PT", "@UPT"))
            for m in _LINE.finditer(sass)]


def detours(instructions: list[Instruction]) -> list[tuple[int, int]]:
    """(first, last) addresses of each out-of-line detour: a block no instruction falls into
    (the one before it jumps or exits unconditionally), entered only by branches from before
    the address it returns to, and left by an unconditional jump back to that address."""
    spans = []
    branches = [(ins.address, ins.branch_target()) for ins in instructions if ins.branch_target() is not None]
    first = 0
    for i, ins in enumerate(instructions):
        if i > 0 and instructions[i - 1].ends_flow():
            first = i  # a block that nothing falls into starts here
        back = ins.branch_target()
        if back is None or ins.guarded or back >= instructions[first].address:
            continue
        start, end = instructions[first].address, ins.address
        entries = [source for source, target in branches if start <= target <= end and not start <= source <= end]
        if entries and first > 0 and all(source < back for source in entries):
            spans.append((start, end))
    return spans


def find_loops(instructions: list[Instruction]) -> list[Loop]:
    """Top-level loops (each with its nested `children`), in address order; none in a detour."""
    flat = []
    skipped = detours(instructions)
    for ins in instructions:
        target = ins.branch_target()
        if any(start <= ins.address <= end for start, end in skipped):
            continue
        if target is not None and target < ins.address:  # not the BRA-to-self after EXIT
            flat.append(Loop(target, ins.address))
    # Outer loops first (earlier start, later end), so each loop is placed under its innermost parent.
    flat.sort(key=lambda loop: (loop.start, -loop.end))
    roots: list[Loop] = []
    for loop in flat:
        siblings = roots
        while True:
            parent = next((s for s in siblings if s.contains(loop)), None)
            if parent is None:
                break
            siblings = parent.children
        siblings.append(loop)
    return roots


def category(opcode: str) -> str:
    """The mix column of an instruction: FFMA, FADD/FMUL, DFMA, MMA by shape, memory, barrier."""
    base = opcode.split(".")[0]
    if base == "HGMMA":
        return "HGMMA." + _HGMMA_SHAPE.match(opcode).group(1)
    if base == "HMMA":
        shape = _HMMA_SHAPE.match(opcode)
        return "HMMA." + ("x".join(shape.groups()) if shape else opcode.split(".")[1])
    if base == "DMMA":
        return "DMMA"
    groups = {"FFMA": "FFMA", "FADD": "FADD/FMUL", "FMUL": "FADD/FMUL", "DFMA": "DFMA", "DADD": "DADD/DMUL",
              "DMUL": "DADD/DMUL", "LDS": "LDS", "LDSM": "LDS", "STS": "STS", "STSM": "STS", "LDG": "LDG",
              "STG": "STG", "BAR": "BAR"}
    return groups.get(base, "other")


def shared_bytes(opcode: str) -> int:
    """Bytes of shared memory one warp moves with this instruction (0 for other instructions).

    LDS/STS: 32 threads x the access width (.64: 8 bytes, .128: 16, .U8/.S8: 1, .U16/.S16: 2,
    else 4). LDSM/STSM move 8x8 matrices of 16-bit elements, 128 bytes each: .M88.4 is four.
    """
    parts = opcode.split(".")
    if parts[0] in ("LDSM", "STSM"):
        count = parts[-1] if parts[-1] in ("1", "2", "4") else "1"
        return 128 * int(count)
    if parts[0] not in ("LDS", "STS"):
        return 0
    widths = {"64": 8, "128": 16, "U8": 1, "S8": 1, "U16": 2, "S16": 2}
    return 32 * next((widths[p] for p in parts[1:] if p in widths), 4)


def mix(instructions: list[Instruction]) -> collections.Counter:
    """Instructions per column of `category`, plus "instructions" (all) and "shared bytes"."""
    counts = collections.Counter(category(ins.opcode) for ins in instructions)
    counts["instructions"] = len(instructions)
    counts["shared bytes"] = sum(shared_bytes(ins.opcode) for ins in instructions)
    return counts


def instructions_in(instructions: list[Instruction], loop: Loop, own_only: bool = True) -> list[Instruction]:
    """The loop's instructions; with own_only, those not inside a nested loop."""
    inside = [ins for ins in instructions if loop.start <= ins.address <= loop.end]
    if not own_only:
        return inside
    nested = [(child.start, child.end) for child in loop.children]
    return [ins for ins in inside if not any(start <= ins.address <= end for start, end in nested)]


def weighted_mix(instructions: list[Instruction], loop: Loop, inner_trips: int) -> collections.Counter:
    """Instructions of one pass of `loop`, every nested loop counted `inner_trips` times (recursively)."""
    total = mix(instructions_in(instructions, loop))
    for child in loop.children:
        for key, count in weighted_mix(instructions, child, inner_trips).items():
            total[key] += count * inner_trips
    return total


def all_loops(roots: list[Loop]):
    for loop in roots:
        yield loop
        yield from all_loops(loop.children)


def hot_loop(instructions: list[Instruction], roots: list[Loop]) -> Loop | None:
    """The loop that does the work: the top-level loop with the most instructions, nested ones included."""
    if not roots:
        return None
    return max(roots, key=lambda loop: len(instructions_in(instructions, loop, own_only=False)))


def outside_loops(instructions: list[Instruction], roots: list[Loop]) -> list[Instruction]:
    spans = [(loop.start, loop.end) for loop in roots]
    return [ins for ins in instructions if not any(start <= ins.address <= end for start, end in spans)]
