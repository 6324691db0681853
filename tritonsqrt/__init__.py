"""tritonsqrt: differentiable matrix square roots and inverse square roots of batches of
symmetric positive (semi)definite matrices, with fused Triton kernels on the GPU."""

from . import functional, nn
from .api import inv_sqrtm, lyapunov, sqrtm, sqrtm_and_inv_sqrtm
from .plan import Plan, auto_method
from .roots import inv_root, root

__version__ = "0.1.0"

__all__ = ["sqrtm", "inv_sqrtm", "sqrtm_and_inv_sqrtm", "inv_root", "root", "lyapunov", "auto_method", "Plan",
           "nn", "functional", "__version__"]


def _add_checkout_folders() -> None:
    """In a source checkout, kernels/ and perf/ sit beside this package rather than inside it.

    Installed wheels have tritonsqrt/kernels; an editable install or a test run from the
    checkout finds them here, so `tritonsqrt.kernels` and `tritonsqrt.perf` import either way.
    """
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    if not os.path.isdir(os.path.join(here, "kernels")) and os.path.isfile(os.path.join(root, "kernels", "__init__.py")):
        __path__.append(root)  # noqa: F821 (package __path__)


_add_checkout_folders()
