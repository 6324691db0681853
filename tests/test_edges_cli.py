"""Issue 14, the CLI: every bad argument is one line on stderr and exit status 2, before any work
(these used to end in a Python traceback and exit 1, or run, or do nothing and exit 0)."""

import json

import pytest
import torch

from tritonsqrt import cli

NO_CUDA = [] if torch.cuda.is_available() else [
    [command, "--device", "cuda"] for command in ("info", "check", "demo", "bench", "perfcheck")]


def _bad_arguments(tmp_path):
    wrong_format = tmp_path / "wrong.json"
    wrong_format.write_text(json.dumps({"something": "else"}))
    not_json = tmp_path / "bad.json"
    not_json.write_text("not json")
    unwritable = str(tmp_path / "no-such-folder" / "out.json")
    return [
        ["info", "--n", "-5"], ["info", "--n", "x"],
        *[[command, "--device", "bogus"] for command in ("info", "check", "demo", "bench", "perfcheck")],
        *NO_CUDA,
        ["check", "--n", "0"], ["check", "--n", "-3"], ["check", "--batch", "0"], ["check", "--methods", "bogus"],
        ["check", "--methods", ""],
        ["demo", "--groups", "0"], ["demo", "--n", "0"], ["demo", "--samples", "0"], ["demo", "--method", "bogus"],
        ["demo", "--repeats", "0"],
        ["bench", "--plot-from", str(tmp_path / "missing.json")], ["bench", "--plot-from", str(wrong_format)],
        ["bench", "--plot-from", str(not_json)], ["bench", "--threads", "0"], ["bench", "--budget", "-1"],
        ["perfcheck", "--rounds", "0"], ["perfcheck", "--threads", "0"], ["perfcheck", "--noise-runs", "0"],
        ["perfcheck", "--costs-baseline", str(not_json)], ["perfcheck", "--costs-baseline", str(wrong_format)],
        ["perfcheck", "--baseline", str(wrong_format)], ["perfcheck", "--json", unwritable],
        ["warmup", "--export", unwritable], ["warmup", "--sizes", ""], ["warmup", "--sizes", "0"],
        ["warmup", "--batch", "0"], ["warmup", "--ops", "bogus"], ["warmup", "--dtypes", "int8"],
        ["warmup", "--methods", "eigh"],
        ["compile-report", "--json", unwritable], ["compile-report", "--n", "-1"],
        ["compile-report", "--module", "nosuch"], ["compile-report", "--arch", "sm_1"],
        ["compile-report", "--dtype", "int8"], ["compile-report", "--jobs", "0"],
    ]


def test_every_bad_argument_is_a_one_line_usage_error(tmp_path, capsys):
    for argv in _bad_arguments(tmp_path):
        try:
            status = cli.main(argv)
        except SystemExit as exit:
            status = exit.code
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert status == 2, (argv, status, captured.err[-500:])
        assert len(lines) == 1 and "Traceback" not in captured.err, (argv, captured.err)
        assert captured.out == "", (argv, captured.out[-300:])
        option = next(arg for arg in argv[1:] if arg.startswith("--"))
        assert option in lines[0], (argv, lines[0])
