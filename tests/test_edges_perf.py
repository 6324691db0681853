"""Issue 14, the perf gate: launch counts do not depend on the tuning cache, and the gate
leaves no file in the user's caches."""

import os

import torch

from tritonsqrt.paths import routing
from tritonsqrt.tuning import cache as tuning
from tritonsqrt.perf import costs, gate


def test_launch_counts_ignore_the_launches_made_while_tuning(monkeypatch, tmp_path):
    from tritonsqrt.kernels import fused_lyapunov, fused_roots

    monkeypatch.setenv("TRITONSQRT_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("TRITONSQRT_TUNE", "1")
    tuning.clear_memory()
    # Two candidates per fused kernel, as on a GPU: an empty cache makes the first call time both.
    roots_default, lyapunov_default = fused_roots.candidate_configs, fused_lyapunov.candidate_configs
    monkeypatch.setattr(fused_roots, "candidate_configs", lambda *args, **kwargs: [
        *roots_default(*args, **kwargs), dict(roots_default(*args, **kwargs)[0], MATRICES=2)])
    monkeypatch.setattr(fused_lyapunov, "candidate_configs", lambda *args, **kwargs: [
        *lyapunov_default(*args, **kwargs), dict(lyapunov_default(*args, **kwargs)[0], MATRICES=1)])
    monkeypatch.setattr(costs, "launch_sizes", lambda device: [costs.LAUNCH_N])
    monkeypatch.setattr(routing, "kernel_methods", lambda: {"scaled_ns"})
    try:
        counts = costs.launch_counts(torch.device("cpu"))
    finally:
        tuning.clear_memory()
    assert counts == {f"{op}/{mode}/scaled_ns/n=16": launches for op in ("sqrtm", "inv_sqrtm")
                      for mode, launches in (("forward", 1), ("forward+backward", 2))}


def test_the_gate_uses_private_caches_and_removes_them(monkeypatch):
    monkeypatch.setenv("TRITONSQRT_CACHE_DIR", "/users/own/cache")
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    with gate.private_caches() as folder:
        assert str(tuning.cache_dir()).startswith(folder)
        assert os.environ["TRITON_CACHE_DIR"].startswith(folder)
        os.makedirs(tuning.cache_dir())
    assert not os.path.exists(folder)
    assert os.environ["TRITONSQRT_CACHE_DIR"] == "/users/own/cache" and "TRITON_CACHE_DIR" not in os.environ
