"""Test session settings: the Triton interpreter runs every kernel on CPU tensors."""

import os

# Must be set before any @triton.jit kernel is decorated (i.e. before kernels are imported).
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
