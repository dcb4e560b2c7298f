import numpy as np
import pytest
import torch

from qmu_hw import InvalidRequestError, QuantumLayer, UnsupportedFeatureError, get_backend
from qmu_hw.autograd import StepShots
from qmu_hw.circuits import hqml


def test_uniform_split_respects_total():
    s = StepShots(total=100_000, split="uniform", min_shots=1)
    B, terms = 8, 2 * 24
    f = s.forward(B, terms)
    g = s.gradient(np.ones((B, 4)), f, terms)
    assert g.shape == (B * terms,) and len(set(g.tolist())) == 1
    assert 0.97 * 100_000 < B * f + g.sum() <= 100_000
    assert abs(f - g[0]) <= 1


def test_variance_split_is_neyman():
    s = StepShots(total=100_000, split="variance", min_shots=1)
    up = np.array([[3.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    sigma2 = np.array([[1.0, 0.25], [0.25, 1.0]])  # two terms
    f = s.forward(3, 2)
    g = s.gradient(up, f, 2, sigma2).reshape(3, 2)
    w = 0.5 * np.sqrt((up[:, None, :] ** 2 * sigma2[None]).sum(axis=2))
    np.testing.assert_allclose(g / g.sum(), w / w.sum(), atol=1e-3)
    assert 3 * f + g.sum() <= 100_000


def test_bad_allocations():
    with pytest.raises(InvalidRequestError, match="unknown shot split"):
        StepShots(1000, split="greedy")
    with pytest.raises(InvalidRequestError, match="StepShots.total"):
        StepShots(0)


UPSTREAM = torch.tensor([[20.0, 0.0], [0.5, 0.2], [0.1, 0.0], [0.0, 0.3]], dtype=torch.float64)


def _grad_samples(split, seeds=60):
    c = hqml(2, 1)
    torch.manual_seed(3)
    ref = QuantumLayer(c, get_backend("exact"), gradient="backprop")
    x = torch.tensor([[0.05, 0.02], [1.6, 1.5], [0.01, 0.03], [1.4, 1.7]], dtype=torch.float64)
    # A loss that depends much more on some outputs than others (as cross-entropy does).
    (ref(x) * UPSTREAM).sum().backward()
    grads = []
    for seed in range(seeds):
        layer = QuantumLayer(c, get_backend("exact-shots"), seed=seed,
                             step_shots=StepShots(20_000, split=split, min_shots=4))
        layer.weights.data.copy_(ref.weights.data)
        (layer(x) * UPSTREAM).sum().backward()
        grads.append(layer.weights.grad.numpy().copy())
        assert layer.backend.ledger.total_shots() <= 20_000 + 4 * 4 * 2 * 6  # min_shots floors
    return np.array(grads), ref.weights.grad.numpy()


def test_variance_split_reduces_gradient_error():
    gu, ref = _grad_samples("uniform")
    gv, _ = _grad_samples("variance")
    err_u = ((gu - ref) ** 2).sum(axis=(1, 2, 3)).mean()
    err_v = ((gv - ref) ** 2).sum(axis=(1, 2, 3)).mean()
    # Neyman allocation puts the shots where the loss is sensitive: markedly lower error.
    assert err_v < 0.7 * err_u, (err_v, err_u)


def test_step_shots_layer_charges_within_total():
    c = hqml(3, 1)
    layer = QuantumLayer(c, get_backend("exact-shots"), seed=0, step_shots=StepShots(50_000, "variance"))
    layer(torch.rand(4, 3)).sum().backward()
    ledger = layer.backend.ledger
    assert ledger.total_shots() <= 50_000
    assert [e.phase for e in ledger.entries] == ["train", "train/grad"]


def test_backprop_refused_on_non_differentiable_backend():
    with pytest.raises(UnsupportedFeatureError, match="differentiable exact engine"):
        QuantumLayer(hqml(2, 1), get_backend("aer-depol-0.01"), gradient="backprop", shots=None)
