"""The exact engine on light cones equals the full statevector (values and gradients)."""

import numpy as np
import pytest
import torch

from qmu_hw import Circuit, EstimateRequest, Gate, get_backend
from qmu_hw.adapters import sv_cones
from qmu_hw.adapters import torch_engine as te
from qmu_hw.circuits import hqml

ROT = ("RX", "RY", "RZ")
FIXED = ("H", "S", "SDG", "X", "Y", "Z")


def random_circuit(rng, n, layers, entangler):
    """Random layered circuit: affine rotations of inputs/weights, constant rotations, fixed
    gates, and CZ/CNOT entanglers of the given pattern."""
    n_inputs, n_params = n, n + 3 * n
    gates = []
    for layer in range(layers):
        for q in range(n):
            for _ in range(rng.integers(1, 3)):
                kind = rng.random()
                name = ROT[rng.integers(3)]
                if kind < 0.15:
                    gates.append(Gate(FIXED[rng.integers(len(FIXED))], (q,)))
                elif kind < 0.3:  # a constant rotation (no parameter)
                    gates.append(Gate(name, (q,), offset=float(rng.uniform(-3, 3))))
                else:
                    p = int(rng.integers(n_params)) if layer else q
                    gates.append(Gate(name, (q,), param=p, coeff=float(rng.uniform(-2, 2)),
                                      offset=float(rng.uniform(-1, 1))))
        if entangler == "ring":
            pairs = [(q, (q + 1) % n) for q in range(n)]
        elif entangler == "linear":
            pairs = [(q, q + 1) for q in range(n - 1)]
        else:
            pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
        for a, b in pairs:
            if rng.random() < 0.5:
                a, b = b, a
            gates.append(Gate("CZ" if rng.random() < 0.5 else "CNOT", (a, b)))
    return Circuit(n, tuple(gates), n_params=n_params, n_inputs=n_inputs)


def random_labels(rng, n, count=6):
    labels = ["".join("Z" if i == q else "I" for i in range(n)) for q in range(n)]
    for _ in range(count):
        lab = ["I"] * n
        for q in rng.choice(n, size=int(rng.integers(1, 3)), replace=False):
            lab[q] = "XYZ"[rng.integers(3)]
        labels.append("".join(lab))
    return tuple(labels + ["I" * n])


def full_reference(circuit, angles, labels):
    state = te.simulate(te.compile_plan(circuit), angles)
    return te._expectations(state, labels, circuit.n_qubits)


def shifted_rows(circuit, rng, B=3):
    """A parameter-shift-like batch: base rows, and each with one slot shifted by ±π/2."""
    base = circuit.angles(rng.uniform(-np.pi, np.pi, (B, circuit.n_params)))
    rows = [base]
    for s in range(circuit.n_slots):
        for sign in (1, -1):
            r = base.copy()
            r[:, s] += sign * np.pi / 2
            rows.append(r)
    return np.concatenate(rows)


CASES = [(n, L, e) for n, L in [(6, 1), (7, 2), (7, 3), (8, 2), (6, 4), (8, 6)] for e in ("ring", "linear", "all")]


@pytest.mark.parametrize("n, layers, ent", CASES)
def test_cone_values_and_gradients_equal_full_statevector(n, layers, ent, monkeypatch):
    rng = np.random.default_rng(1000 * n + 10 * layers + len(ent))
    c = random_circuit(rng, n, layers, ent)
    labels = random_labels(rng, n)
    # exercise the cones even where one full-register pass would be cheaper
    monkeypatch.setattr(sv_cones, "CONES_MAX_COST", float("inf"))
    sv_cones.cone_plan.cache_clear()
    plan = sv_cones.cone_plan(c, labels)
    if ent != "all" and layers <= 2:  # deeper, or "all": the cones are the register
        assert plan.groups
    flat = shifted_rows(c, rng)
    a1 = torch.tensor(flat, requires_grad=True)
    a2 = torch.tensor(flat, requires_grad=True)
    ours = sv_cones.expectations(c, a1, labels)
    ref = full_reference(c, a2, labels)
    np.testing.assert_allclose(ours.detach().numpy(), ref.detach().numpy(), atol=1e-10)
    # without autograd: a small request runs each row as its own base (sv_spawn) ...
    np.testing.assert_allclose(sv_cones.expectations(c, torch.tensor(flat), labels).numpy(),
                               ref.detach().numpy(), atol=1e-10)
    # ... a large one is deduplicated per cone, rows sharing their prefix
    monkeypatch.setattr(sv_cones, "SMALL_REQUEST_ROWS", 0)
    np.testing.assert_allclose(sv_cones.expectations(c, torch.tensor(flat), labels).numpy(),
                               ref.detach().numpy(), atol=1e-10)
    w = torch.tensor(rng.normal(size=ref.shape))
    (ours * w).sum().backward()
    (ref * w).sum().backward()
    np.testing.assert_allclose(a1.grad.numpy(), a2.grad.numpy(), atol=1e-10)
    sv_cones.cone_plan.cache_clear()


