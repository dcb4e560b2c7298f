"""The study config: one dataclass per table, every wrong input refused at load time with
the file, table, key, line and what was expected."""

import dataclasses
import re
from pathlib import Path

import pytest

from qmu_hw.study.config import (
    FLAT,
    TABLES,
    BudgetTable,
    ConfigError,
    StudyConfig,
    TrainingTable,
    load_config,
)

BASE = """
[study]
name = "cfgtest"
seeds = [0, 1]

[data]
dataset = "iris"
per_class = 20

[training]
epochs = 2

[grid]
scenarios = ["subset:0.1", "class:0"]
methods = ["identity", "ga"]
backends = ["exact"]
"""

ROOT = Path(__file__).resolve().parents[2]


def write(folder: Path, text: str, name: str = "study.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(text)
    return p


def refused(tmp_path, text, pattern, **kw):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, **kw)
    msg = str(err.value)
    assert str(path) in msg and re.search(pattern, msg), msg
    return msg


def test_the_base_config_loads_with_flat_and_table_access(tmp_path):
    cfg = load_config(write(tmp_path, BASE))
    assert cfg.seeds == (0, 1) == cfg.tables.study.seeds
    assert cfg.model is None and cfg.tables.model.name is None  # per-dataset default
    assert cfg.methods == ("identity", "ga") and cfg.shots == (None,)
    assert cfg.n_oracles == cfg.tables.training.n_oracles and cfg.epochs == 2
    assert cfg.output == "runs/cfgtest"
    # every flat name reads its table's field
    for flat, (table, key) in FLAT.items():
        assert getattr(cfg, flat) == getattr(getattr(cfg.tables, table), key), flat


def test_every_table_key_is_reachable_flat():
    """A key added to a table without a FLAT entry would be invisible to code reading cfg.X."""
    for table, cls in TABLES.items():
        for f in dataclasses.fields(cls):
            if not f.metadata.get("toml", True):  # [grid] axes: read from sub-tables, reached as cfg.axes
                assert hasattr(StudyConfig, f.name), f.name
                continue
            assert (table, f.name) in FLAT.values(), (table, f.name)


def test_tables_are_frozen(tmp_path):
    cfg = load_config(write(tmp_path, BASE))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.tables.training.lr = 1.0  # type: ignore[misc]
    assert isinstance(cfg, StudyConfig) and isinstance(cfg.tables.budget, BudgetTable)
    assert isinstance(cfg.tables.training, TrainingTable)


def test_digest_ignores_name_and_output_but_not_training(tmp_path):
    a = load_config(write(tmp_path, BASE))
    b = load_config(write(tmp_path, BASE.replace('name = "cfgtest"', 'name = "other"\noutput = "x"'), "b.toml"))
    c = load_config(write(tmp_path, BASE.replace("epochs = 2", "epochs = 3"), "c.toml"))
    assert a.digest() == b.digest() != c.digest()


