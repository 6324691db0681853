"""Published figures of the GPUs the performance model knows, each with its source.

Sources (public):
- [A100-WP] NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020): 108 SMs, 1410 MHz
  boost; per SM 64 FP32 and 32 FP64 lanes, 4 processing blocks (one warp scheduler each,
  one instruction per clock), 64 K 32-bit registers, up to 164 KB shared memory; table 1 peak
  rates (FP32 19.5 TFLOPS, TF32 tensor 156 TFLOPS dense, FP64 9.7 TFLOPS).
- [A100-DS] NVIDIA A100 datasheet: A100 80GB SXM memory bandwidth 2,039 GB/s.
- [H100-WP] NVIDIA H100 Tensor Core GPU Architecture whitepaper (2022): 132 SMs (SXM5); per SM
  128 FP32 and 64 FP64 lanes, 4 processing blocks, 64 K registers, up to 228 KB shared memory.
- [H100-DS] NVIDIA H100 datasheet, H100 SXM: FP32 67 TFLOPS (66.9 in the whitepaper: 132 SMs
  x 128 lanes x 2 x 1.98 GHz), FP64 34 TFLOPS, TF32 tensor 989 TFLOPS with sparsity
  (494.7 dense), memory bandwidth 3.35 TB/s.
- [H200-DS] NVIDIA H200 datasheet, H200 SXM: the same compute figures as H100 SXM (same GH100
  chip, 132 SMs), 141 GB HBM3e at 4.8 TB/s.
- [CUDA-PG] CUDA C++ Programming Guide, "Technical Specifications per Compute Capability":
  8.0 and 9.0 both: 32 resident blocks and 64 resident warps (2048 threads) per SM, 64 K
  registers per SM and per block, 255 registers per thread; shared memory per SM 164 KB (8.0)
  / 228 KB (9.0), per block 163 KB / 227 KB (opt-in); 1 KB of shared memory reserved per block
  by the system; 32 banks of 4 bytes (128 bytes of shared memory a clock per SM).
- [CUDA-OCC] CUDA occupancy calculator (cuda_occupancy.h in the CUDA toolkit): registers are
  allocated per warp in units of 256 and per sub-partition (4 per SM), shared memory in units
  of 128 bytes (compute capability 8.x and 9.0).

The tensor-core rate is taken from the datasheet's dense TF32 figure at the listed boost clock
(A100: 156e12 / (2 x 108 x 1.41e9) = 512 FMA a clock per SM; H100: 494.7e12 / (2 x 132 x 1.98e9)
= 946). The launch latency is not published: it is an assumption of the model, to calibrate.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Gpu:
    name: str
    arch: str  # the compile target: "sm_80", "sm_90"
    sms: int
    clock_ghz: float  # boost clock
    fp32_lanes: int  # FP32 FMA lanes per SM
    fp64_lanes: int
    tf32_tflops: float  # dense tensor-core TF32 peak, datasheet
    memory_gb_s: float
    shared_per_sm: int  # bytes a block's shared memory is carved from
    shared_per_block: int  # opt-in maximum of one block
    registers_per_sm: int = 65536
    registers_per_block: int = 65536
    max_registers_per_thread: int = 255
    max_warps_per_sm: int = 64
    max_blocks_per_sm: int = 32
    schedulers: int = 4  # warp schedulers (sub-partitions) per SM, one instruction a clock each
    register_unit: int = 256  # registers allocated per warp in units of this
    shared_unit: int = 128  # shared memory allocated in units of this many bytes
    shared_reserved_per_block: int = 1024
    shared_bytes_per_clock: int = 128  # 32 banks x 4 bytes
    launch_us: float = 3.0  # modeled: no published figure; the first GPU run calibrates it

    @property
    def tf32_fma_per_clock(self) -> float:
        """Dense TF32 multiply-adds a clock per SM, from the datasheet peak."""
        return self.tf32_tflops * 1e12 / (2 * self.sms * self.clock_ghz * 1e9)

    def peak_tflops(self, precision: str, dtype_name: str = "float32") -> float:
        """The floor's product rate: FP32 (ieee) or FP64 lanes, tensor-core TF32 (tf32x3: 3 passes)."""
        if dtype_name == "float64":
            return 2 * self.sms * self.fp64_lanes * self.clock_ghz / 1e3
        if precision == "ieee":
            return 2 * self.sms * self.fp32_lanes * self.clock_ghz / 1e3
        return self.tf32_tflops / (3 if precision == "tf32x3" else 1)


GPUS = {
    # [A100-WP] [A100-DS] [CUDA-PG]: 164 KB = 167936 bytes per SM, 163 KB per block.
    "a100": Gpu("A100 SXM4 80GB", "sm_80", sms=108, clock_ghz=1.41, fp32_lanes=64, fp64_lanes=32,
                tf32_tflops=156.0, memory_gb_s=2039.0, shared_per_sm=167936, shared_per_block=166912),
    # [H100-WP] [H100-DS] [CUDA-PG]: 228 KB = 233472 bytes per SM, 227 KB per block.
    "h100": Gpu("H100 SXM5", "sm_90", sms=132, clock_ghz=1.98, fp32_lanes=128, fp64_lanes=64,
                tf32_tflops=494.7, memory_gb_s=3350.0, shared_per_sm=233472, shared_per_block=232448),
    # [H200-DS]: H100's compute, faster memory.
    "h200": Gpu("H200 SXM", "sm_90", sms=132, clock_ghz=1.98, fp32_lanes=128, fp64_lanes=64,
                tf32_tflops=494.7, memory_gb_s=4800.0, shared_per_sm=233472, shared_per_block=232448),
}


def gpus_for(arch: str) -> list[Gpu]:
    return [gpu for gpu in GPUS.values() if gpu.arch == arch]
