"""Version comparisons for the few places where Triton or numpy releases differ."""

import re


def version_tuple(version: str) -> tuple[int, int]:
    """(major, minor) of a version string: "3.6.0" -> (3, 6), "3.10.0+git1a2b" -> (3, 10)."""
    numbers = re.findall(r"\d+", version)[:2]
    return tuple(int(v) for v in numbers + ["0"] * (2 - len(numbers)))