@pytest.mark.parametrize("mutate, pattern", [
    # a repeated seed would run every cell twice and count it twice in the means
    (lambda t: t.replace("seeds = [0, 1]", "seeds = [0, 0]"),
     r"\[study\] seeds \(line 4\): expected a list of distinct .*0 appears more than once"),
    (lambda t: t.replace('"class:0"]', '"class:0", "class:0"]'), r"\[grid\] scenarios .*more than once"),
    (lambda t: t.replace('"ga"]', '"ga", "ga"]'), r"\[grid\] methods .*more than once"),
    (lambda t: t.replace('backends = ["exact"]', 'backends = ["exact"]\nshots = [64, 64]'),
     r"\[grid\] shots .*64 appears more than once"),
    (lambda t: t.replace("epochs = 2", "epochs = 2\nlr = 0"), r"\[training\] lr \(line \d+\): expected a positive"),
    (lambda t: t.replace("epochs = 2", "epochs = 2\nlr = -0.1"), r"\[training\] lr .*positive number, got -0.1"),
    (lambda t: t.replace("epochs = 2", "epochs = 2\nlr = nan"), r"\[training\] lr .*positive number, got nan"),
    (lambda t: t.replace("epochs = 2", "epochs = 2\nn_oracles = 0"), r"\[training\] n_oracles .*positive integer"),
    (lambda t: t.replace("[training]", "[model]\nn_qubits = 5\n\n[training]"),
     r"\[model\] n_qubits .*dataset 'iris' has 4 features.*expected n_qubits = 4, got 5"),
    (lambda t: t.replace("[training]", '[model]\nname = "hqml-cnn"\n\n[training]'),
     r"\[model\] name .*does not take tabular inputs"),
    (lambda t: t.replace("per_class = 20", "per_class = 3"),
     r"\[data\] per_class \(line \d+\): per_class = 3 is too small"),
    (lambda t: t.replace('"class:0"]', '"class:3"]'), r"\[grid\] scenarios .*classes 0..2"),
    (lambda t: t.replace('backends = ["exact"]', 'backends = ["exact"]\nsurrogates = { "dm-depol-0.01" = "exact" }'),
     r"\[grid\] surrogates .*not in \[grid\] backends"),
    (lambda t: t + "\n[budget]\nmax_cost = -1\n", r"\[budget\] max_cost .*>= 0"),
    (lambda t: t.replace('dataset = "iris"', 'dataset = "iris"\nangle_range = "tau"'),
     r"\[data\] angle_range .*unknown angle_range 'tau'"),
])
def test_wrong_values_are_refused_with_key_and_line(tmp_path, mutate, pattern):
    refused(tmp_path, mutate(BASE), pattern)


def test_per_class_just_large_enough_is_accepted(tmp_path):
    load_config(write(tmp_path, BASE.replace("per_class = 20", "per_class = 10")))


PROFILE = """schema_version = 1
name = "{name}"
adapter = "statevector"
[defaults]
shots = "exact"
{extra}
"""


def test_relative_profile_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    study = tmp_path / "study"
    write(study / "profiles", PROFILE.format(name="mine", extra=""), "mine.toml")
    cfg_path = write(study, BASE.replace('backends = ["exact"]', 'backends = ["exact", "profiles/mine.toml"]'))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    cfg = load_config(cfg_path)
    assert cfg.backends[1] == str((study / "profiles" / "mine.toml").resolve())
    from qmu_hw.study.grid import expand

    assert {c.backend for c in expand(cfg)} == set(cfg.backends)


def test_missing_profile_file_names_where_it_was_looked_for(tmp_path):
    refused(tmp_path, BASE.replace('backends = ["exact"]', 'backends = ["exact", "nope/p.toml"]'),
            r"\[grid\] backends .*profile file .*nope/p.toml not found \(relative paths are read from")


def test_typo_in_a_profile_option_is_refused_at_load(tmp_path):
    write(tmp_path, PROFILE.format(name="typo", extra="[options]\ndtyp = \"float32\"\n"), "typo.toml")
    refused(tmp_path, BASE.replace('backends = ["exact"]', 'backends = ["typo.toml"]'),
            r"\[grid\] backends .*unknown option\(s\) \['dtyp'\]; expected \['dtype', 'max_qubits'\]")


def test_typo_in_a_cloud_profile_option_is_refused_without_connecting(tmp_path):
    ibm = (ROOT / "backends" / "ibm-brisbane.toml").read_text().replace("optimization_level", "optimisation_level")
    write(tmp_path, ibm, "ibm.toml")
    refused(tmp_path, BASE.replace('backends = ["exact"]', 'backends = ["ibm.toml"]'),
            r"unknown option\(s\) \['optimisation_level'\]")


def test_too_many_qubits_for_a_backend_is_refused_at_load(tmp_path):
    write(tmp_path, PROFILE.format(name="small", extra="[limits]\nmax_qubits = 3\n"), "small.toml")
    refused(tmp_path, BASE.replace('backends = ["exact"]', 'backends = ["exact", "small.toml"]'),
            r"\[grid\] backends .*allows at most 3 qubits; the model needs 4")
    # the CNN on a 5-qubit calibrated device: too many for its qubit count
    digits = BASE.replace('dataset = "iris"', 'dataset = "digits"').replace('"class:0"]', '"class:9"]')
    refused(tmp_path, digits.replace('backends = ["exact"]', 'backends = ["aer-fake-manila"]')
            .replace("[training]", "[model]\nn_qubits = 6\n\n[training]"),
            r"backend 'aer-fake-manila' allows at most 5 qubits; the model needs 6")


