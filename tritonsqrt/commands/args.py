"""Argument types every command shares: a bad argument is one line on stderr and exit status 2.

argparse calls each `type=` function on the text given; an `argparse.ArgumentTypeError` becomes
"tritonsqrt <command>: error: argument --n: expected a positive int, got '-5'" (`OneLineParser`
leaves out the usage block), before any work starts.
"""

from __future__ import annotations

import argparse
import json
import os

import torch


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are a single line (argparse prints the usage first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _number(text: str, convert, accept, expected: str):
    """`convert(text)` when it parses and `accept`s, else the one-line error naming `expected`."""
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not accept(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, lambda value: value >= 1, "a positive int")


def positive_float(text: str) -> float:
    return _number(text, float, lambda value: 0 < value < float("inf"), "a positive number")


def positive_int_list(text: str) -> list[int]:
    """"64,256" -> [64, 256]; at least one item."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints, got {text!r}")
    try:
        return [positive_int(item) for item in items]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints, got {text!r}") from None


def names_from(allowed) -> callable:
    """A type for comma-separated names, each one of `allowed`, at least one."""
    allowed = tuple(allowed)

    def parse(text: str) -> str:
        items = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in items if item not in allowed]
        if not items or unknown:
            got = f"{unknown[0]!r}" if unknown else f"{text!r}"
            raise argparse.ArgumentTypeError(f"expected comma-separated names of {', '.join(allowed)}, got {got}")
        return text

    return parse


def device(text: str) -> str:
    """A torch device this process can use: "cpu", "cuda" or "cuda:N" (with a GPU present)."""
    try:
        parsed = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a device such as cpu or cuda, got {text!r}") from None
    if parsed.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"expected cpu or cuda, got {text!r}")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: no CUDA GPU here (torch.cuda.is_available() is False)")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: there are {torch.cuda.device_count()} CUDA devices")
    return text


def json_file(*required_keys: str) -> callable:
    """A type for an existing JSON file holding an object with `required_keys`."""

    def parse(text: str) -> str:
        try:
            with open(text, encoding="utf-8") as handle:
                data = json.load(handle)
        except OSError as error:
            raise argparse.ArgumentTypeError(f"cannot read {text!r}: {error.strerror or error}") from None
        except (ValueError, RecursionError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a JSON file") from None
        missing = [key for key in required_keys if not isinstance(data, dict) or key not in data]
        if missing:
            raise argparse.ArgumentTypeError(f"{text!r} is not in the expected format (no {missing[0]!r})")
        return text

    return parse


def writable_file(text: str) -> str:
    """A path a file can be written to: its folder exists and is writable, and it is not a folder."""
    folder = os.path.dirname(os.path.abspath(text))
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, expected a file name")
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(text) and not os.access(text, os.W_OK)):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: permission denied")
    return text


def positive_ints_text(text: str) -> str:
    """Validate "64,256" (comma-separated positive ints, at least one) and keep it as text, for
    commands that split it themselves."""
    positive_int_list(text)
    return text


def non_negative_int(text: str) -> int:
    return _number(text, int, lambda value: value >= 0, "an int >= 0")


def non_negative_float(text: str) -> float:
    return _number(text, float, lambda value: 0 <= value < float("inf"), "a finite number >= 0")
