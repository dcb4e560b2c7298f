import pytest

from qmu_hw import get_backend
from qmu_hw.study.protocol import TrainSettings, prepare, train_teacher, unlearn_data


@pytest.fixture(scope="module")
def iris_setup():
    prep = prepare("iris", 0)
    teacher = train_teacher(prep, get_backend("exact"), TrainSettings(epochs=30, patience=10))
    out = {}
    for spec in ("subset:0.05", "class:0"):
        sc = prep.scenario(spec)
        out[spec] = (sc, unlearn_data(prep.scenario_splits(sc), 3, sc, 16))
    return prep, teacher, out
