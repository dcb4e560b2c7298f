"""The Python study API: run from a dict or a file, the same results as the CLI's store,
resume, refusals."""

from __future__ import annotations

import pytest

import qmu_hw.study as study
from qmu_hw import BudgetExceededError, InvalidRequestError
from qmu_hw.study.api import NotAStudyError, config_from_dict, config_to_toml
from qmu_hw.study.config import ConfigError, load_config


def tiny(out) -> dict:
    return {
        "study": {"name": "api-tiny", "output": str(out), "seeds": [0]},
        "data": {"dataset": "iris", "per_class": 15},
        "training": {"epochs": 3, "patience": 2, "n_oracles": 2},
        "grid": {"scenarios": ["class:0"], "methods": ["identity", "ga"], "backends": ["exact"],
                 "shots": ["exact"]},
        "methods": {"ga": {"epochs": 1}},
    }


def test_run_from_dict_then_load(tmp_path):
    out = tmp_path / "study"
    res = study.run(tiny(out))
    df = res.dataframe()
    assert sorted(df["method"]) == ["ga", "identity"]
    assert {"acc_forget", "acc_test", "cost_shots"} <= set(df.columns)
    assert res.report_path == out / "report.md" and res.report_path.read_text().startswith("# ")
    assert res.summary.ran == 2
    # The folder keeps the dict as config.toml; loading it gives the same config digest.
    again = study.load(out)
    assert again.config.digest() == res.config.digest()
    assert again.dataframe().equals(df)
    # Rerunning resumes: nothing left to run.
    assert study.run(tiny(out)).summary.ran == 0
    # The API's finish step is the CLI's: every output file, noise effects included (none
    # here: no noisy cells to pair, so the table is empty, with its columns).
    from qmu_hw.study.finish import OUTPUTS
    from qmu_hw.study.noise_effect import COLUMNS

    assert all((out / name).is_file() for name in OUTPUTS)
    table = res.noise_effect()
    assert table.empty and tuple(table.columns) == COLUMNS


def test_run_from_dict_then_noise_effect_returns_the_paired_table(tmp_path):
    """The README's example: qmu_hw.study.run(dict) followed by .noise_effect()."""
    cfg = tiny(tmp_path / "noisy")
    cfg["study"]["seeds"] = [0, 1]
    cfg["grid"].update(methods=["identity"], backends=["exact", "dm-depol-0.01"])
    res = study.run(cfg)
    table = res.noise_effect()
    assert not table.empty
    # every seed is either paired or excluded by the validity gate (with its reason)
    assert set(table["backend"]) == {"dm-depol-0.01"} and set(table["n_seeds"] + table["n_excluded"]) == {2}
    assert {"same", "exact", "none"} == set(table["reference"])
    assert set(table["estimand"]) == {"model"}  # identity alone has no Δ_unlearning


def test_noise_effect_reads_the_csv(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / "results.sqlite").write_bytes(b"")
    (out / "noise_effect.csv").write_text("method,metric,delta\nga,acc_forget,-0.1\n")
    from qmu_hw.study.api import StudyResult

    assert StudyResult(out).noise_effect()["delta"].tolist() == [-0.1]


def test_load_refuses_a_folder_that_is_not_a_study(tmp_path):
    with pytest.raises(NotAStudyError, match="not a study: it has no results.sqlite"):
        study.load(tmp_path)
    with pytest.raises(NotAStudyError, match="not a folder"):
        study.load(tmp_path / "missing")
    assert isinstance(NotAStudyError("x"), FileNotFoundError)