def test_deep_circuits_run_on_the_full_register():
    c = hqml(12, 6, "ring")
    labels = tuple("".join("Z" if i == q else "I" for i in range(12)) for q in range(12))
    plan = sv_cones.cone_plan(c, labels)
    assert plan.full == tuple(range(12)) and not plan.groups


def test_cones_batch_members_and_small_cones_on_hqml():
    c = hqml(10, 2, "ring")
    labels = tuple("".join("Z" if i == q else "I" for i in range(10)) for q in range(10))
    plan = sv_cones.cone_plan(c, labels)
    assert not plan.full
    assert all(g.k == 3 for g in plan.groups)
    assert sum(g.slot_maps.shape[0] for g in plan.groups) == 10  # one member per ⟨Z_q⟩
    assert len(plan.groups) < 10  # same-structure cones share a batch


@pytest.mark.parametrize("n", [6, 9])
def test_backend_backprop_and_parameter_shift_agree_with_full(n):
    """Through the backend: exact values (a shifted-row request) and backprop gradients."""
    c = hqml(n, 2, "ring")
    be = get_backend("exact")
    rng = np.random.default_rng(n)
    p = rng.uniform(-np.pi, np.pi, (5, c.n_params))
    p[:, c.n_inputs:] = p[0, c.n_inputs:]  # weights are shared by the rows of a batch
    vals = be.estimate(EstimateRequest(c, p)).values
    labels = tuple(t.label for t in EstimateRequest(c, p).observables)
    ref = full_reference(c, torch.tensor(c.angles(p)), labels).numpy()
    np.testing.assert_allclose(vals, ref, atol=1e-10)
    x = torch.tensor(p[:, : c.n_inputs], requires_grad=True)
    w = torch.tensor(p[0, c.n_inputs:], requires_grad=True)
    out = be.torch_expectation(c, x, w)
    out.sum().backward()
    x2 = x.detach().clone().requires_grad_()
    w2 = w.detach().clone().requires_grad_()
    angles, _, _ = te.torch_angles(c, x2, w2)
    full_reference(c, angles, labels).sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), ref, atol=1e-10)
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(w.grad.numpy(), w2.grad.numpy(), atol=1e-10)


def test_chunked_rows_equal_one_pass(monkeypatch):
    rng = np.random.default_rng(5)
    c = random_circuit(rng, 7, 3, "ring")
    labels = random_labels(rng, 7)
    flat = torch.tensor(shifted_rows(c, rng, B=2))
    whole = sv_cones.expectations(c, flat, labels)
    monkeypatch.setattr(sv_cones, "CHUNK_BYTES", 16 * sv_cones._COPIES * 2**7 * 3)  # 3 full-register rows
    np.testing.assert_allclose(sv_cones.expectations(c, flat, labels).numpy(), whole.numpy(), atol=1e-12)
    np.testing.assert_allclose(whole.numpy(), full_reference(c, flat, labels).numpy(), atol=1e-10)


