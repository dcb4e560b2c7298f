"""One training step (forward + backward + Adam) of the paper's Iris-style hybrid model.

Compares, in the same process: qmu-hw backprop, qmu-hw parameter-shift (exact), qmu-hw
sampled parameter-shift (1000 shots), PennyLane TorchLayer on default.qubit called per
sample (the paper's way) and PennyLane TorchLayer broadcast over the batch.

    python benchmarks/bench_training_step.py [--quick]
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

CASES = [(4, 2, 32), (8, 2, 64), (4, 6, 32)]


def head(n: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(n, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def qmu_model(n, L, gradient, backend_name, shots=None):
    backend = qmu_hw.get_backend(backend_name, seed=0)
    q = qmu_hw.QuantumLayer(hqml(n, L), backend, gradient=gradient, shots=shots, seed=0 if shots else None)
    return torch.nn.Sequential(q, head(n))


class PerSample(torch.nn.Module):
    """The paper's way: the quantum layer evaluated one sample at a time."""

    def __init__(self, qlayer):
        super().__init__()
        self.q = qlayer

    def forward(self, x):
        return torch.stack([self.q(xi) for xi in x])


def pennylane_model(n, L, per_sample):
    import pennylane as qml

    dev = qml.device("default.qubit", wires=n)

    @qml.qnode(dev, interface="torch", diff_method="backprop")
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
            for w in range(n - 1):
                qml.CZ(wires=[w, w + 1])
            if n > 2:
                qml.CZ(wires=[n - 1, 0])
        return [qml.expval(qml.PauliZ(w)) for w in range(n)]

    q = qml.qnn.TorchLayer(circuit, {"weights": (L, 3, n)})
    q = q.double()
    return torch.nn.Sequential(PerSample(q) if per_sample else q, head(n).double())


def step_fn(model, x, y):
    opt = torch.optim.Adam(model.parameters(), lr=0.01)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    for n, L, B in CASES:
        x = torch.as_tensor(np.random.default_rng(0).uniform(-np.pi, np.pi, (B, n)))
        y = torch.as_tensor(np.random.default_rng(1).integers(0, 3, B))
        variants = {
            "qmu backprop": (qmu_model(n, L, "backprop", "exact"), 20),
            "qmu param-shift exact": (qmu_model(n, L, "parameter-shift", "exact"), 10),
            "qmu param-shift 1000 shots": (qmu_model(n, L, "parameter-shift", "exact-shots", 1000), 5),
            "PennyLane per sample": (pennylane_model(n, L, True), 3),
            "PennyLane broadcast": (pennylane_model(n, L, False), 10),
        }
        times = {}
        for name, (model, reps) in variants.items():
            model = model.double() if "PennyLane" not in name else model
            reps = max(2, reps // 3) if args.quick else reps
            times[name] = median_time(step_fn(model, x, y), reps)
            print(f"{n}q×{L}L B={B}  {name:28s} {times[name] * 1e3:9.2f} ms", flush=True)
        base = times["qmu backprop"]
        for name, t in times.items():
            rows.append([f"{n}q×{L}L B={B}", name, f"{t * 1e3:.2f}", f"{t / base:.1f}×"])
        rows.append([f"{n}q×{L}L B={B}", "**speed-up of qmu backprop**",
                     f"{times['PennyLane per sample'] / base:.0f}× vs per-sample",
                     f"{times['PennyLane broadcast'] / base:.1f}× vs broadcast"])
    table = markdown_table(["case", "variant", "median step (ms)", "ratio to qmu backprop"], rows)
    env = (f"Python {platform.python_version()}, torch {torch.__version__}, "
           f"{torch.get_num_threads()} torch threads, {platform.machine()}")
    print(table)
    update_results(
        "Training step (bench_training_step.py)",
        f"Median of repeats of one step: forward + backward + Adam, head Linear(n,16)-ReLU-"
        f"Linear(16,3), float64. {env}.\n\nCommand: `python benchmarks/bench_training_step.py`\n\n{table}",
    )


if __name__ == "__main__":
    main()