def test_dict_config_errors_name_the_key(tmp_path):
    bad = tiny(tmp_path)
    bad["grid"]["backends"] = ["nope"]
    with pytest.raises(ConfigError, match=r"\[grid\] backends \(line \d+\): unknown backend 'nope'"):
        study.run(bad)
    bad = tiny(tmp_path)
    bad["training"]["epochs"] = "ten"
    with pytest.raises(ConfigError, match=r"\[training\] epochs .*expected int, got 'ten'"):
        config_from_dict(bad)
    with pytest.raises(ConfigError, match="path or a dict"):
        study.run(42)
    with pytest.raises(InvalidRequestError, match="unknown executor 'spark'.*'local', 'processes', 'ray'"):
        study.run(tiny(tmp_path), executor="spark")
    with pytest.raises(InvalidRequestError, match="address is for executor='ray'"):
        study.run(tiny(tmp_path), address="127.0.0.1:6379")


def test_dict_round_trips_through_toml(tmp_path):
    d = tiny(tmp_path)
    d["grid"]["backends"] = ["exact", "aer-depol-0.01"]
    d["grid"]["surrogates"] = {"aer-depol-0.01": "dm-depol-0.01"}
    d["budget"] = {"per_phase": {"unlearn": 1000}, "max_cost": 2.5}
    cfg, text = config_from_dict(d)
    path = tmp_path / "c.toml"
    path.write_text(config_to_toml(d))
    assert load_config(path).digest() == cfg.digest()
    assert cfg.surrogates == {"aer-depol-0.01": "dm-depol-0.01"} and cfg.per_phase == {"unlearn": 1000}


def test_billed_backends_need_confirmation(tmp_path):
    d = tiny(tmp_path)
    d["grid"]["backends"] = ["braket-sv1"]
    d["grid"]["shots"] = [100]
    with pytest.raises(BudgetExceededError, match="billed backends \\['braket-sv1'\\].*confirm_billed=True"):
        study.run(d)
    assert not (tmp_path / "results.sqlite").exists()


@pytest.mark.aer
def test_a_native_device_in_the_grid_is_a_profile_file_and_resumes(tmp_path):
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    from qmu_hw.adapters.devices import device_profile_toml
    from qmu_hw.core.profiles import load_profile_file

    out = tmp_path / "dev"
    d = tiny(out)
    d["grid"]["backends"] = [FakeManilaV2()]
    d["grid"]["shots"] = [64]
    d["grid"]["methods"] = ["identity"]
    cfg, _ = config_from_dict(d)
    (path,) = cfg.backends
    assert path == str(out / "devices" / "aer-fake_manila.toml")
    prof = load_profile_file(path)
    assert prof.adapter == "aer" and prof.noise == {"kind": "fake-device", "device": "FakeManilaV2"}
    # The fingerprint is in the file, so the same device gives the same bytes (same cell ids).
    assert device_profile_toml(FakeManilaV2())[1] == open(path).read()
    res = study.run(d)
    assert res.summary.ran == 1 and study.run(d).summary.ran == 0


def test_custom_noise_models_cannot_be_named_in_a_study(tmp_path):
    qiskit_aer = pytest.importorskip("qiskit_aer")
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    from qmu_hw import UnsupportedFeatureError

    nm = NoiseModel()
    nm.add_all_qubit_quantum_error(depolarizing_error(0.01, 1), ["rx"])
    d = tiny(tmp_path)
    d["grid"]["backends"] = [qiskit_aer.AerSimulator(noise_model=nm)]
    with pytest.raises(UnsupportedFeatureError, match="custom noise model cannot be named in a study"):
        study.run(d)


@pytest.mark.ray
@pytest.mark.slow  # tests/study/test_ray.py compares Ray with one process cell for cell in the default run
def test_ray_executor_gives_the_local_numbers(tmp_path):
    pytest.importorskip("ray")
    local = study.run(tiny(tmp_path / "local")).dataframe()
    on_ray = study.run(tiny(tmp_path / "ray"), executor="ray", workers=2).dataframe()
    cols = ["method", "acc_forget", "acc_test", "js_forget"]
    assert local.sort_values("method")[cols].reset_index(drop=True).equals(
        on_ray.sort_values("method")[cols].reset_index(drop=True))
