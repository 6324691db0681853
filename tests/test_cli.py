"""The console command: info, check and demo run and print what they promise."""

import subprocess
import sys

import pytest

from tritonsqrt import cli


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tritonsqrt.cli", *args], capture_output=True, text=True, timeout=300)


def test_info_names_versions_device_and_plan(capsys):
    assert cli.main(["info", "--n", "64"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "triton" in out and "device: cpu" in out
    assert "n=64" in out and "sqrtm" in out and "auto -> eigh" in out
    assert cli.main(["info", "--n", "64", "--device", "cpu", "--dtype", "bfloat16"]) == 0


def test_check_prints_the_table_and_passes_for_auto(capsys):
    assert cli.main(["check", "--n", "2", "16", "--batch", "2", "--methods", "auto,scaled_ns,official"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("auto", "scaled_ns", "official"))]
    assert len(rows) == 9  # three methods x three kappas
    assert all(row.endswith("yes") for row in rows if not row.startswith("official"))
    assert any(row.endswith("NO") for row in rows if row.startswith("official"))


@pytest.mark.parametrize("command", ["info", "check", "demo", "compile-report", "warmup", "bench", "perfcheck"])
def test_every_command_prints_its_help(command, capsys):
    """argparse formats help strings with %: a stray one crashes --help (perfcheck's did)."""

    with pytest.raises(SystemExit) as stop:
        cli.main([command, "--help"])
    assert stop.value.code == 0
    assert f"usage: tritonsqrt {command}" in capsys.readouterr().out


def test_a_command_whose_dependency_fails_to_import_names_the_cause(monkeypatch, capsys):
    """A broken Triton (or numpy) takes down only the commands that import it, with the cause."""
    import importlib

    from tritonsqrt import cli

    real_import = importlib.import_module

    def failing_import(name, *args, **kwargs):
        if name == "tritonsqrt.kernels.compile_report":
            raise ModuleNotFoundError("No module named 'numpy'", name="numpy")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(cli.importlib, "import_module", failing_import)
    assert cli.main(["compile-report", "--arch", "sm_90"]) == 1
    err = capsys.readouterr().err
    assert "compile-report: unavailable" in err and "No module named 'numpy'" in err
    assert cli.main(["info"]) == 0  # the others still run
