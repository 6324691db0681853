"""Test session settings: the Triton interpreter runs every kernel on CPU tensors."""

import os

# Must be set before any @triton.jit kernel is decorated (i.e. before kernels are imported).
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_report_header(config):
    """Say up front when this Triton's interpreter cannot run the kernel tests (they will fail)."""
    from tritonsqrt.paths.routing import interpreter_problem

    problem = interpreter_problem()
    return f"WARNING: kernel tests will fail: {problem}" if problem else None