@pytest.mark.parametrize("backend", ["exact", "dm-depol-0.01"])
def test_repeated_samples_keep_their_own_input_gradients(backend):
    """Row deduplication is for values only: under autograd each repeated sample gets its
    gradient (a deduplicated row would take its twin's)."""
    c = hqml(7, 2, "ring")
    be = get_backend(backend)
    x0 = np.random.default_rng(2).uniform(-np.pi, np.pi, (2, c.n_inputs))
    x = torch.tensor(np.stack([x0[0], x0[0], x0[1]]), requires_grad=True)
    w = torch.tensor(np.linspace(-1, 1, c.n_weights), requires_grad=True)
    be.torch_expectation(c, x, w).sum().backward()
    g = x.grad.numpy()
    assert np.abs(g[0]).max() > 1e-3
    np.testing.assert_allclose(g[0], g[1], atol=1e-12)


# -- parameter-shift requests: shifted rows from their shifted gate on (sv_shift, sv_spawn) --------
from qmu_hw import QuantumLayer  # noqa: E402
from qmu_hw.adapters import sv_shift, sv_spawn  # noqa: E402
from qmu_hw.autograd.shift import shift_plan  # noqa: E402

SHIFT_CASES = [(n, L, e) for n, L in [(6, 1), (7, 2), (8, 3), (7, 4), (6, 5), (7, 6)] for e in ("ring", "linear", "all")]


def layer_shift_rows(circuit, rng, B=3, slots=None):
    """Rows as QuantumLayer's parameter shift sends them: per input row, each slot ± π/2."""
    params = rng.uniform(-np.pi, np.pi, (B, circuit.n_params))
    plan = shift_plan(circuit, params, slots)
    return circuit.slot_circuit.angles(plan.rows), plan


@pytest.mark.parametrize("cones_cost", [float("inf"), sv_cones.CONES_MAX_COST])
@pytest.mark.parametrize("n, layers, ent", SHIFT_CASES)
def test_shift_path_values_equal_full_statevector(n, layers, ent, cones_cost, monkeypatch):
    """Cones (inf: even where the register is cheaper) and the full register, both on the
    shift path."""
    rng = np.random.default_rng(7000 + 100 * n + 10 * layers + len(ent))
    c = random_circuit(rng, n, layers, ent)
    labels = random_labels(rng, n)
    monkeypatch.setattr(sv_cones, "CONES_MAX_COST", cones_cost)
    sv_cones.cone_plan.cache_clear()
    flat, _ = layer_shift_rows(c, rng)
    sc = c.slot_circuit
    plan = sv_cones.cone_plan(sc, labels)
    before = sv_spawn.calls
    ours = sv_cones.expectations(sc, torch.tensor(flat), labels)
    assert sv_spawn.calls - before == len(plan.groups) + bool(plan.full)  # every group took the shift path
    if plan.groups:  # some shifted slots lie outside some cone (those rows read the base row)
        outside = [np.setdiff1d(np.arange(sc.n_slots), g.slot_maps[m]) for g in plan.groups
                   for m in range(len(g.slot_maps))]
        assert any(len(o) for o in outside) or layers > 2 or ent == "all"
    ref = full_reference(sc, torch.tensor(flat), labels)
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=1e-10)
    sv_cones.cone_plan.cache_clear()


@pytest.mark.parametrize("n, layers, ent", [(7, 2, "ring"), (6, 3, "linear"), (6, 1, "all"), (8, 2, "linear")])
def test_parameter_shift_gradients_equal_full_statevector_autograd(n, layers, ent, monkeypatch):
    """Through QuantumLayer on the exact backend: the parameter-shift request runs on the shift
    path, and its gradients equal autograd on the full statevector."""
    rng = np.random.default_rng(50 + n + layers)
    c = random_circuit(rng, n, layers, ent)
    monkeypatch.setattr(sv_cones, "CONES_MAX_COST", float("inf"))
    sv_cones.cone_plan.cache_clear()
    layer = QuantumLayer(c, get_backend("exact"), gradient="parameter-shift", shots=None)
    x = torch.tensor(rng.uniform(-np.pi, np.pi, (4, c.n_inputs)), requires_grad=True)
    w_up = torch.tensor(rng.normal(size=(4, n)))
    before = sv_spawn.calls
    (layer(x) * w_up).sum().backward()
    assert sv_spawn.calls > before
    x2 = x.detach().clone().requires_grad_()
    w2 = layer.weights.detach().clone().reshape(-1).requires_grad_()
    angles, _, _ = te.torch_angles(c, x2, w2)
    labels = tuple(t.label for t in layer.observables)
    (full_reference(c, angles, labels) * w_up).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(layer.weights.grad.reshape(-1).numpy(), w2.grad.numpy(), atol=1e-10)
    sv_cones.cone_plan.cache_clear()


