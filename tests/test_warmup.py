"""`tritonsqrt warmup` end to end in subprocesses: under the interpreter, and with no GPU at all."""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from tritonsqrt.tuning import cache as tuning  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# n = 65 is past the fused kernels (n <= 64): the tiled kernels, two tiles a side.
# scaled_ns: its backward is the tiled Lyapunov chain (ns, iSQRT-COV, differentiates its iteration in torch).
ARGS = ["warmup", "--sizes", "65", "--ops", "inv_sqrtm", "--methods", "scaled_ns", "--backward", "--batch", "1"]


def _run(args, env_changes, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "TRITONSQRT_TUNE")}
    env.update(env_changes)
    return subprocess.run([sys.executable, "-m", "tritonsqrt.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_warmup_tunes_then_hits_the_cache_and_exports(tmp_path):
    env = {"TRITON_INTERPRET": "1", "TRITONSQRT_CACHE_DIR": str(tmp_path / "cache")}
    export = tmp_path / "configs.json"
    first = _run(ARGS + ["--export", str(export)], env)
    assert first.returncode == 0, first.stderr
    assert "1/1" in first.stdout and "kernel" in first.stdout and "config" in first.stdout
    assert "tiled.newton_schulz_step" in first.stdout and "tiled.lyapunov_chained" in first.stdout
    assert " tuned" in first.stdout and ", 0 cache hits" in first.stdout

    document = json.loads(export.read_text())
    assert document["format"] == tuning.FORMAT and document["gpu"] == tuning.INTERPRETER_DEVICE
    assert {entry["kernel"] for entry in document["entries"].values()} >= {"tiled.newton_schulz_step",
                                                                           "tiled.product", "tiled.lyapunov_chained"}

    second = _run(ARGS, env)
    assert second.returncode == 0, second.stderr
    assert " 0 tuned" in second.stdout and "cache hits (" in second.stdout
    tuned_rows = [line for line in second.stdout.splitlines() if line.startswith("tiled.") and line.endswith("tuned")]
    assert not tuned_rows

    # The exported file, shipped as package data for this "GPU", is used with no cache at all.
    package = tmp_path / "package"
    package.mkdir()
    (package / f"{tuning.file_slug(tuning.INTERPRETER_DEVICE)}.json").write_text(export.read_text())
    probe = ("import sys, pathlib; from tritonsqrt import cli; from tritonsqrt.tuning import cache as tuning; "
             f"tuning.package_config_dir = lambda: pathlib.Path({str(package)!r}); sys.exit(cli.main(sys.argv[1:]))")
    third = subprocess.run([sys.executable, "-c", probe, *ARGS], cwd=ROOT, capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, TRITON_INTERPRET="1", TRITONSQRT_CACHE_DIR=str(tmp_path / "empty")))
    assert third.returncode == 0, third.stderr
    assert " 0 tuned" in third.stdout and "package" in third.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_warmup_without_a_gpu_says_so_and_fails(tmp_path):
    result = _run(["warmup", "--sizes", "65"], {"TRITONSQRT_CACHE_DIR": str(tmp_path)}, timeout=120)
    assert result.returncode != 0
    assert "no CUDA GPU" in result.stderr and "TRITON_INTERPRET=1" in result.stderr
    assert not (tmp_path / "tuning").exists()


def test_warmup_rejects_bad_arguments(tmp_path):
    result = _run(["warmup", "--sizes", "sixty", "--batch", "1"], {"TRITON_INTERPRET": "1",
                                                                  "TRITONSQRT_CACHE_DIR": str(tmp_path)}, timeout=120)
    assert result.returncode != 0 and "--sizes" in result.stderr
