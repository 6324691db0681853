"""The wide accuracy check: spectrum shapes with exact end points, several draws, the worst
case and where it occurs, the margin, and the CLI options that reach them."""

import pytest
import torch

from tritonsqrt import cli
from tritonsqrt.commands.check import meets
from tritonsqrt.testing import SPECTRA, spd_with_condition, spectrum
from tritonsqrt.testing.accuracy import COLUMNS, TARGETS, accuracy_table, draw_inputs


@pytest.mark.parametrize("name", sorted(SPECTRA))
@pytest.mark.parametrize("n", [2, 3, 8])
def test_every_spectrum_has_the_exact_end_points(name, n):
    evals = spectrum(name, n, 1e4)
    assert evals.dtype == torch.float64 and evals.shape == (n,)
    assert evals.max().item() == 1.0 and evals.min().item() == 1e-4
    # and the matrix built on it has that condition number (float64, up to rounding)
    a = spd_with_condition(2, n, 1e4, seed=5, dtype=torch.float64, spectrum_name=name)
    found = torch.linalg.eigvalsh(a)
    assert torch.allclose(found[:, -1] / found[:, 0], torch.full((2,), 1e4, dtype=torch.float64), rtol=1e-8)


def test_spectrum_shapes_by_hand():
    assert spectrum("logspaced", 3, 1e2).tolist() == [1.0, 0.1, 0.01]
    assert spectrum("clusters", 5, 1e2).tolist() == [1.0, 1.0, 1.0, 0.01, 0.01]
    assert spectrum("outlier", 4, 1e2).tolist() == [1.0, 1.0, 1.0, 0.01]
    assert spectrum("one_large", 4, 1e2).tolist() == [1.0, 0.01, 0.01, 0.01]
    with pytest.raises(ValueError, match="spectrum"):
        spectrum("flat", 4, 1e2)


def test_draw_zero_is_the_original_check_matrix():
    """The default table is unchanged: draw 0 of the log-spaced spectrum is seed n, G of seed 1."""
    a, g = draw_inputs(16, 1e4, 3, 0, "logspaced", torch.float32, "cpu")
    assert torch.equal(a, spd_with_condition(3, 16, 1e4, seed=16))
    b, h = draw_inputs(16, 1e4, 3, 1, "logspaced", torch.float32, "cpu")
    assert not torch.equal(a, b) and not torch.equal(g, h)


def test_the_worst_case_is_the_maximum_over_draws_and_spectra_and_says_where():
    kwargs = dict(methods=["scaled_ns"], sizes=[2, 8], batch=2, dtype=torch.float32, device="cpu", kappas=[1e4])
    single = {spec: next(accuracy_table(**kwargs, seeds=1, spectra=(spec,))) for spec in ("logspaced", "clusters")}
    wide = next(accuracy_table(**kwargs, seeds=2, spectra=("logspaced", "clusters")))
    for column in COLUMNS:
        assert wide[column] >= max(single[spec][column] for spec in single)
        n, spec, draw = wide["worst_at"][column]
        # the named case, measured alone, gives exactly the reported number
        alone = next(accuracy_table(**{**kwargs, "sizes": [n]}, seeds=draw + 1, spectra=(spec,)))
        assert alone[column] == wide[column] and alone["worst_at"][column] == (n, spec, draw)


def test_meets_with_a_margin():
    targets = TARGETS[torch.float32][1e4]
    just_below = tuple(t * 0.9 for t in targets)
    assert meets(just_below, targets) and not meets(just_below, targets, margin=1.5)
    assert meets(tuple(t / 1.5 for t in targets), targets, margin=1.5)
    assert not meets((float("nan"), 0.0, 0.0, 0.0), targets)


def _rows(text: str, method: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.startswith(method)]


def test_cli_wide_options(capsys):
    argv = ["check", "--methods", "auto,scaled_ns", "--n", "2", "4", "--batch", "2", "--seeds", "2",
            "--spectra", "logspaced,clusters", "--kappas", "1e2", "1e4", "--where"]
    assert cli.main(argv) == 0  # auto on CPU is float64 eigh: every row within target
    out = capsys.readouterr().out
    assert "2 draws, spectra logspaced,clusters" in out.splitlines()[0]
    auto, scaled = _rows(out, "auto"), _rows(out, "scaled_ns")
    assert [row[1] for row in scaled] == ["1e+02", "1e+04"]
    assert all(float(value) < 1e-7 for row in auto for value in row[2:6])
    # the printed figures are those of the table function, rounded to 2 digits
    expected = list(accuracy_table(["scaled_ns"], [2, 4], 2, torch.float32, "cpu", kappas=[1e2, 1e4], seeds=2,
                                   spectra=("logspaced", "clusters")))
    for row, measured in zip(scaled, expected):
        assert row[2:6] == [f"{measured[c]:.1e}" for c in COLUMNS]
    where_lines = [line for line in out.splitlines() if "worst at (n, spectrum, draw)" in line]
    assert len(where_lines) == 4 and all(line.count(";") == 3 for line in where_lines)


def test_cli_margin_turns_a_thin_pass_into_a_failure(capsys):
    # scaled_ns at kappa 1e4 over these draws: d sqrtm 1.0e-4 against its target 2e-4,
    # so a 10x margin fails it; auto is only judged, and fails the exit status, by its own row.
    argv = ["check", "--methods", "scaled_ns", "--n", "2", "--batch", "2", "--kappas", "1e4"]
    assert cli.main(argv) == 0
    assert _rows(capsys.readouterr().out, "scaled_ns")[0][-1] == "yes"
    assert cli.main(argv + ["--margin", "10"]) == 0
    out = capsys.readouterr().out
    assert "target met with a 10x margin" in out and _rows(out, "scaled_ns")[0][-1] == "NO"


@pytest.mark.parametrize("bad", [["--seeds", "0"], ["--spectra", "flat"], ["--margin", "0"], ["--kappas", "-1"]])
def test_cli_rejects_bad_wide_options(bad, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["check", *bad])
    assert stop.value.code == 2


def test_the_header_names_the_precision_it_measured():
    from tritonsqrt.commands.check import _precision_note

    assert _precision_note(None, torch.device("cpu")) == "" == _precision_note("ieee", torch.device("cuda"))
    on_gpu = _precision_note(None, torch.device("cuda"))
    assert "ieee below n = 16, tf32x3 from it" in on_gpu
    assert "tf32x3 (emulated on the CPU" in _precision_note("tf32x3", torch.device("cpu"))
