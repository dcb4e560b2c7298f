"""Input scaling is fitted on each model's own training data: the teacher's on the training
split, an oracle's (and a retrained model's) on the retain set (issue 12)."""

import numpy as np
import pytest
import torch

from qmu_hw import InvalidRequestError, get_backend
from qmu_hw.models import build_model, load_checkpoint, predict_proba, save_checkpoint
from qmu_hw.models.scaling import InputScaler
from qmu_hw.study.protocol import (
    TrainSettings,
    prepare,
    train_oracle,
    train_teacher,
    transfer,
    unlearn_data,
)
from qmu_hw.unlearning import unlearn

FAST = TrainSettings(epochs=2, patience=5)


@pytest.fixture(scope="module")
def iris():
    prep = prepare("iris", 0, angle_range="pi")
    return prep, train_teacher(prep, get_backend("exact"), FAST)


def test_teacher_scales_with_the_training_split(iris):
    prep, teacher = iris
    X = prep.tensors["train"].X.double()
    assert torch.allclose(teacher.scaler.lo, X.amin(0)) and torch.allclose(teacher.scaler.span, X.amax(0) - X.amin(0))
    z = teacher.scaler(prep.tensors["train"].X)
    assert torch.allclose(z.amin(0), torch.full((4,), -np.pi)) and torch.allclose(z.amax(0), torch.full((4,), np.pi))


def test_oracle_scales_with_the_retain_set(iris):
    """Today every model reads the training split's scaling: with class 0 (the smallest petals)
    removed, the oracle's retain-set minimum differs from the teacher's."""
    prep, teacher = iris
    sc = prep.scenario("class:0")
    retain = prep.scenario_splits(sc)["retain"].X.double()
    oracle = train_oracle(prep, sc, get_backend("exact"), 17, FAST)
    assert torch.allclose(oracle.scaler.lo, retain.amin(0))
    assert torch.allclose(oracle.scaler.span, retain.amax(0) - retain.amin(0))
    assert not torch.allclose(oracle.scaler.lo, teacher.scaler.lo)
    # transferred and checkpointed models keep their own scaling
    moved = transfer(oracle, prep, get_backend("exact"), 0)
    assert torch.equal(moved.scaler.lo, oracle.scaler.lo)


def test_retrain_method_refits_on_retain_and_unlearned_models_keep_the_teachers(iris):
    prep, teacher = iris
    sc = prep.scenario("class:0")
    parts = prep.scenario_splits(sc)
    data = unlearn_data(parts, 3, sc, 16)
    retrained, _ = unlearn("retrain", teacher, data, epochs=1)
    assert torch.allclose(retrained.scaler.lo, parts["retain"].X.double().amin(0))
    tuned, _ = unlearn("finetune", teacher, data, epochs=1)
    assert torch.equal(tuned.scaler.lo, teacher.scaler.lo) and torch.equal(tuned.scaler.span, teacher.scaler.span)


def test_checkpoints_carry_the_scaler_and_refuse_unscaled_old_ones(iris, tmp_path):
    prep, teacher = iris
    save_checkpoint(teacher, tmp_path / "t.pt")
    loaded, _ = load_checkpoint(tmp_path / "t.pt", get_backend("exact"))
    X = prep.tensors["test"].X
    assert torch.allclose(predict_proba(loaded, X), predict_proba(teacher, X))
    state = torch.load(tmp_path / "t.pt", weights_only=True)
    torch.save({k: v for k, v in state.items() if not k.startswith("scaler.")}, tmp_path / "old.pt")
    (tmp_path / "old.pt.json").write_text((tmp_path / "t.pt.json").read_text())
    with pytest.raises(InvalidRequestError, match="predates per-model input scaling"):
        load_checkpoint(tmp_path / "old.pt", get_backend("exact"))


def test_unfitted_scaler_and_bad_inputs_are_refused():
    m = build_model("hqml-iris", get_backend("exact"), seed=0, input_range=np.pi)
    with pytest.raises(InvalidRequestError, match="input scaler is not fitted"):
        m(torch.rand(2, 4))
    with pytest.raises(InvalidRequestError, match=r"\(N, 4\) training set"):
        m.scaler.fit(torch.rand(3, 5))
    with pytest.raises(InvalidRequestError, match="for tabular models"):
        build_model("hqml-cnn", get_backend("exact"), image_size=8, n_qubits=6, input_range=np.pi)
    with pytest.raises(InvalidRequestError, match="unknown angle_range"):
        prepare("iris", 0, angle_range="tau")
    s = InputScaler(2, np.pi / 2).fit(torch.tensor([[0.0, 5.0], [2.0, 5.0]]))
    assert torch.allclose(s(torch.tensor([[1.0, 5.0]])), torch.tensor([[0.0, -np.pi / 2]]))
    assert torch.allclose(s.angle_step(0.1), torch.tensor([0.1 * 2 / np.pi, 0.1 / np.pi], dtype=torch.float64))