def test_each_shifted_row_is_its_own_circuit(monkeypatch):
    """A shifted row is simulated at its own angle: rows moved by arbitrary amounts (not ±π/2)
    and rows equal to the base keep the structure, and each value is that row's."""
    monkeypatch.setattr(sv_cones, "CONES_MAX_COST", float("inf"))
    sv_cones.cone_plan.cache_clear()
    rng = np.random.default_rng(3)
    c = random_circuit(rng, 8, 2, "ring").slot_circuit
    labels = random_labels(rng, 8)
    base = rng.uniform(-np.pi, np.pi, (2, c.n_slots))
    rows = []
    for b in range(2):
        for s in range(c.n_slots):
            for delta in (rng.uniform(-2, 2), 0.0, rng.uniform(-2, 2)):
                r = base[b].copy()
                r[s] += delta
                rows.append(r)
    flat = np.array(rows)
    sr = sv_shift.shift_rows(flat)
    assert sr is not None and sr.n_variants == 2 and np.array_equal(sr.base, base)  # delta 0: the base itself
    before = sv_spawn.calls
    ours = sv_cones.expectations(c, torch.tensor(flat), labels)
    assert sv_spawn.calls > before
    np.testing.assert_allclose(ours.numpy(), full_reference(c, torch.tensor(flat), labels).numpy(), atol=1e-10)


def test_spawned_rows_must_take_their_own_angle(monkeypatch):
    """Guards the test above: with spawns at the base's angle the values are wrong."""
    rng = np.random.default_rng(4)
    c = hqml(8, 2, "ring")
    flat, _ = layer_shift_rows(c, rng, B=2)
    labels = tuple("".join("Z" if i == q else "I" for i in range(8)) for q in range(8))
    real = sv_shift.shift_rows

    def wrong(f):
        sr = real(f)
        return sv_shift.ShiftRows(sr.base, sr.block, sr.slot, sr.variant, sr.n_variants,
                                  np.repeat(sr.base[:, :, None], sr.n_variants, axis=2))

    monkeypatch.setattr(sv_shift, "shift_rows", wrong)
    bad = sv_cones.expectations(c.slot_circuit, torch.tensor(flat), labels).numpy()
    ref = full_reference(c.slot_circuit, torch.tensor(flat), labels).numpy()
    assert np.abs(bad - ref).max() > 1e-3


def test_shift_rows_rejects_other_structures():
    rng = np.random.default_rng(5)
    c = hqml(6, 2, "ring")
    flat, plan = layer_shift_rows(c, rng, B=3)
    sr = sv_shift.shift_rows(flat)
    assert sr is not None and sr.n_variants == 2 and len(sr.base) == 3
    np.testing.assert_array_equal(sr.slot.reshape(3, -1, 2)[:, :, 0], np.broadcast_to(plan.slots, (3, len(plan.slots))))
    two = flat.copy()
    two[5, 0] += 0.1  # a row differing from its base in two slots
    assert sv_shift.shift_rows(two) is None
    assert sv_shift.shift_rows(rng.uniform(size=(40, 12))) is None  # unrelated rows
    labels = tuple("".join("Z" if i == q else "I" for i in range(6)) for q in range(6))
    np.testing.assert_allclose(sv_cones.expectations(c.slot_circuit, torch.tensor(two), labels).numpy(),
                               full_reference(c.slot_circuit, torch.tensor(two), labels).numpy(), atol=1e-10)


