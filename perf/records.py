"""Where results and baselines live, and what every file records about the machine.

Results go to `perf/results/` of the checkout the command runs in (found from the current
directory, so an installed package writes into the user's checkout, not site-packages), or
to `--out`. Baselines ship inside the package, beside this file.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import subprocess
from pathlib import Path

import torch

import tritonsqrt

BASELINE_DIR = Path(__file__).resolve().parent / "baselines"
SCHEMA = 1


def checkout_root(start: Path | None = None) -> Path | None:
    """The nearest directory at or above `start` (default: cwd) holding a tritonsqrt checkout."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "perf" / "__init__.py").is_file():
            return folder
    return None


def results_dir(out: str | None = None) -> Path:
    if out:
        path = Path(out)
    else:
        root = checkout_root()
        path = root / "perf" / "results" if root else Path.cwd() / "tritonsqrt-perf-results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:  # Linux names the CPU model here; platform.processor() often says only "x86_64"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_kind(device: torch.device | None = None) -> str:
    """Baseline key: "cpu", or the GPU name in lower case with dashes ("nvidia-h200")."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda":
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")


def commit() -> str | None:
    """`git rev-parse HEAD` of the checkout (with "+dirty" for local changes), if there is one."""
    root = checkout_root() or Path(tritonsqrt.__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "diff-index", "--quiet", "HEAD", "--"], cwd=root, timeout=10).returncode
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    try:
        import triton

        triton_version = triton.__version__
    except Exception:  # not installed, or broken on this platform
        triton_version = None
    return {"tritonsqrt": tritonsqrt.__version__, "torch": torch.__version__, "triton": triton_version,
            "python": platform.python_version()}


def environment(device: torch.device) -> dict:
    return {
        "schema": SCHEMA,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": {"type": device.type, "name": device_name(device), "kind": device_kind(device),
                   "cpu_threads": torch.get_num_threads()},
        "versions": versions(),
        "commit": commit(),
        "triton_interpret": os.environ.get("TRITON_INTERPRET", "0"),
    }


def write_json(path: Path, payload: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def timestamped_name(prefix: str, device: torch.device) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{prefix}-{device_kind(device)}-{stamp}.json"
