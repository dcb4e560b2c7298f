"""Quickstart: train the paper's Iris hybrid model on the exact backend with
parameter-shift gradients, selecting the epoch on the validation split, and print
validation and test accuracy.

    python examples/quickstart.py
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

import qmu_hw
from qmu_hw.circuits import hqml


def main(seed: int = 0, epochs: int = 40) -> dict:
    torch.manual_seed(seed)
    X, y = load_iris(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)
    X_tr, X_va, y_tr, y_va = train_test_split(X_tr, y_tr, test_size=0.2, stratify=y_tr, random_state=seed)
    scaler = MinMaxScaler((-np.pi, np.pi)).fit(X_tr)  # fitted on the training split only
    t = lambda a: torch.as_tensor(scaler.transform(a), dtype=torch.float32)  # noqa: E731
    X_tr, X_va, X_te = t(X_tr), t(X_va), t(X_te)
    y_tr, y_va, y_te = (torch.as_tensor(a) for a in (y_tr, y_va, y_te))

    backend = qmu_hw.get_backend("exact")
    model = torch.nn.Sequential(
        qmu_hw.QuantumLayer(hqml(4, 2), backend, gradient="parameter-shift"),
        torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3),
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    acc = lambda X, y: (model(X).argmax(1) == y).float().mean().item()  # noqa: E731
    best, best_state = -1.0, None
    for _epoch in range(epochs):
        perm = torch.randperm(len(X_tr))
        for i in range(0, len(perm), 16):
            idx = perm[i : i + 16]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(X_tr[idx]), y_tr[idx]).backward()
            opt.step()
        with torch.no_grad():
            va = acc(X_va, y_va)
        if va > best:
            best, best_state = va, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    with torch.no_grad():
        result = {"val_acc": acc(X_va, y_va), "test_acc": acc(X_te, y_te)}
    s = backend.ledger.summary()
    print(f"validation accuracy {result['val_acc']:.3f}  test accuracy {result['test_acc']:.3f}")
    print(f"backend requests {s['requests']}, circuits {s['circuits']}, wall {s['wall_time_s']:.1f}s")
    return result


if __name__ == "__main__":
    main()
