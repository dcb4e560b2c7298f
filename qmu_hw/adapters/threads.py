"""The thread policy: how many intra-op threads torch (and BLAS) may use for engine work.

Small registers gain nothing from intra-op threads and lose badly to oversubscription when
other processes share the cores (measured on 2 cores, B = 32 backprop step of hqml(n, 2):
2 threads vs 1 was 1.08× faster at 8 qubits, 1.23× at 12, but 3.7× slower at 10, 5.9× at 14
and 1.5× at 16 once other work ran; a study slice beside two CPU-bound processes took 3.0×
longer with the default threads than with ``OMP_NUM_THREADS=1``). So by default ("auto")
engine work runs single-threaded below :data:`PARALLEL_MIN_QUBITS` and uses the available
cores from there.

One knob: ``QMU_HW_THREADS`` (environment) or ``[execution] threads`` in a study config —
a positive integer fixes the thread count for all work, ``auto`` (the default) is the rule
above. :func:`apply_thread_policy` is called by every entry point (CLI, ``study.run``, each
executor worker); it exports the resolved value to the environment so spawned worker
processes inherit it. :func:`engine_threads` is what the engines wrap their work in.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch

from ..core.exceptions import InvalidRequestError

ENV = "QMU_HW_THREADS"
AUTO = "auto"
PARALLEL_MIN_QUBITS = 18  # below this, intra-op threads did not pay on the measured machine


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parse_threads(value, where: str = ENV) -> int | str:
    """``auto`` or a positive integer; anything else is one clear error naming ``where``."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", AUTO)):
        return AUTO
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if isinstance(value, bool) or n < 1 or (isinstance(value, float) and value != n):
        raise InvalidRequestError(f"{where}: expected a positive integer or \"auto\", got {value!r}")
    return n


def configured_threads() -> int | str:
    """The knob as set in the environment (``auto`` when unset)."""
    return parse_threads(os.environ.get(ENV))


def threads_for(n_qubits: int | None, setting: int | str | None = None) -> int:
    """Threads engine work on ``n_qubits`` qubits gets under ``setting`` (default: the knob).
    ``n_qubits=None``: work outside the engines (heads, optimisers) — the single-thread base."""
    setting = configured_threads() if setting is None else parse_threads(setting)
    if setting != AUTO:
        return int(setting)
    if n_qubits is not None and n_qubits >= PARALLEL_MIN_QUBITS:
        return available_cores()
    return 1


def _limit_blas(n: int) -> None:
    # numpy's BLAS pool oversubscribes like torch's (OpenBLAS reads OMP_NUM_THREADS only at
    # import, so the environment alone is too late for an already running process).
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(n, user_api="blas")


def apply_thread_policy(setting: int | str | None = None) -> int:
    """Apply the policy to this process (entry points and workers) and export it so child
    processes inherit it. ``setting``: a config's ``[execution] threads`` (None: the
    environment's knob). Returns the thread count now set for work outside the engines."""
    resolved = configured_threads() if setting is None else parse_threads(setting, "[execution] threads")
    os.environ[ENV] = str(resolved)
    n = threads_for(None, resolved)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    _limit_blas(n)
    return n


@contextmanager
def engine_threads(n_qubits: int):
    """Run engine work on ``n_qubits`` with the policy's thread count, restoring the caller's
    afterwards (the engines call this, so library users get the policy without an entry point)."""
    want = threads_for(n_qubits)
    before = torch.get_num_threads()
    if want == before:
        yield want
        return
    torch.set_num_threads(want)
    try:
        yield want
    finally:
        torch.set_num_threads(before)
