"""The teacher's and oracles' outputs on a cell's target, computed once per study.

Every method cell of one (seed, scenario, backend, shots, train backend) group compares its
unlearned model with the same reference outputs: the teacher's and both oracle ensembles'
probabilities on retain/forget/test, evaluated on the cell's target. They used to be cached
in the memory of whichever process ran a cell of the group first, so a process pool or Ray
(several processes, any order) computed and charged them once per process and the study's
totals depended on the executor. Now the first cell of a group to take the group's file
lock computes them and writes them next to the checkpoints (plain arrays, ``.npz`` read
without pickle); every other cell, in any process and in any later run, reads that file.
So the reference requests are charged exactly once per group per study, the same amount for
sequential, process-pool and Ray runs (and a resumed run does not pay them again).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

import numpy as np

from .protocol import REFERENCE_PARTS


def path_for(ckpt_dir: Path, key: tuple, digest: str) -> Path:
    """``ckpt_dir/reference-...npz`` of one group; ``key`` = (seed, scenario, backend, shots,
    train backend), ``digest``: the combination's config digest (as the checkpoints use)."""
    seed, scenario, backend, shots, train = key
    name = f"reference-seed{seed}-{str(scenario).replace(':', '_')}-{backend}@{shots}-{train}-{digest[:12]}.npz"
    return Path(ckpt_dir) / name


@contextlib.contextmanager
def group_lock(path: Path):
    """Exclusive lock of one group's file: concurrent cells of the group wait for the first
    one's outputs instead of computing (and charging) them again. ``fcntl`` as the study's
    folder lock uses (a shared output folder is already required for the checkpoints)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def save(path: Path, T: dict, O: list, OX: list | None) -> None:
    """Write atomically (``.tmp`` then rename): a killed writer never leaves a half file."""
    arrays = {f"T/{n}": T[n] for n in REFERENCE_PARTS}
    for tag, ens in (("O", O), ("OX", OX)):
        for k, d in enumerate(ens or ()):
            arrays.update({f"{tag}{k}/{n}": d[n] for n in REFERENCE_PARTS})
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


def load(path: Path) -> tuple[dict, list, list] | None:
    """``(T, O, OX)`` as :func:`save` wrote them (``OX is O`` when the exact ensemble is the
    same-noise one), or None when there is no readable file (then it is recomputed)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError):
        return None

    def ensemble(tag: str) -> list:
        out, k = [], 0
        while f"{tag}{k}/{REFERENCE_PARTS[0]}" in data:
            out.append({n: data[f"{tag}{k}/{n}"] for n in REFERENCE_PARTS})
            k += 1
        return out

    if any(f"T/{n}" not in data for n in REFERENCE_PARTS):
        return None
    T, O, OX = {n: data[f"T/{n}"] for n in REFERENCE_PARTS}, ensemble("O"), ensemble("OX")
    return T, O, (OX if OX else O)
