"""The executors a study's task graph runs on: inline (this process), a local process pool
and Ray.

The pool and Ray give the driver in :mod:`.executors` the same small interface, so ``run_tasks`` does
not know which one it drives: ``start()``; ``submit(fn, args, deps, resources)`` returns a
handle that runs ``fn(*args)`` once the ``deps`` handles are done; ``wait(handles,
timeout)`` returns the finished ones; ``result(handle)`` returns the value or raises the
task's own exception; ``close()``; and a ``name`` under which the workers' spending is
recorded in the ledger. Ray is imported only inside the Ray executor's methods,
so a study without ``--executor ray`` never needs it. The inline executor takes no tasks:
``inline = True`` tells ``run_tasks`` to run every task itself, in order, on the study's own
backends (the sequential run).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
from typing import Any

MAX_RETRIES = 3  # a task whose worker process died is rerun at most this many times


class InlineExecutor:
    """Every task in the driver, one after another (``--workers 1``): ``run_tasks`` runs
    them itself, so nothing is ever submitted here."""

    name = "driver"
    inline = True

    def start(self) -> None:
        pass

    def submit(self, fn, args: tuple, deps: list, resources: dict):
        raise RuntimeError("the inline executor runs tasks in the driver; nothing is submitted to it")

    def wait(self, handles: list, timeout: float) -> list:
        return []

    def close(self) -> None:
        pass


class LocalExecutor:
    """``workers`` spawned processes on this machine (no extra dependency). Futures cannot be
    passed to tasks, so a task is held back until its prerequisites are done."""

    name = "local"
    inline = False

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


CONNECT_TIMEOUT_S = 10.0


def _check_reachable(address: str) -> None:
    """A TCP connection to the Ray head's ``host:port`` (``ray://`` client addresses too);
    an unreachable head is one line (exit 4) within seconds."""
    import socket

    from ..core.exceptions import BackendUnavailableError, InvalidRequestError

    target = address.removeprefix("ray://")
    if target in ("auto", "local"):
        return
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InvalidRequestError(f"--address {address!r}: expected HOST:PORT of a Ray head, e.g. 10.0.0.5:6379")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BackendUnavailableError(f"Ray head {address} is unreachable ({reason}, waited at most "
                                      f"{CONNECT_TIMEOUT_S:.0f} s); start it with `ray start --head` or check "
                                      "--address") from None


@contextlib.contextmanager
def _loopback_ray():
    """While a private Ray starts, make it treat this machine as a single-node, loopback-only
    cluster. On Linux, Ray replaces ``_node_ip_address="127.0.0.1"`` by the machine's
    routable address, and its gcs_server, raylet, workers and agents then listen on every
    interface; with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (Ray's single-machine mode, read at
    import, hence also set on the imported constant) the node address stays 127.0.0.1 and
    every server binds loopback only. The variable is inherited by the processes Ray spawns
    now and restored afterwards, so a later ``--address`` join is not affected."""
    from ray._private import ray_constants

    var = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
    old_env, old_const = os.environ.get(var), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[var], ray_constants.ENABLE_RAY_CLUSTER = "0", False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = old_const
        if old_env is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = old_env


class RayExecutor:
    """Ray tasks. Without ``address`` a local Ray with ``workers`` CPUs is started and shut
    down at the end; with one, the driver joins that cluster (every node needs qmu-hw
    installed and the output folder at the same path)."""

    name = "ray"
    inline = False

    def __init__(self, workers: int, address: str | None) -> None:
        self.workers = workers
        self.address = address
        self._started = False
        self._remote: dict = {}
        if address:
            _check_reachable(address)  # before the study touches its folder; ray.init would hang for minutes

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
            with _loopback_ray():
                ray.init(address="local", num_cpus=self.workers, include_dashboard=False,
                         logging_level=logging.WARNING, _node_ip_address="127.0.0.1",
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
