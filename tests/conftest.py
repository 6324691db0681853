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


@pytest.hookimpl(trylast=True)  # after -m / -k have deselected
def pytest_collection_modifyitems(config, items):
    """The compile checks last, so their compiles (started below) overlap the other tests."""
    items[:] = sorted(items, key=lambda item: item.get_closest_marker("slow_compile") is not None)


def pytest_collection_finish(session):
    """Start the compiles of the selected `slow_compile` tests' modules in the background, at
    low priority: the interpreter tests mostly keep one core busy and leave the rest idle."""
    compiling = [item for item in session.items if item.get_closest_marker("slow_compile")]
    if session.config.option.collectonly:
        return
    if compiling:
        # One torch thread for the tests meanwhile, in this process and in the ones tests start
        # (the warmup and CLI runs): on 2 cores a second intra-op thread takes the core the
        # low-priority compiles would have had, for little speed on small matrices.
        torch.set_num_threads(1)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    for module in {item.module for item in compiling}:
        start = getattr(module, "start_compiles_in_background", None)
        if start is not None:
            start(None)  # one compile a CPU
