"""Compile options the launches state instead of taking Triton's defaults."""

import triton

from tritonsqrt.versions import version_tuple

# Fused multiply-add, as every accuracy and speed figure was measured: Triton 3.9 turns it on by
# default with a warning, and 3.10 is to default to separate multiplies and adds.
LAUNCH_OPTIONS = {"enable_fp_fusion": True}


# The ptxas of Triton 3.6 caps some tiled kernels at 80 or 128 registers and spills 8-12 bytes;
# with the hardware limit stated it uses 96-164 and spills nothing. Triton 3.9's ptxas does not
# cap them, and with the limit stated it spills in one lyapunov_update config: so only before 3.9
# (docs/compile-report.md, "Triton versions").
TILED_LAUNCH_OPTIONS = dict(LAUNCH_OPTIONS, **({"maxnreg": 255} if version_tuple(triton.__version__) < (3, 9) else {}))
