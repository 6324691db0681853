"""The `tritonsqrt` command: info, check, demo, and the commands other modules provide.

Each subcommand lives in the module that owns its job; this file only maps names to them.
A module provides `add_arguments(parser)` and `main(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "info": ("tritonsqrt.commands.info", "versions, device, and the method and backend each op would use"),
    "check": ("tritonsqrt.commands.check", "accuracy table against float64 eigh, method by method"),
    "demo": ("tritonsqrt.commands.demo", "whiten a batch of covariance matrices, then compare the methods: errors and time"),
    "compile-report": ("tritonsqrt.kernels.compile_report", "compile every kernel for a GPU arch without a GPU"),
    "warmup": ("tritonsqrt.tuning.warmup", "compile and tune the kernels a model will use, filling the cache"),
    "bench": ("tritonsqrt.perf.bench", "benchmark against every alternative"),
    "perfcheck": ("tritonsqrt.perf.gate", "performance-regression gate against perf/baselines"),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    from .commands.args import OneLineParser  # bad arguments: one line and exit 2, no usage block

    parser = OneLineParser(prog="tritonsqrt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            if (error.name or "").startswith("tritonsqrt"):
                raise  # our own module missing is a bug, not an environment problem
            # A third-party import (Triton, numpy) failed: the other commands still work, and
            # this one says what failed instead of every command dying with a traceback.
            module = _Unavailable(name, error)
        modules[name] = module
        module.add_arguments(command_parser)
    return parser, modules


class _Unavailable:
    """Stands in for a command whose module could not be imported; running it names the cause."""

    def __init__(self, name: str, error: ImportError):
        self.name, self.error = name, error

    def add_arguments(self, parser) -> None:
        pass  # its options are unknown; `main` lets them through to this message

    def main(self, args) -> int:
        print(f"tritonsqrt {self.name}: unavailable, a dependency failed to import: "
              f"{type(self.error).__name__}: {self.error} (reinstall it, e.g. pip install triton numpy)",
              file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    args, unknown = parser.parse_known_args(argv)
    module = modules[args.command]
    if unknown and not isinstance(module, _Unavailable):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return int(module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