def test_noise_on_the_noiseless_engine_is_refused_at_load(tmp_path):
    write(tmp_path, PROFILE.format(name="noisy", extra='[noise]\nkind = "depolarizing"\np1 = 0.01\n'), "noisy.toml")
    refused(tmp_path, BASE.replace('backends = ["exact"]', 'backends = ["noisy.toml"]'),
            r"statevector engine is noiseless, got 'depolarizing'")


def test_train_backend_is_checked_too(tmp_path):
    write(tmp_path, PROFILE.format(name="small", extra="[limits]\nmax_qubits = 2\n"), "small.toml")
    refused(tmp_path, BASE.replace("epochs = 2", 'epochs = 2\ntrain_backend = "small.toml"'),
            r"\[training\] train_backend .*allows at most 2 qubits")


def test_compare_with_resolves_against_the_given_base(tmp_path):
    (tmp_path / "ref").mkdir()
    (tmp_path / "ref" / "r.csv").write_text("scenario,method,acc_forget_unlearn,acc_test_unlearn,UQI\nsubset2pct,GA,0.5,0.9,0.1\n")
    text = BASE + '\n[report]\ncompare_with = "ref/r.csv"\n'
    cfg = load_config(write(tmp_path, text))
    assert cfg.compare_with == str((tmp_path / "ref" / "r.csv").resolve())
    # a copy in another folder (a study's output) reads it against the original folder
    copy = write(tmp_path / "out", text, "config.toml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(copy, check_backends_now=False)
    assert load_config(copy, check_backends_now=False, base_dir=tmp_path).compare_with == cfg.compare_with


def test_shots_for_gives_one_backend_its_own_shots(tmp_path):
    from qmu_hw.study.grid import expand

    text = BASE.replace('backends = ["exact"]', 'backends = ["exact", "exact-shots", "dm-depol-0.01"]\n'
                        'shots = ["exact"]\nshots_for = { "exact-shots" = [256, 1024] }')
    cfg = load_config(write(tmp_path, text))
    runs = {(c.backend, c.shots) for c in expand(cfg)}
    assert runs == {("exact", None), ("exact-shots", 256), ("exact-shots", 1024), ("dm-depol-0.01", None)}
    # without the key the digest is what it was before the key existed
    plain = load_config(write(tmp_path / "plain", BASE))
    assert "shots_for" not in plain.digest() and plain.shots_for == {}
    assert cfg.digest() != load_config(write(tmp_path / "b", text.replace("[256, 1024]", "[256]"))).digest()


@pytest.mark.parametrize("value, pattern", [
    ('{ "exact-shots" = [0] }', r"shots_for.*positive integers"),
    ('{ "exact-shots" = [] }', r"shots_for.*positive integers"),
    ('{ "exact-shots" = [64, 64] }', r"shots_for.*positive integers"),
    ('{ "aer-ideal" = [64] }', r"shots_for.*not in \[grid\] backends"),
])
def test_bad_shots_for_is_refused(tmp_path, value, pattern):
    refused(tmp_path, BASE + f"shots_for = {value}\n", pattern)


def test_analysis_table_keys_are_checked_and_decide_no_cell_result():
    from qmu_hw.study.config import ConfigError, parse_config

    base = parse_config({})
    cfg = parse_config({"analysis": {"primary": "excess_rel", "min_teacher_accuracy": 0.5}})
    assert (cfg.primary, cfg.min_teacher_accuracy) == ("excess_rel", 0.5)
    assert (base.primary, base.min_teacher_accuracy) == ("js_forget", None)
    assert cfg.digest() == base.digest()  # how effects are tested changes no cell
    with pytest.raises(ConfigError, match=r"\[analysis\] primary: unknown primary endpoint metric 'jsforget'"):
        parse_config({"analysis": {"primary": "jsforget"}})
    with pytest.raises(ConfigError, match=r"min_teacher_accuracy: expected an accuracy in \(0, 1\], got 0"):
        parse_config({"analysis": {"min_teacher_accuracy": 0}})
