"""The tuning cache: selection, persistence, invalidation, concurrency, bad files, shipped configs.

The mechanism runs on CPU: candidates are timed by wall clock. Most tests use a fake launch
(sleeps of known length) so that the choice is certain; one tunes the real tiled kernels
under the interpreter.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import json  # noqa: E402
import multiprocessing  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from tritonsqrt.paths import tiled_path  # noqa: E402
from tritonsqrt.tuning import cache as tuning  # noqa: E402
from tritonsqrt.plan import Plan  # noqa: E402
from tritonsqrt.testing import spd_with_condition  # noqa: E402

FAST, SLOW = {"BLOCK": 32, "num_warps": 4}, {"BLOCK": 64, "num_warps": 8}
KEY = {"n": 256, "dtype": "float32", "precision": "ieee", "variant": "next"}


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TRITONSQRT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TRITONSQRT_TUNE", "1")
    monkeypatch.setattr(tuning, "package_config_dir", lambda: tmp_path / "package")
    tuning.clear_memory()
    yield
    tuning.clear_memory()


class FakeLaunch:
    """run_candidate for the fake kernel: SLOW sleeps, FAST does not; counts the runs."""

    def __init__(self):
        self.runs = 0

    def __call__(self, config):
        self.runs += 1
        if config == SLOW:
            time.sleep(0.01)


def _select(launch, source_hash="hash-a", key=KEY, candidates=(SLOW, FAST)):
    return tuning.select_config("fake.kernel", source_hash, key, list(candidates), launch)


def _cache_document():
    with open(tuning.cache_path()) as handle:
        return json.load(handle)


def test_the_fastest_candidate_is_chosen_and_kept_across_processes():
    launch = FakeLaunch()
    with tuning.recording() as events:
        assert _select(launch) == FAST
    assert launch.runs > 0 and events[0].source == "tuned"
    document = _cache_document()
    assert document["format"] == tuning.FORMAT and document["gpu"] == tuning.INTERPRETER_DEVICE
    assert document["triton"] == tuning.triton_version()
    (entry,) = document["entries"].values()
    assert entry["config"] == FAST and entry["source_hash"] == "hash-a" and entry["key"] == KEY

    tuning.clear_memory()  # as a new process would start
    again = FakeLaunch()
    with tuning.recording() as events:
        assert _select(again) == FAST
        assert _select(again) == FAST
    assert again.runs == 0
    assert [event.source for event in events] == ["cache", "memory"]


def test_an_edited_kernel_is_retuned():
    _select(FakeLaunch(), source_hash="hash-a")
    tuning.clear_memory()
    launch = FakeLaunch()
    with tuning.recording() as events:
        _select(launch, source_hash="hash-b")
    assert launch.runs > 0 and events[0].source == "tuned"
    assert len(_cache_document()["entries"]) == 2  # both versions kept: a rollback needs no retuning


def test_a_config_that_left_the_candidates_is_retuned():
    _select(FakeLaunch())
    tuning.clear_memory()
    launch = FakeLaunch()
    third = {"BLOCK": 16, "num_warps": 2}
    assert _select(launch, candidates=(SLOW, third)) == third
    assert launch.runs > 0


def test_source_hash_follows_the_called_helpers():
    same = tuning.kernel_source_hash(_module_kernel("x + 1")), tuning.kernel_source_hash(_module_kernel("x + 1"))
    assert same[0] == same[1]
    assert tuning.kernel_source_hash(_module_kernel("x + 2")) != same[0]  # only the helper changed


_MODULES = []


def _module_kernel(helper_body):
    import importlib.util
    import tempfile

    directory = tempfile.mkdtemp()
    path = os.path.join(directory, f"kernel_module_{len(_MODULES)}.py")
    with open(path, "w") as handle:
        handle.write("import triton\n\n\n@triton.jit\ndef helper(x):\n"
                     f"    return {helper_body}\n\n\n@triton.jit\ndef kernel(x_ptr):\n    helper(x_ptr)\n")
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _MODULES.append(module)
    return module.kernel


def test_a_corrupt_cache_file_is_ignored_with_a_warning_and_rebuilt():
    path = tuning.cache_path()
    path.parent.mkdir(parents=True)
    path.write_text("{ this is not json")
    with pytest.warns(tuning.TuningCacheWarning, match="unreadable"):
        assert _select(FakeLaunch()) == FAST
    assert len(_cache_document()["entries"]) == 1


def test_a_foreign_file_is_ignored_with_a_warning():
    path = tuning.cache_path()
    path.parent.mkdir(parents=True)
    foreign = {"format": tuning.FORMAT, "version": tuning.FORMAT_VERSION, "gpu": "Some Other GPU",
               "triton": tuning.triton_version(), "entries": {}}
    path.write_text(json.dumps(foreign))
    launch = FakeLaunch()
    with pytest.warns(tuning.TuningCacheWarning, match="Some Other GPU"):
        assert _select(launch) == FAST
    assert launch.runs > 0
    assert _cache_document()["gpu"] == tuning.INTERPRETER_DEVICE


def test_shipped_configs_are_used_without_benchmarking_and_the_cache_adds_to_them(tmp_path):
    shipped_key = dict(KEY, n=512)
    entry = {"kernel": "fake.kernel", "source_hash": "hash-a", "key": shipped_key, "config": SLOW, "time_ms": 1.0}
    tuning.write_entries(tuning.package_config_path(), {tuning.entry_id("fake.kernel", "hash-a", shipped_key): entry},
                         tuning.INTERPRETER_DEVICE, merge=False)
    shipped, other = FakeLaunch(), FakeLaunch()
    with tuning.recording() as events:
        assert _select(shipped, key=shipped_key) == SLOW  # the shipped choice, though FAST is faster
        assert _select(other) == FAST  # another key: tuned, into the user's cache
    assert [event.source for event in events] == ["package", "tuned"]
    assert shipped.runs == 0 and other.runs > 0
    assert list(_cache_document()["entries"].values())[0]["key"] == KEY


def test_no_benchmarking_when_tuning_is_off(monkeypatch):
    monkeypatch.setenv("TRITONSQRT_TUNE", "0")
    launch = FakeLaunch()
    with tuning.recording() as events:
        assert _select(launch) == SLOW  # the first candidate, the launcher's default
    assert launch.runs == 0 and events[0].source == "default"
    assert not tuning.cache_path().exists()


def _tune_keys(cache_dir, first, count, barrier):
    os.environ["TRITONSQRT_CACHE_DIR"] = cache_dir
    tuning.clear_memory()
    barrier.wait()
    for index in range(first, first + count):
        tuning.select_config("fake.kernel", "hash-a", dict(KEY, n=index), [FAST, SLOW], lambda config: None)


def test_two_processes_tuning_at_once_leave_one_valid_merged_file(tmp_path):
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    cache_dir = str(tmp_path / "shared")
    workers = [context.Process(target=_tune_keys, args=(cache_dir, first, 15, barrier)) for first in (0, 100)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    os.environ["TRITONSQRT_CACHE_DIR"] = cache_dir
    document = _cache_document()
    sizes = sorted(entry["key"]["n"] for entry in document["entries"].values())
    assert sizes == list(range(15)) + list(range(100, 115))
    assert not [name for name in os.listdir(cache_dir) if name.endswith(".tmp")]


def test_the_tiled_kernels_tune_and_read_back_under_the_interpreter():
    n = 40
    a = spd_with_condition(1, n, 10.0)
    plan = Plan(method="ns", compute_dtype=torch.float32, n=n, ns_iterations=2)
    with tuning.recording() as events:
        expected = tiled_path.roots_forward(a, plan, True, False, False)[0]
    assert {event.source for event in events} == {"tuned"}
    kernels = {entry["kernel"] for entry in _cache_document()["entries"].values()}
    assert kernels == {"tiled.newton_schulz_step", "tiled.newton_schulz_chained"}
    tuning.clear_memory()
    with tuning.recording() as events:
        again = tiled_path.roots_forward(a, plan, True, False, False)[0]
    assert {event.source for event in events} == {"cache"} and torch.equal(again, expected)


def test_size_buckets():
    assert [tuning.size_bucket(n) for n in (1, 16, 17, 65, 128, 129, 4096)] == [16, 16, 32, 128, 128, 256, 4096]
    assert [tuning.batch_bucket(b) for b in (1, 2, 4, 5, 16, 17, 1000)] == [1, 4, 4, 16, 16, 64, 1024]


def test_a_single_candidate_is_used_without_timing():
    launch = FakeLaunch()
    with tuning.recording() as events:
        assert _select(launch, candidates=(FAST,)) == FAST
    assert launch.runs == 0 and [event.source for event in events] == ["single"]
    assert not os.path.exists(tuning.cache_path())  # nothing was measured, nothing is stored


@pytest.mark.parametrize("op", ["sqrtm", "inv_sqrtm"])
def test_the_fused_kernels_are_tuned_through_the_cache(monkeypatch, op):
    """Forward and backward fused kernels choose among their candidates by timing, store the
    choice, and read it back; every candidate gives the torch reference's result."""
    import tritonsqrt as ts
    from tritonsqrt.kernels import fused_lyapunov, fused_roots

    # Under the interpreter the fused kernels have one candidate; give them two, as on a GPU.
    roots_default, lyapunov_default = fused_roots.candidate_configs, fused_lyapunov.candidate_configs
    monkeypatch.setattr(fused_roots, "candidate_configs", lambda *args, **kwargs: [
        *roots_default(*args, **kwargs), dict(roots_default(*args, **kwargs)[0], MATRICES=2)])
    monkeypatch.setattr(fused_lyapunov, "candidate_configs", lambda *args, **kwargs: [
        *lyapunov_default(*args, **kwargs), dict(lyapunov_default(*args, **kwargs)[0], MATRICES=1)])
    a = spd_with_condition(5, 12, 100.0, seed=2)
    grad = torch.randn(5, 12, 12)
    fn = getattr(ts, op)

    def run():
        x = a.clone().requires_grad_(True)
        out = fn(x, method="scaled_ns", backend="triton")
        (g,) = torch.autograd.grad(out, x, grad)
        return out, g

    with tuning.recording() as events:
        out, g = run()
    tuned = {event.kernel: event for event in events}
    assert set(tuned) == {"fused.newton_schulz_roots", "fused.lyapunov_backward"}
    assert all(event.source == "tuned" and event.entry["candidates"] == 2 for event in tuned.values())
    x = a.clone().requires_grad_(True)
    ref = fn(x, method="scaled_ns", backend="torch")
    (g_ref,) = torch.autograd.grad(ref, x, grad)
    assert float((out - ref).norm() / ref.norm()) < 1e-5
    assert float((g - g_ref).norm() / g_ref.norm()) < 1e-5

    tuning.clear_memory()
    with tuning.recording() as events:
        run()
    assert [event.source for event in events] == ["cache", "cache"]


