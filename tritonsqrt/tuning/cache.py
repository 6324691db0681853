"""Launch settings chosen per kernel and matrix size, remembered across processes.

A launcher asks `select_config(kernel_name, source_hash, key, candidates, run_candidate)` for
the config (block sizes, warps, stages, ...) of one launch. The answer comes, in order, from:

1. this process's memory;
2. the configs shipped with the package for this GPU (`kernels/configs/<gpu>.json`), used
   with no benchmarking;
3. the user's cache (`$TRITONSQRT_CACHE_DIR`, default `~/.cache/tritonsqrt`), one file per
   GPU name and Triton version;
4. timing every candidate (`triton.testing.do_bench` on a GPU, wall clock under
   TRITON_INTERPRET=1) and keeping the fastest; the result is merged into the cache file.

Entries are keyed by kernel name, the hash of the kernel's source (with the @triton.jit
helpers it calls, so an edited kernel is retuned) and a bucketed key (`size_bucket(n)`,
dtype, precision, variant). A stored config is used only if it is still one of the
candidates. Cache writes merge under a file lock and land by atomic rename, so concurrent
tuners leave a valid file holding both; an unreadable or foreign file is ignored with a
`TuningCacheWarning` and rebuilt.

Nothing is benchmarked while a CUDA graph is being captured or with TRITONSQRT_TUNE=0:
stored configs are still used, otherwise the first candidate (the launcher's default).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import inspect
import json
import math
import os
import re
import tempfile
import threading
import time
import warnings
from pathlib import Path

import torch

from ..constants import interpreter_on

FORMAT = "tritonsqrt-tuning"
FORMAT_VERSION = 1
INTERPRETER_DEVICE = "triton-interpreter"

# do_bench budget per candidate (ms): a few dozen runs of a step kernel, enough for a stable median.
BENCH_WARMUP_MS = 10
BENCH_REP_MS = 40


class TuningCacheWarning(UserWarning):
    """A tuning file could not be used (unreadable, another format, another GPU)."""


@dataclasses.dataclass
class TuningEvent:
    """One config selection, for `tritonsqrt warmup`'s table.

    source: memory, package, cache, tuned, default (tuning off), single (one candidate, not timed).
    """

    kernel: str
    key: dict
    config: dict
    time_ms: float | None
    source: str
    entry: dict | None


_lock = threading.Lock()
_memory: dict = {}  # (device name, entry id) -> entry
_stores: dict = {}  # (kind, path) -> (mtime, entries)
_event_sinks: list = []
_device_names: dict = {}


# ---------------------------------------------------------------------------------------
# Keys and identities


def size_bucket(n: int) -> int:
    """n rounded up to a power of two (at least 16): a few buckets cover every size."""
    return max(16, 1 << max(0, int(n) - 1).bit_length())


def batch_bucket(batch: int) -> int:
    """batch rounded up to a power of 4: a tiled launch's grid grows with the batch, and how the
    grid fills the GPU decides its best config (few programs favour narrow or split tiles)."""
    bucket = 1
    while bucket < batch:
        bucket *= 4
    return bucket


def kernel_source_hash(kernel) -> str:
    """sha256 (16 hex digits) of a @triton.jit kernel's source and of the @triton.jit functions it
    calls, transitively: editing the kernel or a helper it uses changes it."""
    seen, sources, pending = set(), [], [kernel]
    while pending:
        fn = pending.pop()
        python_fn = getattr(fn, "fn", fn)
        if python_fn in seen:
            continue
        seen.add(python_fn)
        sources.append(inspect.getsource(python_fn))
        for name in python_fn.__code__.co_names:
            called = python_fn.__globals__.get(name)
            if called is not None and _is_triton_function(called):
                pending.append(called)
    return hashlib.sha256("\n".join(sorted(sources)).encode()).hexdigest()[:16]


def _is_triton_function(obj) -> bool:
    return callable(getattr(obj, "fn", None)) and type(obj).__module__.startswith("triton.runtime")


def device_name(device=None) -> str:
    """The GPU's name (torch.cuda.get_device_name), or INTERPRETER_DEVICE under TRITON_INTERPRET=1."""
    if device is not None and torch.device(device).type == "cuda":
        device = torch.device(device)
    elif interpreter_on() or not torch.cuda.is_available():
        return INTERPRETER_DEVICE
    else:
        device = torch.device("cuda", torch.cuda.current_device())
    name = _device_names.get(device)
    if name is None:  # asked at every launch: one driver query per device
        name = _device_names[device] = torch.cuda.get_device_name(device)
    return name


def triton_version() -> str:
    try:
        import triton
    except Exception:
        return "none"
    return triton.__version__


