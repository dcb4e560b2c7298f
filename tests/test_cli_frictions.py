"""CLI frictions of issue 21: a missing SDK exits 4 naming the extra, `qmu-hw backends` names
the extras, unknown profile and method names get a "did you mean", --help is plain text, and
a finished run leaves no lock file."""

from __future__ import annotations

import sys
import textwrap

import pytest

from qmu_hw import InvalidRequestError, ProfileError
from qmu_hw.cli import EXIT_INPUT, EXIT_UNAVAILABLE, main
from qmu_hw.core.names import unknown_name_message
from qmu_hw.core.profiles import resolve_profile
from qmu_hw.study.store import ResultsStore, StudyLockedError
from qmu_hw.unlearning import get_method

ADAPTER = '''
from qmu_hw.core.backend import BaseBackend, register_adapter

@register_adapter("needs-sdk")
class NeedsSdk(BaseBackend):
    sdk, extra = ("qmu_hw_test_sdk_that_is_not_installed",), "braket"
'''


def _study(tmp_path, backend: str) -> str:
    cfg = tmp_path / "s.toml"
    cfg.write_text(textwrap.dedent(f"""
        [study]
        name = "frictions"
        output = "{tmp_path / 'out'}"
        [training]
        epochs = 2
        n_oracles = 1
        [grid]
        scenarios = ["class:0"]
        methods = ["identity"]
        backends = ["{backend}"]
        shots = [128]
        """))
    return str(cfg)


def test_a_missing_sdk_exits_4_with_the_pip_line(tmp_path, monkeypatch, capsys):
    # A real adapter module whose SDK is not installed (on this machine every shipped SDK is;
    # scripts/check_wheel.py checks the shipped aer profile in a venv without the extra).
    # (registered in-process: a profile names an adapter, never a module path)
    import importlib

    from qmu_hw.core import adapter_registry

    (tmp_path / "frictions_adapter.py").write_text(ADAPTER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(adapter_registry, "_ADAPTERS", dict(adapter_registry._ADAPTERS))
    importlib.import_module("frictions_adapter")
    prof = tmp_path / "needs.toml"
    prof.write_text('schema_version = 1\nname = "needs"\nadapter = "needs-sdk"\n')
    for argv in (["run", _study(tmp_path, str(prof))], ["estimate", _study(tmp_path, str(prof)), "--no-timing"]):
        assert main(argv) == EXIT_UNAVAILABLE
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "pip install 'qmu-hw[braket]'" in err
        assert "qmu_hw_test_sdk_that_is_not_installed" in err
    assert not (tmp_path / "out" / "results.sqlite").exists()  # refused before any work
    sys.modules.pop("frictions_adapter", None)


def test_backends_names_the_extra_of_every_profile(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[:3] == ["profile", "adapter", "extra"]
    rows = {ln.split()[0]: ln.split() for ln in out.splitlines()[2:] if ln.strip() and not ln.startswith("to use")}
    assert rows["aer-ideal"][2] == "aer" and rows["braket-sv1"][2] == "braket"
    assert rows["exact"][2] == "(core)" and rows["dm-depol-0.01"][2] == "(core)"


@pytest.mark.parametrize("typo, suggestion", [
    ("ibm_brisbane", "'ibm-brisbane'"), ("exakt", "'exact'"), ("FakeManilaV2", "'aer-fake-manila'"),
    ("aer-depol-0.1", "'aer-depol-0.01'"),
])
def test_unknown_profile_names_get_did_you_mean(typo, suggestion):
    with pytest.raises(ProfileError) as err:
        resolve_profile(typo)
    first = str(err.value).split(";")[0]
    assert first.startswith(f"unknown backend {typo!r} (did you mean ") and suggestion in first


def test_unknown_method_names_get_did_you_mean():
    with pytest.raises(InvalidRequestError, match=r"unknown unlearning method 'neggrad' \(did you mean 'neggrad\+'\?\)"):
        get_method("neggrad")
    with pytest.raises(InvalidRequestError, match=r"unknown unlearning method 'SCRUB' \(did you mean 'scrub'"):
        get_method("SCRUB")


def test_no_suggestion_when_nothing_is_close():
    msg = unknown_name_message("backend", "zzzz", ["exact", "aer-ideal"], "one of")
    assert msg == "unknown backend 'zzzz'; expected one of: aer-ideal, exact"


def test_help_is_plain_text(capsys):
    for argv in (["--help"], ["run", "--help"], ["backends", "--help"]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert "``" not in out and ":class:" not in out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert capsys.readouterr().out.splitlines()[2] == "qmu-hw: run, estimate and report studies; list backends."


def test_a_finished_run_leaves_no_lock_file_and_the_lock_still_excludes(tmp_path):
    store = ResultsStore(tmp_path / "out")
    with store.lock():
        assert (tmp_path / "out" / ".lock").is_file()
        with pytest.raises(StudyLockedError):
            with ResultsStore(tmp_path / "out").lock():
                pass
    assert not (tmp_path / "out" / ".lock").exists()
    with store.lock():  # and the folder can be locked again
        pass
    assert not (tmp_path / "out" / ".lock").exists()


def test_an_unknown_backend_in_a_study_exits_2(tmp_path, capsys):
    assert main(["run", _study(tmp_path, "exakt")]) == EXIT_INPUT
    assert "unknown backend 'exakt'" in capsys.readouterr().err
