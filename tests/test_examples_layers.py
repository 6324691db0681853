"""The layer and distance examples run and print what the README shows (short runs)."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

pytest.importorskip("sklearn")
EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_isqrt_cov_digits(capsys):
    assert load("isqrt_cov_digits").main(["--steps", "3", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["head", "loss"] and lines[1].startswith("iSQRT-COV")
    assert len(lines) == 3 and lines[2].startswith("average pool")


def test_zca_digits(capsys):
    assert load("zca_digits").main(["--steps", "20"]) == 0
    out = capsys.readouterr().out
    error = float(out.split("inverse_transform error ")[1].split()[0])
    assert error < 1e-5
    raw, whitened = (line.split() for line in out.splitlines()[-2:])
    assert raw[0] == "raw" and whitened[0] == "whitened"
    assert float(whitened[1]) < float(raw[1])  # whitened pixels train faster


def test_fid_digits(capsys):
    assert load("fid_digits").main() == 0
    out = capsys.readouterr().out
    assert "nearest class: 0->9" in out
    assert float(out.split("largest |FID(x, x)|: ")[1].split()[0]) < 1e-3
