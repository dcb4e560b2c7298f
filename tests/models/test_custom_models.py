"""User models: a factory callable or an OpenQASM 3 circuit file, trained, unlearned and
checkpointed like the built-in models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qmu_hw import InvalidRequestError, UnsupportedFeatureError, get_backend
from qmu_hw.models import build_model, fit, load_checkpoint, save_checkpoint
from qmu_hw.study.protocol import prepare
from qmu_hw.unlearning import unlearn
from qmu_hw.unlearning.base import freeze_all_but_last

QASM = """OPENQASM 3.0;
include "stdgates.inc";
input float[64] x0; input float[64] x1; input float[64] x2; input float[64] x3;
input float[64] w0; input float[64] w1; input float[64] w2; input float[64] w3;
qubit[4] q;
ry(x0) q[0]; ry(x1) q[1]; ry(x2) q[2]; ry(x3) q[3];
crx(w0) q[0], q[1]; crx(w1) q[1], q[2]; crx(w2) q[2], q[3]; crx(w3) q[3], q[0];
"""


@pytest.fixture(scope="module")
def prep():
    return prepare("iris", 0, per_class=12)


def test_factory_model_trains_and_checkpoints(prep, tmp_path):
    be = get_backend("exact")
    m = build_model("factory:tests.models.user_models:build", be, seed=0, n_classes=3, extra={"n_inputs": 4})
    assert m.quantum.gradient == "backprop" and [n for n, _ in m.blocks()] == ["quantum", "head"]
    t = prep.tensors
    res = fit(m, t["train"], t["val"], epochs=3, patience=3, seed=0)
    assert res.best_epoch >= 0
    save_checkpoint(m, tmp_path / "m.pt")
    again, _ = load_checkpoint(tmp_path / "m.pt", be)
    x = t["test"].X[:5]
    torch.testing.assert_close(again(x), m(x))
    m.set_phase("eval")
    assert m.quantum.phase == "eval"


def test_factory_without_blocks_says_what_to_add(prep):
    be = get_backend("exact")
    m = build_model("factory:tests.models.user_models:build_plain", be, seed=0, n_classes=3, extra={"n_inputs": 4})
    with pytest.raises(UnsupportedFeatureError, match=r"needs model.blocks\(\).*build_plain.*add blocks\(\)"):
        freeze_all_but_last(m, 1)
    from qmu_hw.study.protocol import unlearn_data

    sc = prep.scenario("class:0")
    data = unlearn_data(prep.scenario_splits(sc), 3, sc, 16)
    with pytest.raises(UnsupportedFeatureError, match="needs model.blocks"):
        unlearn("cf-k", m, data, seed=0)
    model, report = unlearn("ga", m, data, seed=0, epochs=1)  # a method that needs no blocks runs
    assert report.circuits > 0


def test_factory_errors():
    be = get_backend("exact")
    with pytest.raises(InvalidRequestError, match="exactly one"):
        build_model("factory:tests.models.user_models:build_two_layers", be, n_classes=3, extra={"n_inputs": 2})
    with pytest.raises(InvalidRequestError, match="no callable 'nope'"):
        build_model("factory:tests.models.user_models:nope", be)
    with pytest.raises(InvalidRequestError, match="cannot import 'no_such_pkg.mod'"):
        build_model("factory:no_such_pkg.mod:build", be)
    with pytest.raises(InvalidRequestError, match="'pkg.module:callable'"):
        build_model("factory:justamodule", be)


def test_circuit_file_model_with_builtin_head(prep, tmp_path):
    pytest.importorskip("qiskit_qasm3_import")
    path = tmp_path / "ring.qasm"
    path.write_text(QASM)
    be = get_backend("exact")
    extra = {"inputs": ["x0", "x1", "x2", "x3"], "n_inputs": 4}
    m = build_model(f"circuit:{path}", be, seed=0, n_classes=3, extra=extra)
    assert m.quantum.weights.shape == (4,) and m.quantum.circuit.n_inputs == 4
    assert [n for n, _ in m.blocks()] == ["quantum", "head.0", "head.2"]
    fit(m, prep.tensors["train"], prep.tensors["val"], epochs=2, patience=2, seed=0)
    save_checkpoint(m, tmp_path / "c.pt")
    again, _ = load_checkpoint(tmp_path / "c.pt", be)
    x = prep.tensors["test"].X[:4]
    torch.testing.assert_close(again(x), m(x))
    with pytest.raises(InvalidRequestError, match=r"inputs = \[\"x0\""):
        build_model(f"circuit:{path}", be, n_classes=3, extra={})
    with pytest.raises(InvalidRequestError, match="reads 4 inputs .* the data has 2 features"):
        build_model(f"circuit:{path}", be, n_classes=3, extra={**extra, "n_inputs": 2})
    assert np.isfinite(m(x).detach().numpy()).all()
