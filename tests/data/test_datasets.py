import gzip
import struct

import numpy as np
import pytest

from qmu_hw import InvalidRequestError
from qmu_hw.data import load_dataset, make_scenario, make_splits, parse_scenario
from qmu_hw.data.splits import ForgetScenario
from qmu_hw.data.tensors import scale_features, split_tensors


def _write_idx(path, arr, gz):
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_idx_files(tmp_path, gz):
    rng = np.random.default_rng(0)
    for stem, n in (("train", 30), ("t10k", 10)):
        suffix = ".gz" if gz else ""
        _write_idx(tmp_path / f"{stem}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)), gz)
        _write_idx(tmp_path / f"{stem}-labels-idx1-ubyte{suffix}", np.arange(n) % 10, gz)
    ds = load_dataset("mnist", data_dir=tmp_path)
    assert ds.X.shape == (40, 1, 28, 28) and ds.X.max() <= 1.0 and ds.n_classes == 10
    sub = load_dataset("mnist", data_dir=tmp_path, per_class=2, seed=1)
    assert np.bincount(sub.y).tolist() == [2] * 10


def test_fashion_from_npz(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "fashion-mnist.npz", x_train=rng.integers(0, 256, (20, 28, 28)), y_train=np.arange(20) % 10,
             x_test=rng.integers(0, 256, (5, 28, 28)), y_test=np.arange(5))
    ds = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert len(ds.y) == 25


def test_missing_files_explain_where_to_put_them(tmp_path):
    with pytest.raises(InvalidRequestError, match="never downloads"):
        load_dataset("mnist")
    with pytest.raises(InvalidRequestError, match="train-images-idx3-ubyte"):
        load_dataset("mnist", data_dir=tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x08\x00\x00\x01")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"junk")
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"junk")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"junk")
    with pytest.raises(InvalidRequestError, match="not an IDX file"):
        load_dataset("mnist", data_dir=tmp_path)
    with pytest.raises(InvalidRequestError, match="unknown dataset"):
        load_dataset("cifar")


def test_splits_are_disjoint_stratified_and_seeded():
    ds = load_dataset("iris")
    s = make_splits(ds.y, 3)
    parts = [s.train, s.val, s.test, s.pool]
    assert sum(len(p) for p in parts) == 150 and len(np.unique(np.concatenate(parts))) == 150
    for p in parts:
        counts = np.bincount(ds.y[p], minlength=3)
        assert counts.max() - counts.min() <= 1
    assert np.array_equal(make_splits(ds.y, 3).test, s.test)
    assert not np.array_equal(make_splits(ds.y, 4).test, s.test)


def test_scenarios_are_inside_training_data():
    ds = load_dataset("iris")
    s = make_splits(ds.y, 0)
    sub = make_scenario("subset:0.1", ds.y, s.train, 0)
    assert set(sub.forget) <= set(s.train) and not set(sub.forget) & set(sub.retain)
    assert len(sub.forget) + len(sub.retain) == len(s.train)
    cls = make_scenario("class:2", ds.y, s.train, 0)
    assert (ds.y[cls.forget] == 2).all() and not (ds.y[cls.retain] == 2).any()
    bad = ForgetScenario("x", "subset", s.train, s.test[:2])
    with pytest.raises(InvalidRequestError, match="not inside the training split"):
        bad.check_inside(s.train)
    for spec in ("subset:2", "class:x", "everything", "subset:0"):
        with pytest.raises(InvalidRequestError):
            parse_scenario(spec)


def test_scaler_fitted_on_training_split_only():
    ds = load_dataset("iris")
    s = make_splits(ds.y, 0)
    X = scale_features(ds, s.train, "pi")
    assert np.allclose(X[s.train].min(axis=0), -np.pi) and np.allclose(X[s.train].max(axis=0), np.pi)
    # Statistics of other splits do not enter: moving a test sample changes nothing in train.
    ds2 = type(ds)(ds.name, ds.X.copy(), ds.y, ds.n_classes, ds.kind)
    ds2.X[s.test[0]] += 100
    assert np.allclose(scale_features(ds2, s.train, "pi")[s.train], X[s.train])
    # The tensors stay raw: each model fits its own scaler (tests/models/test_input_scaling.py).
    t = split_tensors(ds, s)
    assert np.allclose(t["train"].X.numpy(), ds.X[s.train].astype(np.float32))
