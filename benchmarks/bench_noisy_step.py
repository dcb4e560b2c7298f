"""One parameter-shift training step on Iris 4q×2L, B=32 (weights need gradients:
32 forward rows + 32·2·24 shifted rows = 1,568 circuits) across the noise ladder's engines,
with the number of backend submissions and transpilations per step.

    python benchmarks/bench_noisy_step.py [--quick]
"""

from __future__ import annotations

import argparse
import platform
import sys

import numpy as np
import torch

sys.path.insert(0, "benchmarks")
from common import markdown_table, median_time, update_results  # noqa: E402

import qmu_hw  # noqa: E402
from qmu_hw.circuits import hqml  # noqa: E402

VARIANTS = [
    ("exact", None, 10),
    ("exact-shots", 1000, 10),
    ("dm-depol-0.01", 1000, 10),
    ("aer-ideal", 1000, 5),
    ("aer-depol-0.01", 1000, 5),
    ("aer-fake-manila", 1000, 3),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    x = torch.as_tensor(np.random.default_rng(0).uniform(-np.pi, np.pi, (32, 4)))
    y = torch.as_tensor(np.random.default_rng(1).integers(0, 3, 32))
    rows, times = [], {}
    for name, shots, reps in VARIANTS:
        backend = qmu_hw.get_backend(name, seed=0)
        q = qmu_hw.QuantumLayer(hqml(4, 2), backend, gradient="parameter-shift", shots=shots,
                                seed=0 if shots else None)
        model = torch.nn.Sequential(q, torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)).double()
        opt = torch.optim.Adam(model.parameters(), lr=0.01)

        def step(model=model, opt=opt):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

        step()  # first step: transpilation (if any) happens here
        mark = len(backend.ledger)
        trans0 = getattr(backend, "n_transpilations", 0)
        reps = max(2, reps // 3) if args.quick else reps
        times[name] = median_time(step, reps, warmup=0)
        done = backend.ledger.since(mark)
        steps = reps
        subs = done.summary()["submissions"] / steps
        circuits = done.summary()["circuits"] / steps
        trans = (getattr(backend, "n_transpilations", 0) - trans0) / steps
        rows.append([name, "exact" if shots is None else str(shots), f"{times[name] * 1e3:.1f}",
                     f"{circuits:.0f}", f"{subs:.0f}", f"{trans:.0f}"])
        print(rows[-1], flush=True)
    ratio = times["aer-depol-0.01"] / times["dm-depol-0.01"]
    table = markdown_table(
        ["backend", "shots", "median step (ms)", "circuits/step", "submissions/step (forward + gradient request)", "transpilations/step (after the first)"],
        rows,
    )
    env = f"Python {platform.python_version()}, torch {torch.__version__}, {platform.machine()}"
    body = (f"Parameter-shift training step, Iris 4q×2L, B=32, Adam. {env}.\n\n"
            f"Command: `python benchmarks/bench_noisy_step.py`\n\n{table}\n\n"
            f"Fast noisy engine vs Aer on the same noise model (dm-depol-0.01 vs aer-depol-0.01): "
            f"**{ratio:.1f}× faster**.")
    print(body)
    update_results("Noisy training step (bench_noisy_step.py)", body)


if __name__ == "__main__":
    main()
