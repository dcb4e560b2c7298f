"""Quickstart: train the paper's Iris hybrid model on the exact backend with
parameter-shift gradients, selecting the epoch on the validation split, and print
validation and test accuracy.

    python examples/quickstart.py
"""

from __future__ import annotations

import torch

import qmu_hw
from qmu_hw.circuits import hqml
from qmu_hw.data import load_dataset, make_splits
from qmu_hw.data.tensors import split_tensors


def main(seed: int = 0, epochs: int = 40) -> dict:
    torch.manual_seed(seed)
    ds = load_dataset("iris")  # shipped with qmu-hw
    # Stratified train/val/test splits; features scaled on the training split only.
    parts = split_tensors(ds, make_splits(ds.y, seed), angle_range="pi")
    (X_tr, y_tr), (X_va, y_va), (X_te, y_te) = ((parts[k].X, parts[k].y) for k in ("train", "val", "test"))

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
