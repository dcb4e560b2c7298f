"""The engines side by side, and a study slice beside CPU-bound competitors.

1. One quantum-layer step (forward + backward of the summed outputs, float64) of
   ``hqml(n, L, "ring")`` on B rows, at 8/10/12/14 qubits and depth 2 and 6, in one process:
   qmu exact backprop / parameter shift, qmu density matrix (dm-depol-0.01) backprop /
   parameter shift / sampled parameter shift (1,024 shots), PennyLane default.qubit
   (backprop, broadcast over the batch) and lightning.qubit (adjoint), Qiskit Aer (aer-ideal
   through qmu, exact expectations: forward only). Repeats are interleaved across engines
   and the median is reported; ratios are to qmu exact backprop in the same run.
   ``torch.set_num_threads(1)``. An engine whose step exceeded ``--budget`` seconds at one
   size is skipped at larger sizes ("–").
2. Contention: the quickstart study restricted to one seed and ``class:0`` run with
   ``qmu-hw run`` while two CPU-bound processes (started here) run beside it, with the
   default settings, with ``OMP_NUM_THREADS=1`` and with ``QMU_HW_THREADS=2`` (intra-op
   threads on, the old default), interleaved, median of repeats.

    python benchmarks/bench_engines.py [--quick] [--no-contention] [--no-engines]
        [--engines NAME ...] [--sizes N ...] [--depths L ...]
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tomllib
import torch

sys.path.insert(0, "benchmarks")
from common import markdown_table, update_results  # noqa: E402

import qmu_hw  # noqa: E402
from qmu_hw.circuits import hqml  # noqa: E402
from qmu_hw.core.toml_write import toml_table  # noqa: E402

ENGINES = ["qmu exact bp", "qmu exact ps", "qmu dm bp", "qmu dm ps", "qmu dm sampled ps", "qmu dm pauli bp",
           "qmu dm pauli ps",
           "PennyLane default.qubit bp", "PennyLane lightning adjoint", "Qiskit Aer (forward only)"]
DM_MAX_QUBITS = 10  # the density-matrix engine's default register limit
# Pauli propagation (dm-depol-0.01, method = "pauli"): strings above this weight dropped, any
# bound accepted, so the row measures the walk's speed; its error against the exact engine and
# its reported bound are printed beside it (pauli_accuracy).
PAULI_OPTIONS = {"method": "pauli", "pauli_max_weight": 4, "pauli_tolerance": float("inf")}


def qmu_step(n, L, engine, x):
    backend, grad, shots = {
        "qmu exact bp": ("exact", "backprop", None), "qmu exact ps": ("exact", "parameter-shift", None),
        "qmu dm bp": ("dm-depol-0.01", "backprop", None), "qmu dm ps": ("dm-depol-0.01", "parameter-shift", None),
        "qmu dm sampled ps": ("dm-depol-0.01", "parameter-shift", 1024),
        "qmu dm pauli bp": ("dm-depol-0.01", "backprop", None), "qmu dm pauli ps": ("dm-depol-0.01", "parameter-shift", None),
    }[engine]
    options = PAULI_OPTIONS if "pauli" in engine else {}
    layer = qmu_hw.QuantumLayer(hqml(n, L), qmu_hw.get_backend(backend, seed=0, **options), gradient=grad,
                                shots=shots, seed=0 if shots else None).double()

    def step():
        layer.zero_grad()
        layer(x).sum().backward()

    return step


def pennylane_step(n, L, device, diff, x):
    import pennylane as qml

    dev = qml.device(device, wires=n)

    @qml.qnode(dev, interface="torch", diff_method=diff)
    def circuit(inputs, weights):
        for w in range(n):
            qml.RX(inputs[..., w], wires=w)
            qml.RY(inputs[..., w], wires=w)
            qml.RZ(inputs[..., w], wires=w)
        for layer in range(L):
            for w in range(n):
                qml.RX(weights[layer, 0, w], wires=w)
                qml.RY(weights[layer, 1, w], wires=w)
                qml.RZ(weights[layer, 2, w], wires=w)
            for w in range(n):
                qml.CZ(wires=[w, (w + 1) % n])
        return [qml.expval(qml.PauliZ(w)) for w in range(n)]

    weights = torch.rand(L, 3, n, dtype=torch.float64, requires_grad=True)

    def step():
        weights.grad = None
        out = circuit(x, weights)
        torch.stack(list(out)).sum().backward()

    return step


def aer_step(n, L, x):
    from qmu_hw import EstimateRequest

    c = hqml(n, L)
    backend = qmu_hw.get_backend("aer-ideal", seed=0)
    params = np.concatenate([x.numpy(), np.broadcast_to(np.linspace(0, 1, c.n_weights), (x.shape[0], c.n_weights))],
                            axis=1)
    return lambda: backend.estimate(EstimateRequest(c, params, shots=None))


def make_step(engine, n, L, x):
    if engine.startswith("qmu"):
        if engine.startswith("qmu dm") and n > DM_MAX_QUBITS:
            return None  # beyond the engine's register limit
        if engine == "qmu dm bp" and L > 2 and n > 8:
            return None  # refused: autograd keeps every layer's 4^n cone vectors (> the 4 GiB default)
        return qmu_step(n, L, engine, x)
    try:
        if engine == "PennyLane default.qubit bp":
            return pennylane_step(n, L, "default.qubit", "backprop", x)
        if engine == "PennyLane lightning adjoint":
            return pennylane_step(n, L, "lightning.qubit", "adjoint", x)
        return aer_step(n, L, x)
    except ImportError:
        return None


def x_of(n, B):
    return torch.as_tensor(np.random.default_rng(n).uniform(-np.pi, np.pi, (B, n)))


def pauli_accuracy(n, L, x) -> str:
    """Max |Pauli − exact| of the forward values and the largest reported bound (exact
    reference only up to 8 qubits at depth > 2: the exact engine's limit here)."""
    from qmu_hw import EstimateRequest

    c = hqml(n, L)
    params = np.concatenate([x.numpy(), np.broadcast_to(np.linspace(-1, 1, c.n_weights), (x.shape[0], c.n_weights))],
                            axis=1)
    r = qmu_hw.get_backend("dm-depol-0.01", **PAULI_OPTIONS).estimate(EstimateRequest(c, params))
    note = f"bound {r.metadata['raw']['truncation_error_bound']:.2g}"
    if n <= 8 or L <= 2:
        exact = qmu_hw.get_backend("dm-depol-0.01", method="ptm").estimate(EstimateRequest(c, params)).values
        note = f"max |err| {np.abs(r.values - exact).max():.2g}, " + note
    return note


def time_case(n, L, B, repeats, budget, skip):
    """Median step time of every engine on one case (interleaved repeats)."""
    x = x_of(n, B)
    fns, times = {}, {}
    for e in ENGINES:
        if (e, L) in skip:
            continue
        fn = make_step(e, n, L, x)
        if fn is None:
            continue
        t0 = time.perf_counter()
        fn()  # warm-up: compiles and caches
        first = time.perf_counter() - t0
        times[e] = []
        if first > budget:  # too slow to repeat; larger sizes are skipped
            skip.add((e, L))
            times[e] = [first]
        else:
            fns[e] = fn
    for _ in range(repeats):
        for e, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[e].append(time.perf_counter() - t0)
    return {e: statistics.median(t) for e, t in times.items()}, {e: len(t) for e, t in times.items()}


def engines_section(sizes, depths, repeats, budget) -> str:
    rows, skip = [], set()
    for L in depths:
        B = 32 if L <= 2 else 8
        for n in sizes:
            med, count = time_case(n, L, B, repeats, budget, skip)
            base = med.get("qmu exact bp")
            for e in ENGINES:
                if e in med:
                    ratio = f"{med[e] / base:.1f}×" if base else "–"
                    if "pauli" in e:
                        ratio += f" ({pauli_accuracy(n, L, x_of(n, B))})"
                    rows.append([f"{n}q×{L}L B={B}", e, f"{med[e] * 1e3:,.1f}", ratio, str(count[e])])
                    print(f"{n}q×{L}L B={B} {e:30s} {med[e] * 1e3:10.1f} ms  {ratio}", flush=True)
                else:
                    rows.append([f"{n}q×{L}L B={B}", e, "–", "–", "0"])
    return markdown_table(["case", "engine", "median step (ms)", "ratio to qmu exact bp", "n"], rows)


# -- contention ------------------------------------------------------------------------------
def _burn(stop):
    x = 0
    while not stop.is_set():
        for i in range(100000):
            x += i * i


def slice_config(tmp: Path) -> Path:
    data = tomllib.loads(Path("examples/quickstart.toml").read_text())
    data["study"]["seeds"] = [0]
    data["grid"]["scenarios"] = ["class:0"]
    lines = []
    for name, table in data.items():
        lines += toml_table(name, table, f"[{name}]")
    path = tmp / "slice.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_slice(config: Path, out: Path, env_extra: dict) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "QMU_HW_THREADS")}
    env.update(env_extra)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "qmu_hw.cli", "run", str(config), "--quiet", "--output", str(out)],
                         env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"study slice failed: {res.stderr[-2000:]}")
    return wall


