"""Every Python code block of README.md and docs/*.md runs as written, and every documented
`tritonsqrt ...` command line parses against the CLI.

Python blocks of one file run in order in one namespace (a later block may use an earlier
one's names), on CPU. A printed `torch.Size([...])` in a line's comment must appear in what
the block printed. A block that cannot run here carries a marker on the line just above its
fence, and is then only compiled:

    <!-- docs-test: needs-cuda -->   runs where CUDA is present, else compiled only
    <!-- docs-test: fragment -->     shows a call inside the reader's own code; compiled only

Command lines are taken from shell and plain fenced blocks, indented blocks and inline code
spans; they are parsed with `tritonsqrt.cli.build_parser()`, never run.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
import torch

from tritonsqrt import cli

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "kernels" / "configs" / "README.md"]
MARKER = re.compile(r"<!--\s*docs-test:\s*(needs-cuda|fragment)\s*-->")
FENCE = re.compile(r"^```(\S*)\s*$")
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console", "text"}


def fenced_blocks(text: str) -> list[tuple[str, int, str, str | None]]:
    """(language, first line number, code, marker) of every fenced block."""
    lines = text.splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        start = index + 1
        end = start
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        above = lines[index - 1] if index else ""
        marker = MARKER.search(above)
        blocks.append((opening.group(1), start + 1, "\n".join(lines[start:end]), marker and marker.group(1)))
        index = end + 1
    return blocks


def python_blocks(path: Path):
    return [(line, code, marker) for lang, line, code, marker in fenced_blocks(path.read_text()) if lang == "python"]


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", [p for p in DOC_FILES if python_blocks(p)], ids=_id)
def test_python_blocks_run_as_written(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    namespace = {"__name__": f"docs_{path.stem}"}
    for line, code, marker in python_blocks(path):
        where = f"{_id(path)}:{line}"
        compiled = compile(code, where, "exec")  # a syntax error fails every block, marked or not
        if marker == "fragment" or (marker == "needs-cuda" and not torch.cuda.is_available()):
            continue
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compiled, namespace)  # noqa: S102 - the documentation's own code
        except Exception as error:
            pytest.fail(f"{where}: the block fails as written: {type(error).__name__}: {error}. Fix the block; "
                        "only a GPU-only block or a call shown inside the reader's own code may be marked "
                        "<!-- docs-test: needs-cuda --> or <!-- docs-test: fragment --> (tests/test_docs.py)")
        for expected in re.findall(r"#\s*(torch\.Size\(\[[^\]]*\]\))", code):
            assert expected in out.getvalue(), f"{where}: printed {out.getvalue()!r}, the comment says {expected}"


# --- command lines -------------------------------------------------------------------------

_PROGRAM = re.compile(r"(?:^|[\s/])tritonsqrt(?:\.cli)?\s+(?=[a-z])")
_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")


def _candidate_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) of lines that may hold a command: shell/plain fences, indented
    blocks, inline code spans. Continuation lines (`\\` or an indented synopsis) are joined."""
    found = []
    for lang, start, code, _ in fenced_blocks(text):
        if lang not in SHELL_LANGUAGES:
            continue
        for offset, raw in enumerate(code.splitlines()):
            previous = found[-1] if found and found[-1][0] >= start else None
            continues = previous and (previous[1].endswith("\\") or raw.lstrip().startswith(("[", "--")))
            if continues:  # `\` continuation, or the next line of a usage synopsis
                found[-1] = (previous[0], previous[1].rstrip("\\") + " " + raw.strip())
            else:
                found.append((start + offset, raw.strip()))
    lines = text.splitlines()
    in_fence = False
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if line.startswith("    ") and not line.lstrip().startswith(("-", "*", "|")):
            found.append((number, line.strip()))
        found += [(number, span) for span in re.findall(r"`([^`]+)`", line)]
    # Inline spans broken over two lines: join a line's last open span with the next line.
    for number, (line, after) in enumerate(zip(lines, lines[1:]), 1):
        if line.count("`") % 2 == 1 and "tritonsqrt" in line.rsplit("`", 1)[1]:
            found.append((number, line.rsplit("`", 1)[1] + " " + after.split("`", 1)[0]))
    return found


def _strip_synopsis(words: list[str]) -> list[str]:
    """A usage synopsis `[--opt VALUE]` documents optional arguments: parse them unbracketed."""
    return [word.strip("[]") for word in words if word.strip("[]")]


def command_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, argv after `tritonsqrt`) for every documented command."""
    commands = []
    for number, line in _candidate_lines(path.read_text()):
        line = line.split(" # ", 1)[0]
        for part in re.split(r"&&|\|\||;|\|", line):
            match = _PROGRAM.search(part)
            if not match:
                continue
            before = part[:match.start()].split()
            # Only a program position: after env settings, a path to the script or `python -m`.
            if not all(_ENV.match(w) or w.endswith(("python", "python3", "-m")) or w == "-m" or "/" in w
                       for w in before):
                continue
            try:
                words = shlex.split(part[match.end():])
            except ValueError as error:
                pytest.fail(f"{_id(path)}:{number}: cannot split {part!r}: {error}")
            commands.append((number, _strip_synopsis(words)))
    return commands


ALL_COMMANDS = [(path, number, argv) for path in DOC_FILES for number, argv in command_lines(path)]


def test_documented_commands_were_found():
    """The extraction itself: the commands the README is built around are among those checked."""
    names = {argv[0] for _, _, argv in ALL_COMMANDS}
    assert {"demo", "info", "check", "bench", "perfcheck", "warmup", "compile-report"} <= names


@pytest.mark.parametrize("path,number,argv", ALL_COMMANDS,
                         ids=[f"{_id(p)}:{n}:{' '.join(a)[:40]}" for p, n, a in ALL_COMMANDS])
def test_documented_command_parses(path, number, argv, capsys):
    parser, _ = cli.build_parser()
    try:
        parser.parse_args(argv)
    except SystemExit as stop:
        message = capsys.readouterr().err.strip().splitlines()[-1:]
        pytest.fail(f"{_id(path)}:{number}: `tritonsqrt {' '.join(argv)}` does not parse: {message}")