def test_shift_path_memory_is_chunked(monkeypatch):
    rng = np.random.default_rng(6)
    c = hqml(8, 2, "ring")
    flat, _ = layer_shift_rows(c, rng, B=5)
    labels = tuple("".join("Z" if i == q else "I" for i in range(8)) for q in range(8))
    whole = sv_cones.expectations(c.slot_circuit, torch.tensor(flat), labels)
    monkeypatch.setattr(sv_cones, "CHUNK_BYTES", 1)  # one base row per chunk
    np.testing.assert_allclose(sv_cones.expectations(c.slot_circuit, torch.tensor(flat), labels).numpy(),
                               whole.numpy(), atol=1e-12)


def test_ring_cones_form_one_group_and_drop_idle_gates():
    """Canonical cones: the wrap-around cones batch with the others; gates that act as the
    identity on the evolved ⟨Z_q⟩ (the last CZ layer, the last RZ_q, the last layer's
    rotations on q ± 1) are not simulated."""
    c = hqml(10, 2, "ring")
    labels = tuple("".join("Z" if i == q else "I" for i in range(10)) for q in range(10))
    plan = sv_cones.cone_plan(c, labels)
    assert len(plan.groups) == 1 and plan.groups[0].slot_maps.shape == (10, 18)
    names = [e[0] for e in plan.groups[0].entries]
    assert names.count("CZ") == 2 and names[-2:] == ["RX", "RY"]


def test_float32_shift_request():
    c = hqml(8, 2, "ring")
    rng = np.random.default_rng(8)
    p = rng.uniform(-np.pi, np.pi, (3, c.n_params))
    plan = shift_plan(c, p)
    be = get_backend("exact", dtype="float32")
    before = sv_spawn.calls
    vals = be.estimate(EstimateRequest(c.slot_circuit, plan.rows)).values
    assert sv_spawn.calls > before
    labels = tuple(t.label for t in EstimateRequest(c, p).observables)
    ref = full_reference(c.slot_circuit, torch.tensor(c.slot_circuit.angles(plan.rows)), labels).numpy()
    np.testing.assert_allclose(vals, ref, atol=1e-5)


@pytest.mark.parametrize("small_rows", [1024, 0])
def test_slot_circuit_rows_are_read_not_written(small_rows, monkeypatch):
    """The exact backend shares a slot circuit's request params with torch (no copy): every
    path (shift, deduplicated cones, full register) must leave them as they were."""
    monkeypatch.setattr(sv_cones, "SMALL_REQUEST_ROWS", small_rows)
    rng = np.random.default_rng(9)
    for c in (hqml(7, 2, "ring"), hqml(4, 2, "ring"), random_circuit(rng, 6, 2, "linear")):
        rows = c.slot_circuit.angles(shift_plan(c, rng.uniform(-3, 3, (2, c.n_params))).rows)
        for req_rows in (rows, rows[::-1].copy()):  # shift structure, and none
            req = EstimateRequest(c.slot_circuit, req_rows)
            kept = np.array(req.params)
            get_backend("exact").estimate(req)
            np.testing.assert_array_equal(req.params, kept)


def test_full_register_shift_path_and_its_memory_bound(monkeypatch):
    """A deep circuit's observables run on the full register: on the shift path while a base
    row's states fit FULL_SPAWN_BYTES, else deduplicated by prefix; the same values."""
    c = hqml(7, 4, "ring")
    rng = np.random.default_rng(10)
    flat, _ = layer_shift_rows(c, rng, B=2)
    labels = tuple("".join("Z" if i == q else "I" for i in range(7)) for q in range(7))
    sc = c.slot_circuit
    assert sv_cones.cone_plan(sc, labels).full
    ref = full_reference(sc, torch.tensor(flat), labels).numpy()
    before = sv_spawn.calls
    np.testing.assert_allclose(sv_cones.expectations(sc, torch.tensor(flat), labels).numpy(), ref, atol=1e-10)
    assert sv_spawn.calls == before + 1
    monkeypatch.setattr(sv_cones, "FULL_SPAWN_BYTES", 0)
    np.testing.assert_allclose(sv_cones.expectations(sc, torch.tensor(flat), labels).numpy(), ref, atol=1e-10)
    assert sv_spawn.calls == before + 1
