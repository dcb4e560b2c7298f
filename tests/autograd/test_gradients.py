import numpy as np
import pytest
import torch

from qmu_hw import (
    EstimateRequest,
    InvalidRequestError,
    QmuHwError,
    QuantumLayer,
    UnsupportedFeatureError,
    get_backend,
)
from qmu_hw.autograd import shift_plan
from qmu_hw.circuits import ENTANGLERS, hqml
from tests.reference import pennylane_values_and_jacobian

CASES = [(n, L, e) for n, L in [(2, 1), (3, 2), (4, 4), (6, 2)] for e in ENTANGLERS]


def _layer_grads(layer, x, seed=0):
    """Values and d(sum_o c_o f_o)/d(weights, inputs) with a random upstream gradient."""
    x = x.clone().requires_grad_(True)
    out = layer(x)
    up = torch.as_tensor(np.random.default_rng(seed).normal(size=tuple(out.shape)))
    (out * up).sum().backward()
    return out.detach().numpy(), layer.weights.grad.numpy().copy(), x.grad.numpy().copy(), up.numpy()


@pytest.mark.pennylane
@pytest.mark.parametrize("gradient", ["backprop", "parameter-shift"])
@pytest.mark.parametrize("n, layers, ent", CASES)
def test_weight_and_input_gradients_match_pennylane(gradient, n, layers, ent):
    c = hqml(n, layers, ent)
    torch.manual_seed(n + layers)
    layer = QuantumLayer(c, get_backend("exact"), gradient=gradient)
    x = torch.as_tensor(np.random.default_rng(layers).uniform(-np.pi, np.pi, (3, n)))
    vals, gw, gx, up = _layer_grads(layer, x)
    w = layer.weights.detach().numpy().reshape(-1)
    params = np.concatenate([x.numpy(), np.tile(w, (3, 1))], axis=1)
    ref_vals, jac = pennylane_values_and_jacobian(c, params)
    g = np.einsum("bo,bop->bp", up, jac)
    np.testing.assert_allclose(vals, ref_vals, atol=1e-8)
    np.testing.assert_allclose(gx, g[:, :n], atol=1e-8)
    np.testing.assert_allclose(gw.reshape(-1), g[:, n:].sum(axis=0), atol=1e-8)


def test_shared_parameter_gets_summed_derivative_vs_finite_differences():
    c = hqml(3, 2)
    b = get_backend("exact")
    p = np.random.default_rng(4).uniform(-3, 3, (2, c.n_params))
    plan = shift_plan(c, p)
    vals = b.estimate(EstimateRequest(c.slot_circuit, plan.rows)).values
    jac, _ = plan.jacobian(vals)
    h = 1e-6
    fd = np.zeros_like(jac)
    for j in range(c.n_params):
        e = np.zeros(c.n_params)
        e[j] = h
        fp = b.estimate(EstimateRequest(c, p + e)).values
        fm = b.estimate(EstimateRequest(c, p - e)).values
        fd[:, :, j] = (fp - fm) / (2 * h)
    np.testing.assert_allclose(jac, fd, atol=1e-7)
    # The input derivative is the sum of three per-gate terms; any single one is wrong.
    single = plan.slot_to_param.copy()
    assert np.count_nonzero(single[:, 0]) == 3


def test_parameter_shift_is_one_request_per_gradient():
    c = hqml(4, 2)
    b = get_backend("exact")
    layer = QuantumLayer(c, b, gradient="parameter-shift")
    x = torch.rand(8, 4)
    layer(x).sum().backward()
    entries = b.ledger.entries
    assert [e.phase for e in entries] == ["train", "train/grad"]
    # Only weight slots are shifted: 8 rows × 2 × 24 weight slots.
    assert entries[1].circuits == 8 * 2 * 24 and entries[1].submissions == 1
    x2 = torch.rand(8, 4, requires_grad=True)
    layer(x2).sum().backward()
    assert b.ledger.entries[-1].circuits == 8 * 2 * (24 + 12)


