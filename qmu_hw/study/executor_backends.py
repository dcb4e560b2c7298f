"""The two executors a study's task graph runs on: a local process pool and Ray.

Both give the driver in :mod:`.executors` the same small interface, so ``run_tasks`` does
not know which one it drives: ``start()``; ``submit(fn, args, deps, resources)`` returns a
handle that runs ``fn(*args)`` once the ``deps`` handles are done; ``wait(handles,
timeout)`` returns the finished ones; ``result(handle)`` returns the value or raises the
task's own exception; ``close()``; and a ``name`` under which the workers' spending is
recorded in the ledger. Ray is imported only inside the Ray executor's methods,
so a study without ``--executor ray`` never needs it.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
from typing import Any

MAX_RETRIES = 3  # a task whose worker process died is rerun at most this many times


class LocalExecutor:
    """``workers`` spawned processes on this machine (no extra dependency). Futures cannot be
    passed to tasks, so a task is held back until its prerequisites are done."""

    name = "local"

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: cf.ProcessPoolExecutor | None = None
        self._held: list[tuple[cf.Future, Any, tuple, list]] = []

    def start(self) -> None:
        import multiprocessing as mp

        from ..adapters.threads import apply_thread_policy

        # Each worker applies the thread policy (QMU_HW_THREADS, exported by the parent's policy).
        self._pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                            initializer=apply_thread_policy)

    def submit(self, fn, args: tuple, deps: list, resources: dict) -> cf.Future:
        handle: cf.Future = cf.Future()
        self._held.append((handle, fn, args, deps))
        self._release()
        return handle

    def _release(self) -> None:
        keep = []
        for handle, fn, args, deps in self._held:
            if all(d.done() for d in deps):
                real = self._pool.submit(fn, *args)
                real.add_done_callback(lambda f, h=handle: _copy_future(f, h))
            else:
                keep.append((handle, fn, args, deps))
        self._held = keep

    def wait(self, handles: list, timeout: float) -> list:
        self._release()
        done, _ = cf.wait(handles, timeout=min(timeout, 0.2), return_when=cf.FIRST_COMPLETED)
        return list(done)

    @staticmethod
    def result(handle):
        return handle.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _copy_future(src: cf.Future, dst: cf.Future) -> None:
    if src.exception() is not None:
        dst.set_exception(src.exception())
    else:
        dst.set_result(src.result())


class RayExecutor:
    """Ray tasks. Without ``address`` a local Ray with ``workers`` CPUs is started and shut
    down at the end; with one, the driver joins that cluster (every node needs qmu-hw
    installed and the output folder at the same path)."""

    name = "ray"

    def __init__(self, workers: int, address: str | None) -> None:
        self.workers = workers
        self.address = address
        self._started = False
        self._remote: dict = {}

    def start(self) -> None:
        import logging

        import ray

        from ..adapters.threads import ENV

        # Ray workers see the driver's thread policy through their environment; a process-wide
        # setup hook applies it before the first task.
        env = {"env_vars": {ENV: os.environ.get(ENV, "auto")}, "worker_process_setup_hook": "qmu_hw.adapters.threads.apply_thread_policy"}
        if self.address:
            ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False, runtime_env=env)
        else:  # "local" never joins a cluster found through RAY_ADDRESS or a running `ray start`
            # Loopback only: a local Ray needs no network interface.
            ray.init(address="local", num_cpus=self.workers, include_dashboard=False, logging_level=logging.WARNING,
                     _node_ip_address="127.0.0.1",
                     log_to_driver=False, object_store_memory=128 * 2 ** 20, runtime_env=env)
        self._started = True

    def submit(self, fn, args: tuple, deps: list, resources: dict):
        import ray

        if fn not in self._remote:
            self._remote[fn] = ray.remote(max_retries=MAX_RETRIES)(fn)
        # Prerequisite refs as arguments: Ray starts the cell only once they are done.
        return self._remote[fn].options(**resources).remote(*args, *deps)

    def wait(self, handles: list, timeout: float) -> list:
        import ray

        ready, rest = ray.wait(handles, num_returns=1, timeout=timeout)
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        return ready

    @staticmethod
    def result(handle):
        import ray

        try:
            return ray.get(handle)
        except ray.exceptions.RayTaskError as exc:  # the task raised: surface its own exception
            cause = getattr(exc, "cause", None)
            raise (cause if isinstance(cause, BaseException) else exc) from None

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
