"""Files read back from a study folder (checkpoints, journal blobs, npz data) are data:
a pickle payload in any of them never runs (its marker file stays absent), and a damaged
checkpoint is named and retrained so a rerun recovers."""

import io
import pickle
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
import torch

from qmu_hw.adapters.registry import get_backend
from qmu_hw.core.exceptions import CorruptCheckpointError, InvalidRequestError, QmuHwError
from qmu_hw.models import build_model, load_checkpoint, save_checkpoint


class _Payload:
    """Unpickling this creates ``marker``: the proof that a loader executed file content."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def saved(tmp_path):
    model = build_model("hqml-iris", get_backend("exact"), seed=0, input_range=np.pi)
    model.scaler.fit(torch.randn(8, 4))
    path = tmp_path / "teacher.pt"
    save_checkpoint(model, path, {"seed": 0})
    return model, path


def test_checkpoint_round_trip_is_weights_only_and_json(saved):
    model, path = saved
    assert isinstance(torch.load(path, weights_only=True), dict)  # plain tensors, no objects
    again, extra = load_checkpoint(path, get_backend("exact"))
    assert extra == {"seed": 0}
    X = torch.randn(5, 4)
    assert torch.equal(again(X), model(X))


@pytest.mark.parametrize("how", ["raw-pickle", "torch-zip"])
def test_a_pickle_payload_checkpoint_never_runs(saved, tmp_path, how):
    _, path = saved
    marker = tmp_path / "pwned"
    if how == "raw-pickle":
        path.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    else:
        torch.save({"state_dict": _Payload(marker)}, path)
    with pytest.raises(CorruptCheckpointError, match=rf"checkpoint {path} is unreadable as weights"):
        load_checkpoint(path, get_backend("exact"))
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "no-metadata", "foreign-metadata", "wrong-shapes"])
def test_a_damaged_checkpoint_is_named(saved, damage):
    model, path = saved
    meta = path.with_name(path.name + ".json")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "no-metadata":
        meta.unlink()
    elif damage == "foreign-metadata":
        meta.write_text('{"format": 2, "config": {"name": "hqml-iris", "bogus": 1}}')
    else:
        torch.save({k: torch.zeros(3) for k in model.state_dict()}, path)
    with pytest.raises(CorruptCheckpointError, match=str(path)) as err:
        load_checkpoint(path, get_backend("exact"))
    assert "\n" not in str(err.value)


def test_npz_object_arrays_are_refused_not_unpickled(tmp_path):
    from qmu_hw.data.datasets import load_dataset

    marker = tmp_path / "pwned"
    arr = np.empty(1, dtype=object)
    arr[0] = _Payload(marker)
    np.savez(tmp_path / "mnist.npz", x_train=arr, y_train=arr, x_test=arr, y_test=arr)
    with pytest.raises(InvalidRequestError, match="mnist.npz"):
        load_dataset("mnist", data_dir=tmp_path)
    assert not marker.exists()


def test_a_pickle_payload_in_a_journal_blob_never_runs(tmp_path):
    from qmu_hw.core.journal import JobJournal

    marker = tmp_path / "pwned"
    journal = JobJournal(tmp_path / "journal.sqlite")
    journal.begin("h", "exact", "-", 1, 10)
    journal.done("h", np.zeros(2), np.zeros(2), {})
    arr = np.empty(1, dtype=object)
    arr[0] = _Payload(marker)
    buf = io.BytesIO()
    np.savez(buf, values=arr, stderr=arr)
    with sqlite3.connect(tmp_path / "journal.sqlite") as db:
        db.execute("UPDATE jobs SET result = ? WHERE request_hash = 'h'", (buf.getvalue(),))
    try:
        journal.get("h")  # refusing the blob (any qmu-hw/ValueError) is fine; running it is not
    except (QmuHwError, ValueError):
        pass
    assert not marker.exists()


STUDY = """
[study]
name = "ckpt"
output = "{out}"
seeds = [0]
[data]
dataset = "iris"
per_class = 10
[training]
epochs = 2
patience = 2
n_oracles = 2
[grid]
scenarios = ["class:0"]
methods = ["identity"]
backends = ["exact"]
"""


def test_a_study_rerun_retrains_a_replaced_teacher_and_runs_nothing(tmp_path):
    cfg = tmp_path / "s.toml"
    out = tmp_path / "out"
    cfg.write_text(STUDY.replace("{out}", str(out)))
    run = [sys.executable, "-m", "qmu_hw.cli", "run", str(cfg)]
    assert subprocess.run(run, capture_output=True, text=True, timeout=300).returncode == 0
    (teacher,) = (out / "checkpoints").glob("teacher-*.pt")
    marker = tmp_path / "pwned"
    teacher.write_bytes(pickle.dumps(_Payload(marker)))
    with sqlite3.connect(out / "results.sqlite") as db:
        db.execute("UPDATE cells SET status = 'running'")
    res = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert not marker.exists()
    said = res.stdout + res.stderr
    assert f"checkpoint {teacher} is unreadable as weights" in said and "retraining it" in said
    load_checkpoint(teacher, get_backend("exact"))  # replaced by a good one
    res = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "retraining" not in res.stdout + res.stderr


def test_a_checkpoint_naming_a_foreign_factory_imports_nothing(saved):
    _, path = saved
    meta = path.with_name(path.name + ".json")
    sys.modules.pop("antigravity", None)
    meta.write_text(meta.read_text().replace('"name": "hqml-iris"', '"name": "factory:antigravity:x"'))
    with pytest.raises(CorruptCheckpointError, match="describes model 'factory:antigravity:x', expected 'hqml-iris'"):
        load_checkpoint(path, get_backend("exact"), expect_model="hqml-iris")
    assert "antigravity" not in sys.modules
