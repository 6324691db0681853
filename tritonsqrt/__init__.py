"""tritonsqrt: differentiable matrix square roots and inverse square roots of batches of
symmetric positive (semi)definite matrices, with fused Triton kernels on the GPU."""

from . import functional, nn
from .api import inv_sqrtm, lyapunov, sqrtm, sqrtm_and_inv_sqrtm
from .plan import Plan, auto_method
from .roots import inv_root, root

__version__ = "0.1.0"

__all__ = ["sqrtm", "inv_sqrtm", "sqrtm_and_inv_sqrtm", "inv_root", "root", "lyapunov", "auto_method", "Plan",
           "nn", "functional", "__version__"]
