"""Same-noise and exact reference ensembles: which backend, how many, and a study using them."""

import csv

import pytest

from qmu_hw.study.config import parse_config
from qmu_hw.study.config_tables import AnalysisTable
from qmu_hw.study.noise_effect import COLUMNS, write_noise_effects
from qmu_hw.study.references import exact_reference, oracle_trainings, same_noise_reference
from qmu_hw.study.runner import StudyRunner


def _cfg(out, **over):
    data = {
        "study": {"name": "refs", "output": str(out), "seeds": [0, 1]},
        "data": {"dataset": "iris", "per_class": 10},
        "training": {"epochs": 3, "patience": 2, "n_oracles": 2},
        "grid": {"scenarios": ["class:0"], "methods": ["identity"], "backends": ["exact", "dm-depol-0.05"],
                 "shots": [128]},
    }
    for k, v in over.items():
        data[k].update(v)
    return parse_config(data)


def test_reference_backends_follow_the_noise_level(tmp_path):
    cfg = _cfg(tmp_path, grid={"backends": ["exact", "exact-shots", "dm-depol-0.01", "aer-fake-manila",
                                            "braket-iqm-garnet"],
                               "surrogates": {"aer-fake-manila": "dm-depol-0.02"}})
    assert exact_reference(cfg) == "exact"
    assert same_noise_reference(cfg, "exact") == "exact"
    assert same_noise_reference(cfg, "exact-shots") == "exact"  # shots change evaluation only
    assert same_noise_reference(cfg, "dm-depol-0.01") == "dm-depol-0.01"
    assert same_noise_reference(cfg, "aer-fake-manila") == "dm-depol-0.02"  # the surrogate
    assert same_noise_reference(cfg, "braket-iqm-garnet") == "exact"  # never train on a billed device


def test_oracle_trainings_count_both_ensembles_once(tmp_path):
    cfg = _cfg(tmp_path, grid={"backends": ["exact", "exact-shots", "dm-depol-0.01"], "shots": [64, 256],
                               "methods": ["identity", "ga"]}, training={"n_oracles": 3})
    runs = oracle_trainings(cfg)
    # 2 seeds × 1 scenario × 3 oracles on exact, the same again on dm-depol-0.01; shots and
    # methods share them, and exact-shots shares the exact ensemble.
    assert len(runs) == 12
    assert sorted({r.backend for r in runs}) == ["dm-depol-0.01", "exact"]
    assert parse_config({}).n_oracles == 5  # the default


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("refs")
    cfg = _cfg(out)
    summary = StudyRunner(cfg, log=lambda *_: None).run()
    assert summary.failed == 0
    store = StudyRunner(cfg, log=lambda *_: None).store
    return out, store.rows()


def test_noisy_cells_compare_with_oracles_trained_under_their_noise(study):
    out, rows = study
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("oracle-*.pt"))
    assert sum("dm-depol-0.05@None" in n for n in ckpts) == 4  # 2 seeds × K=2, exact (noisy) training
    assert sum("-exact@None" in n for n in ckpts) == 4
    for r in rows:
        for col in ("excess", "within_oracle_spread", "excess_exact", "within_oracle_spread_exact"):
            assert col in r
        if r["backend"] == "exact":
            assert r["js_forget"] == r["js_forget_exact"] and r["cost_reference_same"] == "exact"
        else:
            assert r["cost_reference_same"] == "dm-depol-0.05"
            assert r["js_forget"] != r["js_forget_exact"]


def test_study_writes_paired_effects(study, tmp_path):
    _, rows = study
    effects, _ = write_noise_effects(tmp_path, rows)
    with open(tmp_path / "noise_effect.csv") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS  # no axis columns in this study
        got = list(reader)
    assert got and all(r["backend"] == "dm-depol-0.05" and r["shots"] == "128" for r in got)
    assert {r["reference"] for r in got} == {"same", "exact", "none"}
    # p2 = 0.5 at p1 = 0.05 leaves a 3-epoch teacher at chance: every pair is excluded, and says why
    assert all((r["valid"], r["n_seeds"], r["n_excluded"]) == ("False", "0", "2") for r in got)
    assert all("at chance on dm-depol-0.05" in r["reason"] for r in got)
    # with the gate opened (a threshold below chance) the same pairs are tested
    effects, _ = write_noise_effects(tmp_path, rows, analysis=AnalysisTable(min_teacher_accuracy=0.01))
    assert effects and all(e.valid and e.n_seeds == 2 for e in effects)


def test_reference_outputs_round_trip_and_go_stale_with_their_models(tmp_path):
    """The shared teacher/oracle outputs on disk (one file per group, read without pickle);
    a checkpoint found unreadable (so retrained) takes its seed's reference files with it."""
    import numpy as np

    from qmu_hw.study import reference_outputs as ro
    from qmu_hw.study.config import parse_config
    from qmu_hw.study.tasks import Backends, TaskRunner

    parts = ("retain", "forget", "test")
    T = {n: np.full((2, 3), 0.5) for n in parts}
    O = [{n: np.eye(3)[:2] * (k + 1) for n in parts} for k in range(2)]
    path = ro.path_for(tmp_path, (0, "class:0", "exact", None, "exact"), "abcdef0123456789")
    with ro.group_lock(path):
        ro.save(path, T, O, None)
    T2, O2, OX2 = ro.load(path)
    assert OX2 is O2 and len(O2) == 2 and np.array_equal(O2[1]["test"], O[1]["test"])
    ro.save(path, T, O, O[:1])
    assert len(ro.load(path)[2]) == 1
    path.write_bytes(b"not an npz")
    assert ro.load(path) is None  # recomputed, never trusted

    cfg = parse_config({"study": {"name": "r", "seeds": [0], "output": str(tmp_path / "out")},
                        "data": {"dataset": "iris", "per_class": 10}})
    runner = TaskRunner(cfg, Backends(cfg), log=lambda *_: None)
    runner.ckpt_dir.mkdir(parents=True)
    ref = ro.path_for(runner.ckpt_dir, (0, "class:0", "exact", None, "exact"), cfg.digest())
    ro.save(ref, T, O, None)
    other = ro.path_for(runner.ckpt_dir, (1, "class:0", "exact", None, "exact"), cfg.digest())
    ro.save(other, T, O, None)
    bad = runner._ckpt("teacher", 0, "exact@None")
    bad.write_bytes(b"garbage")
    assert runner._load(runner.prep(0), bad, runner.backend("exact", None, 0), None) is None
    assert not ref.exists() and other.exists()