VARIANTS = {"default settings": {}, "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
            "QMU_HW_THREADS=2 (threads on)": {"QMU_HW_THREADS": "2"}}


def contention_section(repeats: int, competitors: int = 2) -> str:
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    procs = [ctx.Process(target=_burn, args=(stop,), daemon=True) for _ in range(competitors)]
    for p in procs:
        p.start()
    times: dict[str, list[float]] = {k: [] for k in VARIANTS}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = slice_config(Path(tmp))
            for r in range(repeats):
                for name, env in VARIANTS.items():
                    out = Path(tmp) / f"run-{r}-{len(times[name])}-{abs(hash(name))}"
                    times[name].append(run_slice(config, out, env))
                    print(f"contention: {name:32s} {times[name][-1]:7.1f} s", flush=True)
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=10)
    base = statistics.median(times["OMP_NUM_THREADS=1"])
    rows = [[k, f"{statistics.median(v):.1f}", f"{statistics.median(v) / base:.2f}×", str(len(v)),
             ", ".join(f"{t:.1f}" for t in v)] for k, v in times.items()]
    return markdown_table(["variant", "median wall (s)", "ratio to OMP_NUM_THREADS=1", "n", "runs (s)"], rows)


def machine() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "unknown"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}, "
            f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}, "
            f"load average at start {load:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="8 and 10 qubits, depth 2, one repeat")
    ap.add_argument("--no-contention", action="store_true")
    ap.add_argument("--no-engines", action="store_true")
    ap.add_argument("--budget", type=float, default=20.0, help="seconds per step beyond which larger sizes are skipped")
    ap.add_argument("--note", default="", help="a sentence on the machine's state, written with the results")
    ap.add_argument("--sizes", type=int, nargs="+", help="qubit counts (default 8 10 12 14; --quick: 8 10)")
    ap.add_argument("--depths", type=int, nargs="+", help="layer counts (default 2 6; --quick: 2)")
    ap.add_argument("--engines", nargs="+", help="run only engines whose name contains one of these words "
                                                 "(qmu exact bp always runs: the ratios' base)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    where = machine() + (f". {args.note}" if args.note else "")
    if not args.no_engines:
        sizes, depths, reps = ([8, 10], [2], 1) if args.quick else ([8, 10, 12, 14], [2, 6], 3)
        sizes, depths = args.sizes or sizes, args.depths or depths
        if args.engines:
            ENGINES[:] = [e for e in ENGINES if e == "qmu exact bp" or any(w in e for w in args.engines)]
        table = engines_section(sizes, depths, reps, args.budget)
        print(table)
        update_results(
            "Engines side by side (bench_engines.py)",
            f"{where}.\n\nOne quantum-layer step (forward + backward of the summed ⟨Z_q⟩, float64) of "
            "hqml(n, L, ring); B = 32 at depth 2, 8 at depth 6; `torch.set_num_threads(1)`; repeats interleaved "
            "across engines, median of n (n = 1: only the warm-up, over the budget). dm = dm-depol-0.01 "
            f"(≤ {DM_MAX_QUBITS} qubits; dm bp at depth 6 only at 8 qubits: at 10 its autograd plan exceeds the default 4 GiB and is refused), sampled = 1,024 shots. Aer: forward only "
            "(exact expectations of the B rows through qmu's aer-ideal). \"–\": not run (limit, budget, "
            f"or missing package).\n\nCommand: `python benchmarks/bench_engines.py{' --quick' if args.quick else ''}`"
            f"\n\n{table}",
        )
    if not args.no_contention:
        reps = 1 if args.quick else 3
        table = contention_section(reps)
        print(table)
        update_results(
            "Study slice beside two CPU-bound processes (bench_engines.py)",
            f"{where}.\n\n`qmu-hw run` of examples/quickstart.toml restricted to seed 0 and `class:0`, while two "
            "busy-loop processes started by the benchmark run beside it; variants interleaved, median of n. "
            "Default settings = the thread policy (qmu_hw.adapters.threads: single-threaded below 18 qubits).\n\n"
            f"Command: `python benchmarks/bench_engines.py{' --quick' if args.quick else ''}`\n\n{table}",
        )


if __name__ == "__main__":
    main()
