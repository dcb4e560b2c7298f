"""The thread policy: visible inside a study's cells, configurable by QMU_HW_THREADS and
``[execution] threads``, applied by the engines and by executor workers."""

from __future__ import annotations

import pytest
import torch

from qmu_hw.adapters import threads
from qmu_hw.core.exceptions import InvalidRequestError


@pytest.fixture(autouse=True)
def _restore(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv(threads.ENV, raising=False)
    yield
    torch.set_num_threads(before)


def test_default_is_single_threaded_below_the_measured_size_and_the_knob_fixes_it(monkeypatch):
    assert threads.threads_for(8) == 1
    assert threads.threads_for(None) == 1
    assert threads.threads_for(threads.PARALLEL_MIN_QUBITS) == threads.available_cores()
    monkeypatch.setenv(threads.ENV, "2")
    assert threads.threads_for(8) == 2 and threads.threads_for(None) == 2
    assert threads.apply_thread_policy() == 2 and torch.get_num_threads() == 2
    assert threads.apply_thread_policy("auto") == 1 and torch.get_num_threads() == 1
    assert threads.apply_thread_policy(3) == 3 and torch.get_num_threads() == 3


@pytest.mark.parametrize("bad", ["two", "0", "-1", "1.5"])
def test_bad_knob_is_one_clear_error(monkeypatch, bad):
    monkeypatch.setenv(threads.ENV, bad)
    with pytest.raises(InvalidRequestError, match="QMU_HW_THREADS: expected a positive integer or \"auto\""):
        threads.apply_thread_policy()


def test_engines_run_with_the_policy_and_restore_the_callers_threads(monkeypatch):
    import numpy as np

    from qmu_hw import EstimateRequest, get_backend
    from qmu_hw.adapters import sv_cones
    from qmu_hw.circuits import hqml

    seen = []
    real = sv_cones.expectations  # what the exact engine runs (cones, or one full-register pass)
    monkeypatch.setattr(sv_cones, "expectations",
                        lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k))
    torch.set_num_threads(2)
    c = hqml(4, 1)
    get_backend("exact").estimate(EstimateRequest(c, np.zeros((2, c.n_params))))
    assert seen and set(seen) == {1}  # auto: 4 qubits run single-threaded
    assert torch.get_num_threads() == 2  # the caller's setting is back
    monkeypatch.setenv(threads.ENV, "2")
    seen.clear()
    torch.set_num_threads(1)
    get_backend("exact").estimate(EstimateRequest(c, np.zeros((2, c.n_params))))
    assert set(seen) == {2}


def _study(tmp_path, execution: str) -> dict:
    cfg = {
        "study": {"name": "threads", "output": str(tmp_path / "out"), "seeds": [0]},
        "data": {"dataset": "iris", "per_class": 6},
        "model": {"factory": "tests.adapters.thread_probe:build"},
        "training": {"epochs": 1, "patience": 1, "n_oracles": 1},
        "grid": {"scenarios": ["class:0"], "methods": ["identity"], "backends": ["exact"]},
    }
    if execution:
        cfg["execution"] = {"threads": int(execution) if execution.isdigit() else execution}
    return cfg


@pytest.mark.parametrize("env, execution, executor, want", [
    (None, "", "local", 1),  # default policy
    ("2", "", "local", 2),  # the environment knob
    (None, "2", "local", 2),  # the config knob
    ("2", "1", "local", 1),  # the config wins over the environment
])
def test_threads_inside_a_cell_follow_the_policy(tmp_path, monkeypatch, env, execution, executor, want):
    from qmu_hw.study.api import run

    probe = tmp_path / "probe.txt"
    monkeypatch.setenv("QMU_HW_THREAD_PROBE", str(probe))
    if env:
        monkeypatch.setenv(threads.ENV, env)
    torch.set_num_threads(3)  # what an entry point must override
    run(_study(tmp_path, execution), executor=executor, workers=1, report=False)
    seen = {int(x) for x in probe.read_text().split()}
    assert seen == {want}


def test_execution_threads_is_checked_at_load(tmp_path):
    from qmu_hw.study.api import run
    from qmu_hw.study.config import ConfigError

    with pytest.raises(ConfigError, match=r"threads.*positive integer or \"auto\""):
        run(_study(tmp_path, "0"), report=False)


def _worker_threads():
    return torch.get_num_threads()


@pytest.mark.parametrize("setting, want", [("auto", 1), ("2", 2)])
def test_process_workers_start_with_the_policy(monkeypatch, setting, want):
    from qmu_hw.study.executor_backends import LocalExecutor

    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # what a worker would otherwise inherit
    threads.apply_thread_policy(setting)  # the parent's entry point exports the knob
    pool = LocalExecutor(1)
    pool.start()
    try:
        handle = pool.submit(_worker_threads, (), [], {})
        while not pool.wait([handle], 60):  # wait() polls in short slices
            pass
        assert pool.result(handle) == want
    finally:
        pool.close()


def test_execution_threads_do_not_change_the_results_digest(tmp_path):
    from qmu_hw.study.api import config_from_dict

    a, _ = config_from_dict(_study(tmp_path, ""), None)
    b, _ = config_from_dict(_study(tmp_path, "2"), None)
    assert b.threads == 2 and a.threads is None
    assert a.digest() == b.digest()  # same cells, same checkpoints, whatever the threads


@pytest.mark.ray
@pytest.mark.slow
def test_ray_workers_start_with_the_policy(monkeypatch):
    pytest.importorskip("ray")
    from qmu_hw.study.executor_backends import RayExecutor

    threads.apply_thread_policy("2")  # the driver's entry point; workers get it via runtime_env
    pool = RayExecutor(1, None)
    pool.start()
    try:
        handle = pool.submit(_worker_threads, (), [], {"num_cpus": 1})
        assert pool.wait([handle], 120)
        assert pool.result(handle) == 2
    finally:
        pool.close()