# ---------------------------------------------------------------------------------------
# Issue 14: hostile or odd cache states


def _write_cache(text: str) -> None:
    path = tuning.cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_deeply_nested_file_is_ignored_with_a_warning():
    _write_cache("[" * 100000 + "]" * 100000)  # RecursionError in json, raised on every call
    with pytest.warns(tuning.TuningCacheWarning, match="RecursionError"):
        assert _select(FakeLaunch()) == FAST


def test_a_single_candidate_reads_no_file(monkeypatch):
    monkeypatch.setattr(tuning, "load_entries", lambda *args, **kwargs: pytest.fail("read a file"))
    assert _select(FakeLaunch(), candidates=(FAST,)) == FAST


def test_an_entry_with_a_non_numeric_time_is_skipped():
    launch = FakeLaunch()
    _select(launch)
    document = _cache_document()
    for entry in document["entries"].values():
        entry["time_ms"], entry["config"] = "fast", SLOW
    _write_cache(json.dumps(document))
    tuning.clear_memory()
    with pytest.warns(tuning.TuningCacheWarning, match="malformed"):
        with tuning.recording() as events:
            assert _select(launch) == FAST  # retuned, not the SLOW of the bad entry
    assert events[0].source == "tuned"


def test_no_lock_file_and_no_symlink_is_followed(tmp_path):
    target = tmp_path / "elsewhere"
    path = tuning.cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, str(path) + ".lock")  # the old lock file's name
    _select(FakeLaunch())
    assert not target.exists()
    export = tmp_path / "export.json"
    tuning.write_entries(export, {}, "gpu", merge=False)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("export")) == ["export.json"]


def test_the_cache_dir_expands_the_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TRITONSQRT_CACHE_DIR", "~/tuned")
    assert tuning.cache_dir() == tmp_path / "tuned"


def test_a_file_with_mtime_zero_is_read():
    launch = FakeLaunch()
    _select(launch)
    os.utime(tuning.cache_path(), ns=(0, 0))
    tuning.clear_memory()
    runs = launch.runs
    with tuning.recording() as events:
        _select(launch)
    assert launch.runs == runs and events[0].source == "cache"