def test_spsa_gradient_is_unbiased_on_average():
    c = hqml(2, 1)
    torch.manual_seed(0)
    exact_layer = QuantumLayer(c, get_backend("exact"), gradient="backprop")
    x = torch.rand(4, 2) * 3
    exact_layer(x).sum().backward()
    g_ref = exact_layer.weights.grad.clone()
    spsa = QuantumLayer(c, get_backend("exact"), gradient="spsa", seed=1, spsa_epsilon=0.05)
    spsa.weights.data.copy_(exact_layer.weights.data)
    acc = torch.zeros_like(g_ref)
    for _ in range(300):
        spsa.weights.grad = None
        spsa(x).sum().backward()
        acc += spsa.weights.grad
    est = acc / 300
    assert torch.allclose(est, g_ref, atol=0.25 * g_ref.abs().max().item() + 0.05)
    assert spsa.backend.ledger.entries[1].circuits == 2 * 4  # two evaluations per row


def test_sampled_parameter_shift_is_close_and_seeded():
    c = hqml(3, 1)
    torch.manual_seed(0)
    ref = QuantumLayer(c, get_backend("exact"), gradient="backprop")
    x = torch.rand(5, 3)
    ref(x).sum().backward()

    def run(seed):
        layer = QuantumLayer(c, get_backend("exact-shots"), shots=20000, seed=seed)
        layer.weights.data.copy_(ref.weights.data)
        layer(x).sum().backward()
        return layer.weights.grad.clone()

    g1, g2 = run(3), run(3)
    assert torch.equal(g1, g2)
    assert torch.allclose(g1, ref.weights.grad, atol=0.1)


def test_float32_inputs_give_float32_outputs_and_train():
    torch.manual_seed(0)
    c = hqml(2, 1)
    layer = QuantumLayer(c, get_backend("exact"))
    head = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(list(layer.parameters()) + list(head.parameters()), lr=0.1)
    x = torch.rand(16, 2, dtype=torch.float32) * 3
    y = (x[:, 0] > 1.5).long()
    losses = []
    for _ in range(30):
        opt.zero_grad()
        out = layer(x)
        assert out.dtype == torch.float32
        loss = torch.nn.functional.cross_entropy(head(out), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.8


def test_layer_rejects_bad_use():
    c = hqml(3, 1)
    with pytest.raises(InvalidRequestError, match=r"inputs of shape \(B, 3\), got \(4, 2\)"):
        QuantumLayer(c, get_backend("exact"))(torch.rand(4, 2))
    with pytest.raises(UnsupportedFeatureError, match="backprop.*shots=1024"):
        QuantumLayer(c, get_backend("exact-shots"), gradient="backprop")
    with pytest.raises(InvalidRequestError, match="unknown gradient 'adjoint'"):
        QuantumLayer(c, get_backend("exact"), gradient="adjoint")
    with pytest.raises(InvalidRequestError, match="at most 2 qubits"):
        QuantumLayer(c, get_backend("exact", max_qubits=2))
    with pytest.raises(QmuHwError, match="grad_shots must be a positive integer"):
        QuantumLayer(c, get_backend("exact"), grad_shots=0)
    nan = torch.rand(2, 3)
    nan[1, 1] = float("nan")
    with pytest.raises(InvalidRequestError, match="finite"):
        QuantumLayer(c, get_backend("exact"))(nan)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 4), layers=st.integers(0, 3), ent=st.sampled_from(["ring", "linear", "all", "none"]),
    seed=st.integers(0, 10_000),
)
def test_parameter_shift_equals_backprop_property(n, layers, ent, seed):
    """For any hqml circuit and parameters, the one-request parameter-shift Jacobian equals
    the exact engine's autograd Jacobian."""
    c = hqml(n, layers, ent)
    p = np.random.default_rng(seed).uniform(-4, 4, (2, c.n_params))
    b = get_backend("exact")
    plan = shift_plan(c, p)
    jac, _ = plan.jacobian(b.estimate(EstimateRequest(c.slot_circuit, plan.rows)).values)
    x = torch.as_tensor(p[:, : c.n_inputs], dtype=torch.float64)
    for row in range(2):
        w = torch.tensor(p[row, c.n_inputs :], requires_grad=True)
        xi = x[row : row + 1].clone().requires_grad_(True)
        out = b.torch_expectation(c, xi, w)[0]
        for o in range(out.shape[0]):
            gx, gw = torch.autograd.grad(out[o], (xi, w), retain_graph=True, allow_unused=True)
            ref = np.concatenate([gx.numpy()[0], (gw.numpy() if gw is not None else np.zeros(c.n_weights))])
            np.testing.assert_allclose(jac[row, o], ref, atol=1e-9)
