"""What a new user sees first: the demo's comparison table, `info`, `auto_method().describe()`,
and the error when Triton cannot be imported."""

import re

import pytest
import torch

import tritonsqrt as ts
from tritonsqrt import cli
from tritonsqrt.paths import routing
from tritonsqrt.commands.demo import ratio_words


def test_ratio_is_spelled_out_as_faster_or_slower():
    assert ratio_words(3.0, 1.0) == "3.0x slower"
    assert ratio_words(1.0, 3.0) == "3.0x faster"  # the "0.33x" read as what it means
    assert ratio_words(1.02, 1.0) == "about the same"


def test_demo_table_has_every_method_with_errors_and_times(capsys):
    assert cli.main(["demo", "--groups", "4", "--n", "16", "--samples", "64", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "gradient finite: True" in out
    number = r"(\d\.\d)e([+-]\d\d)"
    rows = {}
    for line in out.splitlines():
        match = re.match(rf"(.+?)\s+{number}\s+{number}\s+(\d+\.\d)\s+(baseline|about the same|\d+\.\dx (?:slower|faster))$",
                         line)
        if match:
            label = match.group(1)
            rows[label] = (float(f"{match.group(2)}e{match.group(3)}"), float(f"{match.group(4)}e{match.group(5)}"))
    labels = list(rows)
    assert labels[0] == "auto (eigh, torch)" and labels[1] == "scaled_ns (GPU default; torch path here)"
    assert labels[2:] == ["eigh+autograd", "MPA-Lya (official code, Song et al. 2022)"]
    # float64 eigh and the converged iteration are accurate; the paper's fixed-degree code is not
    # (the demo's covariances have condition number ~1e2).
    assert max(rows[labels[0]]) < 1e-6 and max(rows[labels[1]]) < 1e-4
    assert rows[labels[3]][1] > 1e-2
    assert "on a CUDA GPU, auto runs scaled_ns" in out and "backend triton" in out


def test_auto_method_describes_the_kernels_cuda_tensors_run():
    if not routing.triton_available():
        pytest.skip(routing.triton_import_problem())
    assert "backend triton" in ts.auto_method("cuda", 48, torch.float32).describe()
    assert ts.auto_method("cuda", 256, torch.float32).backend == "triton"  # tiled kernels
    assert "backend torch" in ts.auto_method("cpu", 48, torch.float32).describe()


def test_info_prints_each_reason_once(capsys):
    assert cli.main(["info", "--device", "cpu", "--n", "16", "64", "256"]) == 0
    out = capsys.readouterr().out
    assert out.count("CPU tensors use the torch path") == 1
    assert "torch path for n = 16, 64, 256:" in out
    assert out.count("auto -> eigh (eigh in float64), backend torch") == 6  # 3 sizes x 2 ops


def test_a_broken_triton_import_names_the_real_cause(monkeypatch):
    missing = ModuleNotFoundError("No module named 'numpy'", name="numpy")
    monkeypatch.setattr(routing, "_TRITON_IMPORT_ERROR", missing)
    with pytest.raises(ValueError, match=r"Triton is installed but failed to import: .*numpy.*pip install numpy"):
        ts.sqrtm(torch.eye(3), backend="triton")
    monkeypatch.setattr(routing, "_TRITON_IMPORT_ERROR", ModuleNotFoundError("no triton", name="triton"))
    assert routing.triton_import_problem().startswith("Triton is not installed")
