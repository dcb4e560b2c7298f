import pytest
import torch

from qmu_hw import InvalidRequestError, get_backend
from qmu_hw.models import build_model, load_checkpoint, predict_proba, save_checkpoint
from qmu_hw.study.protocol import TrainSettings, prepare, train_teacher


def test_checkpoint_roundtrip(tmp_path):
    prep = prepare("iris", 0)
    model = train_teacher(prep, get_backend("exact"), TrainSettings(epochs=3, patience=2))
    save_checkpoint(model, tmp_path / "m.pt", {"note": "x"})
    loaded, extra = load_checkpoint(tmp_path / "m.pt", get_backend("exact"))
    assert extra == {"note": "x"}
    X = prep.tensors["test"].X
    assert torch.allclose(predict_proba(model, X), predict_proba(loaded, X))
    # The same weights on a noisy backend load with a shot-based gradient.
    noisy, _ = load_checkpoint(tmp_path / "m.pt", get_backend("dm-depol-0.01"), gradient="parameter-shift", shots=128)
    assert noisy.quantum.gradient == "parameter-shift" and noisy.quantum.shots == 128


@pytest.mark.parametrize("name, kw, n_params_q", [
    ("hqml-iris", {}, 24), ("hqml-iris-deep", {}, 72),
    ("hqml-cnn", {"image_size": 8, "n_qubits": 6}, 36), ("hqml-cnn", {"image_size": 28}, 48),
])
def test_models_shapes_and_groups(name, kw, n_params_q):
    m = build_model(name, get_backend("exact"), seed=0, entangler="linear", **kw)
    assert m.quantum.weights.numel() == n_params_q and m.quantum.circuit.name.endswith("linear")
    x = torch.rand(4, 4) if name.startswith("hqml-iris") else torch.rand(4, 1, kw["image_size"], kw["image_size"])
    m.eval()
    assert m(x).shape == (4, m.config.n_classes)
    groups = m.groups()
    assert set(groups) == {"front", "quantum", "head"} and groups["quantum"] == [m.quantum.weights]
    assert m.blocks()[-1][0].startswith("head")


def test_model_refuses_too_many_qubits():
    with pytest.raises(InvalidRequestError, match="needs 10 qubits"):
        build_model("hqml-cnn", get_backend("exact", max_qubits=8), n_qubits=10)