def file_slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", name).strip("_") or "unknown"


def entry_id(kernel_name: str, source_hash: str, key: dict) -> str:
    return f"{kernel_name}|{source_hash}|{json.dumps(key, sort_keys=True, separators=(',', ':'))}"


# ---------------------------------------------------------------------------------------
# Where configs live


def cache_dir() -> Path:
    explicit = os.environ.get("TRITONSQRT_CACHE_DIR")
    if explicit:  # "~/x" is the home's x, as a shell would have it, not a folder named "~"
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "tritonsqrt"


def cache_path(gpu: str | None = None) -> Path:
    gpu = gpu or device_name()
    return cache_dir() / f"tuning-{file_slug(gpu)}-triton-{file_slug(triton_version())}.json"


def package_config_dir() -> Path:
    from tritonsqrt import kernels

    return Path(kernels.__file__).resolve().parent / "configs"


def package_config_path(gpu: str | None = None) -> Path:
    return package_config_dir() / f"{file_slug(gpu or device_name())}.json"


# ---------------------------------------------------------------------------------------
# Reading and writing tuning files


def load_entries(path: Path, gpu: str, triton: str | None = None) -> dict:
    """The valid entries of a tuning file ({} when missing); warns and returns {} for a corrupt or
    foreign file (another format, another GPU, or, when `triton` is given, another Triton)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError, RecursionError) as error:  # RecursionError: absurdly nested JSON
        _warn(f"ignoring unreadable tuning file {path} ({type(error).__name__}: {str(error)[:200]}); "
              "it will be rebuilt")
        return {}
    problem = _foreign(data, gpu, triton)
    if problem:
        _warn(f"ignoring tuning file {path}: {problem}")
        return {}
    entries = {}
    for eid, entry in data["entries"].items():
        if _valid_entry(entry) and eid == entry_id(entry["kernel"], entry["source_hash"], entry["key"]):
            entries[eid] = entry
    if len(entries) < len(data["entries"]):
        _warn(f"skipped {len(data['entries']) - len(entries)} malformed entries in {path}")
    return entries


def _foreign(data, gpu: str, triton: str | None) -> str | None:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return f"not a {FORMAT} file"
    if data.get("version") != FORMAT_VERSION:
        return f"format version {data.get('version')!r}, expected {FORMAT_VERSION}"
    if not isinstance(data.get("entries"), dict):
        return "no 'entries' object"
    if data.get("gpu") != gpu:
        return f"tuned for {data.get('gpu')!r}, this device is {gpu!r}"
    if triton is not None and data.get("triton") != triton:
        return f"tuned with Triton {data.get('triton')!r}, this is {triton!r}"
    return None


def _valid_entry(entry) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("kernel"), str)
            and isinstance(entry.get("source_hash"), str) and isinstance(entry.get("key"), dict)
            and isinstance(entry.get("config"), dict) and _valid_time(entry.get("time_ms")))


def _valid_time(time_ms) -> bool:
    """None or a finite number >= 0 (warmup prints it as a number)."""
    if time_ms is None:
        return True
    return (isinstance(time_ms, (int, float)) and not isinstance(time_ms, bool) and math.isfinite(time_ms)
            and time_ms >= 0)


def _warn(message: str) -> None:
    warnings.warn(f"tritonsqrt tuning: {message}", TuningCacheWarning, stacklevel=3)


def write_entries(path: Path, entries: dict, gpu: str, merge: bool = True) -> None:
    """Write entries (id -> entry) to a tuning file, merged with what it holds now (unless
    merge=False), under an exclusive lock and by atomic rename: a reader never sees half a file
    and two writers lose nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(path):
        merged = load_entries(path, gpu, triton_version()) if merge else {}
        merged.update(entries)
        document = {"format": FORMAT, "version": FORMAT_VERSION, "gpu": gpu, "triton": triton_version(),
                    "entries": dict(sorted(merged.items()))}
        handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(document, out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp_name, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            raise


@contextlib.contextmanager
def _file_lock(path: Path):
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the rename is still atomic, a concurrent entry may be lost
        yield
        return
    # The lock is the folder itself: no FILE.lock is left behind, and no lock file can be a
    # symlink that makes us create a file elsewhere. Writers of any file in it take turns.
    folder = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(folder, fcntl.LOCK_UN)
    finally:
        os.close(folder)


def _stored(kind: str, gpu: str) -> dict:
    """Entries of the package file or the cache file for this GPU, re-read when the file changed."""
    path = package_config_path(gpu) if kind == "package" else cache_path(gpu)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = None
    cached = _stores.get((kind, str(path)))
    if cached is None or cached[0] != mtime:
        # Shipped configs hold for any Triton version; the user's cache is per version (its name).
        entries = {} if mtime is None else load_entries(path, gpu, None if kind == "package" else triton_version())
        cached = (mtime, entries)
        _stores[(kind, str(path))] = cached
    return cached[1]


def clear_memory() -> None:
    """Forget what this process selected and read (tests; a changed TRITONSQRT_CACHE_DIR)."""
    with _lock:
        _memory.clear()
        _stores.clear()


# ---------------------------------------------------------------------------------------
# Selection


@contextlib.contextmanager
def recording():
    """with recording() as events: ... -> the TuningEvent of every selection made inside."""
    events: list = []
    _event_sinks.append(events)
    try:
        yield events
    finally:
        _event_sinks.remove(events)


def tuning_allowed() -> bool:
    if os.environ.get("TRITONSQRT_TUNE", "1") == "0":
        return False
    if torch.cuda.is_available() and not interpreter_on():
        # Benchmarking synchronises, which a CUDA graph capture forbids.
        if torch.cuda.is_current_stream_capturing():
            return False
    return True


def select_config(kernel_name: str, source_hash: str, key: dict, candidates: list, run_candidate, device=None) -> dict:
    """The config to launch `kernel_name` with for `key`, from memory, shipped data, the cache, or timing.

    kernel_name: a stable name ("tiled.newton_schulz_step"); source_hash: `kernel_source_hash(kernel)`.
    key: JSON-able dict of bucketed launch properties (`size_bucket(n)`, dtype, precision, variant;
        the tiled kernels also `batch_bucket(batch)`).
    candidates: JSON-able config dicts, already pruned to what fits; the first is the default.
    run_candidate(config): launches the kernel once with that config on the real arguments;
        it must be repeatable (it will run many times while timing).
    device: the tensors' device (its name selects the files); default the current one.
    """
    if not candidates:
        raise ValueError(f"select_config: {kernel_name}: candidates: expected at least one config")
    if len(candidates) == 1:  # nothing to choose, so no file is read (the interpreter's fused kernels)
        return _emit(kernel_name, key, candidates[0], None, "single", None)
    gpu = device_name(device)
    eid = entry_id(kernel_name, source_hash, key)
    with _lock:
        entry = _memory.get((gpu, eid))
        source = "memory"
        if entry is None:
            for source in ("package", "cache"):
                entry = _stored(source, gpu).get(eid)
                if entry is not None and entry["config"] in candidates:
                    break
                entry = None
        if entry is not None:
            _memory[(gpu, eid)] = entry
    if entry is not None:
        return _emit(kernel_name, key, entry["config"], entry.get("time_ms"), source, entry)
    if not tuning_allowed():
        return _emit(kernel_name, key, candidates[0], None, "default", None)

    timings = [(_time_ms(run_candidate, config), index) for index, config in enumerate(candidates)]
    best_ms, best_index = min(timings)
    if best_ms == float("inf"):
        raise RuntimeError(f"select_config: {kernel_name}: no candidate config ran ({len(candidates)} tried)")
    entry = {"kernel": kernel_name, "source_hash": source_hash, "key": dict(key), "config": candidates[best_index],
             "time_ms": round(best_ms, 6), "candidates": len(candidates), "device": gpu,
             "tuned_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    with _lock:
        _memory[(gpu, eid)] = entry
    try:
        write_entries(cache_path(gpu), {eid: entry}, gpu)
    except OSError as error:  # a read-only home still runs, it just tunes again next time
        _warn(f"could not write the tuning cache {cache_path(gpu)} ({error})")
    return _emit(kernel_name, key, entry["config"], entry["time_ms"], "tuned", entry)


def _emit(kernel_name, key, config, time_ms, source, entry) -> dict:
    for sink in _event_sinks:
        sink.append(TuningEvent(kernel_name, dict(key), dict(config), time_ms, source, entry))
    return dict(config)


def _time_ms(run_candidate, config) -> float:
    """Median time of one launch (ms); inf when the config fails to compile or launch."""
    run = lambda: run_candidate(config)  # noqa: E731
    try:
        if interpreter_on() or not torch.cuda.is_available():
            run()  # the mechanism, not the figure, is what counts on CPU: best of two wall-clock runs
            times = []
            for _ in range(2):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            return 1e3 * min(times)
        import triton.testing

        return float(triton.testing.do_bench(run, warmup=BENCH_WARMUP_MS, rep=BENCH_REP_MS, return_mode="median"))
    except Exception as error:  # out of resources, a compile error of this config: skip it
        _warn(f"candidate {config} failed: {type(error).__name__}: {str(error)[:200]}")
        return float("inf")
